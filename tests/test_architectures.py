"""The same block access and the same edit semantics on tiny random configs of real
architectures, and the caller's model is never mutated."""
from __future__ import annotations

import pytest
import torch

import steer
from steer import Intervention

from .helpers import ARCHS, hooked, tiny_model, unit

TEXTS = ["hello there, how are you today", "short one"]


@pytest.mark.parametrize("arch", ARCHS)
def test_tiny_architecture(arch, tokenizer):
    hf = tiny_model(arch, len(tokenizer))
    enc = tokenizer(TEXTS, return_tensors="pt", padding=True, padding_side="left")
    enc = {k: enc[k] for k in ("input_ids", "attention_mask")}
    # a left-padded row keeps its own positions (matters for absolute positions, e.g. GPT-2)
    pos = {"position_ids": (enc["attention_mask"].cumsum(-1) - 1).clamp(min=0)}
    real = enc["attention_mask"].bool()
    with torch.no_grad():
        hs = hf(**enc, **pos, output_hidden_states=True).hidden_states  # (transformers adds its own hooks here)
    before = {k: v.clone() for k, v in hf.state_dict().items()}
    hooks = {name: (dict(mod._forward_hooks), dict(mod._forward_pre_hooks)) for name, mod in hf.named_modules()}
    side = tokenizer.padding_side
    m = steer.load_model(hf, tokenizer=tokenizer)
    assert (m.n_layers, m.d_model) == (4, 64)
    assert torch.equal(m.tokenize(TEXTS)["input_ids"], enc["input_ids"])

    # layer L == hidden_states[L + 1]
    res = m.residuals(TEXTS, layers=[0, 1, 2])
    for L in (0, 1, 2):
        assert torch.allclose(res[L][real], hs[L + 1][real], atol=1e-5)

    # add and clamp agree with plain hooks on the caller's (unwrapped) model
    u = unit(64, 3)
    ivs = [Intervention("add", direction=u, layers=[1], strength=3.0, scale="absolute"),
           Intervention("clamp", direction=u, layers=[2], value=-1.5, scale="absolute")]
    got = m.logits(TEXTS, interventions=ivs)
    with torch.no_grad(), hooked(hf, m.block_path, [(1, "add", u, 3.0), (2, "clamp", u, -1.5)]):
        want = hf(**enc, **pos).logits
    assert torch.allclose(got[real], want[real], atol=1e-4)

    out = m.generate(TEXTS, interventions=ivs, max_new_tokens=5, monitor={"u": u}, monitor_layers=[2])
    with torch.no_grad(), hooked(hf, m.block_path, [(1, "add", u, 3.0), (2, "clamp", u, -1.5)]):
        ref = hf.generate(**enc, max_new_tokens=5, do_sample=False, pad_token_id=2)
    T = enc["input_ids"].shape[1]
    for b in range(2):
        n = out.generated_lengths[b]
        assert out.token_ids[b][-n:] == ref[b, T:T + n].tolist()
        proj = out.projections["u"][b, 0]
        computed = proj[~torch.isnan(proj)]
        assert torch.allclose(computed, torch.full_like(computed, -1.5), atol=1e-4)

    # never mutated: weights, forward slots, hooks, tokenizer
    after = hf.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    for name, mod in hf.named_modules():
        assert "forward" not in mod.__dict__
        assert (dict(mod._forward_hooks), dict(mod._forward_pre_hooks)) == hooks[name]
    assert tokenizer.padding_side == side


def test_block_path_for_each_family(tokenizer):
    paths = {arch: steer.load_model(tiny_model(arch, len(tokenizer)), tokenizer=tokenizer).block_path
             for arch in ARCHS}
    assert paths["gpt2"] == "transformer.h"
    assert paths["gpt_neox"] == "gpt_neox.layers"
    assert {paths[a] for a in ("llama", "qwen2", "mistral", "gemma2", "gemma3", "phi3")} == {"model.layers"}
