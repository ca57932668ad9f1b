"""Capability beside behaviour for free text: the perplexity of a response under the UNSTEERED
model, so "steering broke the model" is never read as "steering changed its honesty"."""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch


def response_perplexity(model: Any, prompts: Sequence[str], responses: Sequence[str], *,
                        batch_size: int = 8) -> list[float | None]:
    """exp(mean NLL) of each response's tokens given its (already formatted) prompt."""
    tok = model.tokenizer
    out: list[float | None] = []
    for i in range(0, len(prompts), batch_size):
        rows, spans = [], []
        for p, r in zip(prompts[i:i + batch_size], responses[i:i + batch_size]):
            p_ids = tok(p, add_special_tokens=False)["input_ids"]
            r_ids = tok(r, add_special_tokens=False)["input_ids"][:512]
            rows.append(p_ids + r_ids)
            spans.append((len(p_ids), len(r_ids)))
        T = max(len(x) for x in rows)
        ids = torch.full((len(rows), T), tok.pad_token_id or 0, dtype=torch.long)
        mask = torch.zeros(len(rows), T, dtype=torch.long)
        for b, x in enumerate(rows):
            ids[b, T - len(x):] = torch.tensor(x)
            mask[b, T - len(x):] = 1
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        with torch.no_grad():
            logits = model.hf(input_ids=ids.to(model.device), attention_mask=mask.to(model.device),
                              position_ids=pos.to(model.device)).logits.float().cpu()
        logp = torch.log_softmax(logits[:, :-1], -1).gather(-1, ids[:, 1:].unsqueeze(-1)).squeeze(-1)
        for b, (n_p, n_r) in enumerate(spans):
            if n_r == 0:
                out.append(None)
                continue
            start = T - (n_p + n_r)                    # first real column of the row
            nll = -logp[b, start + n_p - 1:start + n_p + n_r - 1].mean()
            out.append(float(math.exp(min(float(nll), 50.0))))
    return out
