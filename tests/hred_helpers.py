"""The toy batch of the HRED-family tests (tests/models and tests/eval): special ids and two padded dialogues."""

from __future__ import annotations

import torch

PAD, BOS, EOS = 0, 1, 2


def batch() -> tuple[torch.Tensor, ...]:
    x = torch.tensor(
        [
            [[BOS, 5, 6, EOS, PAD], [BOS, 7, EOS, PAD, PAD], [PAD] * 5],  # 2 turns, third is padding
            [[BOS, 8, 9, 10, EOS], [BOS, 11, 12, EOS, PAD], [BOS, 13, EOS, PAD, PAD]],
        ]
    )
    x_floor = torch.tensor([[0, 1, 0], [1, 0, 1]])
    y = torch.tensor([[BOS, 14, 15, EOS, PAD], [BOS, 16, EOS, PAD, PAD]])
    y_floor = torch.tensor([0, 0])
    return x, x_floor, y, y_floor
