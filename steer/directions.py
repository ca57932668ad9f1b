"""Direction and DirectionSet: one unit vector per emotion and layer, with arithmetic and
save/load bound to the model they were extracted from.

>>> ds = steer.extract_directions(m, emotions=["calm", "desperate"])
>>> v = ds.vector("calm", 12) - ds.vector("desperate", 12)        # a plain tensor
>>> d = ds["calm"] - ds["desperate"]                               # a per-layer Direction
>>> steer.Intervention("add", direction=d, layers=[12], strength=0.05)
>>> steer.Intervention("add", direction="desperate", layers=[12], strength=0.05, directions=ds)

A saved set describes itself (`format_version` 2): the operation and units it was made for, the
hook site (`block_output`: layer L = output of decoder block L, 0-based = `hidden_states[L + 1]`),
the layer map, the mean residual norm per layer, the model's name, weight and tokenizer
fingerprints, dtypes and the extraction recipe. `DirectionSet.load(path, model=m)` refuses a set
made on another model or for another hook site unless `force=True`. Exports: `to_gguf` /
`from_gguf` (llama.cpp control vectors) and `to_dict` / `from_dict` ({layer: tensor}, as
repeng and steering-vectors hold them); see docs/interop.md.
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

FORMAT_VERSION = 2              # 1 = sets saved before provenance was recorded (still load)
HOOK_SITE = "block_output"      # the only site steer reads and edits
HOOK_SITES = {"block_output": "output of decoder block L, 0-based = hidden_states[L + 1]",
              "hidden_states": "hidden_states[L] of a transformers forward = output of block L - 1"}


def model_record(model: Any) -> dict[str, Any]:
    """What a saved set needs to know about the model it was made on (names, fingerprints, dtype).

    >>> model_record(m)["n_layers"]
    30
    """
    return {"model": model.name, "model_fingerprint": model.fingerprint,
            "tokenizer_fingerprint": model.tokenizer_fingerprint,
            "model_type": getattr(model.hf.config, "model_type", None), "n_layers": model.n_layers,
            "d_model": model.d_model, "model_dtype": str(model.dtype).removeprefix("torch."),
            "block_path": model.block_path}


def provenance(model: Any, layers: Sequence[int], *, recipe: Mapping[str, Any] | None = None,
               op: str = "add", scale: str = "norm") -> dict[str, Any]:
    """The self-describing fields of a set made on `model` at `layers` (merged into `meta`).

    op/scale: the operation and strength units the directions are meant for (steer's default:
    `add` with strength as a fraction of the mean residual norm at the layer).

    >>> provenance(m, [12])["layer_map"]["12"]
    {'module': 'model.layers.12', 'hidden_states': 13, 'llama_cpp': 'direction.12'}
    """
    layer_map = {str(L): {"module": f"{model.block_path}.{L}", "hidden_states": L + 1,
                          "llama_cpp": f"direction.{L}" if L > 0 else None} for L in layers}
    return {"format_version": FORMAT_VERSION, "hook_site": HOOK_SITE, "hook_site_doc": HOOK_SITES[HOOK_SITE],
            "op": op, "scale": scale, "dtype": "float32", "layer_map": layer_map,
            "residual_norms": [model.residual_norm(int(L)) for L in layers],
            **model_record(model), "recipe": dict(recipe or {})}


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
    def load(cls, path: str | os.PathLike, model: Any = None, *, hook_site: str = HOOK_SITE,
             force: bool = False) -> DirectionSet:
        """Read a saved set; with `model=`, refuse one made on a different model (weights or
        tokenizer) or for a different hook site, unless `force=True`.

        >>> ds = DirectionSet.load("out/core", model=m)
        >>> DirectionSet.load("out/core", model=other, force=True)     # deliberate transfer
        """
        tensors, meta_path = cls._paths(path)
        if not tensors.exists() or not meta_path.exists():
            raise SteerError(f"no direction set at {str(path)!r} (need .safetensors and .json)")
        try:                              # a torn or foreign file: one line, not a safetensors/JSON traceback
            info = json.loads(meta_path.read_text())
            stored = load_file(str(tensors))
            ds = cls(stored["vectors"], info["emotions"], info["layers"], info.get("meta"), stored.get("center"))
        except SteerError as exc:
            raise SteerError(f"{tensors.name}: {exc}") from None
        except Exception as exc:
            why = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise SteerError(f"cannot read the direction set at {str(path)!r}: {type(exc).__name__}: {why}") from None
        ds.check(model, hook_site=hook_site, force=force, where=tensors.name)
        return ds

    def check(self, model: Any = None, *, hook_site: str = HOOK_SITE, force: bool = False,
              where: str = "direction set") -> None:
        """Raise SteerError unless this set fits `model` and `hook_site` (see `load`).

        Dimension and layer range are checked even with force=True: no transfer can fix those.
        """
        if hook_site not in HOOK_SITES:
            raise SteerError(f"unknown hook_site {hook_site!r}; use one of {sorted(HOOK_SITES)}")
        made_for = self.meta.get("hook_site", HOOK_SITE)     # format 1 sets: steer only had one site
        if made_for != hook_site and not force:
            raise SteerError(f"{where} was made at hook site {made_for!r} ({HOOK_SITES.get(made_for, '?')}), "
                             f"not {hook_site!r}; convert it (steer.interop.from_dict) or pass force=True")
        if model is None:
            return
        if self.d_model != model.d_model:
            raise SteerError(f"{where} has dimension {self.d_model}, {model.name!r} has d_model {model.d_model}")
        if self.layers[-1] >= model.n_layers:
            raise SteerError(f"{where} has layer {self.layers[-1]}, {model.name!r} has {model.n_layers} layers")
        if force:
            return
        made_on = self.meta.get("model_fingerprint")
        if made_on != model.fingerprint:
            raise SteerError(f"{where} was made on {self.meta.get('model')!r} (fingerprint {made_on}), "
                             f"not on {model.name!r} ({model.fingerprint}); pass force=True to use it anyway")
        tok = self.meta.get("tokenizer_fingerprint")
        if tok is not None and tok != model.tokenizer_fingerprint:
            raise SteerError(f"{where} was made with another tokenizer ({tok}) than {model.name!r}'s "
                             f"({model.tokenizer_fingerprint}); pass force=True to use it anyway")

    # ---- interop (steer.interop does the work) -----------------------------------------
    def to_gguf(self, path: str | os.PathLike, emotion: Any, strength: float, layers: Any,
                *, scale: str = "norm", model_hint: str | None = None) -> Path:
        """Write a llama.cpp control vector: `direction.L` = strength x unit direction at layer L.

        >>> ds.to_gguf("calm.gguf", "calm", 0.1, layers=[12, 14])   # llama-cli --control-vector calm.gguf
        """
        from .interop.gguf import to_gguf

        return to_gguf(self, path, emotion, strength, layers, scale=scale, model_hint=model_hint)

    @classmethod
    def from_gguf(cls, path: str | os.PathLike, name: str | None = None, *, model: Any = None,
                  force: bool = False) -> DirectionSet:
        """Read a llama.cpp / repeng control vector as a one-direction set (magnitudes in meta);
        with `model=`, refuse one made for another model unless force=True.

        >>> ds = DirectionSet.from_gguf("happy.gguf", model=m); ds.meta["strengths"]
        """
        from .interop.gguf import from_gguf

        return from_gguf(path, name=name, model=model, force=force)

    def to_dict(self, emotion: Any, strength: float = 1.0, layers: Any = None, *,
                scale: str = "absolute") -> dict[int, torch.Tensor]:
        """{layer: strength x unit direction}, the form repeng and steering-vectors hold.

        >>> SteeringVector(ds.to_dict("calm", 4.0), layer_type="decoder_block")
        """
        from .interop.dicts import to_dict

        return to_dict(self, emotion, strength, layers, scale=scale)

    @classmethod
    def from_dict(cls, vectors: Mapping[int, Any], name: str = "direction", **kw: Any) -> DirectionSet:
        """A one-direction set from {layer: vector} (see steer.interop.dicts.from_dict).

        >>> ds = DirectionSet.from_dict(control_vector.directions, "honest", model=m)
        """
        from .interop.dicts import from_dict

        return from_dict(vectors, name, **kw)
