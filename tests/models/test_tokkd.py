"""HRED tok-KD: teacher/student alignment, PCA embeddings, the interpolated loss, isolation of the teacher, learning."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from teacher_helpers import TINY_TEACHER, make_data
from transformers import GPT2LMHeadModel, PreTrainedTokenizerFast

from multiref.errors import ConfigError
from multiref.models.data import collate
from multiref.models.hred import HRED, HREDConfig, parameter_count
from multiref.models.hred_tokkd import (
    HREDTokKD,
    HREDTokKDConfig,
    aligned_teacher_logits,
    load_tokkd_student,
    teacher_batch,
    tokkd_student,
)
from multiref.models.kd_data import (
    pca_embeddings,
    speaker_ids,
    student_embeddings,
    student_specials,
    tokkd_example,
    tokkd_examples,
)
from multiref.teacher.build import build_teacher
from multiref.teacher.format import IGNORE, TeacherFormat
from multiref.teacher.model import scratch_model
from multiref.teacher.tokenizer import train_bpe

TEXTS = ["hello there , how are you ?", "i am fine , thank you .", "see you later !", "what color would you like ?"]

# (context, floors, response floor, response): different numbers of turns, both responders, an empty utterance.
CASES = [
    (["hello there , how are you ?", "i am fine , thank you ."], ["A", "B"], "A", "see you later !"),
    (["how are you ?"], ["B"], "A", "i am fine"),
    (["see you", "", "thank you .", "hello there"], ["A", "B", "A", "B"], "B", "what color would you like ? see you later , thank you"),
    (["what color would you like ?", "hello"], ["B", "A"], "B", "fine"),
]

TINY_STUDENT = {"embedding_dim": 8, "floor_dim": 3, "hidden": 12, "layers": 1, "dropout": 0.0}


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Iterator[None]:
    """The models here are tiny: one intra-op thread avoids OpenMP spin contention on a busy machine (seconds, not minutes)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def bpe() -> PreTrainedTokenizerFast:
    return train_bpe(TEXTS * 20, 300)


@pytest.fixture(scope="module")
def teacher(bpe: PreTrainedTokenizerFast) -> GPT2LMHeadModel:
    model = scratch_model(bpe, {"n_positions": 128, "n_embd": 16, "n_layer": 1, "n_head": 2}, seed=3)
    with torch.no_grad():
        model.get_input_embeddings().weight.mul_(40.0)  # peaked distributions, so that any misalignment shows
    return model.eval()


def student_batch(bpe: PreTrainedTokenizerFast) -> tuple[torch.Tensor, ...]:
    fmt = TeacherFormat(bpe)
    return collate([tokkd_example(fmt, c, f, r, rf) for c, f, rf, r in CASES], student_specials(bpe)["pad_id"])


def reference_teacher_logits(teacher: GPT2LMHeadModel, bpe: PreTrainedTokenizerFast, max_len: int) -> list[torch.Tensor]:
    """Per case, the teacher's logits predicting each label of TeacherFormat's own example, run one at a time."""
    fmt = TeacherFormat(bpe)
    out = []
    for context, floors, rf, response in CASES:
        ids, labels = fmt.example(context, floors, rf, response, max_len)
        with torch.no_grad():
            logits = teacher(input_ids=torch.tensor([ids])).logits[0]
        out.append(torch.stack([logits[p - 1] for p, label in enumerate(labels) if label != IGNORE]))
    return out


def tiny_student(bpe: PreTrainedTokenizerFast, teacher: GPT2LMHeadModel, **fields: object) -> HREDTokKD:
    torch.manual_seed(0)
    return tokkd_student(teacher, bpe, {**TINY_STUDENT, **fields})


# ---------------------------------------------------------------- data and alignment


