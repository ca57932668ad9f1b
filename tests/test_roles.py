"""Role-aware positions: "user", "assistant", "system" and single turns ("user:-1") pick exactly the
tokens of those messages, in a packed left-padded batch and across the KV cache."""
from __future__ import annotations

import pytest
import torch

from steer import Intervention, SteerError
from steer.positions import Turn, check_positions, timeline_mask, turn_spans

from .helpers import unit

CHAT = [{"role": "system", "content": "Answer in one short sentence."},
        {"role": "user", "content": "My train was cancelled this morning."},
        {"role": "assistant", "content": "Another one should leave within the hour."},
        {"role": "user", "content": "Which platform does it leave from?"}]
SHORT = [{"role": "user", "content": "Name a colour."}]


def test_turn_spans_on_a_hand_made_template():
    text = "<s>u: hi there</s><s>a: hello</s>"
    offsets = [(0, 3), (3, 6), (6, 8), (8, 14), (14, 18), (18, 21), (21, 24), (24, 29), (29, 33)]
    msgs = [{"role": "user", "content": "hi there"}, {"role": "assistant", "content": "hello"}]
    assert turn_spans(text, msgs, offsets) == [Turn("user", 2, 4), Turn("assistant", 7, 8)]
    assert turn_spans(text, [{"role": "user", "content": ""}], offsets) == [Turn("user", 0, 0)]
    with pytest.raises(SteerError, match="message 1"):
        turn_spans(text, [msgs[0], {"role": "assistant", "content": "bye"}], offsets)
    with pytest.raises(SteerError, match="role 'tool'"):
        turn_spans(text, [{"role": "tool", "content": "hi"}], offsets)


def test_role_specs_are_checked_on_construction():
    for spec in ("user", "assistant", "system", "user:-1", "assistant:0"):
        assert check_positions(spec) == spec
    for bad in ("users", "user:last", "tool:0"):
        with pytest.raises(SteerError):
            check_positions(bad)


def test_chat_turns_decode_to_each_message(model):
    rows = [CHAT, SHORT]                                     # different lengths: left padding
    turns = model.chat_turns(rows)
    enc = model.tokenize(model.format_prompts(rows, chat=True), chat=True)
    toks = model._row_tokens(enc["input_ids"], enc["attention_mask"])
    for b, msgs in enumerate(rows):
        assert [t.role for t in turns[b]] == [m["role"] for m in msgs]
        for t, msg in zip(turns[b], msgs):
            assert "".join(toks[b][t.start:t.end]) == msg["content"]


def test_generation_adds_the_reply_as_the_last_assistant_turn():
    turns = [[Turn("user", 1, 3), Turn("assistant", 4, 6)], [Turn("user", 1, 2)]]
    lens = torch.tensor([7, 3])
    T, N = 7, 4
    every = timeline_mask("assistant", lens, T, N, turns)
    reply = timeline_mask("assistant:-1", lens, T, N, turns)
    generated = timeline_mask("generated", lens, T, N)
    assert torch.equal(reply, generated)
    assert every[0, 4:6].all() and not every[0, :4].any() and not every[0, 6] and every[0, T:].all()
    assert torch.equal(every[1], generated[1])               # no earlier assistant turn in row 1
    first = timeline_mask("assistant:0", lens, T, N, turns)
    assert first[0].nonzero().flatten().tolist() == [4, 5] and torch.equal(first[1], generated[1])
    user = timeline_mask("user", lens, T, N, turns)
    assert user[1].nonzero().flatten().tolist() == [5]       # row 1 starts at column 4: token 1 -> 5
    turns[0].append(Turn("user", 6, 7))
    assert timeline_mask("user:1", lens, T, N, [turns[0], turns[0]])[0].nonzero().flatten().tolist() == [6]
    with pytest.raises(SteerError, match="row 1 has 1 user"):
        timeline_mask("user:1", lens, T, N, turns)
    with pytest.raises(SteerError, match="needs chat=True"):
        timeline_mask("user", lens, T, N)


@pytest.mark.parametrize("spec", ["user", "assistant", "system", "user:-1", "assistant:0"])
def test_steered_residual_is_exact_at_the_role_and_untouched_elsewhere(model, spec):
    rows = [CHAT, SHORT + [{"role": "assistant", "content": "Blue."}]]
    u, L = unit(model.d_model, 11), 9
    base = model.residuals(rows, layers=[L], chat=True)
    iv = Intervention("add", direction=u, layers=[L], strength=0.3, positions=spec)
    steered = model.residuals(rows, layers=[L], interventions=[iv], chat=True)
    turns = model.chat_turns(rows)
    role, _, k = spec.partition(":")
    T = base.mask.shape[1]
    want = torch.zeros(base.mask.shape, dtype=torch.bool)
    for b, row in enumerate(turns):
        chosen = [t for t in row if t.role == role]
        chosen = chosen if not k else ([chosen[int(k)]] if chosen else [])
        start = T - int(base.mask[b].sum())
        for t in chosen:
            want[b, start + t.start:start + t.end] = True
    assert want.any()
    alpha = 0.3 * model.residual_norm(L)
    assert torch.equal(steered[L][want], base[L][want] + alpha * u)
    assert torch.equal(steered[L][~want], base[L][~want])


