"""MMI-bidi reranking: the choice on hand-made N-best lists, the batched backward scorer, end to end."""

import pyarrow as pa
import pytest
import torch

from multiref.errors import ConfigError
from multiref.mirror.mmi import (
    DEFAULT_GAMMA,
    DEFAULT_LAMBDA,
    backward_examples,
    backward_log_likelihood,
    mmi_decode,
    mmi_scores,
    rerank,
)
from multiref.models.beam import Hypothesis
from multiref.models.data import Example, collate
from multiref.models.seq2seq_attn import Seq2SeqAttn, Seq2SeqAttnConfig

PAD, BOS, EOS = 0, 1, 2
V = 14

# log p(y | c, x) and |y| of three candidates, and log p(x | y) of each under the backward model.
NBEST = [Hypothesis((5,), -1.0, True), Hypothesis((5, 6, 7), -2.0, True), Hypothesis((8, 9), -3.0, True)]
BACKWARD = [-10.0, -4.0, -3.0]


def tiny(seed: int) -> Seq2SeqAttn:
    torch.manual_seed(seed)
    return Seq2SeqAttn(Seq2SeqAttnConfig(vocab_size=V, embedding_dim=8, hidden=16, layers=2, dropout=0.0, beam=3, min_len=1,
                                         init_scale=1.0)).eval()  # wide weights: untrained but not degenerate


def triple(c: list[int], x: list[int]) -> Example:
    return Example(((BOS, *c, EOS), (BOS, *x, EOS)), (0, 1), (BOS, 5, EOS), 0)


def test_defaults_are_documented_values() -> None:
    assert (DEFAULT_LAMBDA, DEFAULT_GAMMA) == (0.5, 0.0)


def test_n_best_default_is_dc_neuralconversations_beam_10_n_best_10(monkeypatch) -> None:
    """DC-NeuralConversation's README decodes DC-MMI10 with -beam_size 10 -n_best 10 (docs/fidelity.md, Mi17): the
    library, the schema and config/config.yaml agree on 10, and a forward model of beam 10 searches 10 wide."""
    import inspect
    from pathlib import Path

    import yaml

    from multiref.mirror.mmi import DEFAULT_N, mmi_decode_run
    from multiref.models import seq2seq_attn

    repo = Path(__file__).resolve().parents[2]
    schema = yaml.safe_load((repo / "workflow" / "schemas" / "config.schema.yaml").read_text())
    config = yaml.safe_load((repo / "config" / "config.yaml").read_text())
    assert DEFAULT_N == 10
    assert schema["properties"]["mirror"]["properties"]["mmi"]["properties"]["n"]["default"] == DEFAULT_N
    assert config["mirror"]["mmi"]["n"] == DEFAULT_N
    for fn in (mmi_decode, mmi_decode_run):
        assert inspect.signature(fn).parameters["n"].default == DEFAULT_N
    seen, search = [], seq2seq_attn.beam_search

    def spy(*args, **kwargs):
        seen.append((kwargs["beam"], kwargs["n_best"]))
        return search(*args, **kwargs)

    monkeypatch.setattr(seq2seq_attn, "beam_search", spy)
    torch.manual_seed(2)
    forward = Seq2SeqAttn(Seq2SeqAttnConfig(vocab_size=V, embedding_dim=8, hidden=16, layers=1, dropout=0.0, beam=10)).eval()
    chosen = mmi_decode(forward, tiny(seed=3), [triple([5, 6], [7])], max_len=4)
    assert seen == [(10, 10)] and len(chosen) == 1


@pytest.mark.parametrize(("lam", "chosen"), [(0.0, 0), (0.5, 1), (2.0, 2)])
def test_lambda_moves_the_choice_towards_the_backward_model(lam: float, chosen: int) -> None:
    # scores: lam 0 -> (-1, -2, -3); lam 0.5 -> (-6, -4, -4.5); lam 2 -> (-21, -10, -9)
    assert rerank(NBEST, BACKWARD, lam, 0.0) == NBEST[chosen]
    assert mmi_scores(NBEST, BACKWARD, lam, 0.0) == [h.logprob + lam * b for h, b in zip(NBEST, BACKWARD, strict=True)]


