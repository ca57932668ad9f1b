"""Reply perplexity under the unsteered model: the shared-prefix batched scorer equals a plain
full forward of prompt + reply, row by row."""
from __future__ import annotations

import math

import torch

from steer.runs.fluency import response_perplexity


def _direct(model, prompt: str, reply: str) -> float:
    tok = model.tokenizer
    p = tok(prompt, add_special_tokens=False)["input_ids"]
    r = tok(reply, add_special_tokens=False)["input_ids"]
    ids = torch.tensor([p + r])
    with torch.no_grad():
        logp = torch.log_softmax(model.hf(input_ids=ids).logits.float()[0, :-1], -1)
    nll = -logp[len(p) - 1:len(p) + len(r) - 1].gather(-1, ids[0, len(p):].unsqueeze(-1)).mean()
    return math.exp(float(nll))


def test_shared_prefix_perplexity_matches_a_plain_forward(model):
    prompts = ["The weather report for tomorrow says", "A short list of fruit:"]
    rows = [(0, " rain in the morning and sun later."), (1, " apples, pears, plums"),
            (0, " snow."), (0, ""), (1, " bananas and a very long list of other fruit that goes on")]
    got = response_perplexity(model, [prompts[i] for i, _ in rows], [r for _, r in rows], batch_size=2)
    assert len(got) == len(rows)
    assert got[3] is None                                   # an empty reply has no perplexity
    for (i, reply), value in zip(rows, got):
        if reply:
            assert math.isclose(value, _direct(model, prompts[i], reply), rel_tol=1e-4), (reply, value)
