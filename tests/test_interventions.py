"""The four operations on the embedded model agree with a plain forward-hook implementation,
exactly where the math is exact."""
from __future__ import annotations

import pytest
import torch

import steer
from steer import Intervention

from .helpers import hooked, unit

TEXTS = ["The cat sat quietly on the warm windowsill.", "Numbers: one two three"]
PROMPTS = ["Write one sentence about the sea.", "Name a fruit."]


def enc_of(model, texts):
    return model.tokenize(texts)


@pytest.mark.parametrize("op,layers", [("add", [3]), ("subtract", [10, 20]), ("clamp", [12]),
                                       ("ablate", [5, 15, 25])])
def test_logits_match_hook_reference(model, plain_hf, op, layers):
    u = unit(model.d_model, 1)
    kw = {"clamp": {"value": 30.0}, "ablate": {}}.get(op, {"strength": 40.0})
    iv = Intervention(op, direction=u, layers=layers, scale="absolute", **kw)
    coef = kw.get("value", kw.get("strength", 0.0))
    got = model.logits(TEXTS, interventions=[iv])
    with torch.no_grad(), hooked(plain_hf, model.block_path, [(L, op, u, coef) for L in layers]):
        want = plain_hf(**enc_of(model, TEXTS)).logits
    assert got.shape == want.shape
    real = enc_of(model, TEXTS)["attention_mask"].bool()  # steer never edits padding
    assert torch.allclose(got[real], want[real], atol=1e-4, rtol=0)
    base = model.logits(TEXTS)
    assert not torch.allclose(got, base, atol=1e-2)  # the edit did something


def test_add_is_exact_and_earlier_layers_untouched(model):
    u = unit(model.d_model, 2)
    L = 12
    iv = Intervention("add", direction=u, layers=[L], strength=0.3)
    base = model.residuals(TEXTS, layers=range(0, L + 2))
    steered = model.residuals(TEXTS, layers=range(0, L + 2), interventions=[iv])
    for layer in range(L):
        assert torch.equal(base[layer], steered[layer]), f"layer {layer} changed"
    alpha = 0.3 * model.residual_norm(L)
    mask = base.mask.bool()
    expected = base[L] + alpha * u
    assert torch.equal(steered[L][mask], expected[mask])
    assert not torch.allclose(steered[L + 1], base[L + 1])


def test_clamp_sets_projection_and_ablate_zeroes_it(model):
    u = unit(model.d_model, 3)
    L = 8
    clamp = Intervention("clamp", direction=u, layers=[L], value=0.25)
    res = model.residuals(TEXTS, layers=[L], interventions=[clamp])
    mask = res.mask.bool()
    proj = res[L] @ u
    target = 0.25 * model.residual_norm(L)
    assert torch.allclose(proj[mask], torch.full_like(proj[mask], target), atol=1e-4 * target)
    ablate = Intervention("ablate", direction=u, layers=[L])
    res = model.residuals(TEXTS, layers=[L], interventions=[ablate])
    assert (res[L] @ u)[mask].abs().max() < 1e-4


def test_subtract_equals_negative_add_and_zero_is_identity(model):
    u = unit(model.d_model, 4)
    sub = model.logits(TEXTS, interventions=[Intervention("subtract", direction=u, layers=[9], strength=0.2)])
    add = model.logits(TEXTS, interventions=[Intervention("add", direction=u, layers=[9], strength=-0.2)])
    assert torch.equal(sub, add)
    zero = model.logits(TEXTS, interventions=[Intervention("add", direction=u, layers=[9], strength=0.0)])
    assert torch.equal(zero, model.logits(TEXTS))


def test_norm_units_equal_absolute_times_residual_norm(model):
    u = unit(model.d_model, 5)
    L = 14
    rel = model.logits(TEXTS, interventions=[Intervention("add", direction=u, layers=[L], strength=0.15)])
    absolute = Intervention("add", direction=u, layers=[L], strength=0.15 * model.residual_norm(L), scale="absolute")
    assert torch.equal(rel, model.logits(TEXTS, interventions=[absolute]))
    assert model.residual_norm(L) > 0


