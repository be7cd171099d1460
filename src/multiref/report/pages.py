"""Text pages of the report: the methods page (RST rendered to HTML) and HTML views of the tables."""

from __future__ import annotations

import html
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from multiref.errors import MultirefError

#: docs/ pages the methods page links to, with what each describes.
DOCS = {
    "data.md": "every file exchanged between stages (columns, metadata)",
    "fidelity.md": "where the paper is silent or the authors' code differs, and what multiref does",
    "benchmarks.md": "wall time and memory of the stages",
    "reval.md": "the learned evaluator (Reval) and its training data",
    "report.md": "this report: how to build and read it",
}


def _get(config: Mapping[str, Any], dotted: str, default: Any = "—") -> Any:
    node: Any = config
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return default
        node = node[part]
    return node


def _models_table(models: Mapping[str, Mapping[str, Any]]) -> str:
    lines = [".. list-table::", "   :header-rows: 1", "", "   * - model", "     - kind", "     - prior", "     - size"]
    for name, spec in models.items():
        prior = spec.get("prior", "—")
        if spec.get("components"):
            prior = f"{prior} ({spec['components']} components)"
        size = ", ".join(f"{k}={spec[k]}" for k in ("hidden", "layers", "latent_dim", "mechanisms") if k in spec) or "—"
        lines += [f"   * - ``{name}``", f"     - {spec.get('kind', '—')}", f"     - {prior}", f"     - {size}"]
    return "\n".join(lines)


def _doc_ref(name: str, docs_dir: Path | None) -> str:
    """``docs/<name>``, as a link to the file when ``docs_dir`` is given."""
    text = f"docs/{name}"
    if docs_dir is None:
        return f"``{text}``"
    return f"`{text} <{(docs_dir / name).resolve().as_uri()}>`__"


def _tables_shown(config: Mapping[str, Any]) -> list[str]:
    """The tables a configuration builds, in words."""
    tables = ["Table 8 (corpus statistics)", "Table 1 (data enhancement)", "Table 2 (model enhancement)"]
    if _get(config, "tables.table4.model", None):
        tables.append("Table 4 (number of hypotheses, with and without the ground truth)")
    if _get(config, "tables.table5.model", None):
        tables.append("Table 5 (each latent variable of the LGM model alone)")
    if _get(config, "corpus.source") == "synthetic":
        tables.append("the synthetic-distance table (exact KL to the known distribution)")
    return tables


def methods_rst(config: Mapping[str, Any], runs: list[str], docs_dir: Path | None = None) -> str:
    """The methods page of a configuration as reStructuredText. ``runs`` are the report's runs
    (``model/setting``); ``docs_dir``, when given, makes the docs/ references links to those files."""

    def doc(name: str) -> str:
        return _doc_ref(name, docs_dir)

    source = _get(config, "corpus.source")
    corpus = (
        "a synthetic corpus in DailyDialog's file format whose next-utterance distribution is known "
        "(the offline demo)" if source == "synthetic" else "DailyDialog (Li et al., 2017), the authors' archive"
    )
    settings = ", ".join(f"``{s}``" for s in _get(config, "settings.names", []))
    reval = _get(config, "reval.encoder", None)
    tables = _tables_shown(config)
    docs = "\n".join(f"- {doc(name)}: {what}." for name, what in DOCS.items())
    sections = [
        ("Methods", "="),
        ((f"Configuration ``{_get(config, 'run_name')}``, outputs under ``{_get(config, 'root')}/``. This page "
         "summarises how every number in the report was made; the documents named below hold the details."), None),
        ("Data", "-"),
        ((f"Corpus: {corpus}. Dialogues are normalised and tokenised as in the authors' code, split by "
         f"session (train/dev/test bounds {_get(config, 'data.split.train_end')}/{_get(config, 'data.split.dev_end')}), "
         f"and every utterance from the second one on is a response to up to {_get(config, 'data.history_len')} "
         f"previous utterances, each truncated to {_get(config, 'data.max_utterance_tokens')} tokens; the "
         f"vocabulary holds at most {_get(config, 'data.vocab_size')} entries. See {doc('data.md')} and {doc('fidelity.md')}."), None),
        ("Teacher and hypotheses", "-"),
        (("A small GPT-2 teacher with its own byte-level BPE is trained from scratch"
          if _get(config, "teacher.init") == "scratch"
          else f"A GPT-2 teacher (``{_get(config, 'teacher.model')}``) is fine-tuned")
         + f" on the training pairs for {_get(config, 'teacher.train.epochs')} epochs, then samples "
         f"{_get(config, 'teacher.sampling.n')} hypotheses per training context by nucleus sampling "
         f"(top-p {_get(config, 'teacher.sampling.top_p')}, temperature {_get(config, 'teacher.sampling.temperature')}). "
         f"The data settings are {settings}: ``gt`` the ground truth alone, ``hypK`` the first K hypotheses, "
         f"``gt+hypK`` both (the ground truth {_get(config, 'settings.gt_copies')} times).", None),
        ("Models and training", "-"),
        (f"The student models below are trained with Adam (learning rate {_get(config, 'train.lr')}, decayed by "
         f"{_get(config, 'train.decay')} when the dev monitor stops improving) and the best model on the dev "
         f"monitor is kept (``train.keep``: {_get(config, 'train.keep')}). The report shows these runs: "
         + ", ".join(f"``{r}``" for r in runs) + ".", None),
        (_models_table({name: spec for name, spec in _get(config, "models", {}).items()
                        if any(r.split("/")[0] == name for r in runs)}), None),
        ("Decoding", "-"),
        ((f"Each run decodes the test contexts greedily (at most {_get(config, 'decode.max_len')} tokens, batches "
         f"of {_get(config, 'decode.batch_size')}); latent models draw z from the prior with seed "
         f"{_get(config, 'decode.seed')}. Mixture-prior models are also decoded with each latent variable alone "
         "(Table 5, the per-variable samples and the π̄ plots)."), None),
        ("Metrics", "-"),
        ((f"Perplexity is the authors' mean over test batches of exp(mean token cross-entropy). BLEU-2 and the "
         f"embedding metrics Extrema / Average / Greedy (word vectors ``{_get(config, 'eval.word_vectors')}``, "
         f"variant ``{_get(config, 'eval.embedding_variant')}``) compare each response with its single "
         "reference and are multiplied by 100; Distinct-1/2 count the distinct uni-/bigrams of all responses. "
         f"Intervals in the tables are paired-bootstrap {_get(config, 'tables.bootstrap.level', 0.95) * 100:g}% "
         f"intervals over test contexts ({_get(config, 'tables.bootstrap.samples')} resamples)."), None),
        ("Evaluator", "-"),
        ((f"Reval is the learned evaluator of Zhao, Lala & Kawahara (2020) with encoder ``{reval}``, trained on "
          f"human judgements; see {doc('reval.md')}. Where a run has no Reval score yet, the plots leave the metric out.")
         if reval else "No learned evaluator is configured: Reval is left out.", None),
        ("Tables and plots", "-"),
        ("The report holds " + ", ".join(tables) + "; every cell is computed from this configuration's outputs, and "
         "``paper_*`` columns hold the paper's printed values for reference only. The plots show each metric against "
         "the number of hypotheses per context, the training curves, and π̄_k per latent variable; the samples "
         "show the responses of every run on the same seeded test contexts (the paper's Tables 6, 10, 11).", None),
        ("Documentation", "-"),
        (docs, None),
    ]
    out: list[str] = []
    for text, underline in sections:
        if underline:
            out += [text, underline * len(text), ""]
        else:
            out += [text, ""]
    return "\n".join(out)


