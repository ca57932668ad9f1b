"""How good is a DirectionSet? Held-out accuracy, valence/arousal geometry, logit lens,
implicit scenarios and dose-response, per layer, with a recommended layer.

>>> res = steer.validate_directions(ds, m, out_dir="reports/directions")   # + report.md, PNGs, JSON
>>> res["recommended_layer"], res["pc1_valence_r"], res["pc2_arousal_r"]
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from . import emotions as emo
from .directions import DirectionSet
from .errors import SteerError
from .extraction import stream_means

FINAL_NORMS = ("model.norm", "model.language_model.norm", "transformer.ln_f",
               "gpt_neox.final_layer_norm", "model.final_layernorm", "model.decoder.final_layer_norm")


def _topk_accuracy(scores: torch.Tensor, truth: torch.Tensor, k: int) -> float:
    if len(truth) == 0:
        return float("nan")
    top = scores.topk(min(k, scores.shape[1]), dim=1).indices
    return float((top == truth.unsqueeze(1)).any(1).float().mean())


def _last_token(model: Any, texts: list[str], layers: list[int]) -> torch.Tensor:
    """[N, L, D] residual at each chat prompt's last position (just before the answer)."""
    out = []
    for i in range(0, len(texts), 32):
        enc = model.tokenize(model.format_prompts(texts[i:i + 32], chat=True), chat=True)
        saved = model._forward(enc, {}, enc["input_ids"].shape[1], capture=set(layers),
                               reducer=lambda layer, x: x[:, -1].float().cpu())
        out.append(torch.stack([saved[("res", L)] for L in layers], 1))
    return torch.cat(out)


def _pearson(a: Sequence[float], b: Sequence[float]) -> float:
    a, b = np.asarray(a, float), np.asarray(b, float)
    if len(a) < 3 or a.std() == 0 or b.std() == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def _spearman(a: Sequence[float], b: Sequence[float]) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(a, b).statistic)


def geometry(ds: DirectionSet, layer: int) -> dict[str, Any]:
    """PCA of the concept directions at one layer against the catalogue's valence/arousal."""
    cat = {c.name: c for c in emo.catalogue()}
    names = [e for e in ds.emotions if e in cat]
    if len(names) < 3:                     # two points always lie on one line: no geometry to read
        nan = float("nan")
        return {"n": len(names), "names": names, "pc1": [], "pc2": [], "explained": [nan, nan],
                "pc1_valence_r": nan, "pc2_arousal_r": nan, "pc1_arousal_r": nan, "pc2_valence_r": nan,
                "valence_best_pc": None, "valence_best_r": nan, "arousal_best_pc": None, "arousal_best_r": nan,
                "valence_r_by_pc": [], "arousal_r_by_pc": []}
    m = ds.matrix(layer, names).double()
    m = m - m.mean(0)
    _, s, vh = torch.linalg.svd(m, full_matrices=False)
    k = min(5, len(names) - 1)             # centred, E points span at most E-1 components
    scores = (m @ vh[:k].T).float()
    var = (s**2 / (s**2).sum()).tolist()
    val = [cat[n].valence for n in names]
    aro = [cat[n].arousal for n in names]
    r_val = [_pearson(scores[:, i], val) for i in range(k)]
    r_aro = [_pearson(scores[:, i], aro) for i in range(k)]
    # The paper's question is PC1~valence, PC2~arousal; a small model (or another corpus) may
    # put them on other components, so also report which of the top 5 tracks each scale best.
    best_val = int(np.nanargmax(np.abs(r_val)))
    best_aro = int(np.nanargmax(np.abs(r_aro)))
    # PC signs are arbitrary: orient the plotted axes so positive = pleasant / activated.
    sign1, sign2 = (1.0 if r_val[0] >= 0 else -1.0), (1.0 if r_aro[1] >= 0 else -1.0)
    return {"n": len(names), "names": names, "pc1": (sign1 * scores[:, 0]).tolist(),
            "pc2": (sign2 * scores[:, 1]).tolist(), "explained": var[:k],
            "pc1_valence_r": abs(r_val[0]), "pc2_arousal_r": abs(r_aro[1]),
            "pc1_arousal_r": abs(r_aro[0]), "pc2_valence_r": abs(r_val[1]),
            "valence_best_pc": best_val + 1, "valence_best_r": abs(r_val[best_val]),
            "arousal_best_pc": best_aro + 1, "arousal_best_r": abs(r_aro[best_aro]),
            "valence_r_by_pc": [abs(x) for x in r_val], "arousal_r_by_pc": [abs(x) for x in r_aro]}


def logit_lens(model: Any, ds: DirectionSet, layer: int, k: int = 8) -> dict[str, list[str]]:
    """Tokens each direction promotes most when read straight through the unembedding."""
    w_u = model.hf.get_output_embeddings().weight.detach().float().cpu()        # [V, D]
    gain = torch.ones(w_u.shape[1])
    for path in FINAL_NORMS:
        try:
            norm = model.hf.get_submodule(path)
        except AttributeError:
            continue
        if getattr(norm, "weight", None) is not None:
            weight = norm.weight.detach().float().cpu()
            # Gemma-style RMSNorm scales by (1 + weight)
            gain = 1 + weight if "gemma" in type(model.hf).__name__.lower() else weight
        break
    logits = (ds.matrix(layer) * gain) @ w_u.T                                    # [E, V]
    top = logits.topk(k, dim=1).indices
    return {e: [model.tokenizer.decode([int(t)]) for t in top[i]] for i, e in enumerate(ds.emotions)}


