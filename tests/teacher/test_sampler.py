"""The nucleus sampler: top-p semantics equal to transformers', exact log-probabilities, reproducibility."""

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel
from transformers.generation.logits_process import TopPLogitsWarper

from multiref.teacher import kv_cache
from multiref.teacher.finetune import collate
from multiref.teacher.nucleus import nucleus_sample, top_p_filter
from multiref.teacher.sampler import sample


def reference(logits: torch.Tensor, top_p: float, keep: int = 1) -> torch.Tensor:
    return TopPLogitsWarper(top_p=top_p, min_tokens_to_keep=keep)(None, logits.clone())


@pytest.mark.parametrize("top_p", [0.01, 0.3, 0.5, 0.9, 0.95, 0.999, 1.0])
@pytest.mark.parametrize("seed", range(5))
def test_top_p_equals_transformers_on_random_logits(top_p: float, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(16, 257, generator=g) * (1 + seed)
    assert torch.equal(top_p_filter(logits, top_p), reference(logits, top_p))


@pytest.mark.parametrize("top_p", [0.1, 0.25, 0.5, 0.75, 0.95])
def test_top_p_with_ties_and_special_values(top_p: float) -> None:
    cases = [
        torch.zeros(3, 10),  # all tied
        torch.tensor([[1.0, 1.0, 1.0, 0.0, 0.0, -1.0]] * 2),  # ties at the boundary
        torch.tensor([[0.0, float("-inf"), 2.0, float("-inf"), 2.0]]),  # masked entries
        torch.tensor([[50.0, 0.0, 0.0, 0.0]]),  # one dominant token
        torch.randint(0, 3, (8, 40)).float(),  # many ties
    ]
    for logits in cases:
        assert torch.equal(top_p_filter(logits, top_p), reference(logits, top_p)), logits
    logits = torch.randn(4, 30)
    assert torch.equal(top_p_filter(logits, 0.05, min_tokens_to_keep=3), reference(logits, 0.05, keep=3))


def test_nucleus_sample_draws_only_from_the_nucleus_with_its_probabilities() -> None:
    logits = torch.tensor([[3.0, 2.5, 2.0, 0.0, -1.0, -2.0]]).repeat(20000, 1)
    g = torch.Generator().manual_seed(0)
    draws = nucleus_sample(logits, 0.8, 1.0, g).squeeze(1)
    kept = torch.isfinite(top_p_filter(logits[:1], 0.8))[0]
    assert kept[draws].all()
    expected = top_p_filter(logits[:1], 0.8).softmax(-1)[0]
    observed = torch.bincount(draws, minlength=6).float() / len(draws)
    assert torch.allclose(observed, expected, atol=0.015)


@pytest.mark.parametrize("scale", [0.1, 1.0, 4.0, 20.0])  # flat to peaked rows: both paths of nucleus_sample
@pytest.mark.parametrize("top_p", [0.3, 0.9, 0.95, 1.0])
def test_partial_sort_draws_the_tokens_of_the_full_sort(scale: float, top_p: float) -> None:
    """The top-k shortcut (and the bracket route for flat rows) draws the same token from the same uniform
    number as a sort of the whole vocabulary, and only nucleus tokens."""
    logits = torch.randn(64, 3000, generator=torch.Generator().manual_seed(int(scale * 10))) * scale
    fast = nucleus_sample(logits, top_p, 1.0, torch.Generator().manual_seed(1), widths=(16,))
    full = nucleus_sample(logits, top_p, 1.0, torch.Generator().manual_seed(1), widths=(), bracket=False)
    assert torch.equal(fast, full)
    assert torch.isfinite(top_p_filter(logits, top_p)).gather(1, fast).all()


def tiny_model(seed: int = 0, vocab: int = 50) -> GPT2LMHeadModel:
    torch.manual_seed(seed)
    config = GPT2Config(vocab_size=vocab, n_positions=64, n_embd=32, n_layer=2, n_head=2, eos_token_id=1, pad_token_id=0)
    model = GPT2LMHeadModel(config).eval()
    with torch.no_grad():  # push the last hidden state towards </s> so hypotheses end at varied lengths
        model.transformer.ln_f.bias.copy_(model.lm_head.weight[1] * 0.5)
    return model


@pytest.mark.parametrize("compact_at", [0.0, 0.25, 1.0])
def test_logprobs_equal_teacher_forced_scores(compact_at: float) -> None:
    model = tiny_model()
    prefixes = [[5, 6, 7], [8, 9, 10, 11, 12, 13, 14], [2], [20, 21, 22, 23]]
    hyps = sample(model, prefixes, n=4, eos_id=1, pad_id=0, top_p=0.9, max_new_tokens=12, seed=3, batch_contexts=3, compact_at=compact_at)
    lengths = set()
    for prefix, per in zip(prefixes, hyps, strict=True):
        assert len(per) == 4
        examples = []
        for h in per:
            target = list(h.token_ids) + ([1] if h.finished else [])
            lengths.add(len(target))
            examples.append((list(prefix) + target, [-100] * len(prefix) + target))
        batch = collate(examples, 0, "cpu")
        with torch.no_grad():
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1]
        target = batch["labels"][:, 1:]
        logp = logits.log_softmax(-1).gather(-1, target.clamp(min=0).unsqueeze(-1)).squeeze(-1)
        scores = (logp * (target != -100)).sum(-1)
        for h, score in zip(per, scores.tolist(), strict=True):
            assert h.logprob == pytest.approx(score, abs=1e-4)
    assert len(lengths) > 2  # hypotheses of several lengths: padding and early stopping were exercised


