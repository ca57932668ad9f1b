"""Capability beside behaviour for free text: the perplexity of a response under the UNSTEERED
model, so "steering broke the model" is never read as "steering changed its honesty"."""
from __future__ import annotations

import copy
import inspect
import math
from collections.abc import Sequence
from typing import Any

import torch

from ..errors import SteerError


def response_perplexity(model: Any, prompts: Sequence[str], responses: Sequence[str], *,
                        batch_size: int = 16) -> list[float | None]:
    """exp(mean NLL) of each response's tokens given its (already formatted) prompt.

    The cells of a sweep answer the same prompts, so each distinct prompt runs through the model
    once; its KV cache is then shared by all of its responses, which are scored in batches.
    """
    if len(prompts) != len(responses):
        raise SteerError(f"got {len(prompts)} prompts for {len(responses)} responses; pass one prompt per response")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise SteerError(f"batch_size={batch_size!r} must be a positive int")
    tok = model.tokenizer
    hf = model.hf
    out: list[float | None] = [None] * len(prompts)
    by_prompt: dict[str, list[int]] = {}
    for i, p in enumerate(prompts):
        by_prompt.setdefault(p, []).append(i)
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    # transformers 5.x renamed the KV-cache argument and output from past_key_values to cache
    kv = "cache" if "cache" in inspect.signature(hf.forward).parameters else "past_key_values"
    with torch.no_grad():
        for prompt, idx in by_prompt.items():
            p_ids = torch.tensor([tok(prompt, add_special_tokens=False)["input_ids"]], device=model.device)
            P = p_ids.shape[1]
            first = hf(input_ids=p_ids, use_cache=True, logits_to_keep=1)
            cache, last = first[kv], first.logits[0, -1].float()
            scored = [(i, tok(responses[i], add_special_tokens=False)["input_ids"][:512]) for i in idx]
            scored = [(i, r) for i, r in scored if r]
            for k in range(0, len(scored), batch_size):
                chunk = scored[k:k + batch_size]
                n, R = len(chunk), max(len(r) for _, r in chunk)
                ids = torch.full((n, R), pad, dtype=torch.long)
                mask = torch.zeros(n, P + R, dtype=torch.long)
                mask[:, :P] = 1
                for b, (_, r) in enumerate(chunk):
                    ids[b, :len(r)] = torch.tensor(r)
                    mask[b, P:P + len(r)] = 1
                ids, mask = ids.to(model.device), mask.to(model.device)
                shared = copy.deepcopy(cache)
                shared.batch_repeat_interleave(n)
                pos = torch.arange(P, P + R, device=model.device).unsqueeze(0).expand(n, R)
                logits = hf(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=True,
                            **{kv: shared}).logits.float()
                # token 0 of a response is predicted by the prompt's last position, token t by t-1
                pred = torch.cat([last.expand(n, 1, -1), logits[:, :-1]], dim=1)
                logp = torch.log_softmax(pred, -1).gather(-1, ids.unsqueeze(-1)).squeeze(-1)
                for b, (i, r) in enumerate(chunk):
                    nll = -logp[b, :len(r)].mean()
                    out[i] = float(math.exp(min(float(nll), 50.0)))
    return out
