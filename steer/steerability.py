"""Steerability: does adding a direction move every input the intended way, and where does fluency break?

Steering vectors often help on some inputs and backfire on others, and the consistency of the
per-input activation differences predicts whether a vector steers at all. This module measures
both for emotion directions, per direction and layer, on fixed neutral chat episodes (written
here): a short request, a neutral assistant reply, then "In one word, how do you feel right now?"
answered with the fixed stem "I feel". Each episode is run unsteered and with `add` at every
position at strength s (x the layer's mean residual norm); at the stem's last token we read

- the projection onto the concept's direction at the read layer (default: the last layer),
- a behaviour-free readout: the log-odds that the next token is one of the concept's own words
  (its name and listed synonyms that are single tokens) rather than a neutral word,
- the activation difference steered - unsteered at the read layer,

and over the neutral reply the perplexity (steered / unsteered = the fluency ratio). Reported per
direction and layer: the per-prompt changes, the **wrong-way fraction** (share of prompts whose
readout moves against the sign of s), the **mean pairwise cosine** of the per-prompt differences,
and the **fluency-break strength** (the smallest tested strength whose ratio exceeds 1.5).
A direction is flagged **weakly steerable** at a layer when, at the main strength, at least a
quarter of prompts move the wrong way or the mean readout change is not positive.

>>> res = steerability(m, ds, emotions=["calm"], layers=[14], strengths=[0.1, 0.4])
>>> res["entries"][0]["wrong_way_logodds"], res["entries"][0]["fluency_break"]
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from tqdm.auto import tqdm

from .errors import SteerError
from .interventions import Intervention

SYSTEM = "You are a helpful assistant."
ASK = "In one word, how do you feel right now?"
STEM = "I feel"
# (request, neutral reply): everyday, emotionless exchanges; the reply is the fluency text.
EPISODES: tuple[tuple[str, str], ...] = (
    ("How many centimetres are in a metre?", "There are one hundred centimetres in a metre."),
    ("What is the capital of Portugal?", "The capital of Portugal is Lisbon."),
    ("How do I convert Celsius to Fahrenheit?", "Multiply by nine, divide by five, then add thirty-two."),
    ("Which planet is closest to the Sun?", "Mercury is the planet closest to the Sun."),
    ("How long should I boil an egg for a firm yolk?", "Boil it for about ten minutes, then cool it in water."),
    ("What does a semicolon join?", "A semicolon joins two related clauses that could stand alone."),
    ("How often should a bicycle chain be oiled?", "Oil it every few hundred kilometres or after riding in rain."),
    ("What unit is electric current measured in?", "Electric current is measured in amperes."),
)
NEUTRAL_WORDS = ("fine", "okay", "ready", "normal", "like", "that", "the", "a", "it", "so")
WRONG_WAY_LIMIT = 0.25       # a quarter of prompts moving the wrong way makes a direction weak
BREAK_RATIO = 1.5            # perplexity ratio that counts as broken fluency


# ---- exact pieces -------------------------------------------------------------------------
def wrong_way_fraction(deltas: torch.Tensor, sign: float = 1.0) -> float:
    """Share of per-prompt changes that move against `sign` (a zero change counts as wrong).

    >>> wrong_way_fraction(torch.tensor([0.5, -0.1, 0.2, 0.0]))
    0.5
    """
    d = torch.as_tensor(deltas, dtype=torch.float64).flatten()
    if d.numel() == 0:
        raise SteerError("wrong_way_fraction needs at least one change")
    return float(((d * math.copysign(1.0, sign)) <= 0).double().mean())


def mean_pairwise_cosine(diffs: torch.Tensor) -> float:
    """Mean cosine over all pairs i < j of the rows of `diffs` [N, D] (NaN if fewer than 2 rows).

    >>> mean_pairwise_cosine(torch.tensor([[1.0, 0.0], [0.0, 2.0], [3.0, 0.0]]))
    0.3333333333333333
    """
    x = torch.as_tensor(diffs, dtype=torch.float64)
    if x.dim() != 2:
        raise SteerError(f"diffs must be [N, D], got shape {tuple(x.shape)}")
    n = x.shape[0]
    if n < 2:
        return float("nan")
    x = x / x.norm(dim=1, keepdim=True).clamp(min=1e-12)
    g = x @ x.T
    return float((g.sum() - g.diagonal().sum()) / (n * (n - 1)))


def fluency_break(strengths: Sequence[float], ratios: Sequence[float], limit: float = BREAK_RATIO) -> float | None:
    """The smallest |strength| whose perplexity ratio exceeds `limit`, or None if none does.

    >>> fluency_break([0.1, 0.4, 0.2], [1.1, 3.0, 1.6])
    0.2
    """
    hits = [s for s, r in zip(strengths, ratios) if r is not None and r > limit]
    return min(hits, key=abs) if hits else None


def log_odds(logits: torch.Tensor, positive: Sequence[int], negative: Sequence[int]) -> torch.Tensor:
    """log P(next token in `positive`) - log P(next token in `negative`), per row of [N, V]."""
    lg = logits.float()
    return torch.logsumexp(lg[:, list(positive)], -1) - torch.logsumexp(lg[:, list(negative)], -1)


def word_tokens(tokenizer: Any, words: Sequence[str]) -> list[int]:
    """Ids of the words that are one token after a space (" calm"); multi-token words are dropped."""
    ids = []
    for w in words:
        t = tokenizer(" " + w, add_special_tokens=False)["input_ids"]
        if len(t) == 1 and t[0] not in ids:
            ids.append(t[0])
    return ids


def emotion_tokens(tokenizer: Any, emotion: str) -> list[int]:
    """The concept's own words (name + listed synonyms) that are single tokens, minus neutral ones."""
    from .emotions.corpus import banned_words

    words = [emotion] + list(banned_words().get(emotion, ()))
    neutral = set(word_tokens(tokenizer, NEUTRAL_WORDS))
    return [t for t in word_tokens(tokenizer, words) if t not in neutral]