def test_role_positions_need_chat(model):
    iv = Intervention("add", direction=unit(model.d_model, 1), layers=[3], strength=0.1, positions="user")
    with pytest.raises(SteerError, match="chat=True"):
        model.logits(["plain text"], interventions=[iv])


def test_monitor_positions_keep_only_the_role(model):
    u = unit(model.d_model, 12)
    full = model.monitor([CHAT, SHORT], {"u": u}, [7], chat=True)
    user = model.monitor([CHAT, SHORT], {"u": u}, [7], chat=True, positions="user")
    kept = ~torch.isnan(user["u"])
    for b, row in enumerate(model.chat_turns([CHAT, SHORT])):
        idx = sorted(i for t in row if t.role == "user" for i in range(t.start, t.end))
        assert kept[b, 0].nonzero().flatten().tolist() == idx
    assert torch.equal(user["u"][kept], full["u"][kept])


def _reference_greedy(plain_hf, model, prompt_ids, n_new, edits, monitor):
    """Greedy decoding with a full recompute at every step (no cache) and plain forward hooks.

    edits: {layer: fn(x [1, n, D]) -> x}, applied to that block's output; monitor: (layer, u),
    read after the edit. Returns the new tokens and the projection at every position of the
    last pass (all tokens but the final one got a residual).
    """
    blocks = plain_hf.get_submodule(model.block_path)
    ids, seen = list(prompt_ids), {}

    def hook_for(layer):
        def hook(mod, args, output):
            x = output[0] if isinstance(output, tuple) else output
            if layer in edits:
                x = edits[layer](x)
            if layer == monitor[0]:
                seen["proj"] = (x[0] @ monitor[1]).clone()
            return (x,) + tuple(output[1:]) if isinstance(output, tuple) else x
        return hook

    for _ in range(n_new):
        handles = [blocks[L].register_forward_hook(hook_for(L)) for L in set(edits) | {monitor[0]}]
        try:
            with torch.no_grad():
                logits = plain_hf(input_ids=torch.tensor([ids]), use_cache=False).logits
        finally:
            for h in handles:
                h.remove()
        ids.append(int(logits[0, -1].argmax()))
        if ids[-1] == model.tokenizer.eos_token_id:
            break
    return ids[len(prompt_ids):], seen["proj"]


def test_cached_generation_equals_full_recompute(model, plain_hf):
    """A multi-turn chat steered on the assistant's tokens (its earlier reply and every generated
    token) and clamped on the last user turn: KV-cached generation, steer's no-cache path and a
    plain-hook recompute from scratch at every step agree on tokens and monitored projections."""
    rows, n_new = [CHAT, SHORT], 10
    u, v, w = unit(model.d_model, 21), unit(model.d_model, 22), unit(model.d_model, 23)
    ivs = [Intervention("add", direction=u, layers=[6], strength=0.15, positions="assistant"),
           Intervention("clamp", direction=v, layers=[12], value=0.2, positions="user:-1")]
    kw = dict(interventions=ivs, chat=True, max_new_tokens=n_new, monitor={"w": w}, monitor_layers=[12])
    cached = model.generate(rows, **kw)
    full = model.generate(rows, use_cache=False, **kw)
    assert cached.token_ids == full.token_ids
    a, b = cached.projections["w"], full.projections["w"]
    assert torch.equal(torch.isnan(a), torch.isnan(b))
    assert torch.allclose(a.nan_to_num(), b.nan_to_num(), atol=1e-3)

    add, target = 0.15 * model.residual_norm(6), 0.2 * model.residual_norm(12)
    for r, turns in enumerate(model.chat_turns(rows)):
        P = cached.prompt_lengths[r]
        mine = [t for t in turns if t.role == "assistant"]
        last_user = [t for t in turns if t.role == "user"][-1]

        def on_assistant(x, mine=mine, P=P):
            m = torch.zeros(x.shape[1])
            for t in mine:
                m[t.start:t.end] = 1.0
            m[P:] = 1.0                                      # generated tokens are the assistant's
            return x + add * m.view(1, -1, 1) * u

        def on_last_user(x, t=last_user):
            m = torch.zeros(x.shape[1])
            m[t.start:t.end] = 1.0
            return x + (m.view(1, -1) * (target - x @ v)).unsqueeze(-1) * v

        new, proj = _reference_greedy(plain_hf, model, cached.token_ids[r][:P], n_new,
                                      {6: on_assistant, 12: on_last_user}, (12, w))
        n = cached.generated_lengths[r]
        assert cached.token_ids[r][P:] == new[:n]
        assert torch.allclose(cached.projections["w"][r, 0, :P + n - 1], proj[:P + n - 1], atol=1e-3)
