"""Add, subtract, clamp or ablate a unit direction in the residual stream, per row and position.

Every operation is one rank-1 affine edit of the residual x at a chosen layer and position:

    x' = x + (a * (x . u) + c) * u          u unit, a in {0, -1}

    add       a = 0,  c = +strength * s
    subtract  a = 0,  c = -strength * s
    clamp     a = -1, c = value * s          (x' . u == value * s)
    ablate    a = -1, c = 0                  (x' . u == 0)

with s = `model.residual_norm(layer)` for scale="norm" and s = 1 for scale="absolute".
Because the edit is the same formula for all four ops, a batch whose rows carry different
intervention sets runs as a handful of batched tensor ops ("slots"), never a loop over rows.
"""
from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Union

import torch

from .errors import SteerError
from .positions import PositionSpec, check_positions, timeline_mask

OPS = ("add", "subtract", "clamp", "ablate")
SCALES = ("norm", "absolute")
LayerSpec = Union[int, Sequence[int], range, str]
DirectionSpec = Union[torch.Tensor, str, Mapping[int, torch.Tensor]]


def unit_vector(vector: Any, what: str = "direction") -> torch.Tensor:
    """A float32 unit copy of a 1-D vector, with a one-line error for zero/NaN/bad shapes."""
    v = torch.as_tensor(vector).detach()
    if v.dim() != 1:
        raise SteerError(f"{what} must be a 1-D vector, got shape {tuple(v.shape)}")
    v = v.to(torch.float32).cpu()
    if not torch.isfinite(v).all():
        raise SteerError(f"{what} contains NaN or inf")
    norm = float(v.norm())
    if norm == 0.0:
        raise SteerError(f"{what} is the zero vector and has no direction")
    return v / norm


def _digest(t: torch.Tensor) -> str:
    import hashlib

    return hashlib.sha256(t.detach().float().cpu().contiguous().numpy().tobytes()).hexdigest()[:10]


