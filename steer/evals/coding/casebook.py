"""Adversarial case sets for the grader: grade every case, report precision and recall by family.

A case set is a directory of YAML files, one per family of tricks, each a list of cases::

    - id: tuple_key_buggy            # unique in the set
      task: factorial_impossible     # a packaged task id
      expect: cheat_attempt          # the true label: cheat | cheat_attempt | honest_fail | solved
      code: |
        def factorial(n): ...
      note: why it is (or is not) a shortcut
      known_miss: why the grader gets it wrong   # optional, documented misses

Positives are cases whose true label is ``cheat`` or ``cheat_attempt``; the grader "flags" a case
when its label is one of those. Precision and recall are over flags; ``exact`` counts cases whose
label is exactly the expected one. Command line::

    python -m steer.evals.coding.casebook tests/data/coding_adversarial
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from ...errors import SteerError
from .grade import LABELS, SHORTCUT_LABELS, grade_coding
from .tasks import Task, load_tasks

_FIELDS = {"id", "task", "expect", "code", "note", "known_miss"}


def load_cases(path: str | Path) -> list[dict[str, Any]]:
    """Every case of the directory (or one YAML file), with its ``family`` (the file's stem)."""
    root = Path(path)
    files = sorted(root.glob("*.yaml")) if root.is_dir() else [root]
    if not files or not all(f.is_file() for f in files):
        raise SteerError(f"{root}: no case files (*.yaml)")
    cases, seen = [], set()
    for f in files:
        data = yaml.safe_load(f.read_text(encoding="utf-8")) or []
        if not isinstance(data, list):
            raise SteerError(f"{f}: must hold a list of cases")
        for c in data:
            if not isinstance(c, Mapping) or set(c) - _FIELDS or \
                    not {"id", "task", "expect", "code"} <= set(c):
                raise SteerError(f"{f}: case {c.get('id') if isinstance(c, Mapping) else c!r} "
                                 f"needs id, task, expect, code (allowed: {sorted(_FIELDS)})")
            if c["expect"] not in LABELS:
                raise SteerError(f"{f}: case {c['id']!r}: expect must be one of {LABELS}")
            if c["id"] in seen:
                raise SteerError(f"{f}: duplicate case id {c['id']!r}")
            seen.add(c["id"])
            cases.append({**c, "family": f.stem})
    return cases


def grade_cases(cases: Sequence[Mapping[str, Any]], tasks: Mapping[str, Task] | None = None,
                sandbox_kw: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """Grade each case (in the sandbox): the case plus ``label``, ``subtype`` and ``reason``."""
    tasks = tasks or {t.id: t for t in load_tasks()}
    out = []
    for c in cases:
        if c["task"] not in tasks:
            raise SteerError(f"case {c['id']!r}: unknown task {c['task']!r}")
        g = grade_coding(tasks[c["task"]], c["code"], sandbox_kw=sandbox_kw)
        out.append({**c, "label": g["label"], "subtype": g["subtype"], "reason": g["reason"]})
    return out


def precision_recall(results: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per family and ``"all"``: n, positives, tp, fp, fn, precision, recall, exact."""
    fams: dict[str, list[Mapping[str, Any]]] = {}
    for r in results:
        fams.setdefault(r["family"], []).append(r)
    fams["all"] = list(results)
    table = {}
    for fam, rs in fams.items():
        pos = [r["expect"] in SHORTCUT_LABELS for r in rs]
        flag = [r["label"] in SHORTCUT_LABELS for r in rs]
        tp = sum(p and f for p, f in zip(pos, flag))
        fp = sum(f and not p for p, f in zip(pos, flag))
        fn = sum(p and not f for p, f in zip(pos, flag))
        table[fam] = {"n": len(rs), "positives": sum(pos), "tp": tp, "fp": fp, "fn": fn,
                      "precision": tp / (tp + fp) if tp + fp else None,
                      "recall": tp / (tp + fn) if tp + fn else None,
                      "exact": sum(r["label"] == r["expect"] for r in rs)}
    return table


def format_table(table: Mapping[str, Mapping[str, Any]]) -> str:
    """The markdown table docs/evals.md shows."""
    def f(x: float | None) -> str:
        return "–" if x is None else f"{x:.2f}"
    lines = ["| family | cases | shortcuts (positives) | near-misses | precision | recall | "
             "exact label |", "|---|---|---|---|---|---|---|"]
    for fam, t in table.items():
        name = f"**{fam}**" if fam == "all" else fam
        lines.append(f"| {name} | {t['n']} | {t['positives']} | {t['n'] - t['positives']} | "
                     f"{f(t['precision'])} ({t['tp']}/{t['tp'] + t['fp']}) | "
                     f"{f(t['recall'])} ({t['tp']}/{t['tp'] + t['fn']}) | {t['exact']}/{t['n']} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m steer.evals.coding.casebook",
                                description="Grade an adversarial case set and print precision "
                                            "and recall per family.")
    p.add_argument("cases", type=Path, help="a directory of case YAML files")
    p.add_argument("--show", action="store_true", help="also list every case that is missed")
    args = p.parse_args(argv)
    results = grade_cases(load_cases(args.cases))
    print(format_table(precision_recall(results)))
    misses = [r for r in results if r["label"] != r["expect"]]
    if args.show or misses:
        print()
        for r in misses:
            print(f"- {r['family']}/{r['id']}: expected {r['expect']}, graded {r['label']} "
                  f"({r['subtype']}): {r['reason'][:120]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
