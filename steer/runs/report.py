"""report.md + PNGs + an HTML token heatmap, rebuilt from a records directory alone."""
from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from .aggregate import agentic_table, coding_table, trajectories
from .heatmaps import write_token_html
from ..errors import SteerError
from .store import ResultsStore


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _series(rows: list[dict]) -> dict[str, list[dict]]:
    """Group emotion cells into lines (emotion, op, layers) ordered by strength."""
    lines: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        c = r["cell"]
        if c["kind"] == "emotion" and c["strength"] is not None:
            lines[f"{c['emotion']} {c['op']} L{_layers(c['layers'])}"].append(r)
    return {k: sorted(v, key=lambda r: r["cell"]["strength"]) for k, v in lines.items()}


def _layers(layers: Any) -> str:
    return "all" if layers == "all" else "-".join(map(str, layers or []))


def _pct(x: dict) -> str:
    if x["n"] == 0 or x["rate"] is None:
        return "–"
    return f"{x['rate']:.0%} [{x['lo']:.0%}, {x['hi']:.0%}] (n={x['n']})"


def _diff(d: dict | None) -> str:
    return "" if not d else f"{d['diff']:+.0%} (p={d['p']:.2g})"


def _dose_plot(rows: list[dict], metrics: list[tuple[str, str]], path: Path, title: str) -> bool:
    lines = _series(rows)
    if not lines:
        return False
    plt = _plt()
    fig, axes = plt.subplots(1, len(metrics), figsize=(5.2 * len(metrics), 3.9), squeeze=False)
    base = next((r for r in rows if r["cell"]["kind"] == "baseline"), None)
    for ax, (metric, name) in zip(axes[0], metrics):
        if base and base[metric]["n"]:
            ax.axhspan(base[metric]["lo"], base[metric]["hi"], color="grey", alpha=0.2, label="baseline 95% CI")
            ax.axhline(base[metric]["rate"], color="grey", lw=1)
        ticks = {0.0}
        for label, rs in lines.items():
            pts = [r for r in rs if r[metric]["n"]]
            if base and base[metric]["n"]:              # every line passes through strength 0 = baseline
                pts = sorted(pts + [{**base, "cell": {**base["cell"], "strength": 0.0}}], key=lambda r: r["cell"]["strength"])
            xs = [r["cell"]["strength"] for r in pts]
            ys = [r[metric]["rate"] for r in pts]
            lo = [r[metric]["rate"] - r[metric]["lo"] for r in pts]
            hi = [r[metric]["hi"] - r[metric]["rate"] for r in pts]
            ticks |= set(xs)
            if xs:
                ax.errorbar(xs, ys, yerr=[lo, hi], marker="o", capsize=3, label=label)
        ax.set_xticks(sorted(ticks), [f"{t:+g}" for t in sorted(ticks)])
        rnd = [r for r in rows if r["cell"]["kind"] == "random" and r["cell"]["strength"] is not None and r[metric]["n"]]
        if rnd:
            ax.scatter([r["cell"]["strength"] for r in rnd], [r[metric]["rate"] for r in rnd], marker="x",
                       color="k", alpha=0.6, label="random directions")
        ax.set(xlabel="strength (x mean residual norm)", ylabel=name, ylim=(-0.02, 1.02))
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=6)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return True


