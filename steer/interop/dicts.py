"""{layer: vector} dictionaries: the form repeng (`ControlVector.directions`) and steering-vectors
(`SteeringVector.layer_activations`) hold their vectors in, to and from steer directions.

All three index layers the same way: key L = the output of decoder block L, 0-based
(`hidden_states[L + 1]`), and all three add `coefficient x vector` there, positive towards the
concept. A dict keyed by `hidden_states` index instead (key i = output of block i - 1) converts
with `convention="hidden_states"`. Details and the side-by-side table: docs/interop.md.

>>> d = ds.to_dict("calm", 4.0, layers=[12])                  # {12: tensor [576]}
>>> SteeringVector(layer_activations=d, layer_type="decoder_block")   # steering-vectors
>>> ControlVector(model_type="llama", directions={k: v.numpy() for k, v in d.items()})  # repeng
>>> back = DirectionSet.from_dict(d, "calm", model=m)
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from ..directions import HOOK_SITE, DirectionSet, model_record
from ..errors import SteerError
from ..interventions import Intervention, normalize_layers

CONVENTIONS = {"block_output": 0, "hidden_states": -1}     # key -> steer layer offset


def _as_vector(v: Any, where: str) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(v) if not isinstance(v, torch.Tensor) else v).detach().float().cpu()
    if t.dim() == 2 and t.shape[0] == 1:       # [1, d] as some libraries keep it
        t = t[0]
    if t.dim() != 1:
        raise SteerError(f"{where} must be a 1-D vector, got shape {tuple(t.shape)}")
    if not torch.isfinite(t).all() or float(t.norm()) == 0.0:
        raise SteerError(f"{where} is zero or not finite")
    return t


def layer_vectors(ds: DirectionSet, emotion: Any, strength: float, layers: Any, *,
                  scale: str = "absolute") -> dict[int, torch.Tensor]:
    """{L: strength x unit direction at L} (x the set's recorded mean residual norm at L when
    scale="norm"), for a name in `ds` or a {layer: vector} mapping / Direction.

    >>> layer_vectors(ds, "calm", 0.1, [12], scale="norm")[12].norm()    # 0.1 x residual_norm(12)
    """
    if scale not in ("norm", "absolute"):
        raise SteerError(f"unknown scale {scale!r}; use 'norm' or 'absolute'")
    if isinstance(strength, bool) or not isinstance(strength, (int, float)) or not np.isfinite(strength):
        raise SteerError(f"strength={strength!r} must be a finite number")
    source = ds[emotion] if isinstance(emotion, str) else emotion
    if not isinstance(source, Mapping):
        raise SteerError(f"emotion must be a name in the set or a {{layer: vector}} mapping, got {type(emotion).__name__}")
    spec = normalize_layers(layers if layers is not None else "all")
    chosen = sorted(source) if spec == "all" else list(spec)
    norms = dict(zip(ds.layers, ds.meta.get("residual_norms") or []))
    out = {}
    for L in chosen:
        if L not in source:
            raise SteerError(f"direction {getattr(source, 'name', emotion)!r} has no vector for layer {L}")
        u = _as_vector(source[L], f"direction at layer {L}")
        k = float(strength)
        if scale == "norm":
            if L not in norms:
                raise SteerError(f"no recorded residual norm for layer {L}; use scale='absolute'")
            k *= norms[L]
        out[int(L)] = k * u / u.norm()
    return out


def to_dict(ds: DirectionSet, emotion: Any, strength: float = 1.0, layers: Any = None, *,
            scale: str = "absolute") -> dict[int, torch.Tensor]:
    """{layer: strength x unit direction} for repeng / steering-vectors (layers default: all of the set).

    The default scale="absolute" gives unit vectors times `strength`; scale="norm" matches a
    steer `add` at strength (a fraction of the residual norm) exactly.

    >>> to_dict(ds, "calm", 0.1, [12], scale="norm")
    """
    return layer_vectors(ds, emotion, strength, ds.layers if layers is None else layers, scale=scale)


def unit_set(vectors: Mapping[int, torch.Tensor], name: str, meta: Mapping[str, Any]) -> DirectionSet:
    """One-direction DirectionSet of the unit vectors, each vector's length in meta["strengths"]."""
    layers = sorted(vectors)
    rows = [_as_vector(vectors[L], f"vector for layer {L}") for L in layers]
    if len({r.shape[0] for r in rows}) != 1:
        raise SteerError(f"vectors differ in length {sorted({r.shape[0] for r in rows})}")
    unit = torch.stack([r / r.norm() for r in rows]).unsqueeze(0)
    full = {"scale": "absolute", "op": "add", **meta, "strengths": [float(r.norm()) for r in rows]}
    return DirectionSet(unit, [name], layers, full)


