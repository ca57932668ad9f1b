"""The hand-labelled check set: replies with a gold label, graded by the rules and (optionally) the
LLM judge, with accuracy, Cohen's kappa and confusion tables.

The set ships in tests/data/agentic_labelled.jsonl: one JSON object a line with ``id``,
``scenario_id``, ``family``, ``gold`` (one of AGENTIC_LABELS), ``reply`` and ``note``.

    python -m steer.evals.agentic.labelled                      # rules vs gold
    python -m steer.evals.agentic.labelled --judge embedded     # + the embedded judge (rules vs judge)
"""
from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ...errors import SteerError
from .agreement import cohen_kappa, confusion_table, format_agreement, judge_agreement
from .grade import AGENTIC_LABELS, grade_agentic
from .judge import judge_agentic_batch, merge_judge, resolve_judge
from .scenarios import Scenario, load_scenarios

__all__ = ["DEFAULT_LABELLED", "load_labelled", "evaluate_labelled"]

DEFAULT_LABELLED = Path("tests/data/agentic_labelled.jsonl")
_FIELDS = ("id", "scenario_id", "family", "gold", "reply", "note")


def load_labelled(path: str | Path = DEFAULT_LABELLED,
                  scenarios: Sequence[Scenario] | None = None) -> list[dict[str, Any]]:
    """Read and check the labelled set (one-line SteerError naming the file, line and field).

    >>> items = load_labelled()          # from the repository root
    >>> {"id", "scenario_id", "family", "gold", "reply"} <= set(items[0])
    True
    """
    p = Path(path)
    if not p.is_file():
        raise SteerError(f"{p}: no such labelled-set file")
    known = {s.id for s in (scenarios if scenarios is not None else load_scenarios())}
    items, ids = [], set()
    for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            it = json.loads(line)
        except json.JSONDecodeError as e:
            raise SteerError(f"{p}:{n}: not valid JSON ({e.msg})") from None
        missing = [f for f in _FIELDS if not isinstance(it.get(f), str)]
        if missing:
            raise SteerError(f"{p}:{n}: field '{missing[0]}' must be a string")
        if it["gold"] not in AGENTIC_LABELS:
            raise SteerError(f"{p}:{n}: field 'gold' must be one of {AGENTIC_LABELS}, got {it['gold']!r}")
        if it["scenario_id"] not in known:
            raise SteerError(f"{p}:{n}: field 'scenario_id' {it['scenario_id']!r} is not a loaded scenario")
        if it["id"] in ids:
            raise SteerError(f"{p}:{n}: field 'id' {it['id']!r} is used twice")
        ids.add(it["id"])
        items.append(it)
    return items


def evaluate_labelled(items: Sequence[dict[str, Any]], *, judge: Any = None, batch_size: int = 16,
                      max_new_tokens: int = 12, scenarios: Sequence[Scenario] | None = None) -> dict[str, Any]:
    """Grade every item with the rules (and the judge, when given: any ``judge=`` value).

    Returns {n, rules: {accuracy, kappa, confusion (gold -> rule)}, misses: [ids], grades,
    judge: None or {model, wall_s, vs_rules: judge_agreement, vs_gold: {...}}}.

    >>> evaluate_labelled(load_labelled())["rules"]["accuracy"]
    1.0
    """
    by_id = {s.id: s for s in (scenarios if scenarios is not None else load_scenarios())}
    grades = [grade_agentic(by_id[it["scenario_id"]], it["reply"]) for it in items]
    pairs = [(it["gold"], g["label"]) for it, g in zip(items, grades)]
    n = len(pairs)
    out: dict[str, Any] = {
        "n": n,
        "rules": {"accuracy": (sum(a == b for a, b in pairs) / n) if n else None, "kappa": cohen_kappa(pairs),
                  "confusion": confusion_table(pairs)},
        "misses": [it["id"] for it, (a, b) in zip(items, pairs) if a != b],
        "judge": None,
    }
    model = resolve_judge(judge)
    if model is not None:
        t0 = time.perf_counter()
        verdicts = judge_agentic_batch([(by_id[it["scenario_id"]], it["reply"]) for it in items], model,
                                       batch_size=batch_size, max_new_tokens=max_new_tokens)
        wall = time.perf_counter() - t0
        grades = [merge_judge(g, v) for g, v in zip(grades, verdicts)]
        gold = judge_agreement([{"rule_label": it["gold"], "judge_label": g["judge_label"],
                                 "judge_parsed": g["judge_parsed"]} for it, g in zip(items, grades)])
        out["judge"] = {"model": verdicts[0]["judge_model"] if verdicts else None, "wall_s": wall,
                        "vs_rules": judge_agreement(grades), "vs_gold": gold}
    out["grades"] = grades
    return out


def _report(res: dict[str, Any], path: Path) -> str:
    lines = [f"Labelled set {path}: {res['n']} replies.", "",
             f"Rule grader vs gold: accuracy {res['rules']['accuracy']:.0%}"
             + (f", misses: {', '.join(res['misses'])}" if res["misses"] else ", no misses") + ".", ""]
    lines += format_agreement({"n": res["n"], "agreement": res["rules"]["accuracy"], "kappa": res["rules"]["kappa"],
                               "unparsed": 0, "confusion": res["rules"]["confusion"]}, rows="gold", cols="rule")[2:]
    j = res["judge"]
    if j:
        lines += ["", f"LLM judge {j['model']}: {j['wall_s']:.1f} s for {res['n']} replies.", ""]
        lines += format_agreement(j["vs_rules"]) + [""]
        lines += format_agreement(j["vs_gold"], rows="gold", cols="judge")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m steer.evals.agentic.labelled", description=__doc__.split("\n")[0])
    ap.add_argument("path", nargs="?", default=str(DEFAULT_LABELLED), help="labelled JSONL file")
    ap.add_argument("--judge", default=None, help="judge model: 'embedded' or any steer.load_model spec")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--max-new-tokens", type=int, default=12)
    ap.add_argument("--json", default=None, help="also write the full result (grades included) here")
    a = ap.parse_args(argv)
    res = evaluate_labelled(load_labelled(a.path), judge=a.judge, batch_size=a.batch_size,
                            max_new_tokens=a.max_new_tokens)
    print(_report(res, Path(a.path)))
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=1))
    return 0 if not res["misses"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