def rst_to_html(text: str, title: str) -> str:
    """A standalone HTML page of an RST text (docutils), without a generator timestamp."""
    from docutils.core import publish_string

    try:
        page = publish_string(
            text,
            writer="html5",
            settings_overrides={"report_level": 2, "halt_level": 2, "title": title, "embed_stylesheet": True,
                                "datestamp": None, "generator": False, "footnote_backlinks": False},
        )
    except Exception as exc:  # docutils raises SystemMessage on bad markup
        raise MultirefError(f"methods page: invalid reStructuredText ({exc})") from exc
    return page.decode("utf-8")


_STYLE = (
    "body{font-family:system-ui,sans-serif;font-size:13px;margin:1.5em;color:#1e293b;background:#fff}"
    "table.results{border-collapse:collapse}table.results th,table.results td{border-bottom:1px solid #cbd5e1;"
    "padding:.2em .5em;text-align:right;white-space:nowrap}table.results th{background:#f1f5f9}"
    "table.results td:first-child,table.results th:first-child{text-align:left}"
)
_VERDICT_COLOURS = {"holds": "#166534", "fails": "#991b1b", "inconclusive": "#92400e"}


def _page(title: str, body: str) -> str:
    return (f"<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{html.escape(title)}</title>\n"
            f"<style>{_STYLE}</style>\n</head>\n<body>\n<h1>{html.escape(title)}</h1>\n{body}\n</body>\n</html>\n")


def claims_page(summary: pd.DataFrame, rows: pd.DataFrame) -> str:
    """The report's claims page: one block per claim (verdict, paper, section, sentence, note), then its evidence
    lines (:func:`multiref.claims.summarise` and :func:`multiref.claims.evaluate` frames)."""
    if summary.empty:
        raise MultirefError("claims page: no claim to show (claims.list is empty)")
    parts = [("<p>Each claim of the papers as a comparison between runs: per metric, mean(better) - mean(worse) with "
              "its interval over training seeds and test contexts, and a verdict (method: docs/claims.md).</p>"),
             summary[["claim", "paper", "section", "verdict", "holds", "fails", "inconclusive", "untested"]].to_html(
                 index=False, border=0, classes="results", escape=True)]
    for s in summary.itertuples(index=False):
        colour = _VERDICT_COLOURS.get(str(s.verdict), "#1e293b")
        parts.append(f"<h2><span style=\"color:{colour}\">{html.escape(str(s.verdict))}</span> {html.escape(str(s.claim))}</h2>")
        parts.append(f"<p>{html.escape(str(s.paper))}, {html.escape(str(s.section))}: &ldquo;{html.escape(str(s.sentence))}&rdquo;</p>")
        if isinstance(s.note, str) and s.note:
            parts.append(f"<p><em>{html.escape(s.note)}</em></p>")
        evidence = rows.loc[rows["claim"] == s.claim, "evidence"]
        parts.append("<ul>" + "".join(f"<li>{html.escape(str(e))}</li>" for e in evidence) + "</ul>")
    return _page("The papers' claims: verdicts", "\n".join(parts))


def table_html(csv: Path, title: str, caption: str = "") -> str:
    """A standalone HTML page showing one results table (the CSV as the pipeline wrote it)."""
    try:
        frame = pd.read_csv(csv, dtype=str, keep_default_na=False)  # cells exactly as in the CSV
    except (OSError, ValueError) as exc:
        raise MultirefError(f"{csv}: cannot read the table ({exc})") from exc
    if frame.empty:
        raise MultirefError(f"{csv}: the table has no rows")

    body = frame.to_html(index=False, border=0, classes="results", escape=True)
    return _page(title, (f"<p>{html.escape(caption)}</p>\n" if caption else "") + body)
