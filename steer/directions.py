"""Direction and DirectionSet: one unit vector per emotion and layer, with arithmetic and
save/load bound to the model they were extracted from.

>>> ds = steer.extract_directions(m, emotions=["calm", "desperate"])
>>> v = ds.vector("calm", 12) - ds.vector("desperate", 12)        # a plain tensor
>>> d = ds["calm"] - ds["desperate"]                               # a per-layer Direction
>>> steer.Intervention("add", direction=d, layers=[12], strength=0.05)
>>> steer.Intervention("add", direction="desperate", layers=[12], strength=0.05, directions=ds)
"""
from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from .errors import SteerError


class Direction(Mapping):
    """A direction per layer ({layer: vector [d]}) that supports +, -, scalar * and negation.

    Vectors are kept as given (arithmetic of unit vectors is not unit); interventions and
    monitors normalise when they use them.
    """

    def __init__(self, vectors: Mapping[int, torch.Tensor], name: str = "direction") -> None:
        self._v = {int(k): torch.as_tensor(v, dtype=torch.float32) for k, v in vectors.items()}
        self.name = name

    def __getitem__(self, layer: int) -> torch.Tensor:
        if layer not in self._v:
            raise SteerError(f"direction {self.name!r} has no vector for layer {layer} (has {sorted(self._v)})")
        return self._v[layer]

    def __iter__(self) -> Iterator[int]:
        return iter(sorted(self._v))

    def __len__(self) -> int:
        return len(self._v)

    def __repr__(self) -> str:
        return f"Direction({self.name!r}, layers={sorted(self._v)})"

    @property
    def layers(self) -> list[int]:
        return sorted(self._v)

    def vector(self, layer: int) -> torch.Tensor:
        return self[layer]

    def _combine(self, other: Any, sign: float, symbol: str) -> Direction:
        if isinstance(other, Direction):
            common = sorted(set(self._v) & set(other._v))
            if not common:
                raise SteerError(f"{self.name!r} and {other.name!r} share no layer")
            return Direction({L: self._v[L] + sign * other._v[L] for L in common}, f"{self.name}{symbol}{other.name}")
        return NotImplemented

    def __add__(self, other: Any) -> Direction:
        return self._combine(other, 1.0, "+")

    def __sub__(self, other: Any) -> Direction:
        return self._combine(other, -1.0, "-")

    def __mul__(self, k: float) -> Direction:
        if not isinstance(k, (int, float)):
            return NotImplemented
        return Direction({L: k * v for L, v in self._v.items()}, f"{k:g}*{self.name}")

    __rmul__ = __mul__

    def __neg__(self) -> Direction:
        return Direction({L: -v for L, v in self._v.items()}, f"-{self.name}")

    def unit(self) -> Direction:
        return Direction({L: v / v.norm() for L, v in self._v.items()}, self.name)


