"""Markdown + PNG + JSON report for `validate_directions` results."""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

CORE = ["desperate", "calm", "afraid", "angry", "happy", "sad", "loving", "surprised", "nervous",
        "hopeful", "guilty", "proud"]


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _accuracy(res: dict, path: Path) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 3.6))
    L = res["layers"]
    ax.plot(L, res["heldout_top1"], "o-", label="held-out stories, top-1")
    ax.plot(L, res["heldout_top5"], "o--", label="held-out stories, top-5")
    ax.plot(L, res["implicit_top1"], "s-", label=f"implicit scenarios, top-1 of {len(res['implicit_emotions'])}")
    ax.axhline(res["chance_top1"], color="grey", lw=0.8, ls=":", label="chance (top-1 / top-5, stories)")
    ax.axhline(res["chance_top5"], color="grey", lw=0.8, ls=":")
    ax.axhline(res["implicit_chance"], color="tab:green", lw=0.8, ls=":")
    ax.axvline(res["recommended_layer"], color="k", lw=0.8, alpha=0.4)
    ax.set(xlabel="layer", ylabel="accuracy", ylim=(0, 1.02), title=f"{res['model']}: classification by nearest direction")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


def _geometry(res: dict, path: Path) -> None:
    plt = _plt()
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4.5))
    L = res["layers"]
    g = res["geometry_by_layer"]
    a.plot(L, [g[x]["pc1_valence_r"] for x in L], "o-", label="|r| PC1 ~ valence")
    a.plot(L, [g[x]["pc2_arousal_r"] for x in L], "s-", label="|r| PC2 ~ arousal")
    a.plot(L, [g[x]["valence_best_r"] for x in L], ":", color="tab:blue", label="|r| best of PC1-5 ~ valence")
    a.plot(L, [g[x]["arousal_best_r"] for x in L], ":", color="tab:orange", label="|r| best of PC1-5 ~ arousal")
    a.axhspan(0.76, 0.83, color="tab:blue", alpha=0.12, label="PC1~valence in 4-8B replications")
    a.set(xlabel="layer", ylabel="|Pearson r|", ylim=(0, 1), title="geometry of the directions by layer")
    a.legend(fontsize=7)
    geo = res["geometry"]
    sc = b.scatter(geo["pc1"], geo["pc2"], c=[_valence(n) for n in geo["names"]], cmap="RdYlGn", s=14)
    for n, x, y in zip(geo["names"], geo["pc1"], geo["pc2"]):
        b.annotate(n, (x, y), fontsize=7 if n in CORE else 4, alpha=1 if n in CORE else 0.6)
    b.set(xlabel=f"PC1 ({geo['explained'][0]:.0%})", ylabel=f"PC2 ({geo['explained'][1]:.0%})",
          title=f"layer {res['recommended_layer']}: PC1~valence r={geo['pc1_valence_r']:.2f}, PC2~arousal r={geo['pc2_arousal_r']:.2f}")
    fig.colorbar(sc, ax=b, label="valence (catalogue)")
    fig.tight_layout()
    fig.savefig(path, dpi=150)
    plt.close(fig)


def _valence(name: str) -> float:
    from . import emotions

    return {c.name: c.valence for c in emotions.catalogue()}.get(name, 4.0)


def _cosine(res: dict, path: Path) -> list[str]:
    plt = _plt()
    from scipy.cluster.hierarchy import leaves_list, linkage
    from scipy.spatial.distance import squareform

    cos = np.asarray(res["cosine"])
    names = res["emotions"]
    dist = np.clip(1 - cos, 0, 2)
    np.fill_diagonal(dist, 0)
    order = leaves_list(linkage(squareform(dist, checks=False), "average")) if len(names) > 2 else np.arange(len(names))
    size = max(5, min(16, len(names) * 0.09))
    fig, ax = plt.subplots(figsize=(size + 1, size))
    im = ax.imshow(cos[np.ix_(order, order)], cmap="RdBu_r", vmin=-1, vmax=1)
    fs = 3.2 if len(names) > 80 else 7
    ax.set_xticks(range(len(names)), [names[i] for i in order], rotation=90, fontsize=fs)
    ax.set_yticks(range(len(names)), [names[i] for i in order], fontsize=fs)
    ax.set_title(f"cosine similarity of the directions, layer {res['recommended_layer']} (clustered)")
    fig.colorbar(im, ax=ax, fraction=0.03)
    fig.tight_layout()
    fig.savefig(path, dpi=170)
    plt.close(fig)
    return [names[i] for i in order]


