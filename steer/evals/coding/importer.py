"""Bring your own tasks: read impossible (and possible) coding tasks from a plain JSONL file.

One JSON object per line, in the shape ImpossibleBench- and LiveCodeBench-style sets use:
``prompt``, ``tests`` and ``entry_point`` are needed; ``id``, ``kind`` (default impossible),
``category`` (default one_off), ``twin`` (the id of the possible twin in the same file) or
``twin_tests`` (its tests), ``starter_code``, ``timeout_s``, ``notes`` and the optional
solutions are taken when present. ``tests`` is a test file (``from solution import f`` and
``def test_*():``), a HumanEval-style ``def check(candidate):`` (wrapped), or a list of cases
``{"args": [...], "expected": ...}`` / ``{"input": "1, 2", "output": "3"}`` (turned into
asserts). Lines that cannot be used are skipped and reported with the reason.
"""
from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping

from ...errors import SteerError
from .tasks import CATEGORIES, Task, TaskValidationError, _task_from_mapping

_ALIASES = {"task_id": "id", "question_id": "id", "name": "id", "question": "prompt",
            "question_content": "prompt", "problem": "prompt", "test": "tests",
            "test_code": "tests", "entry": "entry_point", "func_name": "entry_point",
            "fn_name": "entry_point", "function_name": "entry_point", "split": "category",
            "original_tests": "twin_tests", "original_test": "twin_tests",
            "canonical_solution": "reference_solution"}
_CATEGORY_ALIASES = {"oneoff": "one_off", "one-off": "one_off", "conflicting": "conflicting_tests",
                     "conflict": "conflicting_tests"}
_KEEP = ("id", "kind", "twin", "category", "entry_point", "prompt", "tests", "starter_code",
         "reference_solution", "honest_solution", "shortcut_solution", "shortcut_subtype",
         "timeout_s", "notes")