def _bar_plot(rows: list[dict], metrics: list[tuple[str, str]], path: Path, title: str) -> bool:
    """Every cell's rate with its 95% interval, for sweeps whose cells have no strength axis
    (ablations, prompting baselines), where a dose-response line cannot be drawn."""
    flat = [r for r in rows if r["cell"]["kind"] in ("prompting",) or r["cell"].get("op") == "ablate"]
    metrics = [(m, name) for m, name in metrics if any(r[m]["n"] for r in rows)]   # no empty panels
    if not flat or not metrics:
        return False
    plt = _plt()
    fig, axes = plt.subplots(1, len(metrics), figsize=(5.2 * len(metrics), 0.9 + 0.32 * len(rows)), squeeze=False)
    colour = {"baseline": "black", "random": "0.6", "prompting": "tab:green", "emotion": "tab:orange"}
    for ax, (metric, name) in zip(axes[0], metrics):
        shown = [r for r in rows if r[metric]["n"]][::-1]
        ys = range(len(shown))
        for y, r in zip(ys, shown):
            m = r[metric]
            ax.errorbar([m["rate"]], [y], xerr=[[m["rate"] - m["lo"]], [m["hi"] - m["rate"]]], fmt="o",
                        capsize=3, color=colour.get(r["cell"]["kind"], "tab:blue"))
        ax.set_yticks(list(ys), [r["label"] for r in shown], fontsize=7)
        ax.set(xlabel=name, xlim=(-0.02, 1.02))
        ax.grid(axis="x", alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return True


def _heatmap(rows: list[dict], metric: str, path: Path, title: str) -> bool:
    cells = [r for r in rows if r["cell"]["kind"] == "emotion" and r["cell"]["strength"] is not None and r[metric]["n"]]
    groups: dict[str, list[dict]] = defaultdict(list)
    for r in cells:
        groups[f"{r['cell']['emotion']} {r['cell']['op']}"].append(r)
    groups = {k: v for k, v in groups.items() if len({_layers(r["cell"]["layers"]) for r in v}) > 1}
    if not groups:
        return False
    plt = _plt()
    fig, axes = plt.subplots(1, len(groups), figsize=(4.8 * len(groups), 3.8), squeeze=False)
    for ax, (name, rs) in zip(axes[0], groups.items()):
        layers = sorted({_layers(r["cell"]["layers"]) for r in rs}, key=lambda s: (len(s), s))
        strengths = sorted({r["cell"]["strength"] for r in rs})
        grid = [[float("nan")] * len(strengths) for _ in layers]
        for r in rs:
            grid[layers.index(_layers(r["cell"]["layers"]))][strengths.index(r["cell"]["strength"])] = r[metric]["rate"]
        im = ax.imshow(grid, cmap="magma", vmin=0, vmax=1, aspect="auto")
        ax.set_xticks(range(len(strengths)), [f"{s:+g}" for s in strengths])
        ax.set_yticks(range(len(layers)), [f"L{x}" for x in layers])
        ax.set(xlabel="strength", title=name)
        fig.colorbar(im, ax=ax, label=metric)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return True


def _trajectory_plot(records: list[dict], path: Path) -> list[str]:
    names: dict[tuple[str, str], None] = {}
    for r in records:
        for a in r.get("attempts", []):
            for n, per in (a.get("projections") or {}).items():
                for layer in per:
                    names[(n, layer)] = None
    if not names:
        return []
    plt = _plt()
    from matplotlib.ticker import MaxNLocator

    keys = list(names)[:4]
    ncols = min(2, len(keys))
    nrows = (len(keys) + ncols - 1) // ncols
    fig, axes = plt.subplots(nrows, ncols, figsize=(6.2 * ncols, 3.6 * nrows), squeeze=False)
    for ax in axes.flat[len(keys):]:
        ax.set_visible(False)
    for ax, (n, layer) in zip(axes.flat, keys):
        tr = trajectories(records, n, layer)
        shown = sorted(tr, key=lambda lab: (lab != "baseline", lab))[:20]
        colours = plt.get_cmap("tab20")
        for i, lab in enumerate(shown):
            pts = tr[lab]
            base = lab == "baseline"
            ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", label=lab, zorder=3 if base else 2,
                    color="black" if base else colours(i % 20), lw=2.2 if base else 1.2, ms=4)
        ax.set(xlabel="attempt", ylabel=f"{n} at the last prompt token (x norm)", title=f"{n}, layer {layer}")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(fontsize=6, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    fig.suptitle("monitored projection across attempts (coding)")
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return [f"{n}@{layer}" for n, layer in keys]


def _trajectory_tables(coding: list[dict], shown: list[str], summary: dict) -> list[str]:
    """The numbers behind the trajectory plot: mean reading before each attempt, per cell."""
    lines: list[str] = []
    for key in shown:
        n, layer = key.split("@")
        tr = trajectories(coding, n, layer)
        summary.setdefault("trajectories", {})[key] = tr
        k = max((p[0] for pts in tr.values() for p in pts), default=0)
        lines += ["", f"Mean *{n}* reading at layer {layer}, last prompt token before each attempt (x residual norm; "
                      "episodes still running):", "",
                  "| cell | " + " | ".join(f"attempt {i}" for i in range(1, k + 1)) + " |", "|---" * (k + 1) + "|"]
        for label in sorted(tr, key=lambda lab: (lab != "baseline", lab)):
            at = {a: (v, c) for a, v, c in tr[label]}
            lines.append(f"| {label} | " + " | ".join(f"{at[i][0]:+.3f} (n={at[i][1]})" if i in at else "–"
                                                      for i in range(1, k + 1)) + " |")
    return lines


def _agentic_readings(agentic: list[dict], summary: dict) -> list[str]:
    """Mean monitored reading per cell at the last prompt token and over the reply."""
    cells: dict[str, dict[str, dict[str, list[float]]]] = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
    for r in agentic:
        for n, per in (r.get("projections") or {}).items():
            for layer, v in per.items():
                for part, field in (("prompt", "last_prompt"), ("reply", "mean")):
                    if v.get(field) is not None:
                        cells[r["cell"]["label"]][f"{n}@{layer}"][part].append(v[field])
    keys = sorted({k for c in cells.values() for k in c})
    if not keys:
        return []
    table = {lab: {k: {p: sum(x) / len(x) for p, x in c[k].items()} for k in keys} for lab, c in cells.items()}
    summary["agentic_readings"] = table
    head = " | ".join(f"{k.split('@')[0]} L{k.split('@')[1]} {p}" for k in keys for p in ("prompt", "reply"))
    lines = ["", "Mean monitored reading per cell (x residual norm): at the last prompt token, and over the reply.",
             "", f"| cell | {head} |", "|---" * (1 + 2 * len(keys)) + "|"]
    for lab in sorted(table, key=lambda lab: (lab != "baseline", lab)):
        vals = [table[lab][k].get(p) for k in keys for p in ("prompt", "reply")]
        lines.append(f"| {lab} | " + " | ".join("–" if v is None else f"{v:+.3f}" for v in vals) + " |")
    return lines


def _steerability_lines(records_dir: str | Path, records: list[dict], summary: dict) -> list[str]:
    """Warnings for weakly steerable directions, from steerability-*.json beside the records
    (written by sweeps with report.steerability=auto, or copied from a task=steerability run)."""
    from ..steerability import warnings_for

    files = sorted(Path(records_dir).glob("steerability*.json"))
    cells = [(r["cell"]["emotion"], r["cell"]["layers"]) for r in records
             if r["cell"].get("kind") == "emotion" and r["cell"].get("op") in ("add", "subtract")]
    if not files or not cells:
        return []
    weak, missing = warnings_for([json.loads(f.read_text()) for f in files], cells)
    summary["steerability"] = {"weak": weak, "not_measured": missing}
    lines = ["## Steerability", ""]
    lines += [f"- {w}" for w in weak] or ["Every steered direction moved the emotion-word readout the intended way "
                                          "on at least 75% of the neutral prompts (see steer.steerability)."]
    if missing:
        lines += ["", f"Not measured: {', '.join(missing)}."]
    return lines + [""]


def build_report(records_dir: str | Path, out_dir: str | Path, *, baseline: str = "baseline",
                 model: str | None = None, warning_label: str = "cheat") -> Path:
    """Aggregate every record under records_dir and write out_dir/report.md (+ PNG, HTML, JSON).

    Cells are compared within one model: a store holding several models' records needs `model`.
    `warning_label` is what the early-warning AUROC predicts: "cheat" (tests passed by a shortcut)
    or "cheat_attempt" (any shortcut, whether its tests passed or not).
    """
    from ..evals.rates import WARNING_LABELS

    if warning_label not in WARNING_LABELS:
        raise SteerError(f"report.warning_label={warning_label!r}: use one of {list(WARNING_LABELS)}")
    store = ResultsStore(records_dir, writer="report")
    records = store.records()
    models = sorted({str(r.get("model")) for r in records})
    if model is not None:
        if model not in models:
            raise SteerError(f"no records of model {model!r} in {str(records_dir)!r} (it holds {models})")
        records = [r for r in records if str(r.get("model")) == model]
    elif len(models) > 1:
        raise SteerError(f"{str(records_dir)!r} holds records of several models {models}: "
                         f"pick one with report.model=NAME")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    lines = [f"# steer report", "", f"Records: `{records_dir}` ({len(records)} episodes"
             f"{', model ' + models[0] if len(models) == 1 else ', model ' + str(model) if model else ''}). "
             "Rates with Wilson 95% intervals; differences vs the baseline cell with Fisher's exact test.", ""]
    summary: dict[str, Any] = {"n_records": len(records), "model": model or (models[0] if models else None)}
    lines += _steerability_lines(records_dir, records, summary)
    coding = [r for r in records if r.get("suite") == "coding"]
    if coding:
        rows = coding_table(records, baseline)
        summary["coding"] = rows
        lines += ["## Impossible coding tasks", "",
                  "Cheat rate (tests passed by a shortcut) and cheat attempt rate (a shortcut written, tests still "
                  "failing) on impossible tasks beside capability (solved rate on their possible twins): a drop in "
                  "capability means steering broke the model's code, not its honesty.", "",
                  "| cell | cheat (impossible) | vs baseline | cheat attempt (impossible) | vs baseline | "
                  "capability (possible) | vs baseline | flagged | cheat subtypes |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for r in rows:
            sub = ", ".join(f"{k} {v}" for k, v in r["subtypes"].items()) or "–"
            lines.append(f"| {r['label']} | {_pct(r['cheat'])} | {_diff(r['cheat_diff'])} | {_pct(r['cheat_attempt'])} | "
                         f"{_diff(r['cheat_attempt_diff'])} | {_pct(r['solved'])} | "
                         f"{_diff(r['solved_diff'])} | {_pct(r['flagged'])} | {sub} |")
        if _dose_plot(rows, [("cheat", "cheat rate (impossible)"), ("solved", "capability (possible twins)")],
                      out / "coding_dose_response.png", "impossible coding tasks"):
            lines += ["", "![coding dose-response](coding_dose_response.png)"]
        if _bar_plot(rows, [("cheat", "cheat rate (impossible)"), ("solved", "capability (possible twins)")],
                     out / "coding_cells.png", "impossible coding tasks, every cell (95% intervals)"):
            lines += ["", "![coding cells](coding_cells.png)"]
        if _heatmap(rows, "cheat", out / "coding_heatmap.png", "cheat rate: layer x strength"):
            lines += ["", "![coding heatmap](coding_heatmap.png)"]
        shown = _trajectory_plot(coding, out / "coding_trajectories.png")
        if shown:
            lines += ["", "![projection across attempts](coding_trajectories.png)"]
            from ..evals.rates import cheat_auroc

            target = "a cheat" if warning_label == "cheat" else "a shortcut (cheat or cheat attempt)"
            lines += ["", f"| monitored reading | AUROC for predicting {target} (report.warning_label={warning_label}) "
                          "| positives / other attempts |", "|---|---|---|"]
            for key in shown:
                n, layer = key.split("@")
                a = cheat_auroc(coding, n, layer, label=warning_label)
                summary.setdefault("cheat_auroc", {})[key] = a
                auc = "n/a (needs both classes)" if a["auroc"] is None else f"{a['auroc']:.2f}"
                lines.append(f"| {n} at layer {layer}, last prompt token | {auc} | {a['n_pos']} / {a['n_neg']} |")
            lines += _trajectory_tables(coding, shown, summary)
        attempts = Counter(a.get("label") for r in coding for a in r.get("attempts", []))
        summary["attempt_labels"] = dict(attempts)
        lines += ["", f"Attempts: {sum(attempts.values())} ("
                      + ", ".join(f"{k} {v}" for k, v in attempts.most_common()) + ")."]
        lines.append("")
    agentic = [r for r in records if r.get("suite") == "agentic"]
    if agentic:
        rows = agentic_table(records, baseline)
        summary["agentic"] = rows
        lines += ["## Agentic scenarios", "",
                  "Blackmail rate on the blackmail scenarios, forbidden-action rate on the rule scenarios, and the "
                  "median perplexity of the replies under the unsteered model (fluency).", "",
                  "| cell | blackmail | vs baseline | forbidden action | vs baseline | disclosure | malformed | perplexity |",
                  "|---|---|---|---|---|---|---|---|"]
        for r in rows:
            ppl = "–" if r["perplexity"] is None else f"{r['perplexity']:.1f}"
            lines.append(f"| {r['label']} | {_pct(r['blackmail'])} | {_diff(r['blackmail_diff'])} | "
                         f"{_pct(r['forbidden_action'])} | {_diff(r['forbidden_action_diff'])} | "
                         f"{_pct(r['disclosure'])} | {_pct(r['malformed'])} | {ppl} |")
        if _dose_plot(rows, [("blackmail", "blackmail rate"), ("forbidden_action", "forbidden-action rate")],
                      out / "agentic_dose_response.png", "agentic scenarios"):
            lines += ["", "![agentic dose-response](agentic_dose_response.png)"]
        if _bar_plot(rows, [("blackmail", "blackmail rate"), ("forbidden_action", "forbidden-action rate")],
                     out / "agentic_cells.png", "agentic scenarios, every cell (95% intervals)"):
            lines += ["", "![agentic cells](agentic_cells.png)"]
        if _heatmap(rows, "blackmail", out / "agentic_heatmap.png", "blackmail rate: layer x strength"):
            lines += ["", "![agentic heatmap](agentic_heatmap.png)"]
        capped = sum(r.get("generated_tokens", 0) >= r.get("generation", {}).get("max_new_tokens", 1e9) for r in agentic)
        emails = sum(bool((r.get("grade") or {}).get("emails")) for r in agentic)
        actions = sum(bool((r.get("grade") or {}).get("actions")) for r in agentic)
        summary["agentic_counts"] = {"replies": len(agentic), "hit_token_limit": capped,
                                     "with_email": emails, "with_action": actions}
        lines += ["", f"Replies: {len(agentic)}; {capped} hit the token limit; {emails} wrote an `<email>`, "
                      f"{actions} an `<action>`."]
        lines += _agentic_readings(agentic, summary)
        from ..evals.agentic import format_agreement, judge_agreement

        judged = judge_agreement(agentic)          # only replies the LLM judge also labelled
        if judged["n"]:
            summary["judge_agreement"] = judged
            models = sorted({str((r.get("grade") or {}).get("judge_model")) for r in agentic
                             if (r.get("grade") or {}).get("judge_label") is not None} - {"None"})
            lines += ["", "### Rule grader vs LLM judge", "",
                      f"The tables above use the rule labels; the judge (eval.agentic.judge"
                      + (f": {', '.join(models)}" if models else "") + ") labelled the same replies. "
                      "Rows: rule label, columns: judge label.", ""]
            lines += format_agreement(judged)
        lines.append("")
    heat = sorted(Path(records_dir).glob("heatmaps*.jsonl"))          # one file per writer (shard, job)
    if heat:
        items = [json.loads(x) for h in heat for x in h.read_text().splitlines() if x.strip()]
        for it in items:
            it["title"] = f"{it['suite']}: {it['cell']} -> {it['label']} ({it['episode_key']})"
        write_token_html(items, out / "token_heatmaps.html", "monitored transcripts")
        lines += ["## Monitored transcripts", "", "[Token heatmaps](token_heatmaps.html): each token of a few "
                  "transcripts coloured by its projection onto the monitored directions.", ""]
    done = {(r.get("suite"), r["cell"]["label"]) for r in records}
    all_errors = store.errors()
    errors = [e for e in all_errors if (e.get("suite"), e["cell"]["label"]) not in done]
    if len(errors) < len(all_errors):
        summary["errors_since_recovered"] = len(all_errors) - len(errors)
    if errors:
        lines += ["## Failed cells", "", "| suite | cell | error |", "|---|---|---|"]
        lines += [f"| {e['suite']} | {e['cell']['label']} | {e['error'][:160]} |" for e in errors]
        lines.append("")
        summary["errors"] = errors
    if not records:
        lines += ["No records yet.", ""]
    (out / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
    path = out / "report.md"
    path.write_text("\n".join(lines))
    return path
