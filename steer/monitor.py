"""Per-token projections of the residual stream onto named directions, aligned with tokens.

A projection is `x . u` with u the unit direction, in raw residual units (divide by
`model.residual_norm(layer)` for norm units). It is read after any intervention at that layer,
i.e. it is what the rest of the network sees.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from .errors import SteerError
from .interventions import resolve_layers, unit_vector


@dataclass
class MonitorPlan:
    names: list[str]
    layers: tuple[int, ...]
    matrices: dict[int, torch.Tensor]   # layer -> [D, K] unit directions as columns


def compile_monitor(
    monitor: Mapping[str, Any] | None,
    layers: Any,
    *,
    n_layers: int,
    d_model: int,
    dtype: torch.dtype,
    device: torch.device | str,
    directions: Any = None,
) -> MonitorPlan | None:
    """Validate monitored directions (a vector, a {layer: vector} map, or a DirectionSet name)."""
    if not monitor:
        if layers not in (None, [], ()):
            raise SteerError("monitor_layers given without monitor={name: direction}")
        return None
    if not isinstance(monitor, Mapping):
        raise SteerError("monitor must be a mapping {name: direction}")
    if layers is None:
        raise SteerError("monitor needs monitor_layers=[...]")
    from .interventions import normalize_layers

    layer_tuple = resolve_layers(normalize_layers(layers), n_layers)
    matrices = {}
    for layer in layer_tuple:
        cols = []
        for name, d in monitor.items():
            if isinstance(d, str):
                if directions is None:
                    raise SteerError(f"monitor direction {d!r} is a name; pass directions=<DirectionSet>")
                v = unit_vector(directions.vector(d, layer), f"monitor {name!r} at layer {layer}")
            elif isinstance(d, Mapping):
                if layer not in d:
                    raise SteerError(f"monitor {name!r} has no vector for layer {layer}")
                v = unit_vector(d[layer], f"monitor {name!r} at layer {layer}")
            elif hasattr(d, "vector") and not isinstance(d, torch.Tensor):
                v = unit_vector(d.vector(layer), f"monitor {name!r} at layer {layer}")
            else:
                v = unit_vector(d, f"monitor {name!r}")
            if v.shape[0] != d_model:
                raise SteerError(
                    f"monitor {name!r} has dimension {v.shape[0]}, the model's residual has {d_model}"
                )
            cols.append(v)
        matrices[layer] = torch.stack(cols, dim=1).to(device=device, dtype=dtype)
    return MonitorPlan(names=list(monitor), layers=layer_tuple, matrices=matrices)


def align(
    per_layer: dict[int, torch.Tensor], plan: MonitorPlan, starts: list[int], lengths: list[int]
) -> dict[str, torch.Tensor]:
    """Padded-timeline projections -> {name: [B, n_monitor_layers, max_len]} row-relative.

    per_layer[L]: [B, C, K] over padded timeline columns; row b's token j sits at column
    starts[b] + j. Positions never computed (the last generated token) and padding are NaN.
    """
    B = len(starts)
    width = max(lengths) if lengths else 0
    out = torch.full((len(plan.names), B, len(plan.layers), width), float("nan"))
    for li, layer in enumerate(plan.layers):
        values = per_layer[layer].float().cpu()              # [B, C, K]
        C = values.shape[1]
        for b in range(B):
            n = min(lengths[b], C - starts[b])
            if n > 0:
                out[:, b, li, :n] = values[b, starts[b]:starts[b] + n].T
    return {name: out[k] for k, name in enumerate(plan.names)}


def restrict(values: dict[str, torch.Tensor], keep: torch.Tensor) -> dict[str, torch.Tensor]:
    """{name: [B, n_layers, W]} with NaN wherever `keep` ([B, W] bool, row-relative) is False.

    How monitoring is limited to some tokens, e.g. one chat role (`positions="assistant"`).
    """
    out = {}
    for name, v in values.items():
        if keep.shape != (v.shape[0], v.shape[-1]):
            raise SteerError(f"monitor positions mask is {tuple(keep.shape)}, values are {tuple(v.shape)}")
        out[name] = v.masked_fill(~keep.unsqueeze(1), float("nan"))
    return out


@dataclass
class Projections:
    """Projections over given texts: `values[name]` is [B, n_layers, max_len], NaN-padded.

    `tokens[b][t]` is the token whose residual gave `values[name][b, :, t]`.
    """

    values: dict[str, torch.Tensor]
    tokens: list[list[str]]
    layers: tuple[int, ...]

    def __getitem__(self, name: str) -> torch.Tensor:
        return self.values[name]

    def table(self, row: int = 0, layer: int | None = None) -> list[dict[str, Any]]:
        """Rows of {token, <name>: value} for one batch row at one layer (default: the first)."""
        li = 0 if layer is None else self.layers.index(layer)
        return [
            {"token": tok, **{n: float(v[row, li, t]) for n, v in self.values.items()}}
            for t, tok in enumerate(self.tokens[row])
        ]


@dataclass
class GenerationOutput:
    """What `SteeredModel.generate` returns.

    texts: the generated continuations (special tokens dropped); prompts: the exact strings fed
    (after chat formatting); tokens[b]: prompt + generated tokens of row b as strings;
    projections[name]: [B, n_monitor_layers, max_len] aligned with tokens (NaN where no residual
    was computed, e.g. the final generated token); n_steps: forward passes run (1 prompt pass +
    one per further token); prompt_lengths / generated_lengths per row.
    """

    texts: list[str]
    prompts: list[str]
    tokens: list[list[str]]
    token_ids: list[list[int]]
    prompt_lengths: list[int]
    generated_lengths: list[int]
    n_steps: int
    projections: dict[str, torch.Tensor] = field(default_factory=dict)
    monitor_layers: tuple[int, ...] = ()
