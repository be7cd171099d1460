"""A seeded synthetic corpus in DailyDialog's format with an exactly known response distribution.

Dialogues are walks on a small graph of utterance templates (one graph per topic). Templates carry
slots (``{name}``, ``{dish}``, ...). On an edge ``a -> b`` a slot of ``b`` that also occurs in ``a`` is
copied from the previous utterance; any other slot of ``b`` is drawn uniformly from its value list.
So the next utterance depends on the previous utterance only, and

    p(y | previous utterance u) = p(edge t(u) -> t(y)) * prod over fresh slots of 1 / |values|,

a small, enumerable distribution with several responses that differ in words and meaning. Every
realised utterance string maps back to one (template, slot values) (checked on construction), so the
distribution is keyed by the previous utterance's text. The generator writes an archive with the same
four files as DailyDialog, so the same reader and preprocessing run on it, and saves the distribution.
"""

from __future__ import annotations

import itertools
import random
import re
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import pyarrow as pa

from multiref.data.dailydialog import CORPUS_FILES, EOU
from multiref.io import atomic_path, write_parquet

SLOT_VALUES: dict[str, tuple[str, ...]] = {
    "name": ("Anna", "Ben", "Carla", "David", "Emma", "Frank", "Grace", "Henry", "Iris", "Jack",
             "Kate", "Leo", "Maria", "Nick", "Olivia", "Paul"),
    "dish": ("pizza", "sushi", "pasta", "curry", "tacos", "soup", "dumplings", "salad", "noodles",
             "steak", "pancakes", "fried rice"),
    "city": ("Paris", "Tokyo", "Rome", "Berlin", "Madrid", "Boston", "Sydney", "Cairo", "Lima",
             "Oslo", "Vienna", "Seoul"),
    "day": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
    "time": ("seven", "eight", "nine", "ten", "eleven", "noon", "two", "three", "four", "five"),
    "item": ("jacket", "lamp", "camera", "backpack", "watch", "umbrella", "printer", "sofa", "kettle",
             "bicycle"),
    "price": ("twenty", "thirty", "forty", "fifty", "sixty", "eighty", "ninety", "a hundred"),
}

# topic id -> (opening templates with probabilities, templates)
# template: id -> (text, act id, emotion id, [(next id, probability), ...]); no edges = closing turn.
Graph = tuple[list[tuple[str, float]], dict[str, tuple[str, int, int, list[tuple[str, float]]]]]