def test_gamma_favours_longer_candidates() -> None:
    assert rerank(NBEST, BACKWARD, 0.0, 0.0) == NBEST[0]
    assert rerank(NBEST, BACKWARD, 0.0, 1.0) == NBEST[1]  # (0, 1, -1): the 3-token candidate
    assert mmi_scores(NBEST, BACKWARD, 0.0, 1.0) == [0.0, 1.0, -1.0]


def test_ties_go_to_the_forward_models_earlier_candidate() -> None:
    assert mmi_scores(NBEST, BACKWARD, 1.0, 0.0)[1:] == [-6.0, -6.0]
    assert rerank(NBEST, BACKWARD, 1.0, 0.0) == NBEST[1]
    swapped = [NBEST[0], NBEST[2], NBEST[1]]
    assert rerank(swapped, [BACKWARD[0], BACKWARD[2], BACKWARD[1]], 1.0, 0.0) == NBEST[2]
    same = [Hypothesis((7,), -1.0, True), Hypothesis((8,), -1.0, True)]
    assert all(rerank(same, [0.0, 0.0]) == same[0] for _ in range(3))


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="3 candidates but 2 backward scores"):
        rerank(NBEST, BACKWARD[:2])
    with pytest.raises(ValueError, match="at least one candidate"):
        rerank([], [])
    with pytest.raises(ConfigError, match="lambda must be a finite number, got nan"):
        rerank(NBEST, BACKWARD, float("nan"))


def test_backward_examples_swap_query_and_candidate() -> None:
    ex = triple([9, 10], [11, 12])
    out = backward_examples(ex, NBEST[1:], BOS, EOS)
    assert [e.context for e in out] == [((BOS, 5, 6, 7, EOS),), ((BOS, 8, 9, EOS),)]
    assert all(e.response == (BOS, 11, 12, EOS) and e.floors == (0,) and e.response_floor == 1 for e in out)


def test_batched_backward_scores_equal_one_by_one() -> None:
    torch.set_num_threads(1)
    backward = tiny(seed=1)
    examples = [triple([5], [6, 7, 8]), triple([9, 10], [11]), triple([12], [13, 5, 6, 7, 8, 9])]
    nbest = [NBEST, [Hypothesis((), -0.5, True), Hypothesis((9, 9, 9, 9, 9), -7.0, False)], [NBEST[2]]]
    batched = backward_log_likelihood(backward, examples, nbest, batch_size=100)
    assert [len(s) for s in batched] == [3, 2, 1]
    for ex, hyps, scores in zip(examples, nbest, batched, strict=True):
        for h, s in zip(hyps, scores, strict=True):
            alone = Example(((BOS, *h.ids, EOS),), (0,), ex.context[1], 1)
            assert s == pytest.approx(float(backward.log_likelihood(*collate([alone], PAD))[0]), abs=1e-5)
    small = backward_log_likelihood(backward, examples, nbest, batch_size=2)
    assert all(a == pytest.approx(b, abs=1e-5) for sa, sb in zip(batched, small, strict=True) for a, b in zip(sa, sb, strict=True))


