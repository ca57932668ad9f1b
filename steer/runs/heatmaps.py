"""HTML token heatmaps: each token coloured by its projection onto a direction."""
from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any


def _colour(v: float | None, scale: float) -> str:
    if v is None or v != v:
        return "transparent"
    x = max(-1.0, min(1.0, v / scale)) if scale else 0.0
    if x >= 0:   # red = positive projection, blue = negative
        return f"rgba(220,40,40,{0.85 * x:.2f})"
    return f"rgba(40,90,220,{0.85 * -x:.2f})"


def write_token_html(items: list[dict[str, Any]], path: Path, title: str) -> Path:
    """items: {title, tokens, layer, values: {name: [float per token]}} -> one HTML page."""
    parts = [f"<html><head><meta charset='utf-8'><title>{html.escape(title)}</title><style>"
             "body{font-family:sans-serif;max-width:1000px;margin:2em auto}"
             ".t{font-family:monospace;white-space:pre-wrap;line-height:1.9}"
             ".t span{border-radius:3px;padding:1px 0}</style></head><body>",
             f"<h1>{html.escape(title)}</h1><p>Red: positive projection onto the direction, blue: negative; "
             "hover a token for its value (units of the mean residual norm at the layer).</p>"]
    for it in items:
        parts.append(f"<h2>{html.escape(str(it.get('title', '')))}</h2>")
        for name, vals in it["values"].items():
            finite = [abs(v) for v in vals if v is not None and v == v]
            scale = max(finite) if finite else 1.0
            spans = "".join(
                f"<span title='{'' if v is None or v != v else f'{v:+.3f}'}' style='background:{_colour(v, scale)}'>"
                f"{html.escape(tok)}</span>" for tok, v in zip(it["tokens"], vals))
            parts.append(f"<h3>{html.escape(name)} (layer {it.get('layer')}, colour scale ±{scale:.2f})</h3>"
                         f"<div class='t'>{spans}</div>")
    parts.append("</body></html>")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(parts))
    return path


def record_heatmaps(cfg: Any, model: Any, ds: Any, store: Any, cells: list[Any], limit: int = 4) -> Path | None:
    """Re-read a few transcripts with their cell's interventions (teacher forcing) and save the
    per-token projections to heatmaps.jsonl, so reports can draw them from files alone.

    Picks, per suite, the first behaviour episode (cheat / blackmail / forbidden action) and a
    baseline episode of the same item.
    """
    names = [n for n in cfg.eval.monitor if n in ds]
    if not names:
        return None
    layer = int(cfg.eval.monitor_layers[0])
    by_label = {c.label: c for c in cells}
    chosen = []
    records = store.records()
    for suite, bad in (("coding", ("cheat",)), ("agentic", ("blackmail", "forbidden_action"))):
        recs = [r for r in records if r.get("suite") == suite and r["cell"]["label"] in by_label]
        hit = next((r for r in recs if r["label"] in bad), None) or next((r for r in recs if r["cell"]["kind"] != "baseline"), None)
        if hit is None:
            continue
        chosen.append(hit)
        item = hit.get("task_id") or hit.get("scenario_id")
        base = next((r for r in recs if r["cell"]["kind"] == "baseline" and (r.get("task_id") or r.get("scenario_id")) == item), None)
        if base is not None:
            chosen.append(base)
    out_path = store.root / f"heatmaps-{store.writer}.jsonl"     # per writer: shards never overwrite each other
    lines = []
    for r in chosen[:limit]:
        cond = by_label[r["cell"]["label"]].condition(ds, model.d_model, model.n_layers)
        text = model.format_prompts([r["transcript"]], chat=True)[0] if r["transcript"][-1]["role"] != "assistant" else \
            model.format_prompts([r["transcript"][:-1]], chat=True)[0] + r["transcript"][-1]["content"]
        proj = model.monitor([text], {n: n for n in names}, [layer], interventions=list(cond.interventions),
                             direction_set=ds)
        norm = model.residual_norm(layer)
        n = len(proj.tokens[0])
        lines.append(json.dumps({"episode_key": r["episode_key"], "suite": r["suite"], "label": r["label"],
                                 "cell": r["cell"]["label"], "layer": layer, "tokens": proj.tokens[0],
                                 "values": {k: [v / norm for v in proj[k][0, 0, :n].tolist()] for k in names}}))
    if lines:
        out_path.write_text("\n".join(lines) + "\n")
    return out_path