def test_student_examples_use_the_teacher_bpe_and_floors(bpe: PreTrainedTokenizerFast, tmp_path: Path) -> None:
    fmt = TeacherFormat(bpe, max_utterance_tokens=3)
    ex = tokkd_example(fmt, ["hello there , how are you ?", ""], ["A", "B"], "see you later !", "B")
    s = student_specials(bpe)
    assert ex.context[0] == (s["bos_id"], *bpe.encode("hello there , how are you ?", add_special_tokens=False)[:3], s["eos_id"])
    assert ex.context[1] == (s["bos_id"], s["eos_id"])  # an empty utterance is <s> </s>, as the teacher sees it
    assert ex.floors == (0, 1) and ex.response_floor == 1 and len(ex.response) == 3 + 2
    with pytest.raises(ConfigError, match="unknown floor 'C'"):
        tokkd_example(fmt, ["hi"], ["C"], "yes", "A")


@pytest.mark.parametrize("max_len", [128, 30])
def test_teacher_logits_align_with_student_targets(bpe: PreTrainedTokenizerFast, teacher: GPT2LMHeadModel, max_len: int) -> None:
    """Teacher position t predicts the student's target t, exactly as the teacher run on each pair in its own format
    (also when the context must be cut to fit ``max_len`` positions)."""
    x, x_floor, y, y_floor = student_batch(bpe)
    pad = student_specials(bpe)["pad_id"]
    logits, mask = aligned_teacher_logits(teacher, x, x_floor, y, y_floor, pad, **speaker_ids(bpe), max_positions=max_len)
    assert logits.shape == (len(CASES), y.size(1) - 1, len(bpe)) and torch.equal(mask, y[:, 1:] != pad)
    for i, expected in enumerate(reference_teacher_logits(teacher, bpe, max_len)):
        n = expected.size(0)
        assert int(mask[i].sum()) == n
        torch.testing.assert_close(logits[i, :n], expected, atol=1e-4, rtol=1e-4)
        assert not logits[i, n:].any()  # padding positions carry nothing
    if max_len == 30:  # the cut really happened for the long case
        assert teacher_batch(x, x_floor, y, y_floor, pad, **speaker_ids(bpe)).input_ids.size(1) > 30


def test_alignment_ignores_padding_side_and_empty_turns(bpe: PreTrainedTokenizerFast, teacher: GPT2LMHeadModel) -> None:
    x, x_floor, y, y_floor = student_batch(bpe)
    pad = student_specials(bpe)["pad_id"]
    spk = speaker_ids(bpe)
    ref = teacher_batch(x, x_floor, y, y_floor, pad, **spk)
    # Left-pad every context turn, and put the all-padding turns first instead of last.
    x2, f2 = torch.full_like(x, pad), torch.zeros_like(x_floor)
    for b in range(x.size(0)):
        real = [j for j in range(x.size(1)) if (x[b, j] != pad).any()]
        order = [j for j in range(x.size(1)) if j not in real] + real
        for slot, j in enumerate(order):
            ids = x[b, j][x[b, j] != pad]
            x2[b, slot, x.size(2) - len(ids) :] = ids
            f2[b, slot] = x_floor[b, j]
    moved = teacher_batch(x2, f2, y, y_floor, pad, **spk)
    for field in ("input_ids", "attention_mask", "rows", "teacher_pos", "target_pos"):
        assert torch.equal(getattr(moved, field), getattr(ref, field)), field
    # A left-padded response shifts the student's target positions by its padding.
    y2 = torch.cat([torch.full((y.size(0), 1), pad), y], dim=1)
    logits, mask = aligned_teacher_logits(teacher, x, x_floor, y, y_floor, pad, **spk)
    logits2, mask2 = aligned_teacher_logits(teacher, x2, f2, y2, y_floor, pad, **spk)
    assert not mask2[:, 0].any() and torch.equal(mask2[:, 1:], mask)
    torch.testing.assert_close(logits2[:, 1:], logits)