def validate_directions(ds: DirectionSet, model: Any, *, out_dir: str | None = None,
                        skip: int | None = None, progress: bool = True) -> dict[str, Any]:
    """Validate `ds` on `model`; with `out_dir`, also write report.md, PNGs and results.json.

    Keys: layers, heldout_top1/top5 (per layer), chance_top1/top5, implicit_top1 (per layer,
    among the implicit concepts present), recommended_layer, pc1_valence_r, pc2_arousal_r (at the
    recommended layer), geometry_by_layer, logit_lens, implicit_confusion, dose_response.
    """
    if ds.meta.get("model_fingerprint") not in (None, model.fingerprint):
        raise SteerError(f"direction set was made on {ds.meta.get('model')!r}, not on {model.name!r}")
    if ds.center is None:
        raise SteerError("this direction set has no center; re-extract it with steer.extract_directions")
    layers, E = ds.layers, len(ds.emotions)
    index = {e: i for i, e in enumerate(ds.emotions)}
    V = ds.vectors.permute(1, 0, 2)                                               # [L, E, D]
    out: dict[str, Any] = {"model": model.name, "method": ds.meta.get("method"), "layers": layers,
                           "n_emotions": E, "chance_top1": 1 / E, "chance_top5": min(5, E) / E}

    # 1. held-out stories: mean over tokens, centred, nearest direction
    held = [(e, t) for e, t in ds.meta.get("heldout", []) if e in index]
    out["heldout_in_sample"] = not held
    if not held:          # no holdout: fall back to (in-sample) shipped stories, say so
        held = [(r.emotion, r.text) for r in emo.stories([e for e in ds.emotions if e in set(emo.concept_names())])][::5]
    truth = torch.tensor([index[e] for e, _ in held])
    stats = stream_means(model, [t for _, t in held], [0] * len(held), 1, layers,
                         skip=ds.meta.get("skip", 4) if skip is None else skip, chat=ds.meta.get("chat", False),
                         keep_text_means=True, neutral_cap=0, progress=progress, desc="validating")
    tm = stats["text_means"]                                                      # [N, L, D]
    out["heldout_top1"], out["heldout_top5"] = [], []
    for j in range(len(layers)):
        scores = (tm[:, j] - ds.center[j]) @ V[j].T
        out["heldout_top1"].append(_topk_accuracy(scores, truth, 1))
        out["heldout_top5"].append(_topk_accuracy(scores, truth, 5))
    out["n_heldout"] = len(held)

    # 2. implicit scenarios + dose-response: the last prompt position, one pass
    implicit = [r for r in emo.implicit() if r.emotion in index]
    series = emo.dose_response()
    dose_texts = [t for s in series for t in s.texts]
    acts = _last_token(model, [r.text for r in implicit] + dose_texts, layers)
    imp, dose = acts[:len(implicit)], acts[len(implicit):]
    imp_names = sorted({r.emotion for r in implicit}, key=lambda e: index[e])
    sub = torch.tensor([index[e] for e in imp_names])
    imp_truth = torch.tensor([imp_names.index(r.emotion) for r in implicit])
    out["implicit_emotions"], out["implicit_top1"], out["implicit_top1_all"] = imp_names, [], []
    for j in range(len(layers)):
        centred = imp[:, j] - imp[:, j].mean(0)       # scenario prompts share a template: centre on them
        scores = centred @ V[j].T
        out["implicit_top1"].append(_topk_accuracy(scores[:, sub], imp_truth, 1) if len(sub) else float("nan"))
        out["implicit_top1_all"].append(_topk_accuracy(scores, sub[imp_truth], 1) if len(sub) else float("nan"))
    out["implicit_chance"] = 1 / max(1, len(imp_names))

    # 3. recommended layer: best mean of held-out and implicit top-1
    combo = [np.nanmean([a, b]) for a, b in zip(out["heldout_top1"], out["implicit_top1"])]
    rec_j = int(np.nanargmax(combo))
    rec = layers[rec_j]
    out["recommended_layer"] = rec

    # 4. geometry per layer and at the recommended layer
    out["geometry_by_layer"] = {L: {k: v for k, v in geometry(ds, L).items() if k.endswith("_r") or k.endswith("_pc")}
                                for L in layers}
    geo = geometry(ds, rec)
    out["geometry"] = geo
    out["pc1_valence_r"], out["pc2_arousal_r"] = geo["pc1_valence_r"], geo["pc2_arousal_r"]

    # 5. confusion among the implicit concepts at the recommended layer
    scores = ((imp[:, rec_j] - imp[:, rec_j].mean(0)) @ V[rec_j].T)[:, sub] if len(sub) else torch.zeros(0, 0)
    conf = torch.zeros(len(imp_names), len(imp_names), dtype=torch.long)
    for t, p in zip(imp_truth.tolist(), scores.argmax(1).tolist() if len(sub) else []):
        conf[t, p] += 1
    out["implicit_confusion"] = conf.tolist()

    # 6. dose-response at the recommended layer (norm units)
    norm = model.residual_norm(rec)
    out["dose_response"], k = [], 0
    for s in series:
        rows = dose[k:k + len(s.texts), rec_j]
        k += len(s.texts)
        curves = {}
        for e in list(s.expect_up) + list(s.expect_down):
            if e in index:
                y = (rows @ V[rec_j, index[e]] / norm).tolist()
                curves[e] = {"values": y, "spearman": _spearman(s.severities, y),
                             "expected": "up" if e in s.expect_up else "down"}
        out["dose_response"].append({"id": s.id, "severities": list(s.severities), "curves": curves})

    # 7. logit lens at the recommended layer
    out["logit_lens"] = logit_lens(model, ds, rec)
    out["cosine"] = ds.cosine(rec).tolist()
    out["emotions"] = ds.emotions
    if out_dir is not None:
        from .validation_report import write_validation_report

        out["report"] = str(write_validation_report(out, out_dir))
    return out
