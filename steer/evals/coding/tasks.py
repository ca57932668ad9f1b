"""Coding tasks: the :class:`Task` record, and loading and validating task files.

A task file (YAML or JSON) holds one task or a list of them; each task has a ``twin`` of the
other kind (see docs/evals.md for the fields). :func:`load_tasks` rejects a malformed file with a
one-line :class:`TaskValidationError` naming the file, the task and the field.
"""
from __future__ import annotations

import ast
import json
import keyword
import re
import sys
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Iterable, Mapping

import yaml

from ...errors import SteerError
from ..sandbox import collect_test_names

KINDS = ("impossible", "possible")
CATEGORIES = ("conflicting_tests", "one_off", "impossible_performance", "impossible_spec",
              "unguessable_expected", "todo_stub")
CHEAT_SUBTYPES = ("passed_impossible_tests", "special_cased_inputs", "hardcoded_outputs",
                  "per_call_state", "modified_tests", "reads_tests", "early_exit", "monkeypatch",
                  "eq_override")
PACKAGED_TASK_DIR = Path(__file__).resolve().parent.parent / "data" / "coding"


class TaskValidationError(SteerError):
    """A task file is malformed. The message is one line naming the file and the field."""


@dataclass(frozen=True)
class Task:
    """One coding task. ``kind`` is "possible" (honestly solvable) or "impossible" (its tests
    cannot all pass without cheating); each task has a ``twin`` of the other kind."""

    id: str
    kind: str
    twin: str
    category: str
    entry_point: str
    prompt: str
    tests: str
    starter_code: str | None = None
    reference_solution: str | None = None
    honest_solution: str | None = None
    shortcut_solution: str | None = None
    shortcut_subtype: str | None = None
    timeout_s: float = 10.0
    notes: str = ""
    source: str | None = None
    twin_tests: str | None = None  # the twin's tests (what the spec says), when it was loaded

    @property
    def test_names(self) -> list[str]:
        return collect_test_names(self.tests)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_REQUIRED = ("id", "kind", "twin", "category", "entry_point", "prompt", "tests")
_OPTIONAL = ("starter_code", "reference_solution", "honest_solution", "shortcut_solution",
             "shortcut_subtype", "timeout_s", "notes")
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")


def _fail(where: str, task_id: Any, field_name: str | None, msg: str) -> TaskValidationError:
    who = f"task {task_id!r}" if task_id not in (None, "") else "task"
    fld = f" field {field_name!r}:" if field_name else ":"
    text = f"{where}: {who}{fld} {msg}"
    return TaskValidationError(" ".join(text.split()))


def defines_name(tree: ast.Module, name: str) -> bool:
    """Is ``name`` bound at module level (def, class, assignment, import)?"""
    def bound_in(stmts: Iterable[ast.stmt]) -> bool:
        for node in stmts:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                if node.name == name:
                    return True
            elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for t in targets:
                    for n in ast.walk(t):
                        if isinstance(n, ast.Name) and n.id == name:
                            return True
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                for a in node.names:
                    if (a.asname or a.name.split(".")[0]) == name:
                        return True
            elif isinstance(node, (ast.If, ast.Try, ast.With)):
                blocks = [getattr(node, "body", []), getattr(node, "orelse", []),
                          getattr(node, "finalbody", [])]
                blocks += [h.body for h in getattr(node, "handlers", [])]
                if any(bound_in(b) for b in blocks):
                    return True
        return False
    return bound_in(tree.body)


def _parse(src: str, where: str, tid: str, field_name: str) -> ast.Module:
    try:
        return ast.parse(src)
    except SyntaxError as e:
        raise _fail(where, tid, field_name, f"does not parse: {e.msg} (line {e.lineno})") from None


