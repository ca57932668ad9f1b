"""Does the model keep the speakers apart? Cosines between the present / other / deflection
direction sets (and with the story directions) per layer, cross-classification of held-out
dialogues, figures and a report page."""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import torch

from .errors import SteerError
from .speakers import KINDS, READ_ROLE, _exchange, speaker_means

PAIRS = (("present", "other"), ("present", "deflection"), ("other", "deflection"))


def _diag_cos(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean over concepts of cos(a_e, b_e) for [E, D] unit rows."""
    return float((a * b).sum(-1).mean())


def _structure_r(a: torch.Tensor, b: torch.Tensor) -> float:
    """Pearson r between the off-diagonal cosines of two sets: do they share similarity structure?"""
    E = a.shape[0]
    iu = torch.triu_indices(E, E, 1)
    x, y = (a @ a.T)[iu[0], iu[1]].double(), (b @ b.T)[iu[0], iu[1]].double()
    if x.numel() < 2:
        return float("nan")
    x, y = x - x.mean(), y - y.mean()
    return float((x @ y) / (x.norm() * y.norm()).clamp(min=1e-12))


def validate_speakers(model: Any, sets: dict[str, Any], *, stories: Any = None, out_dir: Any = None,
                      command: str | None = None, started: float | None = None,
                      progress: bool = True) -> dict[str, Any]:
    """Per layer: cosines (present/other/deflection with each other and with `stories`),
    similarity-structure r, and cross-classification accuracy of held-out dialogues: each set,
    read at its own speaker's tokens, picks the concept of held-out dialogues of every kind.
    A model that keeps the speakers apart scores high on the diagonal (present directions on
    present dialogues, other on other) and low off it.

    >>> res = validate_speakers(m, sets, stories=ds, out_dir="outputs/speakers")
    >>> res["crossclass"][res["best_layer_index"]]     # {set: {held-out kind: accuracy}}
    """
    missing = [k for k in KINDS if k not in sets]
    if missing:
        raise SteerError(f"validate_speakers needs the {missing[0]!r} set")
    first = sets["present"]
    emotions, layers = first.emotions, first.layers
    for k in KINDS:
        if sets[k].emotions != emotions or sets[k].layers != layers:
            raise SteerError(f"set {k!r} has other concepts or layers than 'present'")
    if first.meta.get("model_fingerprint") not in (None, model.fingerprint):
        raise SteerError(f"speaker directions were made on {first.meta.get('model')!r}, not on {model.name!r}")
    held = [_exchange(d, d["id"]) for d in first.meta.get("heldout_dialogues", [])]
    if not held:
        raise SteerError("these speaker directions have no held-out dialogues (extract with holdout > 0)")
    index = {e: i for i, e in enumerate(emotions)}
    stats = speaker_means(model, held, layers, neutral_cap=0, progress=progress, desc="speakers: held out")
    truth = torch.tensor([index[x.emotion] for x in held])
    kinds = [x.kind for x in held]
    story_layers = set(stories.layers) if stories is not None else set()
    res: dict[str, Any] = {"model": model.name, "layers": layers, "emotions": emotions, "chance": 1 / len(emotions),
                           "n_heldout": {k: kinds.count(k) for k in KINDS},
                           "n_train": {k: sets[k].meta.get("n_train") for k in KINDS},
                           "cosine": {f"{a}-{b}": [] for a, b in PAIRS}, "structure_r": {f"{a}-{b}": [] for a, b in PAIRS},
                           "cosine_story": {k: [] for k in KINDS}, "crossclass": []}
    for j, L in enumerate(layers):
        V = {k: sets[k].matrix(L) for k in KINDS}
        for a, b in PAIRS:
            res["cosine"][f"{a}-{b}"].append(_diag_cos(V[a], V[b]))
            res["structure_r"][f"{a}-{b}"].append(_structure_r(V[a], V[b]))
        for k in KINDS:
            res["cosine_story"][k].append(_diag_cos(V[k], stories.matrix(L, emotions)) if L in story_layers
                                          else None)
        table = {}
        for k in KINDS:
            reads = stats[READ_ROLE[k]][:, j] - sets[k].center[j]
            pred = (reads @ V[k].T).argmax(-1)
            table[k] = {h: float((pred == truth)[[i for i, x in enumerate(kinds) if x == h]].float().mean())
                        if h in kinds else None for h in KINDS}
        res["crossclass"].append(table)
    sep = [t["present"]["present"] + t["other"]["other"] - t["present"]["other"] - t["other"]["present"]
           if None not in (t["present"]["present"], t["other"]["other"], t["present"]["other"], t["other"]["present"])
           else float("-inf") for t in res["crossclass"]]
    best = max(range(len(layers)), key=lambda j: sep[j])
    res["separation"] = [s / 2 if s != float("-inf") else None for s in sep]
    res["best_layer_index"], res["best_layer"] = best, layers[best]
    t = res["crossclass"][best]
    res["headline"] = (f"layer {layers[best]}: present directions pick the concept of {t['present']['present']:.0%} of "
                       f"held-out assistant-state dialogues vs {t['present']['other']:.0%} of user-state ones; other "
                       f"directions {t['other']['other']:.0%} vs {t['other']['present']:.0%} (chance {res['chance']:.0%}); "
                       f"cos(present, other) = {res['cosine']['present-other'][best]:+.2f}")
    if out_dir is not None:
        res["seconds"] = None if started is None else round(time.time() - started, 1)
        res["report"] = str(write_speakers_report(res, out_dir, command))
    return res


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def write_speakers_report(res: dict, out_dir: Any, command: str | None = None) -> Path:
    """report.md + results.json + cosine_by_layer.png + crossclass_by_layer.png + crossclass_table.png."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(res, indent=1))
    plt = _plt()
    L = res["layers"]
    fig, ax = plt.subplots(figsize=(7, 3.6))
    for key, ys in res["cosine"].items():
        ax.plot(L, ys, "o-", ms=3, label=f"cos({key.replace('-', ', ')})")
    for k, ys in res["cosine_story"].items():
        if any(y is not None for y in ys):
            ax.plot(L, [float("nan") if y is None else y for y in ys], "--", label=f"cos({k}, story)")
    ax.axhline(0, color="k", lw=0.6)
    ax.set(xlabel="layer", ylabel="mean cosine over concepts (same concept)", title=f"{res['model']}: speaker directions")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(out / "cosine_by_layer.png", dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(7, 3.6))
    style = {"present": "-", "other": "--", "deflection": ":"}
    for k in KINDS:
        for h, colour in (("present", "tab:blue"), ("other", "tab:orange"), ("deflection", "tab:green")):
            if k == "deflection" and h == "other":
                continue
            ys = [t[k][h] for t in res["crossclass"]]
            if any(y is not None for y in ys):
                ax.plot(L, [float("nan") if y is None else y for y in ys], style[k], color=colour, marker="o", ms=2,
                        label=f"{k} set on {h} dialogues")
    ax.axhline(res["chance"], color="grey", lw=1, label="chance")
    ax.set(xlabel="layer", ylabel="top-1 accuracy (held out)", ylim=(-0.02, 1.02),
           title="cross-classification: line style = direction set, colour = held-out kind")
    ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    fig.savefig(out / "crossclass_by_layer.png", dpi=110)
    plt.close(fig)

    b = res["best_layer_index"]
    grid = [[res["crossclass"][b][k][h] if res["crossclass"][b][k][h] is not None else float("nan") for h in KINDS]
            for k in KINDS]
    fig, ax = plt.subplots(figsize=(4.6, 3.6))
    im = ax.imshow(grid, cmap="viridis", vmin=0, vmax=1)
    for i in range(3):
        for j in range(3):
            ax.text(j, i, f"{grid[i][j]:.2f}", ha="center", va="center", color="w" if grid[i][j] < 0.6 else "k")
    ax.set_xticks(range(3), [f"{h}\ndialogues" for h in KINDS])
    ax.set_yticks(range(3), [f"{k} @ {READ_ROLE[k]}" for k in KINDS])
    ax.set_title(f"layer {res['best_layer']} (chance {res['chance']:.2f})")
    fig.colorbar(im, ax=ax)
    fig.tight_layout()
    fig.savefig(out / "crossclass_table.png", dpi=110)
    plt.close(fig)

    def f(x: Any, spec: str = ".2f") -> str:
        return "–" if x is None else format(x, spec)

    t = res["crossclass"][b]
    lines = [f"# Speaker-specific emotion directions: {res['model']}", ""]
    if command:
        lines += [f"Command: `{command}`" + (f" ({res['seconds']:.0f} s wall clock)" if res.get("seconds") else ""), ""]
    lines += [
        f"{len(res['emotions'])} concepts; held-out dialogues: "
        + ", ".join(f"{n} {k}" for k, n in res["n_heldout"].items()) + ". Sets: **present** (assistant in the state, read "
        "at the assistant's tokens), **other** (user in the state, read at the user's tokens), **deflection** "
        "(assistant hides the state, read at the assistant's tokens); mean-diff with the neutral dialogues' top "
        "PCs projected out.", "", f"**{res['headline']}.**", "",
        f"## Cross-classification at layer {res['best_layer']} (the layer that separates the speakers best)", "",
        "Each set, read at its own speaker's tokens, picks the concept (top-1 of "
        f"{len(res['emotions'])}, chance {res['chance']:.2f}) of held-out dialogues of each kind. Speakers kept apart: "
        "high on the diagonal, low off it.", "",
        "| direction set (read at) | present dialogues | other dialogues | deflection dialogues |", "|---|---|---|---|"]
    lines += [f"| {k} ({READ_ROLE[k]}) | " + " | ".join(f(t[k][h]) for h in KINDS) + " |" for k in KINDS]
    lines += ["", "![table](crossclass_table.png)", "", "![accuracy by layer](crossclass_by_layer.png)", "",
              "## Cosines by layer", "",
              "Mean over concepts of the cosine between a concept's directions in two sets (and with its story "
              "direction); structure r: correlation of the two sets' concept-by-concept cosine matrices.", "",
              "![cosines](cosine_by_layer.png)", "",
              "| layer | present·other | present·deflection | other·deflection | present·story | other·story | "
              "deflection·story | structure r (present, other) | separation |", "|---|---|---|---|---|---|---|---|---|"]
    for j, layer in enumerate(L):
        lines.append(f"| {layer} | " + " | ".join(f(res["cosine"][f"{a}-{c}"][j], "+.2f") for a, c in
                                                 (("present", "other"), ("present", "deflection"), ("other", "deflection")))
                     + " | " + " | ".join(f(res["cosine_story"][k][j], "+.2f") for k in KINDS)
                     + f" | {f(res['structure_r']['present-other'][j], '+.2f')} | {f(res['separation'][j], '+.2f')} |")
    lines += ["", "separation = ((present on present - present on other) + (other on other - other on present)) / 2.", ""]
    path = out / "report.md"
    path.write_text("\n".join(lines))
    return path
