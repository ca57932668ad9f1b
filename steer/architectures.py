"""Finding the decoder blocks of any causal LM, so layer L means the same thing everywhere.

Layer L is the output of decoder block L (0-based), i.e. `hidden_states[L + 1]` of a
Hugging Face forward with `output_hidden_states=True` (for the last block, HF applies the
final norm to `hidden_states[-1]`; steer's layer n-1 is the block output, before that norm).
"""
from __future__ import annotations

from typing import Any

import torch

from .errors import SteerError

# Known homes of the block list, checked before a generic search (first match wins).
KNOWN_BLOCK_PATHS = (
    "model.layers",                 # Llama, Mistral, Qwen2/3, Gemma 2/3, Phi-3, OLMo, ...
    "model.language_model.layers",  # multimodal wrappers (Gemma 3, Llava-style)
    "transformer.h",                # GPT-2, GPT-J, Falcon-style
    "gpt_neox.layers",              # GPT-NeoX, Pythia
    "model.decoder.layers",         # OPT
    "transformer.blocks",           # MPT
    "backbone.layers",              # Mamba-style
)


def n_layers_of(config: Any) -> int:
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    for key in ("num_hidden_layers", "n_layer", "num_layers"):
        value = getattr(text, key, None)
        if isinstance(value, int):
            return value
    raise SteerError(f"cannot tell the number of layers from config {type(config).__name__}")


def d_model_of(config: Any) -> int:
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    for key in ("hidden_size", "n_embd", "d_model"):
        value = getattr(text, key, None)
        if isinstance(value, int):
            return value
    raise SteerError(f"cannot tell the residual width from config {type(config).__name__}")


def find_block_path(model: torch.nn.Module) -> str:
    """Dotted path of the ModuleList holding the decoder blocks (e.g. `model.layers`)."""
    n = n_layers_of(model.config)
    for path in KNOWN_BLOCK_PATHS:
        try:
            mod = model.get_submodule(path)
        except AttributeError:
            continue
        if isinstance(mod, torch.nn.ModuleList) and len(mod) == n:
            return path
    candidates = [
        name for name, mod in model.named_modules()
        if isinstance(mod, torch.nn.ModuleList) and len(mod) == n and name
    ]
    if not candidates:
        raise SteerError(
            f"no ModuleList of {n} decoder blocks found in {type(model).__name__}; "
            "pass block_path= to load_model"
        )
    return min(candidates, key=lambda name: name.count("."))


def residual_of(output: Any) -> torch.Tensor:
    """The residual stream inside a block's output (a Tensor in transformers 5, a tuple before)."""
    return output[0] if isinstance(output, tuple) else output


def with_residual(output: Any, residual: torch.Tensor) -> Any:
    """A block output with its residual replaced, same structure as it came."""
    if isinstance(output, tuple):
        return (residual,) + tuple(output[1:])
    return residual