def _validate_tests(src: str, entry_point: str, where: str, tid: str) -> None:
    tree = _parse(src, where, tid, "tests")
    imports_entry = False
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "solution" and not node.level:
            if any(a.name == entry_point for a in node.names):
                imports_entry = True
        if isinstance(node, ast.Import):
            mods = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            mods = [node.module or ""] if not node.level else ["."]
        else:
            continue
        for m in mods:
            top = m.split(".")[0]
            if top != "solution" and top not in sys.stdlib_module_names:
                raise _fail(where, tid, "tests",
                            f"imports {m!r}; tests may import only the solution and the "
                            "standard library (the sandbox has no site-packages)")
    if not imports_entry:
        raise _fail(where, tid, "tests",
                    f"must import the entry point with 'from solution import {entry_point}'")
    names = [n.name for n in tree.body if isinstance(n, ast.FunctionDef)
             and n.name.startswith("test")]
    if not names:
        raise _fail(where, tid, "tests", "defines no top-level 'def test_*():' function")
    for n in tree.body:
        if isinstance(n, ast.AsyncFunctionDef) and n.name.startswith("test"):
            raise _fail(where, tid, "tests", f"{n.name} is async; tests must be plain functions")
        if isinstance(n, ast.FunctionDef) and n.name.startswith("test"):
            a = n.args
            if a.args or a.posonlyargs or a.kwonlyargs or a.vararg or a.kwarg:
                raise _fail(where, tid, "tests", f"{n.name} takes parameters (no fixtures)")
            if n.decorator_list:
                raise _fail(where, tid, "tests", f"{n.name} is decorated; use plain functions")
            if any(isinstance(x, (ast.Yield, ast.YieldFrom)) for x in ast.walk(n)):
                raise _fail(where, tid, "tests", f"{n.name} is a generator")


def _validate_code(src: Any, entry_point: str, where: str, tid: str, field_name: str) -> None:
    if not isinstance(src, str) or not src.strip():
        raise _fail(where, tid, field_name, "must be a non-empty string of Python code")
    if not defines_name(_parse(src, where, tid, field_name), entry_point):
        raise _fail(where, tid, field_name, f"does not define the entry point {entry_point!r}")


def _task_from_mapping(rec: Any, where: str, *, need_twin: bool = True) -> Task:
    if not isinstance(rec, Mapping):
        raise _fail(where, None, None, f"each task must be a mapping, got {type(rec).__name__}")
    tid = rec.get("id")
    unknown = sorted(set(map(str, rec)) - set(_REQUIRED) - set(_OPTIONAL))
    if unknown:
        raise _fail(where, tid, unknown[0], "unknown field (allowed: "
                    + ", ".join(_REQUIRED + _OPTIONAL) + ")")
    for name in _REQUIRED:
        if name == "twin" and not need_twin and not rec.get("twin"):
            continue
        if name not in rec or rec[name] is None:
            raise _fail(where, tid, name, "missing required field")
        if not isinstance(rec[name], str) or not rec[name].strip():
            raise _fail(where, tid, name, "must be a non-empty string")
    if not _ID_RE.match(rec["id"]):
        raise _fail(where, tid, "id", "must match [A-Za-z0-9][A-Za-z0-9_.-]*")
    if rec["kind"] not in KINDS:
        raise _fail(where, tid, "kind", f"must be one of {KINDS}, got {rec['kind']!r}")
    if rec["category"] not in CATEGORIES:
        raise _fail(where, tid, "category",
                    f"must be one of {CATEGORIES}, got {rec['category']!r}")
    ep = rec["entry_point"]
    if not ep.isidentifier() or keyword.iskeyword(ep):
        raise _fail(where, tid, "entry_point", f"not a Python identifier: {ep!r}")
    if rec.get("twin") == rec["id"]:
        raise _fail(where, tid, "twin", "a task cannot be its own twin")
    for name in ("starter_code", "notes", "shortcut_subtype"):
        if rec.get(name) is not None and not isinstance(rec[name], str):
            raise _fail(where, tid, name, "must be a string")
    timeout = rec.get("timeout_s", 10.0)
    if timeout is None:
        timeout = 10.0
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0 \
            or timeout > 600:
        raise _fail(where, tid, "timeout_s", f"must be a number in (0, 600], got {timeout!r}")
    _validate_tests(rec["tests"], ep, where, tid)
    if rec["kind"] == "possible":
        _validate_code(rec.get("reference_solution"), ep, where, tid, "reference_solution")
        for name in ("honest_solution", "shortcut_solution"):
            if rec.get(name) is not None:
                _validate_code(rec[name], ep, where, tid, name)
        if rec.get("shortcut_subtype") is not None and \
                rec["shortcut_subtype"] not in CHEAT_SUBTYPES:
            raise _fail(where, tid, "shortcut_subtype", f"must be one of {CHEAT_SUBTYPES}")
    else:
        # optional (a user's own tasks rarely come with them); checked when present
        for name in ("honest_solution", "shortcut_solution", "reference_solution"):
            if rec.get(name) is not None:
                _validate_code(rec[name], ep, where, tid, name)
        sub = rec.get("shortcut_subtype")
        if sub is None and rec.get("shortcut_solution") is not None:
            raise _fail(where, tid, "shortcut_subtype", "needed with a shortcut_solution")
        if sub is not None and sub not in CHEAT_SUBTYPES:
            raise _fail(where, tid, "shortcut_subtype",
                        f"must be one of {CHEAT_SUBTYPES}, got {sub!r}")
    if rec.get("starter_code") is not None and not rec["starter_code"].strip():
        raise _fail(where, tid, "starter_code", "is empty (omit it instead)")
    return Task(
        id=rec["id"], kind=rec["kind"], twin=rec.get("twin") or "", category=rec["category"],
        entry_point=ep, prompt=rec["prompt"], tests=rec["tests"],
        starter_code=rec.get("starter_code"), reference_solution=rec.get("reference_solution"),
        honest_solution=rec.get("honest_solution"), shortcut_solution=rec.get("shortcut_solution"),
        shortcut_subtype=rec.get("shortcut_subtype"), timeout_s=float(timeout),
        notes=rec.get("notes") or "", source=where)


