"""HRED-CVaR: HRED trained on the conditional value-at-risk of its sentence loss (Zhang et al., 2018),
as compared in Zhao, Lala & Kawahara (2021), §3.3 / Table 2 (alpha = 0.3).

With the sentence loss l_i = -log p(y_i | x_i) of the B responses of a batch, the model ignores the
"easy" responses (high likelihood) and optimises the hard tail:

    objective="tail" (default): the empirical CVaR at level alpha, the mean loss of the alpha*B
        hardest responses = min_tau tau + 1/(alpha B) sum_i (l_i - tau)_+   (Rockafellar & Uryasev);
        a fractional last response gets a fractional weight, so the value is exact for any B.
    objective="threshold": the paper's wording, "rejecting easy instances whose model probabilities
        are larger than alpha": mean of l_i over responses with p(y_i | x_i) <= alpha
        (l_i >= -log alpha); zero when every response is easy.
    objective="authors": what the authors' code computes. Its loop appends the whole vector of
        sentence losses once per hard response, so the loss is mean_i(l_i) / (1 - alpha) whenever at
        least one response is hard: a rescaled maximum-likelihood loss, not a CVaR (their code
        crashes when none is; here that batch gets the same rescaled mean).

Evaluation (the dev monitor and perplexity) is the plain token-level NLL of HRED.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from multiref.models.hred import HRED, HREDConfig

OBJECTIVES = ("tail", "threshold", "authors")


@dataclass(frozen=True)
class HREDCVaRConfig(HREDConfig):
    alpha: float = 0.3
    objective: str = "tail"


def cvar_loss(sentence_nll: Tensor, alpha: float, objective: str = "tail") -> Tensor:
    """The batch objective from per-response losses [B] (see the module docstring)."""
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha}")
    if objective == "tail":
        m = alpha * sentence_nll.numel()
        worst = sentence_nll.sort(descending=True).values
        weights = (m - torch.arange(worst.numel(), device=worst.device, dtype=worst.dtype)).clamp(0, 1)
        return (weights * worst).sum() / m
    if objective == "threshold":
        hard = sentence_nll >= -math.log(alpha)
        return (sentence_nll * hard).sum() / hard.sum().clamp(min=1)
    if objective == "authors":
        return sentence_nll.mean() / (1 - alpha)
    raise ValueError(f"unknown CVaR objective {objective!r} (expected one of {OBJECTIVES})")


class HREDCVaR(HRED):
    def __init__(self, cfg: HREDCVaRConfig) -> None:
        if cfg.objective not in OBJECTIVES:
            raise ValueError(f"unknown CVaR objective {cfg.objective!r} (expected one of {OBJECTIVES})")
        super().__init__(cfg)

    def forward(self, x: Tensor, x_floor: Tensor, y: Tensor, y_floor: Tensor, step: int = 0) -> dict[str, Tensor]:
        out = super().forward(x, x_floor, y, y_floor, step)
        if not self.training:
            return out
        sentence_nll = out.pop("token_nll").sum(1)
        out["mle_loss"], out["loss"] = out["loss"], cvar_loss(sentence_nll, self.cfg.alpha, self.cfg.objective)
        return out