def test_interventions_compose_in_order(model, plain_hf):
    u, v = unit(model.d_model, 6), unit(model.d_model, 7)
    ivs = [Intervention("add", direction=u, layers=[10], strength=50.0, scale="absolute"),
           Intervention("clamp", direction=v, layers=[10], value=-5.0, scale="absolute")]
    got = model.logits(TEXTS, interventions=ivs)
    with torch.no_grad(), hooked(plain_hf, model.block_path, [(10, "add", u, 50.0)]), \
            hooked(plain_hf, model.block_path, [(10, "clamp", v, -5.0)]):
        want = plain_hf(**enc_of(model, TEXTS)).logits
    real = enc_of(model, TEXTS)["attention_mask"].bool()
    assert torch.allclose(got[real], want[real], atol=1e-4, rtol=0)
    swapped = model.logits(TEXTS, interventions=ivs[::-1])
    assert not torch.allclose(got, swapped, atol=1e-3)


@pytest.mark.parametrize("op", ["add", "subtract", "clamp", "ablate"])
def test_greedy_generation_matches_hook_reference(model, plain_hf, op):
    u = unit(model.d_model, 8)
    kw = {"clamp": {"value": 20.0}, "ablate": {}}.get(op, {"strength": 30.0})
    coef = kw.get("value", kw.get("strength", 0.0))
    iv = Intervention(op, direction=u, layers=[6, 16], scale="absolute", **kw)
    out = model.generate(PROMPTS, interventions=[iv], max_new_tokens=12, chat=True)
    enc = model.tokenize(out.prompts, chat=True)
    with torch.no_grad(), hooked(plain_hf, model.block_path, [(L, op, u, coef) for L in (6, 16)]):
        ref = plain_hf.generate(**enc, max_new_tokens=12, do_sample=False, pad_token_id=model.tokenizer.pad_token_id)
    T = enc["input_ids"].shape[1]
    for b in range(len(PROMPTS)):
        n = out.generated_lengths[b]
        assert out.token_ids[b][-n:] == ref[b, T:T + n].tolist()


def test_every_generated_token_is_steered(model):
    """Clamp makes the steered projection observable at each step; count the steps."""
    u = unit(model.d_model, 9)
    L = 11
    seen = []
    block = model.hf.get_submodule(model.block_path)[L]
    handle = block.register_forward_hook(lambda mod, args, out: seen.append((out @ u)[:, -1].clone()))
    try:
        out = model.generate(PROMPTS, interventions=[Intervention("clamp", direction=u, layers=[L], value=0.5)],
                             max_new_tokens=10, chat=True)
    finally:
        handle.remove()
    target = 0.5 * model.residual_norm(L)
    assert len(seen) == out.n_steps == max(out.generated_lengths)
    for step in seen:
        assert torch.allclose(step, torch.full_like(step, target), atol=1e-3)


@pytest.mark.parametrize("where", ["prompt", "generated"])
def test_prompt_and_generated_positions(model, plain_hf, where):
    u = unit(model.d_model, 10)
    L = 13
    iv = Intervention("add", direction=u, layers=[L], strength=0.6, positions=where)
    out = model.generate(PROMPTS[:1], interventions=[iv], max_new_tokens=10, chat=True,
                         monitor={"u": u}, monitor_layers=[L])
    alpha = 0.6 * model.residual_norm(L)
    ids = torch.tensor([out.token_ids[0]])
    P = out.prompt_lengths[0]
    # Reference: the whole sequence in one plain forward, edited only at the chosen columns.
    captured = {}
    block = plain_hf.get_submodule(model.block_path)[L]

    def hook(mod, args, x):
        cols = slice(0, P) if where == "prompt" else slice(P, None)
        x = x.clone()
        x[:, cols] = x[:, cols] + alpha * u
        captured["x"] = x
        return x

    h = block.register_forward_hook(hook)
    try:
        with torch.no_grad():
            ref_logits = plain_hf(input_ids=ids).logits
    finally:
        h.remove()
    ref_proj = (captured["x"] @ u)[0]
    got = out.projections["u"][0, 0]
    n = len(out.token_ids[0]) - 1           # the last token's residual is never computed
    assert torch.isnan(got[n])
    assert torch.allclose(got[:n], ref_proj[:n], atol=2e-3)
    # the greedy continuation is what the reference predicts at every generated position
    assert ref_logits[0, P - 1:n].argmax(-1).tolist() == out.token_ids[0][P:n + 1]
    # Block L's own output never sees its edit, so against an unedited forward over the same
    # tokens the edited side is exactly base + alpha and the untouched side is exactly base.
    with torch.no_grad():
        base = plain_hf(input_ids=ids, output_hidden_states=True).hidden_states[L + 1][0] @ u
    edited = slice(0, P) if where == "prompt" else slice(P, n)
    untouched = slice(P, n) if where == "prompt" else slice(0, P)
    assert got[untouched].numel() > 0 and got[edited].numel() > 0
    assert torch.allclose(got[edited], base[edited] + alpha, atol=2e-3)
    assert torch.allclose(got[untouched], base[untouched], atol=2e-3)