def from_dict(vectors: Mapping[int, Any], name: str = "direction", *, convention: str = "block_output",
              model: Any = None, n_layers: int | None = None) -> DirectionSet:
    """A one-direction DirectionSet from {layer: vector} (torch or numpy; e.g. repeng's
    `ControlVector.directions` or steering-vectors' `layer_activations`).

    convention: "block_output" (repeng, steering-vectors, llama.cpp, steer) or "hidden_states"
    (key i = transformers' hidden_states[i], shifted to steer layer i - 1). Negative keys count
    from the end (needs model= or n_layers=). With model=, the set records that model (so
    `to_gguf(scale="norm")` and `DirectionSet.load(model=...)` work) and the width is checked.

    >>> ds = from_dict(control_vector.directions, "honest", model=m)
    >>> steer.Intervention("add", direction="honest", layers=ds.layers, strength=0.1, directions=ds)
    """
    if convention not in CONVENTIONS:
        raise SteerError(f"unknown convention {convention!r}; use one of {sorted(CONVENTIONS)}")
    if not vectors:
        raise SteerError("no vectors given")
    total = model.n_layers if model is not None else n_layers
    out: dict[int, torch.Tensor] = {}
    for key, v in vectors.items():
        k = int(key)
        if k < 0:
            if total is None:
                raise SteerError(f"layer key {k} counts from the end: pass model= or n_layers=")
            k += total + (1 if convention == "hidden_states" else 0)
        L = k + CONVENTIONS[convention]
        if L < 0:
            raise SteerError(f"hidden_states[{k}] is the embedding output, before any block; steer cannot edit it")
        if total is not None and L >= total:
            raise SteerError(f"layer {L} (key {key}) out of range for a {total}-layer model")
        if L in out:
            raise SteerError(f"two keys map to layer {L}")
        out[L] = _as_vector(v, f"vector for key {key}")
    meta: dict[str, Any] = {"source": f"dict:{convention}", "hook_site": HOOK_SITE}
    if model is not None:
        width = next(iter(out.values())).shape[0]
        if width != model.d_model:
            raise SteerError(f"vectors have dimension {width}, {model.name!r} has d_model {model.d_model}")
        meta.update(model_record(model))
        meta["residual_norms"] = [model.residual_norm(L) for L in sorted(out)]
    return unit_set(out, name, meta)


def interventions(source: Any, coeff: float = 1.0, name: str | None = None) -> list[Intervention]:
    """steer `add` edits that replay a {layer: vector} dict or a from_dict/from_gguf set exactly:
    coeff x vector added at each layer (repeng's `set_control(v, coeff)`, steering-vectors'
    `apply(multiplier=coeff)`, llama.cpp's `--control-vector-scaled file:coeff`).

    >>> m.generate(["Hi"], interventions=interventions(ds, 2.0))
    """
    if isinstance(source, DirectionSet):
        if len(source.emotions) != 1 and name is None:
            raise SteerError("the set holds several directions; pass name=")
        e = name or source.emotions[0]
        lengths = source.meta.get("strengths") or [1.0] * len(source.layers)
        pairs = [(L, source.vector(e, L) * s) for L, s in zip(source.layers, lengths)]
    elif isinstance(source, Mapping):
        pairs = [(int(L), _as_vector(v, f"vector for layer {L}")) for L, v in sorted(source.items())]
    else:
        raise SteerError(f"expected a DirectionSet or a {{layer: vector}} dict, got {type(source).__name__}")
    return [Intervention("add", direction=v, layers=[L], strength=float(coeff) * float(v.norm()), scale="absolute")
            for L, v in pairs]
