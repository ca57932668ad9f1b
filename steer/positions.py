"""Which token positions an intervention touches: "all", "prompt", "generated", indices or a mask.

Positions are counted per row on that row's own tokens (padding never counts): index 0 is the
row's first real token. Negative indices count back from the end of the prompt (-1 = the last
prompt token, the one whose residual predicts the first generated token). "generated" means
the positions of generated tokens as they are fed back; the first generated token itself is
predicted from the last prompt position, so "generated" leaves it unsteered ("all" does not).

Inside steer every spec becomes one boolean matrix over the *padded timeline* of a batch: the
left-padded prompt (T columns) followed by the decode steps (N columns). A forward pass reads
columns [0, T); decode step s (s >= 1) reads column T + s - 1.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Union

import torch

from .errors import SteerError

NAMED = ("all", "prompt", "generated")
PositionSpec = Union[str, Sequence[int], range, torch.Tensor]


def check_positions(spec: PositionSpec) -> PositionSpec:
    """Validate a spec on construction (shape checks that need the batch wait for `timeline_mask`)."""
    if isinstance(spec, str):
        if spec not in NAMED:
            raise SteerError(f"unknown positions {spec!r}; use one of {NAMED}, indices or a mask")
        return spec
    if isinstance(spec, torch.Tensor):
        if spec.dim() not in (1, 2):
            raise SteerError(f"a positions mask must be 1-D or 2-D, got shape {tuple(spec.shape)}")
        if spec.dtype != torch.bool and not torch.all((spec == 0) | (spec == 1)):
            raise SteerError("a positions mask must hold only 0/1 or booleans")
        return spec.bool()
    if isinstance(spec, (range, Sequence)) and not isinstance(spec, (bytes, bytearray)):
        items = list(spec)
        if any(isinstance(i, bool) for i in items):
            if not all(isinstance(i, bool) for i in items):
                raise SteerError(f"positions mixes booleans and indices: {items!r}")
            return torch.tensor(items, dtype=torch.bool)
        if not all(isinstance(i, int) for i in items):
            raise SteerError(f"positions must be ints, got {items!r}")
        return tuple(items)
    raise SteerError(f"unknown positions {spec!r}; use one of {NAMED}, indices or a mask")


def timeline_mask(
    spec: PositionSpec, prompt_lens: torch.Tensor, T: int, N: int
) -> torch.Tensor:
    """Bool [B, T + N]: which padded-timeline columns of each row the spec touches.

    prompt_lens: [B] real prompt tokens per row (left padding: row b starts at T - len_b).
    """
    B = prompt_lens.shape[0]
    col = torch.arange(T + N).unsqueeze(0)                  # [1, T+N]
    start = (T - prompt_lens).unsqueeze(1)                  # [B, 1] first real column
    real = col >= start                                     # padding never counts
    is_prompt = col < T
    if isinstance(spec, str):
        if spec == "all":
            return real.expand(B, -1).clone()
        if spec == "prompt":
            return real & is_prompt
        return (~is_prompt).expand(B, -1).clone()           # generated
    row_pos = col - start                                   # row-relative index of each column
    if isinstance(spec, torch.Tensor) and spec.dim() == 2:
        if spec.shape != (B, T):
            raise SteerError(
                f"a 2-D positions mask must be [batch, prompt tokens] = {(B, T)}, "
                f"got {tuple(spec.shape)}"
            )
        out = torch.zeros(B, T + N, dtype=torch.bool)
        out[:, :T] = spec & real[:, :T]
        return out
    if isinstance(spec, torch.Tensor):                      # 1-D mask over row positions
        idx = torch.nonzero(spec).flatten().tolist()
    else:
        idx = list(spec)
    out = torch.zeros(B, T + N, dtype=torch.bool)
    for b in range(B):
        for i in idx:
            pos = i if i >= 0 else int(prompt_lens[b]) + i
            if pos < 0:
                raise SteerError(
                    f"position {i} is before the start of row {b} ({int(prompt_lens[b])} prompt tokens)"
                )
            column = int(start[b, 0]) + pos
            if column < T + N:
                out[b, column] = True
    return out & real