def _confusion(res: dict, path: Path) -> None:
    plt = _plt()
    conf = np.asarray(res["implicit_confusion"])
    names = res["implicit_emotions"]
    fig, ax = plt.subplots(figsize=(7.5, 6.5))
    im = ax.imshow(conf, cmap="Blues")
    ax.set_xticks(range(len(names)), names, rotation=90, fontsize=7)
    ax.set_yticks(range(len(names)), names, fontsize=7)
    ax.set(xlabel="nearest direction", ylabel="implied emotion",
           title=f"implicit scenarios, layer {res['recommended_layer']}")
    fig.colorbar(im, ax=ax, fraction=0.04)
    fig.tight_layout()
    fig.savefig(path, dpi=140)
    plt.close(fig)


def _dose(res: dict, path: Path) -> None:
    plt = _plt()
    n = len(res["dose_response"])
    fig, axes = plt.subplots(1, n, figsize=(4.2 * n, 3.6), squeeze=False)
    for ax, s in zip(axes[0], res["dose_response"]):
        x = s["severities"]
        logx = min(x) > 0 and max(x) / min(x) > 20
        for e, c in s["curves"].items():
            ax.plot(x, c["values"], "o-" if c["expected"] == "up" else "s--",
                    label=f"{e} (expect {c['expected']}, rho={c['spearman']:+.2f})")
        if logx:
            ax.set_xscale("log")
        ax.set(title=s["id"], xlabel="severity", ylabel="projection (x residual norm)")
        ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=140)
    plt.close(fig)


def _fmt(x: Any) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.2f}"


def write_validation_report(res: dict[str, Any], out_dir: str | Path) -> Path:
    """Write results.json, five PNGs and report.md into out_dir; returns the report path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _accuracy(res, out / "accuracy_by_layer.png")
    _geometry(res, out / "geometry.png")
    _cosine(res, out / "cosine_heatmap.png")
    _confusion(res, out / "implicit_confusion.png")
    _dose(res, out / "dose_response.png")
    (out / "results.json").write_text(json.dumps({k: v for k, v in res.items() if k != "report"}, indent=1, default=str))
    j = res["layers"].index(res["recommended_layer"])
    lines = [
        f"# Direction validation: {res['model']} ({res['n_emotions']} emotions, method {res['method']})", "",
        f"Recommended layer: **{res['recommended_layer']}** (best mean of held-out and implicit top-1).", "",
        "| measure | value | reference |", "|---|---|---|",
        f"| held-out top-1 ({res['n_heldout']} stories{', IN-SAMPLE' if res['heldout_in_sample'] else ''}) | {_fmt(res['heldout_top1'][j])} | chance {_fmt(res['chance_top1'])} |",
        f"| held-out top-5 | {_fmt(res['heldout_top5'][j])} | chance {_fmt(res['chance_top5'])} |",
        f"| implicit scenarios top-1 among {len(res['implicit_emotions'])} | {_fmt(res['implicit_top1'][j])} | chance {_fmt(res['implicit_chance'])} |",
        f"| implicit scenarios top-1 among all {res['n_emotions']} | {_fmt(res['implicit_top1_all'][j])} | chance {_fmt(res['chance_top1'])} |",
        f"| PC1 ~ valence, abs r | {_fmt(res['pc1_valence_r'])} | paper 0.81; 4-8B replications 0.76-0.83 |",
        f"| PC2 ~ arousal, abs r | {_fmt(res['pc2_arousal_r'])} | paper 0.66 |",
        f"| PC1 / PC2 variance explained | {_fmt(res['geometry']['explained'][0])} / {_fmt(res['geometry']['explained'][1])} | paper 0.26 / 0.15 |",
        f"| component best tracking valence | PC{res['geometry']['valence_best_pc']}, abs r {_fmt(res['geometry']['valence_best_r'])} | |",
        f"| component best tracking arousal | PC{res['geometry']['arousal_best_pc']}, abs r {_fmt(res['geometry']['arousal_best_r'])} | |",
        "", "![accuracy by layer](accuracy_by_layer.png)", "", "![geometry](geometry.png)", "",
        "## Dose-response (projection at the last prompt token)", "",
        "| series | emotion | expected | Spearman rho |", "|---|---|---|---|",
    ]
    for s in res["dose_response"]:
        for e, c in s["curves"].items():
            lines.append(f"| {s['id']} | {e} | {c['expected']} | {c['spearman']:+.2f} |")
    lines += ["", "![dose response](dose_response.png)", "",
              "## Implicit scenarios", "", "![implicit confusion](implicit_confusion.png)", "",
              "## Logit lens (top tokens per direction)", "", "| emotion | top tokens |", "|---|---|"]
    for e in [x for x in CORE if x in res["logit_lens"]] or res["emotions"][:12]:
        toks = ", ".join(repr(t.strip() or t) for t in res["logit_lens"][e])
        lines.append(f"| {e} | {toks} |")
    lines += ["", "All concepts: `results.json` (`logit_lens`).", "",
              "## Similarity structure", "", "![cosine heatmap](cosine_heatmap.png)", ""]
    path = out / "report.md"
    path.write_text("\n".join(lines))
    return path