def test_packed_rows_equal_separate_runs(model):
    u, v = unit(model.d_model, 11), unit(model.d_model, 12)
    prompts = ["Tell me about rain.", "Tell me about snow.", "Tell me about wind."]
    sets = [[Intervention("add", direction=u, layers=[10], strength=0.3)],
            [],
            [Intervention("clamp", direction=v, layers=[5, 20], value=0.1),
             Intervention("subtract", direction=u, layers=[20], strength=0.2)]]
    packed = model.generate(prompts, interventions=sets, max_new_tokens=10, chat=True)
    packed_logits = model.logits(prompts, interventions=sets)
    for b in range(3):
        alone = model.generate([prompts[b]], interventions=sets[b], max_new_tokens=10, chat=True)
        assert alone.token_ids[0] == packed.token_ids[b]
        lg = model.logits([prompts[b]], interventions=sets[b])
        T = lg.shape[1]
        assert torch.allclose(packed_logits[b, -T:], lg[0], atol=1e-4)


def test_explicit_indices_and_mask(model):
    u = unit(model.d_model, 13)
    L = 7
    base = model.residuals(TEXTS, layers=[L])
    res = model.residuals(TEXTS, layers=[L], interventions=[
        Intervention("add", direction=u, layers=[L], strength=1.0, scale="absolute", positions=[0, -1])])
    diff = ((res[L] - base[L]) @ u)
    for b in range(2):
        real = torch.nonzero(base.mask[b]).flatten()
        touched = torch.nonzero(diff[b].abs() > 0.5).flatten()
        assert touched.tolist() == [int(real[0]), int(real[-1])]
    mask = base.mask.bool() & (torch.arange(base.mask.shape[1]) % 2 == 0)
    res = model.residuals(TEXTS, layers=[L], interventions=[
        Intervention("add", direction=u, layers=[L], strength=1.0, scale="absolute", positions=mask)])
    touched = ((res[L] - base[L]) @ u).abs() > 0.5
    assert torch.equal(touched, mask)


def test_all_layers_and_per_layer_direction_map(model, plain_hf):
    dirs = {L: unit(model.d_model, 100 + L) for L in range(model.n_layers)}
    got = model.logits(TEXTS, interventions=[Intervention("add", direction=dirs, layers="all", strength=2.0, scale="absolute")])
    with torch.no_grad(), hooked(plain_hf, model.block_path, [(L, "add", dirs[L], 2.0) for L in dirs]):
        want = plain_hf(**enc_of(model, TEXTS)).logits
    real = enc_of(model, TEXTS)["attention_mask"].bool()
    assert torch.allclose(got[real], want[real], atol=1e-4, rtol=0)


def test_monitor_over_texts_aligns_with_tokens(model):
    u = unit(model.d_model, 14)
    proj = model.monitor(TEXTS, {"u": u, "w": -u}, layers=[4, 9])
    res = model.residuals(TEXTS, layers=[4, 9])
    for b in range(2):
        real = res.mask[b].bool()
        n = int(real.sum())
        assert len(proj.tokens[b]) == n
        for li, L in enumerate((4, 9)):
            want = res[L][b][real] @ u
            assert torch.allclose(proj["u"][b, li, :n], want, atol=1e-4)
            assert torch.allclose(proj["w"][b, li, :n], -want, atol=1e-4)
        assert torch.isnan(proj["u"][b, :, n:]).all()
    rows = proj.table(0, layer=9)
    assert [r["token"] for r in rows] == proj.tokens[0]
