"""The sampler's key/value cache: each context's keys and values shared by its N samples, in buffers that
have room for every token still to be generated.

``transformers``' ``DynamicLayer`` appends a position by concatenation, which copies the whole cache of
every layer at every step; for 80 rows of 200 positions of GPT-2 small that is 1.2 GB of copying per token,
more than the step's arithmetic on a CPU. Here a position is written in place into a preallocated buffer
and the model sees a view of the filled part. Imported by the sampler when it runs (it imports
``transformers``).
"""

from __future__ import annotations

import torch
from torch import Tensor
from transformers import DynamicCache

try:
    from transformers.cache_utils import DynamicLayer
except ImportError:  # transformers before its per-layer caches: share() falls back to repeating the cache
    DynamicLayer = None
_Base = DynamicLayer if DynamicLayer is not None else object


def share(cache: DynamicCache, repeats: int, capacity: int) -> None:
    """Give each row of ``cache`` (filled by the contexts' pass) ``repeats`` consecutive rows, with room for
    ``capacity`` positions in all; the cache's layers are replaced in place."""
    if DynamicLayer is None or not all(type(layer) is DynamicLayer for layer in getattr(cache, "layers", [None])):
        cache.batch_repeat_interleave(repeats)
        return
    cache.layers = [_GrowingLayer(layer.keys, layer.values, repeats, capacity) for layer in cache.layers]


class _GrowingLayer(_Base):  # type: ignore[misc,valid-type]
    """One attention layer's keys and values [rows, heads, positions, head dim] in buffers of ``capacity``
    positions; ``keys`` and ``values`` are views of the filled positions."""

    def __init__(self, keys: Tensor, values: Tensor, repeats: int, capacity: int) -> None:
        super().__init__()
        rows, heads, length, dim = keys.shape
        self.buffers = []
        for source in (keys, values):
            buffer = source.new_empty((rows * repeats, heads, capacity, dim))
            buffer.view(rows, repeats, heads, capacity, dim)[:, :, :, :length] = source.unsqueeze(1)
            self.buffers.append(buffer)
        self.length = length
        self.device = keys.device
        self.is_initialized = True
        self._expose()

    def _expose(self) -> None:
        self.keys = self.buffers[0][:, :, : self.length]
        self.values = self.buffers[1][:, :, : self.length]

    def update(self, key_states: Tensor, value_states: Tensor, *args: object, **kwargs: object) -> tuple[Tensor, Tensor]:
        """Write the new positions after the filled ones; return the keys and values of all filled positions."""
        end = self.length + key_states.shape[-2]
        if end > self.buffers[0].shape[2]:
            raise RuntimeError(f"the sampler's cache holds {self.buffers[0].shape[2]} positions, {end} were asked for")
        self.buffers[0][:, :, self.length : end] = key_states
        self.buffers[1][:, :, self.length : end] = value_states
        self.length = end
        self._expose()
        return self.keys, self.values

    def batch_select_indices(self, indices: Tensor) -> None:
        """Keep only the rows ``indices`` (finished samples are dropped)."""
        self.buffers = [torch.index_select(buffer, 0, indices) for buffer in self.buffers]
        self._expose()

    def batch_repeat_interleave(self, repeats: int) -> None:
        """Not used by the sampler (rows are repeated when the buffers are made)."""
        raise NotImplementedError("the sampler's cache is repeated once, by kv_cache.share")