def _read_task_file(path: Path) -> list[Task]:
    where = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise _fail(where, None, None, f"cannot read: {e.strerror or e}") from None
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise _fail(where, None, None, f"is not valid {path.suffix[1:].upper()}: {first}") from None
    if isinstance(data, Mapping):
        data = [data]
    if not isinstance(data, list) or not data:
        raise _fail(where, None, None, "must hold a task mapping or a non-empty list of them")
    return [_task_from_mapping(rec, where) for rec in data]


def load_tasks(path: str | Path | None = None, *, check_twins: bool = True) -> list[Task]:
    """Load and validate tasks.

    ``path``: None (the packaged ``steer/evals/data/coding`` directory), a directory (every
    ``*.yaml``/``*.yml``/``*.json`` directly inside it, in sorted order) or one file (a list of
    tasks or a single mapping). With ``check_twins`` every task's ``twin`` must be in the loaded
    set, point back at it and be of the other kind. Raises :class:`TaskValidationError`.
    """
    root = Path(path) if path is not None else PACKAGED_TASK_DIR
    if root.is_dir():
        files = sorted(p for p in root.iterdir()
                       if p.is_file() and p.suffix in (".yaml", ".yml", ".json"))
    elif root.is_file():
        files = [root]
    elif path is None:
        return []
    else:
        raise TaskValidationError(f"{root}: no such file or directory")
    tasks: list[Task] = []
    seen: dict[str, str] = {}
    for f in files:
        for t in _read_task_file(f):
            if t.id in seen:
                raise _fail(str(f), t.id, "id", f"duplicate id (also in {seen[t.id]})")
            seen[t.id] = str(f)
            tasks.append(t)
    tasks = attach_twin_tests(tasks)
    if check_twins:
        by_id = {t.id: t for t in tasks}
        for t in tasks:
            other = by_id.get(t.twin)
            if other is None:
                raise _fail(t.source or "?", t.id, "twin",
                            f"twin {t.twin!r} does not exist in the loaded set")
            if other.twin != t.id:
                raise _fail(t.source or "?", t.id, "twin",
                            f"twin {t.twin!r} names {other.twin!r} as its twin, not {t.id!r}")
            if other.kind == t.kind:
                raise _fail(t.source or "?", t.id, "twin",
                            f"twin {t.twin!r} has the same kind ({t.kind}); twins pair an "
                            "impossible task with a possible one")
    return tasks


def attach_twin_tests(tasks: list[Task]) -> list[Task]:
    """The tasks, each impossible one given its possible twin's tests (``twin_tests``) when the
    twin is among them: the grader reads the spec's expected values from them."""
    by_id = {t.id: t for t in tasks}
    out = []
    for t in tasks:
        other = by_id.get(t.twin) if t.twin else None
        if t.kind == "impossible" and other is not None and other.kind == "possible" and \
                t.twin_tests is None:
            t = replace(t, twin_tests=other.tests)
        out.append(t)
    return out


def coerce_task(task: Task | str | Path, task_id: str | None) -> Task:
    """``task`` itself, or the task a file holds (the one with ``task_id`` if it holds several)."""
    if isinstance(task, Task):
        if task_id is not None and task_id != task.id:
            raise SteerError(f"task_id {task_id!r} does not match task {task.id!r}")
        return task
    if not isinstance(task, (str, Path)):
        raise SteerError(f"task must be a Task or a path to a task file, got {type(task).__name__}")
    tasks = load_tasks(task, check_twins=False)
    if task_id is not None:
        for t in tasks:
            if t.id == task_id:
                return t
        raise SteerError(f"{task}: no task with id {task_id!r}")
    if len(tasks) != 1:
        raise SteerError(f"{task}: holds {len(tasks)} tasks; pass task_id= to pick one")
    return tasks[0]