# ---- the measurement ----------------------------------------------------------------------
def episodes(pairs: Sequence[tuple[str, str]] = EPISODES) -> list[list[dict]]:
    """The chat messages of each episode (system, request, reply, question, stem)."""
    return [[{"role": "system", "content": SYSTEM}, {"role": "user", "content": q},
             {"role": "assistant", "content": a}, {"role": "user", "content": ASK},
             {"role": "assistant", "content": STEM}] for q, a in pairs]


class _Reader:
    """Runs episodes (optionally steered, packed) and reads the quantities above per row."""

    def __init__(self, model: Any, pairs: Sequence[tuple[str, str]], read_layer: int) -> None:
        self.m, self.R = model, read_layer
        self.eps = episodes(pairs)
        turns = model.chat_turns(self.eps)
        self.reply = [[t for t in row if t.role == "assistant"][0] for row in turns]
        self.stem = [[t for t in row if t.role == "assistant"][-1] for row in turns]
        self.neutral = word_tokens(model.tokenizer, NEUTRAL_WORDS)
        self.ids = [model.tokenizer(model.format_prompts([e], chat=True)[0], add_special_tokens=False)["input_ids"]
                    for e in self.eps]

    def run(self, interventions: list[list[Intervention]] | None, repeat: int, emotions_ids: dict[str, list[int]],
            directions: Any) -> dict[str, Any]:
        P = len(self.eps)
        logits, res = self.m.read(self.eps * repeat, [self.R], interventions, chat=True, directions=directions)
        T = res.mask.shape[1]
        h, nll, lo = [], [], {e: [] for e in emotions_ids}
        for b in range(P * repeat):
            k = b % P
            start = T - int(res.mask[b].sum())
            q = start + self.stem[k].end - 1                       # the stem's last token
            h.append(res[self.R][b, q].float())
            r0, r1 = start + self.reply[k].start, start + self.reply[k].end
            lp = torch.log_softmax(logits[b, r0 - 1:r1 - 1].float(), -1)
            target = torch.tensor(self.ids[k][self.reply[k].start:self.reply[k].end])
            nll.append(float(-lp.gather(-1, target.unsqueeze(-1)).mean()))
            for e, pos in emotions_ids.items():
                lo[e].append(float(log_odds(logits[b, q].unsqueeze(0), pos, self.neutral)[0]) if pos else float("nan"))
        return {"h": torch.stack(h), "nll": torch.tensor(nll), "logodds": {e: torch.tensor(v) for e, v in lo.items()}}