def test_empty_response_adds_nothing_and_an_unfittable_response_is_an_error(bpe: PreTrainedTokenizerFast, teacher: GPT2LMHeadModel) -> None:
    fmt, pad = TeacherFormat(bpe), student_specials(bpe)["pad_id"]
    full = tokkd_example(fmt, ["how are you ?"], ["A"], "i am fine", "B")
    empty = type(full)(full.context, full.floors, (), full.response_floor)
    x, x_floor, y, y_floor = collate([full, empty], pad)
    tb = teacher_batch(x, x_floor, y, y_floor, pad, **speaker_ids(bpe))
    assert set(tb.rows.tolist()) == {0} and len(tb.rows) == len(full.response) - 1
    model = tiny_student(bpe, teacher).train()
    out = model(x, x_floor, y, y_floor)
    alone = model(*collate([full], pad))
    assert math.isclose(out["kd"].item() * 2, alone["kd"].item(), rel_tol=1e-5)  # summed over targets, divided by B
    with pytest.raises(ConfigError, match="does not fit the teacher's 5 positions"):
        teacher_batch(x, x_floor, y, y_floor, pad, **speaker_ids(bpe), max_positions=5)


# ---------------------------------------------------------------- PCA


def test_pca_matches_covariance_eigendecomposition() -> None:
    g = torch.Generator().manual_seed(0)
    rotation, _ = torch.linalg.qr(torch.randn(12, 12, generator=g, dtype=torch.float64))
    w = (torch.randn(200, 12, generator=g, dtype=torch.float64) * torch.linspace(3.0, 0.2, 12)) @ rotation + 5.0
    got = pca_embeddings(w, 5)
    centred = (w - w.mean(0)).numpy()
    values, vectors = np.linalg.eigh(centred.T @ centred / (len(centred) - 1))
    order = np.argsort(values)[::-1][:5]
    values, vectors = values[order], vectors[:, order]
    vectors = vectors * np.sign(vectors[np.abs(vectors).argmax(0), np.arange(5)])  # largest loading positive
    np.testing.assert_allclose(got.numpy(), centred @ vectors, atol=1e-9)
    variances = got.var(0).numpy()
    np.testing.assert_allclose(variances, values, rtol=1e-9)
    assert np.all(np.diff(variances) < 0)
    assert torch.equal(pca_embeddings(w, 5), got)  # deterministic
    single = pca_embeddings(w.float(), 3)
    assert single.dtype == torch.float32 and single.shape == (200, 3)
    with pytest.raises(ConfigError, match="PCA to 13 components"):
        pca_embeddings(w, 13)


def test_student_embeddings_follow_the_authors_rule(teacher: GPT2LMHeadModel) -> None:
    weight = teacher.get_input_embeddings().weight
    assert torch.equal(student_embeddings(weight, 16), weight)  # same size: the teacher's own embeddings
    assert torch.equal(student_embeddings(weight, 8), pca_embeddings(weight, 8))
    with pytest.raises(ConfigError, match="exceeds the teacher's 16"):
        student_embeddings(weight, 17)


# ---------------------------------------------------------------- the loss


def hand_loss(model: HREDTokKD, batch: tuple[torch.Tensor, ...], teacher_logits: list[torch.Tensor], guidance: str) -> tuple[float, float]:
    """(NLL, KD) per response, computed from the student's logits and the teacher's own-format logits."""
    x, x_floor, y, y_floor = batch
    memory, mask, context = model.encode(x, x_floor, y_floor)
    logits, _ = model.decoder(y[:, :-1], model.initial_state(context), context, memory, mask)
    log_p = logits.detach().log_softmax(-1)
    nll = kd = 0.0
    for i, t_logits in enumerate(teacher_logits):
        q = t_logits.softmax(-1)
        for m in range(q.size(0)):
            gold = int(y[i, m + 1])
            nll -= log_p[i, m, gold].item()
            kd -= (q[m] * log_p[i, m]).sum().item() if guidance == "all" else (q[m, gold] * log_p[i, m, gold]).item()
    return nll / len(teacher_logits), kd / len(teacher_logits)