@pytest.mark.parametrize("compact_at", [0.0, 1.0])
def test_cache_written_in_place_gives_the_hypotheses_of_transformers_cache(monkeypatch, compact_at: float) -> None:
    """The preallocated cache (kv_cache) against transformers' own, repeated and concatenated at every step."""
    model = tiny_model(seed=1)
    prefixes = [[5, 6, 7], [8, 9, 10, 11, 12], [2]]
    args = {"n": 5, "eos_id": 1, "pad_id": 0, "top_p": 0.9, "max_new_tokens": 15, "seed": 4, "compact_at": compact_at}
    grown = sample(model, prefixes, **args)
    monkeypatch.setattr(kv_cache, "DynamicLayer", None)  # share() falls back to DynamicCache.batch_repeat_interleave
    plain = sample(model, prefixes, **args)
    assert [[(h.token_ids, h.finished) for h in per] for per in grown] == [[(h.token_ids, h.finished) for h in per] for per in plain]
    for a, b in zip(grown, plain, strict=True):
        assert [h.logprob for h in a] == pytest.approx([h.logprob for h in b], abs=1e-5)


def test_same_seed_same_hypotheses_other_seed_others() -> None:
    model = tiny_model()
    prefixes = [[5, 6, 7], [8, 9]]
    a = sample(model, prefixes, 5, 1, 0, seed=11, max_new_tokens=10)
    b = sample(model, prefixes, 5, 1, 0, seed=11, max_new_tokens=10)
    c = sample(model, prefixes, 5, 1, 0, seed=12, max_new_tokens=10)
    assert a == b and a != c


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"top_p": 0.0}, "top_p must be in"),
        ({"top_p": 1.5}, "top_p must be in"),
        ({"n": 0}, "at least 1"),
        ({"temperature": 0.0}, "temperature must be positive"),
        ({"max_new_tokens": 60}, "exceeds the model's 64 positions"),
    ],
)
def test_impossible_settings_are_rejected(kwargs: dict, message: str) -> None:
    args = {"n": 2, "top_p": 0.9, "max_new_tokens": 10} | kwargs
    with pytest.raises(ValueError, match=message):
        sample(tiny_model(), [[3] * 10], eos_id=1, pad_id=0, **args)