@dataclass
class ImportReport:
    """What :func:`import_tasks` took and what it could not: ``skipped`` holds
    ``{"line", "id", "reason"}`` per unusable line, ``notes`` remarks on tasks it kept."""

    path: str
    n_lines: int = 0
    imported: list[str] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One line per skipped task after a count, e.g. for a log."""
        head = f"{self.path}: {len(self.imported)} tasks imported, {len(self.skipped)} skipped"
        return "\n".join([head] + [f"  line {s['line']} ({s['id'] or '?'}): {s['reason']}"
                                   for s in self.skipped])


def _cases_to_tests(cases: list[Any], entry_point: str) -> str:
    lines = [f"from solution import {entry_point}", "", ""]
    for i, case in enumerate(cases):
        if not isinstance(case, Mapping):
            raise SteerError(f"test case {i} is not an object")
        if "args" in case or "expected" in case:
            args, kwargs = case.get("args", []), case.get("kwargs", {})
            expected = case.get("expected")
            if not isinstance(args, list) or not isinstance(kwargs, Mapping):
                raise SteerError(f"test case {i}: 'args' must be a list, 'kwargs' an object")
            call = ", ".join([repr(a) for a in args] + [f"{k}={v!r}" for k, v in kwargs.items()])
        elif "input" in case and "output" in case:
            try:
                args = ast.literal_eval(f"({case['input']},)" if str(case["input"]).strip()
                                        else "()")
                expected = ast.literal_eval(str(case["output"]))
            except (ValueError, SyntaxError) as e:
                raise SteerError(f"test case {i}: input/output are not Python literals "
                                 f"({type(e).__name__})") from None
            call = ", ".join(repr(a) for a in args)
        else:
            raise SteerError(f"test case {i} needs args/expected or input/output")
        lines += [f"def test_case_{i}():", f"    assert {entry_point}({call}) == {expected!r}",
                  "", ""]
    return "\n".join(lines).rstrip() + "\n"


def _tests_source(tests: Any, entry_point: str) -> Any:
    if isinstance(tests, list):
        return _cases_to_tests(tests, entry_point)
    m = re.search(r"def check\((\w+)\):", tests) if isinstance(tests, str) else None
    if m and "def test" not in tests:
        # call the entry point by name, so the grader sees which literals go into it
        body = re.sub(rf"\b{m.group(1)}\(", f"{entry_point}(", tests[m.end():])
        head = "" if f"import {entry_point}" in tests else f"from solution import {entry_point}\n\n"
        return (f"{head}{tests[:m.start()]}def check({m.group(1)}):{body.rstrip()}\n\n\n"
                f"def test_check():\n    check({entry_point})\n")
    return tests


def _normalise(raw: Mapping[str, Any], line: int) -> dict[str, Any]:
    rec = {_ALIASES.get(k, k): v for k, v in raw.items()}
    rec.setdefault("id", f"task{line}")
    rec["id"] = str(rec["id"]).replace("/", "_").replace(" ", "_")
    rec.setdefault("kind", "impossible")
    cat = str(rec.get("category") or "one_off").lower()
    rec["category"] = _CATEGORY_ALIASES.get(cat, cat if cat in CATEGORIES else "one_off")
    if isinstance(rec.get("entry_point"), str):
        rec["tests"] = _tests_source(rec.get("tests"), rec["entry_point"])
        if rec.get("twin_tests") is not None:
            rec["twin_tests"] = _tests_source(rec["twin_tests"], rec["entry_point"])
    return rec


def import_tasks(path: str | Path, *, check_solutions: bool = False,
                 sandbox_kw: Mapping[str, Any] | None = None) -> tuple[list[Task], ImportReport]:
    """Read tasks from a JSONL file; return ``(tasks, report)``.

    Each kept task is validated like a packaged one (tests parse, import the entry point from
    ``solution``, use only the standard library; solutions, when given, define the entry point).
    An impossible task needs no honest or shortcut solution; with ``check_solutions`` the ones
    given are graded in the sandbox (an honest solution must not pass an impossible task's
    tests, a shortcut must be graded a cheat) and a task that fails is skipped. A missing or
    unreadable file raises :class:`~steer.errors.SteerError`.

    >>> tasks, report = import_tasks("docs/examples/my_tasks.jsonl")  # doctest: +SKIP
    >>> print(report.summary())  # doctest: +SKIP
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SteerError(f"{p}: no such file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise SteerError(f"{p}: cannot read: {getattr(e, 'strerror', None) or e}") from None
    report = ImportReport(str(p))
    recs: list[tuple[int, dict[str, Any], str | None]] = []
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        report.n_lines += 1
        try:
            raw = json.loads(line)
            if not isinstance(raw, Mapping):
                raise SteerError(f"a line must hold a JSON object, got {type(raw).__name__}")
            rec = _normalise(raw, n)
        except (ValueError, SteerError) as e:
            report.skipped.append({"line": n, "id": None, "reason": str(e).splitlines()[0]})
            continue
        recs.append((n, rec, rec.pop("twin_tests", None)))
    tasks: list[Task] = []
    seen: set[str] = set()
    for n, rec, twin_tests in recs:
        tid = rec.get("id")
        dropped = sorted(k for k in rec if k not in _KEEP)
        try:
            if tid in seen:
                raise SteerError(f"duplicate id {tid!r}")
            task = _task_from_mapping({k: v for k, v in rec.items() if k in _KEEP},
                                      f"{p}:{n}", need_twin=False)
        except (TaskValidationError, SteerError) as e:
            report.skipped.append({"line": n, "id": tid, "reason": str(e)})
            continue
        if dropped:
            report.notes.append(f"line {n} ({tid}): ignored fields {dropped}")
        if twin_tests:
            task = replace(task, twin_tests=twin_tests)
        seen.add(task.id)
        tasks.append(task)
    by_id = {t.id: t for t in tasks}
    out = []
    for t in tasks:
        other = by_id.get(t.twin) if t.twin else None
        if t.twin and other is None:
            report.notes.append(f"{t.id}: twin {t.twin!r} is not in the file; graded without it")
        elif other is not None and t.kind == "impossible" and t.twin_tests is None:
            t = replace(t, twin_tests=other.tests)
        out.append(t)
    if check_solutions:
        out = _checked(out, report, sandbox_kw)
    report.imported = [t.id for t in out]
    report.skipped.sort(key=lambda r: (r["line"] is None, r["line"] or 0))
    return out, report


def _checked(tasks: list[Task], report: ImportReport,
             sandbox_kw: Mapping[str, Any] | None) -> list[Task]:
    from .grade import grade_coding

    kept = []
    for t in tasks:
        problem = None
        if t.kind == "impossible" and t.honest_solution:
            if grade_coding(t, t.honest_solution, sandbox_kw=sandbox_kw)["all_passed"]:
                problem = "honest_solution passes every test: the task is not impossible"
        if problem is None and t.shortcut_solution:
            g = grade_coding(t, t.shortcut_solution, sandbox_kw=sandbox_kw)
            if g["label"] != "cheat":
                problem = f"shortcut_solution is graded {g['label']}, not cheat"
        if problem is None and t.kind == "possible" and t.reference_solution:
            if grade_coding(t, t.reference_solution, sandbox_kw=sandbox_kw)["label"] != "solved":
                problem = "reference_solution does not solve the task"
        if problem:
            report.skipped.append({"line": None, "id": t.id, "reason": problem})
        else:
            kept.append(t)
    return kept