@pytest.mark.parametrize("guidance", ["all", "target"])
def test_loss_is_the_interpolation_of_nll_and_soft_cross_entropy(
    bpe: PreTrainedTokenizerFast, teacher: GPT2LMHeadModel, guidance: str
) -> None:
    batch = student_batch(bpe)
    model = tiny_student(bpe, teacher, guidance=guidance).train()  # dropout 0: deterministic in training mode
    nll, kd = hand_loss(model, batch, reference_teacher_logits(teacher, bpe, 128), guidance)
    out = model(*batch)
    assert kd > 0 and abs(kd - nll) > 1e-3  # the two terms differ, so the weights are really tested
    assert math.isclose(float(out["nll"]), nll, rel_tol=1e-5) and math.isclose(float(out["kd"]), kd, rel_tol=1e-5)
    assert math.isclose(out["loss"].item(), 0.5 * nll + 0.5 * kd, rel_tol=1e-5)
    assert int(out["n_tokens"]) == sum(len(r) for r in reference_teacher_logits(teacher, bpe, 128))
    for weight, expected in ((0.0, nll), (1.0, kd), (0.25, 0.75 * nll + 0.25 * kd)):
        other = HREDTokKD(HREDTokKDConfig(**{**model.cfg.__dict__, "kd_weight": weight}))
        other.load_state_dict(model.state_dict())
        other.attach_teacher(teacher, **speaker_ids(bpe))
        assert math.isclose(other.train()(*batch)["loss"].item(), expected, rel_tol=1e-5)


def test_without_teacher_or_in_eval_mode_the_loss_is_hreds(bpe: PreTrainedTokenizerFast, teacher: GPT2LMHeadModel) -> None:
    batch = student_batch(bpe)
    model = tiny_student(bpe, teacher)
    plain = HRED.forward(model, *batch)
    evaluated = model.eval()(*batch)  # teacher attached, eval mode: dev monitoring needs no teacher
    assert torch.equal(evaluated["loss"], plain["loss"]) and math.isnan(float(evaluated["kd"]))
    reloaded = HREDTokKD(model.cfg)  # as after loading a checkpoint: no teacher
    reloaded.load_state_dict(model.state_dict())
    out = reloaded.train()(*batch)
    assert torch.equal(out["loss"], plain["loss"]) and set(out) == {*plain, "nll", "kd"}
    assert set(model.train()(*batch)) == set(out)  # the same keys with the KD objective
    assert math.isclose(float(out["nll"]), plain["nll_sum"].item() / len(CASES), rel_tol=1e-6)
    ids = reloaded.eval().greedy(batch[0], batch[1], batch[3], max_len=5)
    assert ids.shape[0] == len(CASES) and ids.shape[1] <= 5


def test_bad_options_are_rejected(bpe: PreTrainedTokenizerFast) -> None:
    with pytest.raises(ConfigError, match="guidance"):
        HREDTokKD(HREDTokKDConfig(vocab_size=len(bpe), guidance="gold"))
    with pytest.raises(ConfigError, match="kd_weight"):
        HREDTokKD(HREDTokKDConfig(vocab_size=len(bpe), kd_weight=1.5))


# ---------------------------------------------------------------- the teacher stays outside


def test_teacher_is_not_part_of_the_student(bpe: PreTrainedTokenizerFast, teacher: GPT2LMHeadModel) -> None:
    model = tiny_student(bpe, teacher)
    base = HRED(HREDConfig(vocab_size=len(bpe), **student_specials(bpe), **TINY_STUDENT))
    assert list(model.state_dict()) == list(base.state_dict())
    assert parameter_count(model) == parameter_count(base)
    assert not any(m is teacher for m in model.modules())
    model.train()
    assert not teacher.training
    assert model.teacher is teacher
    # PCA-initialised embeddings, still tied to the output classifier.
    assert torch.equal(model.embedding.weight.detach(), pca_embeddings(teacher.get_input_embeddings().weight, 8))
    assert model.decoder.classifier.weight is model.embedding.weight


