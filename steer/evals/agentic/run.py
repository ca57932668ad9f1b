"""Model-using half of the agentic evaluation: the packed episode runner and label rates.

:func:`run_agentic_episodes` plays scenarios x conditions x samples on a (steered) model in
packed batches (each row its own condition's interventions and system_extra), grades each reply
(and, with ``judge=``, has the LLM judge label it too); :func:`agentic_rates` turns episode records
into label rates with Wilson intervals. Nothing here imports torch; the model object brings it.
"""
from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ...errors import SteerError
from ..conditions import Condition
from .grade import AGENTIC_LABELS, grade_agentic
from .judge import judge_agentic_batch, merge_judge, resolve_judge
from .scenarios import Scenario

__all__ = ["agentic_rates", "run_agentic_episodes"]


def agentic_rates(records: Iterable[Mapping[str, Any]], *, by: str = "scenario_kind") -> dict[str, Any]:
    """Label rates per condition and scenario group with Wilson 95% intervals.

    ``by``: "scenario_kind" (default) or "scenario_id". Returns
    {condition_label: {group: {"n": n, "blackmail": rate, "forbidden_action": rate,
    "disclosure": rate, "compliant": rate, "malformed": rate}}} where each rate is
    steer.stats.rate(k, n) = {n, k, rate, lo, hi}. Groups include "all".
    """
    if by not in ("scenario_kind", "scenario_id"):
        raise SteerError(f"agentic_rates: by={by!r} must be 'scenario_kind' or 'scenario_id'")
    from steer.stats import rate

    counts: dict[str, dict[str, list[str]]] = {}
    for r in records:
        cond = r["condition"]["label"] if isinstance(r["condition"], Mapping) else str(r["condition"])
        for group in (r[by], "all"):
            counts.setdefault(cond, {}).setdefault(group, []).append(r["label"])
    out: dict[str, Any] = {}
    for cond, groups in counts.items():
        out[cond] = {}
        for group, labels in groups.items():
            n = len(labels)
            out[cond][group] = {"n": n, **{lab: rate(sum(x == lab for x in labels), n) for lab in AGENTIC_LABELS}}
    return out



# ============================================================================ runner
def _row_projections(out: Any, b: int, norms: Mapping[int, float]) -> dict[str, dict[str, Any]]:
    P, G = int(out.prompt_lengths[b]), int(out.generated_lengths[b])
    res: dict[str, dict[str, Any]] = {}
    for name, values in out.projections.items():
        res[name] = {}
        for li, layer in enumerate(out.monitor_layers):
            row = values[b, li].tolist()
            s = norms[int(layer)]
            last = row[P - 1] if P >= 1 else float("nan")
            gen = [v for v in row[P:P + G] if not math.isnan(v)]
            res[name][str(int(layer))] = {
                "mean": (sum(gen) / len(gen) / s) if gen else None,
                "max": (max(gen) / s) if gen else None,
                "last_prompt": None if math.isnan(last) else last / s,
                "n_generated": len(gen),
            }
    return res