GRAPHS: dict[int, Graph] = {
    1: (  # Ordinary Life: eating out
        [("o_hungry", 0.6), ("o_cook", 0.4)],
        {
            "o_hungry": ("Hi {name}, are you hungry?", 2, 0, [("o_yes", 0.5), ("o_ate", 0.3), ("o_starving", 0.2)]),
            "o_cook": ("{name}, shall I cook {dish} tonight?", 2, 0, [("o_yes", 0.4), ("o_no_cook", 0.35), ("o_ate", 0.25)]),
            "o_yes": ("Yes, I would love some {dish}.", 1, 4, [("o_place", 0.6), ("o_again", 0.4)]),
            "o_ate": ("Not really, I had {dish} an hour ago.", 1, 0, [("o_good", 0.7), ("o_coffee", 0.3)]),
            "o_starving": ("I'm starving, let's go right now!", 3, 4, [("o_where", 1.0)]),
            "o_no_cook": ("No thanks, let's eat out on {day}.", 3, 0, [("o_where", 0.5), ("o_booked", 0.5)]),
            "o_where": ("Where do you want to go?", 2, 0, [("o_place", 0.7), ("o_home", 0.3)]),
            "o_place": ("I know a great place for {dish} near the station.", 1, 4, [("o_cost", 0.5), ("o_open", 0.5)]),
            "o_again": ("{dish} again? We had that yesterday.", 2, 6, [("o_place", 0.4), ("o_sorry", 0.6)]),
            "o_good": ("Was the {dish} any good?", 2, 0, [("o_great", 0.5), ("o_awful", 0.5)]),
            "o_coffee": ("Then maybe we can get a coffee at {time}.", 4, 0, [("o_bye_ok", 1.0)]),
            "o_booked": ("Good idea, I will book a table for {day}.", 4, 4, [("o_thanks", 1.0)]),
            "o_home": ("Honestly I would rather stay home and order {dish}.", 1, 0, [("o_thanks", 0.5), ("o_sorry", 0.5)]),
            "o_cost": ("How much does the {dish} cost there?", 2, 0, [("o_price", 1.0)]),
            "o_open": ("Is it open on {day}?", 2, 0, [("o_open_yes", 0.6), ("o_open_no", 0.4)]),
            "o_great": ("It was great, the best {dish} in town.", 1, 4, [("o_bye_ok", 1.0)]),
            "o_awful": ("It was awful, far too salty.", 1, 2, [("o_sorry", 1.0)]),
            "o_sorry": ("Oh, I'm sorry to hear that.", 1, 5, []),
            "o_price": ("About {price} dollars, I think.", 1, 0, [("o_thanks", 0.5), ("o_expensive", 0.5)]),
            "o_open_yes": ("Yes, it opens at {time} on {day}.", 1, 0, [("o_thanks", 1.0)]),
            "o_open_no": ("No, it is closed on {day}.", 1, 5, [("o_sorry", 1.0)]),
            "o_expensive": ("That is too expensive for me.", 1, 5, []),
            "o_thanks": ("Great, thank you so much!", 4, 4, []),
            "o_bye_ok": ("Sounds good, see you then.", 4, 4, []),
        },
    ),
    6: (  # Tourism: travel plans
        [("t_trip", 0.5), ("t_back", 0.5)],
        {
            "t_trip": ("{name}, I am flying to {city} on {day}.", 1, 4, [("t_why", 0.4), ("t_envy", 0.3), ("t_long", 0.3)]),
            "t_back": ("Welcome back, {name}! How was {city}?", 2, 4, [("t_loved", 0.6), ("t_rain", 0.4)]),
            "t_why": ("Why are you going to {city}?", 2, 0, [("t_work", 0.5), ("t_family", 0.5)]),
            "t_envy": ("Lucky you! I have always wanted to see {city}.", 1, 4, [("t_come", 0.6), ("t_photos", 0.4)]),
            "t_long": ("How long will you stay there?", 2, 0, [("t_week", 0.5), ("t_until", 0.5)]),
            "t_loved": ("I loved it, the food in {city} was amazing.", 1, 4, [("t_what_ate", 0.6), ("t_photos", 0.4)]),
            "t_rain": ("It rained every day, so I stayed in the hotel.", 1, 5, [("t_sorry", 1.0)]),
            "t_work": ("I have a meeting there on {day}.", 1, 0, [("t_luck", 1.0)]),
            "t_family": ("My sister lives in {city}.", 1, 0, [("t_say_hi", 1.0)]),
            "t_come": ("You should come with me next time.", 3, 4, [("t_yes", 0.5), ("t_busy", 0.5)]),
            "t_photos": ("Please send me some photos.", 3, 0, [("t_sure", 1.0)]),
            "t_week": ("Just one week, I am back on {day}.", 1, 0, [("t_luck", 1.0)]),
            "t_until": ("I will stay until {day}, then fly home.", 1, 0, [("t_luck", 1.0)]),
            "t_what_ate": ("What did you eat there?", 2, 0, [("t_ate", 1.0)]),
            "t_ate": ("Mostly {dish}, every single day.", 1, 4, [("t_sure", 0.5), ("t_luck", 0.5)]),
            "t_sorry": ("That is a pity.", 1, 5, []),
            "t_luck": ("Have a good trip!", 3, 4, []),
            "t_say_hi": ("Say hello to her for me.", 3, 4, []),
            "t_yes": ("I would love to!", 4, 4, []),
            "t_busy": ("I wish I could, but I am too busy.", 1, 5, []),
            "t_sure": ("Sure, I will.", 4, 0, []),
        },
    ),
    8: (  # Work: a shop and an office
        [("w_help", 0.5), ("w_late", 0.5)],
        {
            "w_help": ("Good morning, can I help you?", 2, 0, [("w_want", 0.6), ("w_return", 0.4)]),
            "w_late": ("{name}, you are late again.", 1, 1, [("w_traffic", 0.5), ("w_bus", 0.3), ("w_sorry", 0.2)]),
            "w_want": ("I am looking for a {item}.", 1, 0, [("w_color", 0.4), ("w_this", 0.6)]),
            "w_return": ("I would like to return this {item}.", 3, 0, [("w_receipt", 0.7), ("w_broken", 0.3)]),
            "w_color": ("What color would you like?", 2, 0, [("w_black", 0.5), ("w_any", 0.5)]),
            "w_this": ("How about this {item}? It is on sale.", 3, 0, [("w_how_much", 0.6), ("w_take", 0.4)]),
            "w_receipt": ("Do you have the receipt?", 2, 0, [("w_here", 0.6), ("w_lost", 0.4)]),
            "w_broken": ("What is wrong with it?", 2, 0, [("w_stopped", 1.0)]),
            "w_black": ("Black, if you have one.", 1, 0, [("w_this", 1.0)]),
            "w_any": ("Any color is fine.", 1, 0, [("w_this", 1.0)]),
            "w_how_much": ("How much is it?", 2, 0, [("w_price", 1.0)]),
            "w_take": ("Great, I will take it.", 4, 4, [("w_thanks", 1.0)]),
            "w_here": ("Yes, here it is.", 1, 0, [("w_refund", 1.0)]),
            "w_lost": ("Sorry, I lost it.", 1, 5, [("w_no_refund", 1.0)]),
            "w_stopped": ("It stopped working after {day}.", 1, 1, [("w_refund", 0.5), ("w_no_refund", 0.5)]),
            "w_price": ("It is {price} dollars.", 1, 0, [("w_take", 0.6), ("w_expensive", 0.4)]),
            "w_refund": ("No problem, here is your refund.", 4, 0, [("w_thanks", 1.0)]),
            "w_no_refund": ("Then I am afraid I cannot give you a refund.", 1, 5, []),
            "w_expensive": ("That is more than I wanted to pay.", 1, 5, []),
            "w_thanks": ("Thank you, have a nice day.", 4, 4, []),
            "w_traffic": ("Sorry, the traffic was terrible this morning.", 1, 5, [("w_early", 1.0)]),
            "w_bus": ("I missed the bus at {time}.", 1, 5, [("w_early", 1.0)]),
            "w_sorry": ("I know, it will not happen again.", 4, 5, [("w_ok", 1.0)]),
            "w_early": ("Please leave home earlier on {day}.", 3, 1, [("w_ok", 1.0)]),
            "w_ok": ("OK, I will.", 4, 0, []),
        },
    ),
}

