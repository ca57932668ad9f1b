"""llama.cpp control vectors (GGUF) to and from steer directions.

A control-vector GGUF has `general.architecture = "controlvector"`, `controlvector.model_hint`
(the transformers model_type, e.g. "llama"), `controlvector.layer_count` (number of tensors) and
one 1-D float32 tensor `direction.N` per steered layer. llama.cpp adds `direction.N` (times the
`--control-vector-scaled` factor) to the output of block N (0-based; `build_cvec(cur, il)` after
the feed-forward residual), which is steer's layer N: the indices are the same. Block 0 has no
slot (llama.cpp's loader rejects `direction.0`). repeng's `export_gguf` writes the same layout.

steer adds its own keys under `steer.*` (emotion, strength, units, hook site, fingerprints), which
llama.cpp and repeng ignore and `from_gguf` reads back.

>>> ds.to_gguf("calm.gguf", "calm", 0.1, layers=[12])        # llama-cli ... --control-vector calm.gguf
>>> back = DirectionSet.from_gguf("calm.gguf"); back.meta["strengths"]
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..directions import FORMAT_VERSION, HOOK_SITE, DirectionSet
from ..errors import SteerError
from .dicts import layer_vectors, unit_set

ARCH = "controlvector"


def _field(reader: Any, key: str) -> Any:
    field = reader.get_field(key)
    if field is None or not len(field.parts):
        return None
    value = field.contents()
    return value.tolist() if isinstance(value, np.ndarray) else value


def to_gguf(ds: DirectionSet, path: str | os.PathLike, emotion: Any, strength: float, layers: Any, *,
            scale: str = "norm", model_hint: str | None = None) -> Path:
    """Write `direction.L = strength x unit(emotion at L)` (x the mean residual norm at L when
    scale="norm") for each layer L >= 1 in `layers` ("all" = every layer of the set but 0).

    emotion: a name in `ds`, or a {layer: vector} mapping / Direction (e.g. ds["calm"] - ds["sad"]).

    >>> to_gguf(ds, "desperate.gguf", "desperate", 0.1, layers=[14])
    PosixPath('desperate.gguf')
    """
    if layers == "all":
        layers = [L for L in ds.layers if L > 0]
    vectors = layer_vectors(ds, emotion, strength, layers, scale=scale)
    if 0 in vectors:
        raise SteerError("layer 0 cannot be steered by a llama.cpp control vector (it has no direction.0 slot); "
                         "use layers >= 1")
    hint = model_hint or ds.meta.get("model_type")
    if not hint:
        raise SteerError("this set does not record its model_type; pass model_hint= (e.g. 'llama')")
    import gguf

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    name = emotion if isinstance(emotion, str) else getattr(emotion, "name", "direction")
    writer = gguf.GGUFWriter(str(path), ARCH)
    writer.add_string(f"{ARCH}.model_hint", str(hint))
    writer.add_uint32(f"{ARCH}.layer_count", len(vectors))
    writer.add_string("steer.emotion", str(name))
    writer.add_float32("steer.strength", float(strength))
    writer.add_string("steer.scale", scale)
    writer.add_string("steer.hook_site", HOOK_SITE)
    writer.add_uint32("steer.format_version", FORMAT_VERSION)
    for key in ("model", "model_fingerprint", "tokenizer_fingerprint"):
        if ds.meta.get(key):
            writer.add_string(f"steer.{key}", str(ds.meta[key]))
    for L in sorted(vectors):
        writer.add_tensor(f"direction.{L}", vectors[L].numpy().astype(np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def read_gguf(path: str | os.PathLike) -> tuple[dict[int, torch.Tensor], dict[str, Any]]:
    """({layer: vector as stored}, metadata) of a control-vector GGUF, checked the way llama.cpp
    checks it (name `direction.N` with N >= 1, float32, 1-D, one shared length).

    >>> vectors, info = read_gguf("happy.gguf"); info["model_hint"]
    'llama'
    """
    import gguf

    p = Path(path)
    if not p.is_file():
        raise SteerError(f"no control-vector file at {str(path)!r}")
    try:
        reader = gguf.GGUFReader(str(p))
    except (ValueError, OSError) as exc:
        raise SteerError(f"{p.name} is not a readable GGUF file: {str(exc).splitlines()[0]}") from None
    arch = _field(reader, "general.architecture")
    if arch is not None and arch != ARCH:
        raise SteerError(f"{p.name} is a {arch!r} GGUF, not a control vector (general.architecture={ARCH!r})")
    vectors: dict[int, torch.Tensor] = {}
    for t in reader.tensors:
        head, _, index = t.name.partition(".")
        if head != "direction" or not index.isdigit():
            raise SteerError(f"{p.name}: tensor {t.name!r} is not named direction.N")
        layer = int(index)
        if layer == 0:
            raise SteerError(f"{p.name}: direction.0 is invalid (llama.cpp cannot steer block 0)")
        if t.tensor_type != gguf.GGMLQuantizationType.F32 or len(t.shape) != 1:
            raise SteerError(f"{p.name}: {t.name} must be a 1-D float32 tensor")
        vectors[layer] = torch.from_numpy(np.array(t.data, dtype=np.float32))
    if not vectors:
        raise SteerError(f"{p.name} holds no direction.N tensors")
    dims = {v.shape[0] for v in vectors.values()}
    if len(dims) != 1:
        raise SteerError(f"{p.name}: direction tensors differ in length {sorted(dims)}")
    info = {"model_hint": _field(reader, f"{ARCH}.model_hint"),
            "layer_count": _field(reader, f"{ARCH}.layer_count")}
    for key in ("emotion", "strength", "scale", "hook_site", "format_version", "model", "model_fingerprint",
                "tokenizer_fingerprint"):
        value = _field(reader, f"steer.{key}")
        if value is not None:
            info[key] = value
    return vectors, info


def from_gguf(path: str | os.PathLike, name: str | None = None, *, model: Any = None,
              force: bool = False) -> DirectionSet:
    """A one-direction DirectionSet from a control-vector GGUF (steer-, repeng- or llama.cpp-made).

    Unit vectors per layer; `meta["strengths"]` keeps each stored vector's length (absolute units),
    so `steer.interop.interventions(ds)` replays the file exactly. With `model=`, refuse a file
    whose model hint or recorded fingerprint names another model, unless force=True.

    >>> ds = from_gguf("happy.gguf", model=m)
    """
    vectors, info = read_gguf(path)
    name = name or info.get("emotion") or Path(path).stem
    meta = {"source": f"gguf:{Path(path).name}", "model_type": info.get("model_hint"),
            "hook_site": info.get("hook_site", HOOK_SITE), "gguf": info}
    for key in ("model", "model_fingerprint", "tokenizer_fingerprint"):
        if key in info:
            meta[key] = info[key]
    ds = unit_set(vectors, name, meta)
    if model is not None:
        mt = getattr(model.hf.config, "model_type", None)
        if not force and info.get("model_hint") and mt and info["model_hint"] != mt:
            raise SteerError(f"{Path(path).name} was made for a {info['model_hint']!r} model, {model.name!r} "
                             f"is {mt!r}; pass force=True to use it anyway")
        # A file without steer's fingerprint (repeng, llama.cpp) can only be checked by its hint.
        if "model_fingerprint" in meta:
            ds.check(model, force=force, where=Path(path).name)
        else:
            ds.check(model, force=True, where=Path(path).name)
    return ds


def cvec_buffer(vectors: Mapping[int, torch.Tensor], n_layers: int, scale: float = 1.0) -> np.ndarray:
    """The flat float32 buffer `llama_set_adapter_cvec` takes: n_embd values per layer from layer 1
    (layer N at offset n_embd * (N - 1); layers with no vector stay zero), as llama.cpp's loader
    lays it out.

    >>> cvec_buffer(read_gguf("calm.gguf")[0], n_layers=30).shape
    (16704,)
    """
    d = next(iter(vectors.values())).shape[0]
    out = np.zeros((n_layers - 1) * d, dtype=np.float32)
    for L, v in vectors.items():
        if not 1 <= L < n_layers:
            raise SteerError(f"control vector layer {L} out of range 1..{n_layers - 1}")
        out[d * (L - 1): d * L] += scale * np.asarray(v, dtype=np.float32)
    return out
