"""The teacher (GPT-2 fine-tuned on the 1-GT pairs) decoded and scored on the test set: the GPT2md row of
Tables 1 and 2.

Decoding is greedy, as for the student models: the nucleus sampler with ``top_p`` so small that only the
most probable token survives the filter (exactly greedy, ties aside), at most ``max_len`` BPE tokens.
The teacher writes the pipeline's tokenised text (it was fine-tuned on it), so its responses are scored
by the same metrics as the students' without re-tokenising; they are detokenised as the hypotheses
(:meth:`TeacherFormat.decode`: no clean-up of tokenisation spaces, docs/fidelity.md T13).

Perplexity is over the teacher's BPE tokens (``</s>`` included), so it is not comparable with the
word-level perplexity of the students; both the authors' batch-mean form and the token-level form are
written, as for the students.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import torch

from multiref.eval.decode import DECODE_SCHEMA
from multiref.eval.metrics import authors_perplexity, token_perplexity
from multiref.io import sha256_file, write_json, write_parquet
from multiref.teacher.format import TeacherFormat, utterance_limit
from multiref.teacher.model import load_teacher
from multiref.teacher.sampler import sample
from multiref.teacher.synthetic_distance import sequence_logprobs

GREEDY_TOP_P = 1e-9  # keeps only the most probable token: greedy decoding through the sampler


def teacher_decode_run(
    teacher_dir: Path, test_pairs: Path, decode_path: Path, ppl_path: Path, max_len: int = 40, batch_size: int = 100, device: str = "cpu"
) -> dict[str, Any]:
    model, tokenizer = load_teacher(teacher_dir, device)
    model.eval()
    fmt = TeacherFormat(tokenizer, utterance_limit(str(test_pairs)))
    cols = pq.read_table(test_pairs, columns=["pair_id", "context", "context_floors", "response", "response_floor"]).to_pydict()
    rows = list(zip(cols["context"], cols["context_floors"], cols["response_floor"], strict=True))
    limit = model.config.n_positions
    prefixes = [fmt.prefix(c, f, rf, limit - max_len) for c, f, rf in rows]
    with torch.no_grad():
        hyps = sample(model, prefixes, 1, tokenizer.eos_token_id, tokenizer.pad_token_id, top_p=GREEDY_TOP_P,
                      max_new_tokens=max_len, seed=0, batch_contexts=batch_size)
    texts = [fmt.decode(h[0].token_ids) for h in hyps]
    table = pa.table({"pair_id": cols["pair_id"], "hypothesis": texts, "n_tokens": [len(h[0].token_ids) for h in hyps]}, schema=DECODE_SCHEMA)
    # perplexity of the ground-truth responses, in batches of batch_size pairs as the students'
    batch_nll, total_nll, total_tokens = [], 0.0, 0
    for start in range(0, len(rows), batch_size):
        examples, n_tokens = [], 0
        for (c, f, rf), resp in zip(rows[start : start + batch_size], cols["response"][start : start + batch_size], strict=True):
            ids, labels = fmt.example(c, f, rf, resp, limit)
            examples.append((ids, labels))
            n_tokens += sum(1 for v in labels if v >= 0)
        nll = -sum(sequence_logprobs(model, examples, tokenizer.pad_token_id, batch_size))
        batch_nll.append(nll / max(n_tokens, 1))
        total_nll += nll
        total_tokens += n_tokens
    ppl = {"ppl_authors": authors_perplexity(batch_nll), "ppl_token": token_perplexity(total_nll, total_tokens), "unit": "GPT-2 BPE token",
           "batches": len(batch_nll), "tokens": total_tokens, "batch_size": batch_size, "pairs": len(rows), "model": "teacher"}
    meta = {"stage": "teacher_decode", "model": "teacher", "teacher_sha256": sha256_file(teacher_dir / "model.safetensors"), "max_len": max_len}
    write_parquet(table, decode_path, meta)
    write_json(ppl, ppl_path)
    return ppl