_SLOT = re.compile(r"\{(\w+)\}")


def _slots(text: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(_SLOT.findall(text)))


@dataclass(frozen=True)
class Template:
    key: str
    topic: int
    text: str
    act: int
    emotion: int
    edges: tuple[tuple[str, float], ...]

    @property
    def slots(self) -> tuple[str, ...]:
        return _slots(self.text)

    def realise(self, values: Mapping[str, str]) -> str:
        return self.text.format(**{s: values[s] for s in self.slots})


class SyntheticGrammar:
    """The template graphs, with exact next-utterance distributions."""

    def __init__(self, graphs: Mapping[int, Graph] = GRAPHS, slot_values: Mapping[str, tuple[str, ...]] = SLOT_VALUES):
        self.slot_values = dict(slot_values)
        self.openings: dict[int, list[tuple[str, float]]] = {}
        self.templates: dict[str, Template] = {}
        for topic, (openings, templates) in graphs.items():
            self.openings[topic] = list(openings)
            for key, (text, act, emotion, edges) in templates.items():
                if key in self.templates:
                    raise ValueError(f"template id {key!r} used twice")
                self.templates[key] = Template(key, topic, text, act, emotion, tuple(edges))
        self._check()

    def _check(self) -> None:
        for t in self.templates.values():
            for slot in t.slots:
                if slot not in self.slot_values:
                    raise ValueError(f"template {t.key!r}: unknown slot {{{slot}}}")
            if t.edges and abs(sum(p for _, p in t.edges) - 1.0) > 1e-9:
                raise ValueError(f"template {t.key!r}: edge probabilities sum to {sum(p for _, p in t.edges)}")
            for nxt, _ in t.edges:
                if nxt not in self.templates:
                    raise ValueError(f"template {t.key!r}: edge to unknown template {nxt!r}")
        for topic, openings in self.openings.items():
            if abs(sum(p for _, p in openings) - 1.0) > 1e-9:
                raise ValueError(f"topic {topic}: opening probabilities do not sum to 1")
        _ = self.parse_table  # raises if two realisations coincide

    def realisations(self, template: Template) -> Iterator[tuple[str, dict[str, str]]]:
        slots = template.slots
        for combo in itertools.product(*(self.slot_values[s] for s in slots)):
            values = dict(zip(slots, combo))
            yield template.realise(values), values

    @cached_property
    def parse_table(self) -> dict[str, tuple[str, dict[str, str]]]:
        """Every realisable utterance -> (template id, slot values); unique by construction."""
        table: dict[str, tuple[str, dict[str, str]]] = {}
        for t in self.templates.values():
            for text, values in self.realisations(t):
                if text in table:
                    raise ValueError(f"utterance {text!r} is realised by {table[text][0]!r} and {t.key!r}")
                table[text] = (t.key, values)
        return table

    def next_distribution(self, utterance: str) -> dict[str, float]:
        """The exact distribution of the next utterance given the previous one (empty if closing)."""
        key, values = self.parse_table[utterance]
        dist: dict[str, float] = {}
        for nxt_key, p_edge in self.templates[key].edges:
            nxt = self.templates[nxt_key]
            fresh = [s for s in nxt.slots if s not in values]
            carried = {s: values[s] for s in nxt.slots if s in values}
            for combo in itertools.product(*(self.slot_values[s] for s in fresh)):
                filled = carried | dict(zip(fresh, combo))
                p = p_edge
                for s in fresh:
                    p /= len(self.slot_values[s])
                text = nxt.realise(filled)
                dist[text] = dist.get(text, 0.0) + p
        return dist

    def opening_distribution(self, topic: int) -> dict[str, float]:
        dist: dict[str, float] = {}
        for key, p_open in self.openings[topic]:
            t = self.templates[key]
            share = 1.0
            for s in t.slots:
                share /= len(self.slot_values[s])
            for text, _ in self.realisations(t):
                dist[text] = dist.get(text, 0.0) + p_open * share
        return dist

    def sample_dialogue(self, rng: random.Random, topic: int, max_turns: int) -> list[tuple[Template, str]]:
        """A walk from an opening template of ``topic``: (template, utterance) per turn."""
        keys, probs = zip(*self.openings[topic])
        key = rng.choices(keys, probs)[0]
        values: dict[str, str] = {}
        turns: list[tuple[Template, str]] = []
        while True:
            t = self.templates[key]
            values = {s: values[s] if s in values else rng.choice(self.slot_values[s]) for s in t.slots}
            turns.append((t, t.realise(values)))
            if not t.edges or len(turns) >= max_turns:
                return turns
            keys, probs = zip(*t.edges)
            key = rng.choices(keys, probs)[0]