class DirectionSet:
    """Unit directions [emotions, layers, d_model] plus how they were made (`meta`)."""

    def __init__(self, vectors: torch.Tensor, emotions: Sequence[str], layers: Sequence[int],
                 meta: Mapping[str, Any] | None = None, center: torch.Tensor | None = None) -> None:
        vectors = torch.as_tensor(vectors, dtype=torch.float32)
        if vectors.dim() != 3 or vectors.shape[:2] != (len(emotions), len(layers)):
            raise SteerError(f"vectors must be [emotions, layers, d] = [{len(emotions)}, {len(layers)}, d], "
                             f"got {tuple(vectors.shape)}")
        if len(set(emotions)) != len(emotions):
            raise SteerError("emotion names must be unique")
        self.vectors = vectors
        self.emotions = list(emotions)
        self.layers = [int(L) for L in layers]
        self.meta = dict(meta or {})
        # [L, d] mean over emotions of the class means: the origin the directions point away
        # from; scoring a new text's activation starts by subtracting it.
        self.center = None if center is None else torch.as_tensor(center, dtype=torch.float32)
        if self.center is not None and self.center.shape != (len(self.layers), vectors.shape[2]):
            raise SteerError(f"center must be [layers, d], got {tuple(self.center.shape)}")
        self._e = {e: i for i, e in enumerate(self.emotions)}
        self._l = {L: i for i, L in enumerate(self.layers)}

    def __repr__(self) -> str:
        return (f"DirectionSet({len(self.emotions)} emotions, layers {self.layers[0]}..{self.layers[-1]}, "
                f"d={self.d_model}, method={self.meta.get('method')!r})")

    def __len__(self) -> int:
        return len(self.emotions)

    def __contains__(self, name: object) -> bool:
        return name in self._e

    @property
    def d_model(self) -> int:
        return self.vectors.shape[2]

    def _ei(self, name: str) -> int:
        if name not in self._e:
            raise SteerError(f"no direction {name!r} in this set ({len(self.emotions)} emotions)")
        return self._e[name]

    def _li(self, layer: int) -> int:
        if layer not in self._l:
            raise SteerError(f"this set has no layer {layer} (layers {self.layers[0]}..{self.layers[-1]})")
        return self._l[layer]

    def vector(self, name: str, layer: int) -> torch.Tensor:
        """The unit direction of `name` at `layer` ([d], float32)."""
        return self.vectors[self._ei(name), self._li(layer)].clone()

    def matrix(self, layer: int, emotions: Sequence[str] | None = None) -> torch.Tensor:
        """[E, d] directions at one layer (rows in `emotions` order, default all)."""
        rows = [self._ei(e) for e in (emotions or self.emotions)]
        return self.vectors[rows, self._li(layer)]

    def __getitem__(self, name: str) -> Direction:
        i = self._ei(name)
        return Direction({L: self.vectors[i, j] for j, L in enumerate(self.layers)}, name)

    def cosine(self, layer: int) -> torch.Tensor:
        m = self.matrix(layer)
        return m @ m.T

    def subset(self, emotions: Sequence[str] | None = None, layers: Sequence[int] | None = None) -> DirectionSet:
        es = list(emotions or self.emotions)
        ls = list(layers or self.layers)
        rows = [self._li(L) for L in ls]
        v = self.vectors[[self._ei(e) for e in es]][:, rows]
        return DirectionSet(v, es, ls, self.meta, None if self.center is None else self.center[rows])

    def with_direction(self, name: str, direction: Mapping[int, torch.Tensor]) -> DirectionSet:
        """A new set with one more (normalised) direction, e.g. a random control or a difference."""
        if name in self._e:
            raise SteerError(f"direction {name!r} already in the set")
        rows = []
        for L in self.layers:
            if L not in direction:
                raise SteerError(f"direction {name!r} has no vector for layer {L}")
            v = torch.as_tensor(direction[L], dtype=torch.float32)
            rows.append(v / v.norm())
        vectors = torch.cat([self.vectors, torch.stack(rows).unsqueeze(0)], 0)
        return DirectionSet(vectors, self.emotions + [name], self.layers, self.meta, self.center)

    # ---- persistence --------------------------------------------------------------------
    @staticmethod
    def _paths(path: str | os.PathLike) -> tuple[Path, Path]:
        p = Path(path)
        stem = p.with_suffix("") if p.suffix in (".safetensors", ".json") else p
        return stem.with_name(stem.name + ".safetensors"), stem.with_name(stem.name + ".json")

    def _tensors(self) -> dict[str, torch.Tensor]:
        out = {"vectors": self.vectors.contiguous()}
        if self.center is not None:
            out["center"] = self.center.contiguous()
        return out

    def save(self, path: str | os.PathLike) -> Path:
        """Write `<path>.safetensors` (vectors) and `<path>.json` (names, layers, meta) atomically."""
        tensors, meta_path = self._paths(path)
        tensors.parent.mkdir(parents=True, exist_ok=True)
        info = {"emotions": self.emotions, "layers": self.layers, "meta": self.meta}
        for target, write in ((tensors, lambda f: save_file(self._tensors(), f)),
                              (meta_path, lambda f: Path(f).write_text(json.dumps(info, indent=1)))):
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
            os.close(fd)
            try:
                write(tmp)
                os.replace(tmp, target)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        return tensors

    @classmethod
    def load(cls, path: str | os.PathLike, model: Any = None) -> DirectionSet:
        """Read a saved set; with `model=`, refuse a set made on a different model."""
        tensors, meta_path = cls._paths(path)
        if not tensors.exists() or not meta_path.exists():
            raise SteerError(f"no direction set at {str(path)!r} (need .safetensors and .json)")
        info = json.loads(meta_path.read_text())
        stored = load_file(str(tensors))
        ds = cls(stored["vectors"], info["emotions"], info["layers"], info["meta"], stored.get("center"))
        if model is not None:
            made_on = ds.meta.get("model_fingerprint")
            if made_on != model.fingerprint:
                raise SteerError(f"direction set {tensors.name} was made on {ds.meta.get('model')!r} "
                                 f"(fingerprint {made_on}), not on {model.name!r} ({model.fingerprint})")
        return ds