def run_agentic_episodes(model: Any, scenarios: Sequence[Scenario], conditions: Sequence[Condition], *,
                         n_samples: int = 1, max_new_tokens: int = 200, do_sample: bool = True,
                         temperature: float = 0.8, seed: int = 0, monitor: Mapping[str, Any] | None = None,
                         monitor_layers: Any = None, directions: Any = None, batch_size: int = 16,
                         judge: Any = None, progress: bool = True) -> list[dict[str, Any]]:
    """Play every scenario under every condition ``n_samples`` times; grade each reply.

    Episodes are packed into batches of ``batch_size`` rows; each row carries its condition's
    interventions (its per-row set) and its condition's ``system_extra`` appended to the system
    prompt. Batch k is generated with seed ``seed + k`` (recorded per episode as ``seed``).
    ``monitor``/``monitor_layers``/``directions`` are passed to ``model.generate``; projections are
    summarised per episode in norm units (see docs/agentic.md). ``judge``: a model that also labels
    every reply: any ``judge=`` value of :func:`steer.evals.agentic.judge.resolve_judge` (true or
    "embedded": the embedded model; a load_model spec; a loaded model), run unsteered and greedy
    after all episodes (``grade`` then carries judge_label/agree; ``label`` stays the rule label).
    Returns one JSON-ready record per episode, in scenario x condition x sample order.
    """
    if not scenarios:
        raise SteerError("run_agentic_episodes needs at least one scenario")
    if not conditions:
        raise SteerError("run_agentic_episodes needs at least one Condition")
    labels = [c.label for c in conditions]
    if len(set(labels)) != len(labels):
        raise SteerError(f"condition labels must be unique, got {labels}")
    if not isinstance(n_samples, int) or n_samples < 1:
        raise SteerError(f"n_samples={n_samples!r} must be a positive int")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise SteerError(f"batch_size={batch_size!r} must be a positive int")
    judge = resolve_judge(judge, model)
    episodes = [(s, c, k) for s in scenarios for c in conditions for k in range(n_samples)]
    norms: dict[int, float] = {}   # layer -> mean residual norm (projections in norm units)
    described = {c.label: c.describe() for c in conditions}
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(episodes), desc="agentic episodes", unit="ep")
    records: list[dict[str, Any]] = []
    try:
        for bi, start in enumerate(range(0, len(episodes), batch_size)):
            chunk = episodes[start:start + batch_size]
            msgs = [s.messages(c.system_extra) for s, c, _ in chunk]
            ivs = [list(c.interventions) for _, c, _ in chunk]
            t0 = time.perf_counter()
            out = model.generate(msgs, interventions=ivs if any(ivs) else None, chat=True,
                                 max_new_tokens=max_new_tokens, monitor=monitor or None,
                                 monitor_layers=monitor_layers if monitor else None, directions=directions,
                                 do_sample=do_sample, temperature=temperature, seed=seed + bi)
            elapsed = time.perf_counter() - t0
            for layer in out.monitor_layers:
                if int(layer) not in norms:
                    norms[int(layer)] = float(model.residual_norm(int(layer)))
            for b, (s, c, k) in enumerate(chunk):
                response = out.texts[b]
                records.append({
                    "kind": "agentic",
                    "scenario_id": s.id,
                    "scenario_kind": s.kind,
                    "urgency": s.urgency,
                    "goal_conflict": s.goal_conflict,
                    "condition": described[c.label],
                    "sample": k,
                    "seed": seed + bi,
                    "run_seed": seed,
                    "batch": bi,
                    "model": getattr(model, "name", None),
                    "fingerprint": getattr(model, "fingerprint", None),
                    "generation": {"max_new_tokens": max_new_tokens, "do_sample": do_sample,
                                   "temperature": temperature if do_sample else None},
                    "transcript": msgs[b] + [{"role": "assistant", "content": response}],
                    "response": response,
                    "prompt_tokens": int(out.prompt_lengths[b]),
                    "generated_tokens": int(out.generated_lengths[b]),
                    "label": None,
                    "grade": grade_agentic(s, response),
                    "projections": _row_projections(out, b, norms) if monitor else {},
                    "elapsed_s": elapsed / len(chunk),
                    "batch_elapsed_s": elapsed,
                })
                records[-1]["label"] = records[-1]["grade"]["label"]
            if bar is not None:
                bar.update(len(chunk))
    finally:
        if bar is not None:
            bar.close()
    if judge is not None:
        by_id = {s.id: s for s in scenarios}
        verdicts = judge_agentic_batch([(by_id[r["scenario_id"]], r["response"]) for r in records], judge,
                                       batch_size=batch_size)
        for r, v in zip(records, verdicts):
            r["grade"] = merge_judge(r["grade"], v)
    return records
