"""The claims as data: the parser names the key and the value at fault, the configuration check names the claim
and the run, the shipped configurations' claims are valid and quote the papers, and the run folders' layout."""

import copy
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import REPO, SHARED
from snakemake.utils import update_config, validate

from multiref.claims import DIRECTIONS, METRICS, Claims, RunRef, parse_claims, problems, run_dirs
from multiref.errors import ConfigError

SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"
PAPERS = SHARED / "papers"
GOOD = {"id": "multiref_hred", "paper": "zhao2021", "section": "§1", "sentence": "A sentence.", "direction": "greater",
        "metrics": ["ppl", "bleu2"], "comparisons": [{"better": "hred/hyp5", "worse": "hred/gt"}]}


def config(override: str | None = None) -> dict[str, Any]:
    """A shipped configuration as Snakemake builds it: config.yaml, an override on top, the schema's defaults."""
    cfg = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    if override:
        update_config(cfg, yaml.safe_load((REPO / override).read_text()))
    validate(cfg, str(SCHEMA))
    return cfg


def test_a_claim_parses_into_typed_fields_with_the_schemas_defaults() -> None:
    claims = parse_claims({"list": [GOOD]})
    assert (claims.seeds, claims.level, claims.samples, claims.seed) == (1, 0.95, 1000, 0)
    (claim,) = claims.claims
    assert claim.metrics == ("ppl", "bleu2") and claim.direction == "greater" and not claim.triples and claim.margin == {}
    assert claim.comparisons[0].better == RunRef("hred", "hyp5") and claims.runs() == [RunRef("hred", "hyp5"), RunRef("hred", "gt")]
    mirror = parse_claims({"list": [{**GOOD, "metrics": ["reval"], "triples": True,
                                     "comparisons": [{"better": "mirror/gt", "worse": "seq2seq_attn+mmi/gt"}]}]})
    assert mirror.runs()[1] == RunRef("seq2seq_attn+mmi", "gt", triples=True)
    assert mirror.runs()[1].name == "mirror/seq2seq_attn+mmi/gt"
    assert parse_claims(None) == Claims(claims=())


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"metrics": ["ppl", "bleu4"]}, "claims.list[0].metrics: unknown metric 'bleu4'"),
        ({"metrics": []}, "claims.list[0].metrics: expected a non-empty list"),
        ({"metrics": [["ppl"]]}, "claims.list[0].metrics: unknown metric ['ppl']"),
        ({"metrics": ["ppl", "ppl"]}, "claims.list[0].metrics: a metric is listed twice"),
        ({"direction": "better"}, "claims.list[0].direction: 'better' is not one of greater, equivalent"),
        ({"sentence": None}, "claims.list[0].sentence: expected a non-empty string, got None"),
        ({"sentence": "  "}, "claims.list[0].sentence: expected a non-empty string, got '  '"),
        ({"paper": "vaswani2017"}, "claims.list[0].paper: 'vaswani2017' is not one of zhao2021, li2021"),
        ({"id": "Multi-Ref"}, "claims.list[0].id: expected lower-case letters, digits and _, got 'Multi-Ref'"),
        ({"direction": "equivalent"}, "claims.list[0].margin: direction 'equivalent' needs a margin per metric"),
        ({"direction": "limited", "margin": {"ppl": 1.0}}, "claims.list[0].margin: direction 'limited' needs a margin for every metric; missing ['bleu2']"),
        ({"direction": "equivalent", "margin": {"ppl": 1.0, "bleu2": 0}}, "claims.list[0].margin.bleu2: expected a margin > 0, got 0"),
        ({"direction": "equivalent", "margin": {"ppl": 1.0, "bleu2": "x"}}, "claims.list[0].margin.bleu2: expected a number"),
        ({"direction": "equivalent", "margin": {"ppl": 1, "bleu2": 1, "reval": 1}}, "margin for metric(s) ['reval'] that the claim does not compare"),
        ({"margin": {"ppl": 1.0, "bleu2": 1.0}}, "claims.list[0].margin: a margin belongs to direction equivalent or limited, not 'greater'"),
        ({"comparisons": []}, "claims.list[0].comparisons: expected a non-empty list"),
        ({"comparisons": [{"better": "hred/hyp5"}]}, "claims.list[0].comparisons[0]: expected exactly the keys better and worse"),
        ({"comparisons": [{"better": "hred-hyp5", "worse": "hred/gt"}]}, "claims.list[0].comparisons[0].better: expected a run as model/setting"),
        ({"comparisons": [{"better": "hred/gt", "worse": "hred/gt"}]}, "claims.list[0].comparisons[0]: compares run 'hred/gt' with itself"),
        ({"comparisons": [{"better": "hred/gt", "worse": "seq2seq_attn+mmi/gt"}]}, "comparisons[0].worse: an MMI system ('seq2seq_attn+mmi/gt') exists only on the triples"),
        ({"triples": "yes"}, "claims.list[0].triples: expected true or false, got 'yes'"),
        ({"on": "triples"}, "claims.list[0]: unknown key(s) ['on']"),
    ],
)
def test_bad_claims_are_refused_naming_the_key_and_the_value(patch: dict, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_claims({"list": [{**GOOD, **patch}]})
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"seeds": 0}, "claims.seeds: expected an integer in [1, inf], got 0"),
        ({"seeds": 1.5}, "claims.seeds: expected an integer"),
        ({"level": 0.4}, "claims.level: expected a number in (0.5, 1), got 0.4"),
        ({"level": 1}, "claims.level: expected a number in (0.5, 1), got 1"),
        ({"samples": 0}, "claims.samples: expected an integer in [1, inf], got 0"),
        ({"lists": []}, "claims: unknown key(s) ['lists']"),
        ({"list": {"id": "x"}}, "claims.list: expected a list of claims"),
        ({"list": [GOOD, "x"]}, "claims.list[1]: expected a mapping, got 'x'"),
        ({"list": [GOOD, GOOD]}, "claims.list[1].id: 'multiref_hred' is already the id of claims.list[0]"),
    ],
)
def test_bad_section_keys_are_refused_naming_the_key(section: dict, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_claims(section)
    assert message in str(info.value)


def test_the_schema_knows_the_same_metrics_and_directions_as_the_library() -> None:
    schema = yaml.safe_load(SCHEMA.read_text())
    item = schema["properties"]["claims"]["properties"]["list"]["items"]["properties"]
    assert item["metrics"]["items"]["enum"] == list(METRICS)
    assert item["direction"]["enum"] == list(DIRECTIONS)


@pytest.mark.parametrize("override", [None, "config/demo.yaml", ".test/config-paper/config.yaml"])
def test_the_shipped_claims_name_runs_their_configuration_trains(override: str | None) -> None:
    cfg = config(override)
    assert parse_claims(cfg["claims"]).claims
    assert list(problems(cfg)) == []


def test_the_demos_claims_are_few_runs_with_three_seeds() -> None:
    """Three seeds of each claimed run: the demo keeps to HRED runs its tables train (its time budget)."""
    from multiref.config import run_pairs, table4_settings

    cfg = config("config/demo.yaml")
    claims = parse_claims(cfg["claims"])
    assert claims.seeds == 3
    tables = cfg["tables"]
    trained = set(run_pairs(cfg)) | {(r["model"], r["data"]) for t in ("table1", "table2") for r in tables[t]}
    trained |= {(tables["table4"]["model"], d) for d in table4_settings(cfg)}
    trained |= {(s["model"], s["data"]) for s in cfg["mirror"]["systems"]}
    assert {(r.model, r.data) for r in claims.runs()} <= trained and not any(r.triples for r in claims.runs())
    assert {r.model for r in claims.runs() if not r.triples} == {"hred"}


@pytest.mark.parametrize(
    ("claim", "message"),
    [
        ({**GOOD, "comparisons": [{"better": "hred_huge/hyp5", "worse": "hred/gt"}]},
         "claims.list[0] (multiref_hred).comparisons[0].better: the configuration does not train hred_huge/hyp5: model 'hred_huge' is not in `models`"),
        ({**GOOD, "comparisons": [{"better": "hred/hyp7", "worse": "hred/gt"}]},
         "the configuration does not train hred/hyp7: data setting 'hyp7' is not in settings.names"),
        ({**GOOD, "triples": True, "metrics": ["reval"], "comparisons": [{"better": "mirror/hyp100", "worse": "hred/gt"}]},
         "comparisons[0].better: the configuration does not train mirror/mirror/hyp100: run mirror/hyp100 on the triples is not a row of mirror.systems"),
        ({**GOOD, "comparisons": [{"better": "hred/hyp5", "worse": "hred_tokkd/gt"}]}, "metric ppl on hred_tokkd/gt: a tok-KD student's perplexity is per GPT-2 BPE token"),
        ({**GOOD, "metrics": ["kl"]}, "kl (the exact distance to the true response distribution) exists only for runs on the pairs of a synthetic corpus"),
        ({**GOOD, "metrics": "ppl"}, "claims.list[0].metrics: expected a non-empty list"),
    ],
)
def test_a_claim_on_a_run_the_configuration_does_not_train_is_reported(claim: dict, message: str) -> None:
    cfg = copy.deepcopy(config())
    cfg["claims"]["list"] = [claim]
    found = list(problems(cfg))
    assert len(found) == 1 and message in found[0], found


def _letters(text: str) -> str:
    """The text without whitespace and hyphens: the papers' text files break lines inside words, with or without
    a hyphen that the printed word may or may not have (``seq-`` / ``KD``, ``sig-`` / ``nificantly``)."""
    return re.sub(r"[\s\-]", "", text)


def quoted(sentence: str, text: str) -> bool:
    """Whether ``sentence`` is in ``text`` (both as :func:`_letters`), allowing one interruption: the text files
    put a table where the page has it, inside a running sentence (§5.1's goes around Table 1)."""
    s, t = _letters(sentence), _letters(text)
    if s in t:
        return True
    for k in range(len(s) // 4, len(s) - len(s) // 4):  # each part at least a quarter of the sentence
        at = t.find(s[:k])
        while at >= 0:
            if t.find(s[k:], at + k) >= 0:
                return True
            at = t.find(s[:k], at + 1)
    return False


@pytest.mark.skipif(not PAPERS.is_dir(), reason=f"{PAPERS} is absent (development machines only)")
@pytest.mark.parametrize("override", [None, "config/demo.yaml"])
def test_every_claims_sentence_is_quoted_from_its_paper(override: str | None) -> None:
    texts = {"zhao2021": (PAPERS / "zhao2021-multi-referenced-training.txt").read_text(),
             "li2021": (PAPERS / "li2021-mirror-backward-reasoning.txt").read_text()}
    for claim in parse_claims(config(override)["claims"]).claims:
        assert quoted(claim.sentence, texts[claim.paper]), f"{claim.id}: not found in {claim.paper}: {claim.sentence}"
    assert not quoted("the proposed multi-sequence seq-KD is much worse than tok-KD in all metrics.", texts["zhao2021"])


def test_run_dirs_follow_the_seed_layout(tmp_path: Path) -> None:
    assert run_dirs(tmp_path, "hred", "gt+hyp5", 3) == [tmp_path / "runs/hred/gt+hyp5", tmp_path / "runs/hred/gt+hyp5_seed1",
                                                        tmp_path / "runs/hred/gt+hyp5_seed2"]
    assert run_dirs("r", "seq2seq_attn+mmi", "gt", 1, mirror=True) == [Path("r/mirror/runs/seq2seq_attn+mmi/gt")]
    with pytest.raises(ConfigError, match="claims.seeds"):
        run_dirs(tmp_path, "hred", "gt", 0)


@pytest.mark.parametrize("override", [None, "config/demo.yaml"])
def test_docs_claims_md_quotes_every_shipped_claim_and_its_margins(override: str | None) -> None:
    docs = " ".join((REPO / "docs" / "claims.md").read_text().split())
    for claim in parse_claims(config(override)["claims"]).claims:
        assert f"**`{claim.id}`**" in docs, f"docs/claims.md does not describe {claim.id}"
        assert f'"{claim.sentence}"' in docs, f"docs/claims.md does not quote {claim.id}'s sentence"
        for metric, margin in claim.margin.items():
            assert f"{margin:g}" in docs, f"docs/claims.md does not give {claim.id}'s margin for {metric} ({margin:g})"