def test_mmi_decode_reranks_the_forward_n_best() -> None:
    torch.set_num_threads(1)
    forward, backward = tiny(seed=2), tiny(seed=3)
    examples = [triple([5, 6], [7]), triple([8], [9, 10]), triple([11], [12, 13])]
    x, x_floor, _, y_floor = collate(examples, PAD)
    nbest = forward.n_best(x, x_floor, y_floor, n=3, max_len=5)
    back = backward_log_likelihood(backward, examples, nbest)
    for lam, gamma in ((0.0, 0.0), (0.5, 0.0), (5.0, 0.3)):
        chosen = mmi_decode(forward, backward, examples, n=3, lam=lam, gamma=gamma, max_len=5, batch_size=2)
        # (ids only: decoding 2 contexts at a time may change the log-probabilities in the last digits)
        assert [h.ids for h in chosen] == [rerank(h, b, lam, gamma).ids for h, b in zip(nbest, back, strict=True)]
        if lam == gamma == 0.0:
            assert [h.ids for h in chosen] == [h[0].ids for h in nbest]  # no backward term: the forward model's best
        if lam == 5.0:
            assert [h.ids for h in chosen] != [h[0].ids for h in nbest]  # the backward model overrules the forward one


def test_mmi_run_writes_the_reranked_responses_and_the_forward_perplexity(tmp_path) -> None:
    import json

    import pyarrow.parquet as pq

    from multiref.data.pairs import PAIR_SCHEMA, Vocabulary
    from multiref.io import sha256_file, write_parquet
    from multiref.mirror.mmi import mmi_decode_run
    from multiref.models import registry
    from multiref.models.data import pair_examples

    torch.set_num_threads(1)
    tokens = ("<pad>", "<s>", "</s>", "<unk>", "<sep>") + tuple(f"w{i}" for i in range(V - 5))
    write_parquet(Vocabulary(tokens, tuple([0] * V)).to_arrow(), tmp_path / "vocab.parquet", {})
    rows = [([5, 6], [7]), ([8], [9, 10]), ([11], [12, 13])]
    cols = {"pair_id": [40, 41, 42], "session_id": [0, 0, 1], "turn": [2, 3, 2],
            "context": [[" ".join(tokens[i] for i in c), " ".join(tokens[i] for i in x)] for c, x in rows],
            "context_floors": [["A", "B"]] * 3, "context_ids": [[[BOS, *c, EOS], [BOS, *x, EOS]] for c, x in rows],
            "response": ["w0"] * 3, "response_floor": ["A"] * 3, "response_ids": [[BOS, 5, EOS]] * 3}
    write_parquet(pa.table(cols, schema=PAIR_SCHEMA), tmp_path / "test.parquet", {})
    sha = sha256_file(tmp_path / "vocab.parquet")
    forward, backward = tiny(seed=2), tiny(seed=3)
    registry.save(forward, "fwd", tmp_path / "fwd.pt", {"vocab_sha256": sha})
    registry.save(backward, "bwd", tmp_path / "bwd.pt", {"vocab_sha256": sha})
    (tmp_path / "fwd.json").write_text(json.dumps({"model": "fwd", "parameters": 100}))
    out = {k: tmp_path / "out" / f"{k}.{e}" for k, e in (("decode", "parquet"), ("ppl", "json"), ("info", "json"))}
    mmi_decode_run(tmp_path / "fwd.pt", tmp_path / "bwd.pt", tmp_path / "test.parquet", tmp_path / "vocab.parquet", out["decode"],
                   out["ppl"], out["info"], tmp_path / "fwd.json", n=3, lam=5.0, gamma=0.3, max_len=5, batch_size=2)
    examples = list(pair_examples(tmp_path / "test.parquet").values())
    expected = mmi_decode(forward, backward, examples, n=3, lam=5.0, gamma=0.3, max_len=5, batch_size=2)
    table = pq.read_table(out["decode"]).to_pydict()
    assert table["pair_id"] == [40, 41, 42]
    assert table["hypothesis"] == [" ".join(tokens[i] for i in h.ids) for h in expected]
    info = json.loads(out["info"].read_text())
    assert info["model"] == "fwd+mmi" and info["mmi"]["lambda"] == 5.0 and info["mmi"]["n"] == 3
    assert info["parameters"] == 100 + sum(p.numel() for p in backward.parameters())
    ppl = json.loads(out["ppl"].read_text())
    assert ppl["pairs"] == 3 and ppl["ppl_token"] > 1
