"""Run a GGUF model in llama.cpp (llama-cpp-python, the optional `[llamacpp]` extra) with a control
vector, to check steer's semantics against the real implementation.

The control-vector file is read by ggml's own C GGUF reader (`gguf_init_from_file`, the one
llama.cpp's `--control-vector` loader uses) and laid out as that loader does; llama-cpp-python
binds llama.h only, not the loader in llama.cpp's `common` library.

>>> lc = LlamaCpp(steer.loading.embedded_gguf())
>>> base = lc.logits(ids)                          # [T, V] float32
>>> lc.set_control_vector("calm.gguf")             # what `--control-vector calm.gguf` does
>>> steered = lc.logits(ids)
"""
from __future__ import annotations

import ctypes
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import SteerError

GGML_TYPE_F32 = 0


def _llama_cpp() -> Any:
    try:
        import llama_cpp
    except ImportError:
        raise SteerError("llama-cpp-python is not installed: make install-llamacpp "
                         "(or pip install 'steer[llamacpp]')") from None
    return llama_cpp


class _GGUFInitParams(ctypes.Structure):
    _fields_ = [("no_alloc", ctypes.c_bool), ("ctx", ctypes.POINTER(ctypes.c_void_p))]


def _ggml() -> Any:
    llama_cpp = _llama_cpp()
    from llama_cpp._ctypes_extensions import load_shared_library

    lib = load_shared_library("ggml-base", Path(llama_cpp.__file__).parent / "lib")
    sig = {"gguf_init_from_file": ([ctypes.c_char_p, _GGUFInitParams], ctypes.c_void_p),
           "gguf_get_n_tensors": ([ctypes.c_void_p], ctypes.c_int64),
           "gguf_get_tensor_name": ([ctypes.c_void_p, ctypes.c_int64], ctypes.c_char_p),
           "gguf_find_key": ([ctypes.c_void_p, ctypes.c_char_p], ctypes.c_int64),
           "gguf_get_val_str": ([ctypes.c_void_p, ctypes.c_int64], ctypes.c_char_p),
           "gguf_free": ([ctypes.c_void_p], None),
           "ggml_get_tensor": ([ctypes.c_void_p, ctypes.c_char_p], ctypes.c_void_p),
           "ggml_n_dims": ([ctypes.c_void_p], ctypes.c_int),
           "ggml_nelements": ([ctypes.c_void_p], ctypes.c_int64),
           "ggml_get_data_f32": ([ctypes.c_void_p], ctypes.POINTER(ctypes.c_float)),
           "ggml_free": ([ctypes.c_void_p], None)}
    for name, (args, res) in sig.items():
        fn = getattr(lib, name)
        fn.argtypes, fn.restype = args, res
    return lib


def ggml_read_control_vector(path: str | os.PathLike) -> tuple[dict[int, np.ndarray], str | None]:
    """({layer: vector}, architecture) as llama.cpp's control-vector loader reads the file: with
    ggml's C reader, the same name/type/shape rules (`direction.N`, N >= 1, 1-D float32).

    >>> vectors, arch = ggml_read_control_vector("calm.gguf"); arch
    'controlvector'
    """
    lib = _ggml()
    ctx = ctypes.c_void_p()
    g = lib.gguf_init_from_file(str(path).encode(), _GGUFInitParams(False, ctypes.pointer(ctx)))
    if not g:
        raise SteerError(f"ggml cannot read {str(path)!r} as GGUF")
    try:
        key = lib.gguf_find_key(g, b"general.architecture")
        arch = lib.gguf_get_val_str(g, key).decode() if key >= 0 else None
        out: dict[int, np.ndarray] = {}
        for i in range(lib.gguf_get_n_tensors(g)):
            name = lib.gguf_get_tensor_name(g, i)
            head, _, index = name.decode().partition(".")
            if head != "direction" or not index.isdigit() or int(index) == 0:
                raise SteerError(f"{Path(path).name}: llama.cpp rejects tensor {name.decode()!r}")
            t = lib.ggml_get_tensor(ctx, name)
            # enum ggml_type is the first field of struct ggml_tensor
            if ctypes.cast(t, ctypes.POINTER(ctypes.c_int))[0] != GGML_TYPE_F32 or lib.ggml_n_dims(t) != 1:
                raise SteerError(f"{Path(path).name}: llama.cpp rejects {name.decode()} (not 1-D float32)")
            n = lib.ggml_nelements(t)
            out[int(index)] = np.ctypeslib.as_array(lib.ggml_get_data_f32(t), shape=(n,)).copy()
        return out, arch
    finally:
        lib.gguf_free(g)
        if ctx:
            lib.ggml_free(ctx)


class LlamaCpp:
    """A GGUF model in llama.cpp on the CPU, with per-position logits and control vectors."""

    def __init__(self, model_path: str | os.PathLike, *, n_ctx: int = 512, n_threads: int | None = None) -> None:
        llama_cpp = _llama_cpp()
        self._lib = llama_cpp
        self.llm = llama_cpp.Llama(str(model_path), n_ctx=n_ctx, logits_all=True, verbose=False,
                                   n_threads=n_threads or min(4, os.cpu_count() or 1), n_gpu_layers=0)
        self.n_layers = int(llama_cpp.llama_model_n_layer(self.llm.model))
        self.n_embd = int(self.llm.n_embd())

    def logits(self, ids: list[int]) -> np.ndarray:
        """[T, V] next-token logits for token ids (no BOS added: pass what steer's tokenizer gives)."""
        self.llm.reset()
        self.llm.eval(list(ids))
        return np.array(self.llm.scores[: len(ids)], dtype=np.float32)

    def set_control_vector(self, path: str | os.PathLike, scale: float = 1.0,
                           layer_start: int = 1, layer_end: int | None = None) -> None:
        """Apply a control-vector file as `--control-vector-scaled path:scale` with
        `--control-vector-layer-range layer_start layer_end` (inclusive) would."""
        from .gguf import cvec_buffer

        vectors, arch = ggml_read_control_vector(path)
        if arch not in (None, "controlvector"):
            raise SteerError(f"{Path(path).name} is a {arch!r} GGUF, not a control vector")
        if not vectors or next(iter(vectors.values())).shape[0] != self.n_embd:
            raise SteerError(f"{Path(path).name} does not match this model's width {self.n_embd}")
        buf = cvec_buffer(vectors, self.n_layers, scale)
        end = self.n_layers - 1 if layer_end is None else layer_end
        apply = getattr(self._lib, "llama_set_adapter_cvec", None) or self._lib.llama_apply_adapter_cvec
        rc = apply(self.llm.ctx, buf.ctypes.data_as(ctypes.POINTER(ctypes.c_float)), buf.size, self.n_embd,
                   layer_start, end)
        if rc != 0:
            raise SteerError(f"llama.cpp refused the control vector {Path(path).name} (code {rc})")
        self._buf = buf                      # llama.cpp copies it, but keep it alive until then

    def clear_control_vector(self) -> None:
        apply = getattr(self._lib, "llama_set_adapter_cvec", None) or self._lib.llama_apply_adapter_cvec
        apply(self.llm.ctx, None, 0, self.n_embd, -1, -1)
