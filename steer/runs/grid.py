"""Sweep cells: emotion x op x layers x strength, plus the controls every sweep gets
(strength 0, norm-matched random directions, the sign flip) and prompting baselines."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import SteerError
from ..evals.conditions import Condition

if TYPE_CHECKING:
    from ..directions import Direction

# torch loads on first use (building a condition), so `steer-run` checks a config in well under a second.


@dataclass(frozen=True)
class Cell:
    """One condition of a sweep. `label` is unique within a sweep and names the cell in reports."""

    label: str
    kind: str                          # baseline | emotion | random | prompting
    emotion: str | None = None         # direction name (random cells: "random#<seed>")
    op: str | None = None
    layers: Any = None                 # tuple of ints or "all"
    strength: float | None = None      # None for ablate
    seed: int | None = None            # random cells
    system_extra: str | None = None    # prompting cells
    positions: str = "all"
    control: str | None = None         # why the cell exists when it was not asked for: zero | random | sign_flip
    scale: str = "norm"                # norm: strength x mean residual norm at the layer | absolute: raw units

    def describe(self) -> dict[str, Any]:
        d = {"label": self.label, "kind": self.kind, "emotion": self.emotion, "op": self.op,
             "layers": self.layers if isinstance(self.layers, str) or self.layers is None else list(self.layers),
             "strength": self.strength, "seed": self.seed, "system_extra": self.system_extra,
             "positions": self.positions, "control": self.control}
        if self.scale != "norm":                       # the default stays out: cell keys of norm runs unchanged
            d["scale"] = self.scale
        return d

    def key(self, context: dict[str, Any]) -> str:
        """Hash of the cell and everything that changes its episodes (model, eval settings, ...)."""
        blob = json.dumps({"cell": self.describe(), "context": context}, sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]

    def condition(self, directions: Any, d_model: int, n_layers: int) -> Condition:
        from ..interventions import Intervention

        if self.kind in ("baseline", "prompting"):
            return Condition(self.label, (), self.system_extra, self.describe())
        layers = self.layers if self.layers == "all" else list(self.layers)
        if self.kind == "random":
            used = range(n_layers) if layers == "all" else layers
            direction: Any = random_direction(self.seed or 0, used, d_model)
        else:
            direction = self.emotion
        kw = {"value": self.strength} if self.op == "clamp" else (
            {} if self.op == "ablate" else {"strength": self.strength})
        iv = Intervention(self.op, direction=direction, layers=layers, positions=self.positions,
                          scale=self.scale, directions=directions, **kw)
        return Condition(self.label, (iv,), None, self.describe())


def random_direction(seed: int, layers: Any, d_model: int) -> Direction:
    """A norm-matched control: a seeded random unit vector per layer (strength units as usual)."""
    import torch

    from ..directions import Direction

    vectors = {}
    for L in layers:
        g = torch.Generator().manual_seed(1_000_003 * seed + L)
        v = torch.randn(d_model, generator=g)
        vectors[int(L)] = v / v.norm()
    return Direction(vectors, f"random#{seed}")


def _layers_label(layers: Any) -> str:
    return "Lall" if layers == "all" else "L" + "-".join(str(x) for x in layers)


def _norm_layers(entry: Any) -> Any:
    if entry == "all":
        return "all"
    if isinstance(entry, int):
        return (entry,)
    try:
        items = tuple(int(x) for x in entry)
    except (TypeError, ValueError):
        raise SteerError(f"sweep layer entry {entry!r} must be an int, a list of ints or 'all'") from None
    if not items:
        raise SteerError("a sweep layer entry is empty")
    return items


def build_cells(sweep: Any) -> list[Cell]:
    """All cells of a sweep config (see SweepConfig), controls included, in a stable order."""
    from ..interventions import OPS

    for op in sweep.ops:
        if op not in OPS:
            raise SteerError(f"unknown op {op!r} in sweep.ops; use {OPS}")
    controls = sweep.controls
    strengths = [float(s) for s in sweep.strengths]
    if controls.sign_flip:
        strengths += [-s for s in strengths if -s not in strengths]
    strengths = sorted(set(strengths))
    nonzero = [s for s in strengths if s != 0]
    cells: list[Cell] = []
    if controls.zero or 0.0 in strengths:
        cells.append(Cell("baseline", "baseline", control="zero" if 0.0 not in strengths else None))
    asked = {float(s) for s in sweep.strengths}
    for emotion in sweep.emotions:
        for op in sweep.ops:
            for entry in sweep.layers:
                layers = _norm_layers(entry)
                if op == "ablate":
                    cells.append(Cell(f"{emotion} ablate {_layers_label(layers)}", "emotion", emotion, op, layers,
                                      None, positions=sweep.positions))
                    continue
                for s in nonzero:
                    cells.append(Cell(f"{emotion} {op} {_layers_label(layers)} {s:+g}", "emotion", emotion, op,
                                      layers, s, positions=sweep.positions,
                                      control=None if s in asked else "sign_flip"))
    if controls.random_seeds > 0:
        if controls.random_strengths not in ("all", "extremes", "max"):
            raise SteerError(f"controls.random_strengths={controls.random_strengths!r}: use all, extremes or max")
        rnd = nonzero
        if controls.random_strengths == "extremes" and nonzero:
            rnd = sorted({max(nonzero), min(nonzero)})
        elif controls.random_strengths == "max" and nonzero:
            rnd = [max(nonzero, key=lambda x: (abs(x), x))]   # the largest, positive on a tie
        for op in sweep.ops:
            for entry in sweep.layers:
                layers = _norm_layers(entry)
                for seed in range(controls.random_seeds):
                    for s in ([None] if op == "ablate" else rnd):
                        tail = "" if s is None else f" {s:+g}"
                        cells.append(Cell(f"random#{seed} {op} {_layers_label(layers)}{tail}", "random",
                                          f"random#{seed}", op, layers, s, seed=seed, positions=sweep.positions,
                                          control="random"))
    for name, text in dict(sweep.prompting).items():
        cells.append(Cell(f"prompt:{name}", "prompting", system_extra=str(text)))
    labels = [c.label for c in cells]
    if len(set(labels)) != len(labels):
        dup = next(x for x in labels if labels.count(x) > 1)
        raise SteerError(f"two sweep cells share the label {dup!r}; remove the duplicate entry")
    return cells


def shard(cells: list[Cell], context: dict[str, Any], n_shards: int, index: int) -> list[Cell]:
    """The cells job `index` of `n_shards` runs (by cell hash, stable across runs)."""
    if n_shards < 1 or not 0 <= index < n_shards:
        raise SteerError(f"sweep.shard={index} must be in [0, sweep.n_shards={n_shards})")
    return [c for c in cells if int(c.key(context), 16) % n_shards == index]