def generate(
    n_dialogues: int, seed: int, max_turns: int = 12, grammar: SyntheticGrammar | None = None
) -> list[tuple[int, list[tuple[Template, str]]]]:
    """``n_dialogues`` seeded dialogues as (topic id, [(template, utterance), ...])."""
    if n_dialogues < 1:
        raise ValueError(f"n_dialogues must be positive, got {n_dialogues}")
    if max_turns < 2:
        raise ValueError(f"max_turns must be at least 2, got {max_turns}")
    grammar = grammar or SyntheticGrammar()
    rng = random.Random(seed)
    topics = sorted(grammar.openings)
    return [(t, grammar.sample_dialogue(rng, t, max_turns)) for t in (rng.choice(topics) for _ in range(n_dialogues))]


DISTRIBUTION_SCHEMA = pa.schema(
    [
        pa.field("context", pa.string(), nullable=True),  # previous utterance (raw); null = opening turn
        pa.field("topic_id", pa.int8(), nullable=False),
        pa.field("response", pa.string(), nullable=False),
        pa.field("prob", pa.float64(), nullable=False),
    ]
)


def distribution_table(grammar: SyntheticGrammar) -> pa.Table:
    """The true next-utterance distribution for every realisable non-closing utterance, plus openings."""
    rows: dict[str, list] = {name: [] for name in DISTRIBUTION_SCHEMA.names}

    def add(context: str | None, topic: int, dist: Mapping[str, float]) -> None:
        for response, p in sorted(dist.items()):
            rows["context"].append(context)
            rows["topic_id"].append(topic)
            rows["response"].append(response)
            rows["prob"].append(p)

    for topic in sorted(grammar.openings):
        add(None, topic, grammar.opening_distribution(topic))
    for text, (key, _) in sorted(grammar.parse_table.items()):
        add(text, grammar.templates[key].topic, grammar.next_distribution(text))
    return pa.table(rows, schema=DISTRIBUTION_SCHEMA)