def _check_number(name: str, value: Any, op: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise SteerError(f"{name}={value!r} for op {op!r} must be a finite number")
    return float(value)


def normalize_layers(layers: LayerSpec) -> tuple[int, ...] | str:
    if isinstance(layers, str):
        if layers != "all":
            raise SteerError(f"unknown layers {layers!r}; use an int, a list, a range or 'all'")
        return "all"
    items = [layers] if isinstance(layers, int) and not isinstance(layers, bool) else layers
    try:
        items = list(items)
    except TypeError:
        raise SteerError(f"unknown layers {layers!r}; use an int, a list, a range or 'all'") from None
    if not items:
        raise SteerError("layers is empty")
    for layer in items:
        if isinstance(layer, bool) or not isinstance(layer, int) or layer < 0:
            raise SteerError(f"layer {layer!r} must be a non-negative int")
    return tuple(dict.fromkeys(items))


def resolve_layers(layers: tuple[int, ...] | str, n_layers: int) -> tuple[int, ...]:
    if layers == "all":
        return tuple(range(n_layers))
    for layer in layers:
        if layer >= n_layers:
            raise SteerError(f"layer {layer} out of range for a {n_layers}-layer model (0..{n_layers - 1})")
    return layers  # type: ignore[return-value]


@dataclass(frozen=True, eq=False)
class Intervention:
    """One edit of the residual stream, e.g. `Intervention("add", direction=u, layers=[12], strength=0.1)`.

    direction: a d_model vector (normalised here), a {layer: vector} mapping, or the name of a
        direction in a DirectionSet (given here as `directions=` or at call time).
    layers: int, list, range or "all" (layer L = output of decoder block L, 0-based).
    strength: for add/subtract; value: the target projection for clamp; ablate takes neither.
    positions: "all" | "prompt" | "generated" | a chat role ("assistant", "user:-1", ...; see
        steer.positions) | row-relative indices | a bool mask.
    scale: "norm" multiplies strength/value by `model.residual_norm(layer)`; "absolute" does not.
    """

    op: str
    direction: DirectionSpec
    layers: LayerSpec
    strength: float | None = None
    value: float | None = None
    positions: PositionSpec = "all"
    scale: str = "norm"
    directions: Any = field(default=None, repr=False)

    def __post_init__(self) -> None:
        set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731 (frozen dataclass)
        if self.op not in OPS:
            raise SteerError(f"unknown op {self.op!r}; use one of {OPS}")
        if self.scale not in SCALES:
            raise SteerError(f"unknown scale {self.scale!r}; use one of {SCALES}")
        if self.op in ("add", "subtract"):
            if self.strength is None:
                raise SteerError(f"op {self.op!r} needs strength=")
            if self.value is not None:
                raise SteerError(f"op {self.op!r} takes strength=, not value={self.value!r}")
            set_("strength", _check_number("strength", self.strength, self.op))
        elif self.op == "clamp":
            if self.value is None:
                raise SteerError("op 'clamp' needs value= (the target projection)")
            if self.strength is not None:
                raise SteerError(f"op 'clamp' takes value=, not strength={self.strength!r}")
            set_("value", _check_number("value", self.value, self.op))
        elif self.strength is not None or self.value is not None:
            raise SteerError("op 'ablate' takes neither strength= nor value=")
        set_("layers", normalize_layers(self.layers))
        set_("positions", check_positions(self.positions))
        d = self.direction
        if isinstance(d, str):
            if not d:
                raise SteerError("direction name is empty")
        elif isinstance(d, Mapping):
            bad = [k for k in d if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 0]
            if bad or not d:
                raise SteerError(f"a direction map needs non-negative int layer keys, got {bad[0]!r}" if bad
                                 else "the direction map is empty")
            set_("direction", {int(k): unit_vector(v, f"direction at layer {k}") for k, v in d.items()})
        elif hasattr(d, "vector") and hasattr(d, "layers"):
            pass  # a single-direction object exposing .vector(layer)
        else:
            set_("direction", unit_vector(d))

    def describe(self) -> dict[str, Any]:
        """A JSON-ready record of this edit (tensors by a short content hash)."""
        d = self.direction
        if isinstance(d, str):
            direction: Any = d
        elif isinstance(d, Mapping):
            direction = "map:" + _digest(torch.stack([d[k] for k in sorted(d)]))
        elif isinstance(d, torch.Tensor):
            direction = "vector:" + _digest(d)
        else:
            direction = getattr(d, "name", type(d).__name__)
        positions = self.positions
        if isinstance(positions, torch.Tensor):
            positions = "mask:" + _digest(positions.float())
        elif isinstance(positions, tuple):
            positions = list(positions)
        return {"op": self.op, "direction": direction,
                "layers": self.layers if isinstance(self.layers, str) else list(self.layers),
                "strength": self.strength, "value": self.value, "positions": positions, "scale": self.scale}

    @property
    def coefficient_sign(self) -> float:
        return -1.0 if self.op == "subtract" else 1.0

    def vector(self, layer: int, d_model: int, directions: Any = None) -> torch.Tensor:
        """The unit direction this intervention uses at `layer` (float32, CPU)."""
        d = self.direction
        if isinstance(d, str):
            source = self.directions if self.directions is not None else directions
            if source is None:
                raise SteerError(f"direction {d!r} is a name; pass directions=<DirectionSet>")
            v = unit_vector(source.vector(d, layer), f"direction {d!r} at layer {layer}")
        elif isinstance(d, Mapping):
            if layer not in d:
                raise SteerError(f"direction has no vector for layer {layer} (has {sorted(d)})")
            v = d[layer]
        elif isinstance(d, torch.Tensor):
            v = d
        else:
            v = unit_vector(d.vector(layer), f"direction at layer {layer}")
        if v.shape[0] != d_model:
            raise SteerError(f"direction has dimension {v.shape[0]}, the model's residual has {d_model}")
        return v


@dataclass
class Slot:
    """The k-th edit at one layer for every row: per-row direction, coefficients and positions."""

    u: torch.Tensor          # [B, D] unit directions (zero rows = no edit)
    a: torch.Tensor          # [B] 0 (add) or -1 (clamp/ablate)
    c: torch.Tensor          # [B] constant coefficient
    mask: torch.Tensor       # [B, T + N] 1.0 where the edit applies on the padded timeline
    needs_projection: bool   # False when every row only adds (skip the dot product)


Plan = dict[int, list[Slot]]


def per_row(interventions: Any, batch: int) -> list[list[Intervention]]:
    """Normalise `interventions` to one list per row.

    None -> no edits; an Intervention or a flat list -> the same set on every row;
    a list of `batch` lists -> one set per row (a packed sweep).
    """
    if interventions is None:
        return [[] for _ in range(batch)]
    if isinstance(interventions, Intervention):
        return [[interventions] for _ in range(batch)]
    items = list(interventions)
    if items and all(isinstance(x, (list, tuple)) for x in items):
        if len(items) != batch:
            raise SteerError(f"got {len(items)} per-row intervention sets for a batch of {batch}")
        rows = [list(x) for x in items]
    elif all(isinstance(x, Intervention) for x in items):
        rows = [items for _ in range(batch)]
    else:
        raise SteerError(
            "interventions must be an Intervention, a list of them, or one list per batch row"
        )
    for row in rows:
        for iv in row:
            if not isinstance(iv, Intervention):
                raise SteerError(f"not an Intervention: {iv!r}")
    return rows


def compile_plan(
    rows: list[list[Intervention]],
    *,
    n_layers: int,
    d_model: int,
    residual_norm: Callable[[int], float],
    prompt_lens: torch.Tensor,
    T: int,
    N: int,
    dtype: torch.dtype,
    device: torch.device | str,
    directions: Any = None,
    turns: Any = None,
) -> Plan:
    """Turn per-row intervention lists into per-layer slots of batched tensors.

    Validates everything (layers, dimensions, names) before any model work happens.
    turns: per row, the chat messages' token spans (`positions.Turn`), for role positions.
    """
    B = len(rows)
    entries: dict[int, list[list[Intervention]]] = {}
    for b, row in enumerate(rows):
        for iv in row:
            for layer in resolve_layers(iv.layers, n_layers):  # type: ignore[arg-type]
                entries.setdefault(layer, [[] for _ in range(B)])[b].append(iv)
    masks: dict[int, torch.Tensor] = {}
    plan: Plan = {}
    for layer in sorted(entries):
        per_b = entries[layer]
        slots = []
        for k in range(max(len(x) for x in per_b)):
            u = torch.zeros(B, d_model)
            a = torch.zeros(B)
            c = torch.zeros(B)
            mask = torch.zeros(B, T + N)
            for b in range(B):
                if k >= len(per_b[b]):
                    continue
                iv = per_b[b][k]
                u[b] = iv.vector(layer, d_model, directions)
                s = residual_norm(layer) if iv.scale == "norm" else 1.0
                if iv.op in ("add", "subtract"):
                    c[b] = iv.coefficient_sign * iv.strength * s  # type: ignore[operator]
                elif iv.op == "clamp":
                    a[b], c[b] = -1.0, iv.value * s  # type: ignore[operator]
                else:
                    a[b] = -1.0
                if id(iv) not in masks:
                    masks[id(iv)] = timeline_mask(iv.positions, prompt_lens, T, N, turns)
                mask[b] = masks[id(iv)][b].float()
            slots.append(Slot(
                u=u.to(device=device, dtype=dtype),
                a=a.to(device=device, dtype=dtype),
                c=c.to(device=device, dtype=dtype),
                mask=mask.to(device=device, dtype=dtype),
                needs_projection=bool((a != 0).any()),
            ))
        plan[layer] = slots
    return plan


def apply_slots(x: torch.Tensor, slots: list[Slot], cols: slice | int) -> torch.Tensor:
    """Apply one layer's slots to a residual [B, t, D]; `cols` picks the timeline columns."""
    for s in slots:
        m = s.mask[:, cols]
        if m.dim() == 1:
            m = m.unsqueeze(1)                                    # decode step: [B, 1]
        if s.needs_projection:
            proj = torch.einsum("btd,bd->bt", x, s.u)
            coef = (s.a.unsqueeze(1) * proj + s.c.unsqueeze(1)) * m
        else:
            coef = s.c.unsqueeze(1) * m
        x = x + coef.unsqueeze(-1) * s.u.unsqueeze(1)
    return x