def test_no_gradient_reaches_the_teacher(bpe: PreTrainedTokenizerFast, teacher: GPT2LMHeadModel) -> None:
    model = tiny_student(bpe, teacher, kd_weight=1.0).train()
    assert all(p.requires_grad for p in teacher.parameters())
    model(*student_batch(bpe))["loss"].backward()
    assert all(p.grad is None for p in teacher.parameters())
    assert model.embedding.weight.grad is not None and model.embedding.weight.grad.abs().sum() > 0


def test_vocabulary_mismatch_is_a_clear_error(bpe: PreTrainedTokenizerFast, teacher: GPT2LMHeadModel) -> None:
    model = HREDTokKD(HREDTokKDConfig(vocab_size=len(bpe) + 1, **student_specials(bpe), **TINY_STUDENT))
    with pytest.raises(ConfigError, match=rf"teacher's vocabulary has {len(bpe)} entries but the tok-KD student's has {len(bpe) + 1}"):
        model.attach_teacher(teacher, **speaker_ids(bpe))
    with pytest.raises(ConfigError, match="token embeddings"):
        model.init_embeddings_from_teacher(teacher)


# ---------------------------------------------------------------- learning on the synthetic corpus


def test_a_few_steps_on_the_synthetic_corpus_reduce_the_loss(tmp_path: Path) -> None:
    """End to end as the pipeline will run it: the teacher rule's output directory, then the student from it."""
    paths = make_data(tmp_path, n_dialogues=60)
    build_teacher(
        TINY_TEACHER, paths["sessions"], paths["train"], paths["dev"], tmp_path / "teacher", tmp_path / "curve.csv",
        tmp_path / "metrics.json", tmp_path / "work", max_utterance_tokens=40, progress=False,
    )
    torch.manual_seed(0)
    model, tokenizer = load_tokkd_student(tmp_path / "teacher", TINY_STUDENT)
    assert model.teacher is not None and model.cfg.vocab_size == len(tokenizer)
    examples = tokkd_examples(paths["train"], tokenizer)
    assert len(examples) == pq.read_metadata(paths["train"]).num_rows
    pad = student_specials(tokenizer)["pad_id"]
    probe = collate(examples[:32], pad)
    model.train()
    with torch.no_grad():
        before = model(*probe)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for step in range(30):
        start = (step * 16) % (len(examples) - 16)
        loss = model(*collate(examples[start : start + 16], pad), step=step)["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        after = model(*probe)
    # The 2-epoch teacher is nearly uniform, so its soft targets cannot fall much (the KD term is at least
    # their entropy); the objective and its NLL part must fall.
    assert float(after["loss"]) < 0.95 * float(before["loss"])
    assert float(after["nll"]) < 0.9 * float(before["nll"])


def test_tokkd_run_refuses_hypothesis_settings_and_a_missing_teacher(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from multiref.models.run import tokkd_inputs

    setting = tmp_path / "hyp5.parquet"
    pq.write_table(pa.table({"pair_id": [0, 0], "hyp_index": [0, 1]}), setting)
    with pytest.raises(ConfigError, match="needs the teacher model directory"):
        tokkd_inputs({"kind": "hred_tokkd"}, setting, tmp_path / "t.parquet", tmp_path / "d.parquet", None, "cpu")
    with pytest.raises(ConfigError, match=r"hyp5.parquet: hred_tokkd learns .* ground truth only"):
        tokkd_inputs({"kind": "hred_tokkd"}, setting, tmp_path / "t.parquet", tmp_path / "d.parquet", tmp_path / "teacher", "cpu")
