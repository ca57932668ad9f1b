"""Test helpers: tiny randomly initialised configs of real architectures, and a frozen
reference implementation of the four operations written with plain `register_forward_hook`,
independent of steer's own code (steer must agree with it)."""
from __future__ import annotations

import contextlib

import torch
import transformers

TINY = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=4, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=256)


def tiny_config(arch: str, vocab_size: int):
    """A 4-layer, 64-wide config of a real architecture (built from config: no download)."""
    if arch == "gpt2":
        return transformers.GPT2Config(vocab_size=vocab_size, n_embd=64, n_layer=4, n_head=4, n_positions=256)
    if arch == "gpt_neox":
        return transformers.GPTNeoXConfig(vocab_size=vocab_size, hidden_size=64, intermediate_size=128,
                                          num_hidden_layers=4, num_attention_heads=4, max_position_embeddings=256)
    cls = {"llama": transformers.LlamaConfig, "qwen2": transformers.Qwen2Config,
           "mistral": transformers.MistralConfig, "phi3": transformers.Phi3Config,
           "gemma2": transformers.Gemma2Config, "gemma3": transformers.Gemma3TextConfig}[arch]
    extra = {"head_dim": 16} if arch.startswith("gemma") else {}
    return cls(vocab_size=vocab_size, **TINY, **extra)


ARCHS = ("llama", "qwen2", "mistral", "gemma2", "gemma3", "phi3", "gpt2", "gpt_neox")


def tiny_model(arch: str, vocab_size: int, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    cfg = tiny_config(arch, vocab_size)
    cfg.pad_token_id = None
    model = transformers.AutoModelForCausalLM.from_config(cfg).eval()
    model.generation_config.pad_token_id = 2
    model.generation_config.eos_token_id = 2
    return model


def reference_edit(x: torch.Tensor, op: str, u: torch.Tensor, coef: float) -> torch.Tensor:
    """The four operations, spelled out the obvious way."""
    if op == "add":
        return x + coef * u
    if op == "subtract":
        return x - coef * u
    proj = (x * u).sum(-1, keepdim=True)
    if op == "clamp":
        return x + (coef - proj) * u
    if op == "ablate":
        return x - proj * u
    raise ValueError(op)


@contextlib.contextmanager
def hooked(hf, blocks_path: str, edits, where: str = "all", prompt_len: int | None = None):
    """Forward hooks applying `edits` = [(layer, op, u, coef)] at `where` positions.

    where: "all" | "prompt" | "generated" (prompt pass = calls with more than one token).
    """
    blocks = hf.get_submodule(blocks_path)
    handles = []
    for layer, op, u, coef in edits:
        def hook(mod, args, output, op=op, u=u, coef=coef):
            x = output[0] if isinstance(output, tuple) else output
            is_prompt = x.shape[1] > 1
            if where == "all" or (where == "prompt") == is_prompt:
                x = reference_edit(x, op, u.to(x.dtype), coef)
            return (x,) + tuple(output[1:]) if isinstance(output, tuple) else x
        handles.append(blocks[layer].register_forward_hook(hook))
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def unit(d: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    v = torch.randn(d, generator=g)
    return v / v.norm()
