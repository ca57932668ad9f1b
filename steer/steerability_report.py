"""report.md, results.json and one PNG per direction for `steer.steerability` results."""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _key(layers: Any) -> str:
    return "all" if layers == "all" else "-".join(map(str, layers))


def _fmt(x: Any, spec: str = "+.2f") -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)


def plot_direction(res: dict, emotion: str, path: Path) -> None:
    """Three panels: per-prompt readout changes by layer, mean change by strength, fluency ratio."""
    plt = _plt()
    entries = [e for e in res["entries"] if e["emotion"] == emotion]
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.4))
    for i, e in enumerate(entries):
        ys = e["delta_logodds"] if e["delta_logodds"] is not None else e["delta_projection"]
        axes[0].scatter([i] * len(ys), ys, s=14, alpha=0.7, color="tab:red" if e["weak"] else "tab:blue")
        xs = [b["strength"] for b in e["by_strength"]]
        label = f"L{_key(e['layers'])}"
        axes[1].plot(xs, [b["mean_delta_logodds"] for b in e["by_strength"]], "o-", label=label)
        axes[2].plot(xs, [b["ppl_ratio"] for b in e["by_strength"]], "o-", label=label)
    axes[0].axhline(0, color="k", lw=0.8)
    axes[0].set_xticks(range(len(entries)), [f"L{_key(e['layers'])}" for e in entries])
    axes[0].set(title=f"per-prompt change at +{res['main_strength']:g}", ylabel="delta log-odds (emotion words)")
    axes[1].axhline(0, color="k", lw=0.8)
    axes[1].set(title="mean change by strength", xlabel="strength (x residual norm)", ylabel="delta log-odds")
    axes[2].axhline(res["break_ratio"], color="grey", ls="--", lw=1, label="break")
    axes[2].set(title="fluency (reply perplexity ratio)", xlabel="strength (x residual norm)", ylabel="ratio",
                yscale="log")
    for ax in axes[1:]:
        ax.legend(fontsize=7)
    fig.suptitle(f"{res['model']}: steerability of '{emotion}' (red = weakly steerable)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def plot_summary(res: dict, path: Path) -> None:
    """Heatmaps emotion x layer: wrong-way fraction and mean per-prompt difference cosine."""
    plt = _plt()
    emotions = list(dict.fromkeys(e["emotion"] for e in res["entries"]))
    layers = list(dict.fromkeys(_key(e["layers"]) for e in res["entries"]))
    grid = {(e["emotion"], _key(e["layers"])): e for e in res["entries"]}
    fig, axes = plt.subplots(1, 2, figsize=(3.2 + 1.0 * len(layers) * 2, 1.2 + 0.28 * len(emotions)))
    for ax, (field, title, cmap) in zip(axes, [("wrong_way_logodds", "wrong-way fraction", "Reds"),
                                               ("diff_cosine", "difference cosine", "viridis")]):
        m = [[(grid[(e, L)][field] if grid.get((e, L)) and grid[(e, L)][field] is not None else float("nan"))
              for L in layers] for e in emotions]
        im = ax.imshow(m, cmap=cmap, vmin=0, vmax=1, aspect="auto")
        ax.set_xticks(range(len(layers)), [f"L{L}" for L in layers])
        ax.set_yticks(range(len(emotions)), emotions, fontsize=7)
        ax.set_title(title)
        fig.colorbar(im, ax=ax)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_steerability_report(res: dict, out_dir: str | Path, command: str | None = None,
                              seconds: float | None = None) -> Path:
    """Write out_dir/report.md, results.json, summary.png and <emotion>.png; return report.md."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(res, indent=1))
    plot_summary(res, out / "summary.png")
    emotions = list(dict.fromkeys(e["emotion"] for e in res["entries"]))
    for emotion in emotions:
        plot_direction(res, emotion, out / f"{emotion.replace(' ', '_')}.png")
    n_weak = sum(e["weak"] for e in res["entries"])
    lines = [f"# Steerability: {res['model']}", ""]
    if command:
        lines += [f"Command: `{command}`" + (f" ({seconds:.0f} s wall clock)" if seconds else ""), ""]
    lines += [
        f"{len(emotions)} directions, {len(res['entries'])} (direction, layer) pairs, {res['n_prompts']} neutral chat "
        f"episodes. Each is steered with `add` at every position; readouts at the token after the fixed answer "
        f"stem \"I feel\", at read layer {res['read_layer']}. Strengths tested: "
        f"{', '.join(f'{s:g}' for s in res['strengths'])} (x mean residual norm); per-prompt effects at "
        f"+{res['main_strength']:g}.", "",
        "- **delta log-odds**: change of log P(one of the concept's single-token words) - log P(a neutral word) "
        "as the next token (behaviour-free readout).",
        "- **wrong way**: share of prompts whose log-odds change is not positive.",
        "- **delta proj**: change of the projection onto the concept's direction at the read layer (x its norm).",
        "- **diff cos**: mean pairwise cosine of the per-prompt activation differences (steered - unsteered) at "
        "the read layer; consistent differences predict reliable steering.",
        f"- **breaks at**: smallest tested strength where the perplexity of the fixed neutral reply exceeds "
        f"{res['break_ratio']:g}x the unsteered one (– = none tested).",
        f"- **weak**: wrong way >= {res['wrong_way_limit']:.0%} or mean change <= 0 at the main strength.", "",
        f"**{n_weak} of {len(res['entries'])} pairs are weakly steerable.**", "", "![summary](summary.png)", "",
        "| direction | layer | words | delta log-odds (mean) | wrong way | delta proj | diff cos | breaks at | weak |",
        "|---|---|---|---|---|---|---|---|---|"]
    for e in res["entries"]:
        lines.append(f"| {e['emotion']} | {_key(e['layers'])} | {e['n_emotion_tokens']} | "
                     f"{_fmt(e['mean_delta_logodds'])} | {_fmt(e['wrong_way_logodds'], '.0%')} | "
                     f"{_fmt(e['mean_delta_projection'], '+.3f')} | {_fmt(e['diff_cosine'], '.2f')} | "
                     f"{_fmt(e['fluency_break'], 'g')} | {'**yes**' if e['weak'] else 'no'} |")
    lines += ["", "## Per direction", ""]
    lines += [f"![{e}]({e.replace(' ', '_')}.png)" for e in emotions]
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path