def write_archive(
    archive_path: Path, distribution_path: Path, n_dialogues: int, seed: int, max_turns: int = 12
) -> dict[str, Any]:
    """Write a DailyDialog-format zip (``ijcnlp_dailydialog/dialogues_*.txt``) and the true distribution."""
    grammar = SyntheticGrammar()
    dialogues = generate(n_dialogues, seed, max_turns, grammar)
    text_lines, act_lines, emotion_lines, topic_lines = [], [], [], []
    for topic, turns in dialogues:
        text_lines.append("".join(f"{utt} {EOU}" for _, utt in turns) + "\n")
        act_lines.append("".join(f"{t.act} " for t, _ in turns) + "\n")
        emotion_lines.append("".join(f"{t.emotion} " for t, _ in turns) + "\n")
        topic_lines.append(f"{topic}\n")
    contents = {
        CORPUS_FILES["text"]: "".join(text_lines),
        CORPUS_FILES["act"]: "".join(act_lines),
        CORPUS_FILES["emotion"]: "".join(emotion_lines),
        CORPUS_FILES["topic"]: "".join(topic_lines),
        "readme.txt": (
            f"Synthetic corpus generated by multiref (seed {seed}, {n_dialogues} dialogues). "
            "Each next utterance follows a known distribution given the previous one; "
            "see the distribution Parquet file written beside this archive.\n"
        ),
    }
    with atomic_path(archive_path) as tmp, zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, body in contents.items():
            info = zipfile.ZipInfo(f"ijcnlp_dailydialog/{name}", date_time=(2017, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, body.encode("utf-8"))
    meta = {"stage": "synthetic", "seed": seed, "n_dialogues": n_dialogues, "max_turns": max_turns}
    write_parquet(distribution_table(grammar), distribution_path, meta)
    return meta | {"n_utterances": sum(len(t) for _, t in dialogues)}