def steerability(model: Any, ds: Any, *, emotions: Sequence[str] | None = None, layers: Sequence[Any] = (14,),
                 strengths: Sequence[float] = (0.1, 0.25, 0.5, 1.0), main_strength: float | None = None,
                 read_layer: int | None = None, pairs: Sequence[tuple[str, str]] = EPISODES,
                 batch_rows: int = 16, progress: bool = True) -> dict[str, Any]:
    """Per direction and layer: per-prompt effects, wrong-way fraction, difference cosine, fluency break.

    layers: each an int, a list of ints (steered together) or "all"; strengths: tested strengths
    (x residual norm); main_strength: the one the per-prompt effects are reported at (default:
    the smallest positive tested strength); read_layer: default the model's last layer.

    >>> res = steerability(m, ds, emotions=["desperate", "calm"], layers=[10, 14], strengths=[0.1, 0.5])
    """
    emotions = list(emotions or ds.emotions)
    strengths = [float(s) for s in strengths]
    if not strengths or any(s == 0 for s in strengths):
        raise SteerError(f"strengths={strengths!r} must be a non-empty list of non-zero numbers")
    main = main_strength if main_strength is not None else min((s for s in strengths if s > 0), default=strengths[0])
    if main not in strengths:
        strengths.append(float(main))
    R = model.n_layers - 1 if read_layer is None else read_layer
    if isinstance(R, bool) or not isinstance(R, int) or not 0 <= R < model.n_layers:
        raise SteerError(f"read_layer={read_layer!r} out of range for a {model.n_layers}-layer model")
    for e in emotions:
        ds.vector(e, ds.layers[0])                                  # one-line error for a missing name
    reader = _Reader(model, pairs, R)
    tok_ids = {e: emotion_tokens(model.tokenizer, e) for e in emotions}
    base = reader.run(None, 1, tok_ids, ds)
    P, norm_R = len(reader.eps), model.residual_norm(R)
    per_pass = max(1, batch_rows // P)
    entries = []
    todo = [(e, layer) for e in emotions for layer in layers]
    for e, layer in tqdm(todo, desc="steerability", disable=not progress, leave=False):
        lay = layer if layer == "all" else ([layer] if isinstance(layer, int) else list(layer))
        ref_layer = lay[-1] if isinstance(lay, list) else model.n_layers - 1
        u_R = ds.vector(e, R) if R in ds.layers else ds.vector(e, ref_layer)
        out: dict[float, dict] = {}
        for i in range(0, len(strengths), per_pass):
            chunk = strengths[i:i + per_pass]
            ivs = [[Intervention("add", direction=e, layers=lay, strength=s, directions=ds)] for s in chunk for _ in range(P)]
            got = reader.run(ivs, len(chunk), {e: tok_ids[e]}, ds)
            for j, s in enumerate(chunk):
                sl = slice(j * P, (j + 1) * P)
                out[s] = {"h": got["h"][sl], "nll": got["nll"][sl], "lo": got["logodds"][e][sl]}
        by_strength = []
        for s in sorted(strengths):
            d_lo = out[s]["lo"] - base["logodds"][e]
            d_pr = (out[s]["h"] - base["h"]) @ u_R / norm_R
            ratio = float(torch.exp(out[s]["nll"].mean() - base["nll"].mean()))
            by_strength.append({"strength": s, "mean_delta_logodds": float(d_lo.mean()),
                                "mean_delta_projection": float(d_pr.mean()), "ppl_ratio": ratio,
                                "wrong_way_logodds": wrong_way_fraction(d_lo, s) if tok_ids[e] else None})
        d_lo = out[main]["lo"] - base["logodds"][e]
        diffs = out[main]["h"] - base["h"]
        d_pr = diffs @ u_R / norm_R
        has_words = bool(tok_ids[e])
        ww_lo = wrong_way_fraction(d_lo, main) if has_words else None
        mean_lo = float(d_lo.mean()) if has_words else None
        weak = (ww_lo >= WRONG_WAY_LIMIT or math.copysign(1.0, main) * mean_lo <= 0) if has_words else \
            wrong_way_fraction(d_pr, main) >= WRONG_WAY_LIMIT
        entries.append({
            "emotion": e, "layers": lay, "read_layer": R, "strength": main,
            "projection_direction": f"{e} at layer {R if R in ds.layers else ref_layer}",
            "n_emotion_tokens": len(tok_ids[e]), "emotion_tokens": [model.tokenizer.decode([t]) for t in tok_ids[e]],
            "delta_logodds": d_lo.tolist() if has_words else None, "delta_projection": d_pr.tolist(),
            "wrong_way_logodds": ww_lo, "wrong_way_projection": wrong_way_fraction(d_pr, main),
            "mean_delta_logodds": mean_lo, "mean_delta_projection": float(d_pr.mean()),
            "diff_cosine": mean_pairwise_cosine(diffs),
            "fluency_break": fluency_break([b["strength"] for b in by_strength], [b["ppl_ratio"] for b in by_strength]),
            "by_strength": by_strength, "weak": bool(weak)})
    return {"model": model.name, "model_fingerprint": model.fingerprint, "read_layer": R, "strengths": sorted(strengths),
            "main_strength": main, "n_prompts": P, "break_ratio": BREAK_RATIO, "wrong_way_limit": WRONG_WAY_LIMIT,
            "base_logodds": {e: base["logodds"][e].tolist() for e in emotions}, "entries": entries}


# ---- lookup for sweep reports -------------------------------------------------------------
def _layers_key(layers: Any) -> str:
    return "all" if layers == "all" else ",".join(str(int(x)) for x in (layers if isinstance(layers, (list, tuple)) else [layers]))


def warnings_for(results: Sequence[dict], cells: Sequence[tuple[str, Any]]) -> tuple[list[str], list[str]]:
    """Lines for a sweep report: (weak directions used by `cells`, cells never measured).

    cells: (emotion, layers) pairs; results: steerability result dicts (several may be merged).
    """
    found = {}
    for res in results:
        for e in res.get("entries", []):
            found[(e["emotion"], _layers_key(e["layers"]))] = (res, e)
    weak, missing = [], []
    for emotion, layers in dict.fromkeys((e, _layers_key(l)) for e, l in cells):
        hit = found.get((emotion, layers))
        if hit is None:
            missing.append(f"{emotion} L{layers}")
            continue
        res, e = hit
        if e["weak"]:
            ww = e["wrong_way_logodds"]
            weak.append(f"**{emotion} at layer {layers} is weakly steerable**: at +{e['strength']:g} x norm, "
                        + (f"{ww:.0%} of {res['n_prompts']} neutral prompts move the emotion-word log-odds the wrong "
                           f"way (mean change {e['mean_delta_logodds']:+.2f})" if ww is not None else
                           f"{e['wrong_way_projection']:.0%} move its projection the wrong way")
                        + f"; per-prompt difference cosine {e['diff_cosine']:.2f}. Read its rates with care.")
    return weak, missing
