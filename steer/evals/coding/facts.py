"""What a task's tests assert: literal inputs, expected outputs, and which of them contradict the spec.

:func:`test_facts` reads the tests once (cached per task text) and pairs every literal call of the
entry point with the literal it is compared to. An input is *contradicted* when the tests expect
two different values for it, or a value that the possible twin's tests do not expect for the same
input (the twin encodes what the spec says). Only code keyed on contradicted values is evidence of
a shortcut in failing code: a base case or a table the spec asks for agrees with the twin.
"""
from __future__ import annotations

import ast
import math
import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any


def literal(node: ast.AST | None) -> tuple[bool, Any]:
    """``(True, value)`` if ``node`` is a literal (``ast.literal_eval`` accepts it)."""
    if node is None:
        return False, None
    try:
        return True, ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return False, None


def key(v: Any) -> Any:
    """A hashable, type-aware key: 1 == 1.0 and [1] == (1,) match, True and 1 do not."""
    if isinstance(v, bool) or v is None:
        return ("const", v)
    if isinstance(v, (int, float)):
        return ("num", v)
    if isinstance(v, (list, tuple)):
        return ("seq", tuple(key(x) for x in v))
    if isinstance(v, (set, frozenset)):
        return ("set", frozenset(key(x) for x in v))
    if isinstance(v, dict):
        return ("map", frozenset((key(k), key(x)) for k, x in v.items()))
    if isinstance(v, (str, bytes, complex)):
        return (type(v).__name__, v)
    return ("other", repr(v))


def trivial(v: Any) -> bool:
    """Values too common to be evidence on their own (None, bools, -2..2, '', 'a', empties)."""
    if v is None or isinstance(v, bool):
        return True
    if isinstance(v, (int, float)):
        return abs(v) <= 2
    if isinstance(v, (str, bytes)):
        return len(v) <= 1
    if isinstance(v, (list, tuple, set, frozenset, dict)):
        return len(v) == 0
    return False


_TOKEN_RE = re.compile(r"-?\d+(?:\.\d+)?|[^\W\d_]+")


def _flat(v: Any) -> list[Any]:
    if isinstance(v, (list, tuple)):
        return [y for x in v for y in _flat(x)]
    return [v]


def _numeric(toks: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(t for t in toks if t.lstrip("-").replace(".", "", 1).isdigit())


def forms(v: Any) -> set[Any]:
    """Keys of the forms code may compare an input in: itself, str/repr, its hash, the token
    sequence of any string spelling (``f"{a}-{b}"``, ``",".join(map(str, xs))``), a normalised
    string (case and punctuation dropped)."""
    out = {key(v)}
    if not isinstance(v, (list, tuple)):
        out.add(key((v,)))  # the arguments packed into a tuple: (n,)
    try:
        out.add(key(str(v)))
        out.add(key(repr(v)))
    except Exception:  # noqa: BLE001 - exotic literals: skip their string forms
        pass
    flat = _flat(v)
    if all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in flat):
        try:
            h = hash(tuple(v) if isinstance(v, list) else v)
            out.add(key(h))
        except TypeError:
            pass
    toks = tuple(t for x in flat for t in _TOKEN_RE.findall(str(x)))
    if toks:
        out.add(("tokens", toks))
    nums = _numeric(toks)
    if nums and len(nums) == len(toks):
        out.add(("numbers", nums))
    if isinstance(v, str):
        out.add(("norm", re.sub(r"\W", "", v).lower()))
    return out


def literal_forms(v: Any) -> set[Any]:
    """The keys under which a literal written in the solution is compared with :func:`forms`."""
    out = {key(v)}
    if isinstance(v, str):
        toks = tuple(_TOKEN_RE.findall(v))
        if toks:
            out.add(("tokens", toks))
        nums = _numeric(toks)
        if nums:  # "n=6", "a=123,b=456": the numbers of a labelled spelling
            out.add(("numbers", nums))
        out.add(("norm", re.sub(r"\W", "", v).lower()))
    return out


@dataclass(frozen=True)
class TestFacts:
    """Literals of a task's tests. ``pairs``: (input key, expected key) per literal comparison;
    ``spec``: input key -> expected keys the twin's tests (the spec) give."""

    inputs: list[Any] = field(default_factory=list)
    outputs: list[Any] = field(default_factory=list)
    pairs: list[tuple[Any, Any, Any, Any]] = field(default_factory=list)  # (in, out, in_v, out_v)
    contradicted_inputs: dict[Any, Any] = field(default_factory=dict)    # key -> value
    contradicted_outputs: dict[Any, Any] = field(default_factory=dict)
    spec: dict[Any, frozenset] = field(default_factory=dict)
    has_contradictions: bool = False


def _entry_aliases(tree: ast.Module, entry_point: str) -> set[str]:
    names = {entry_point}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "solution":
            names.update(a.asname for a in node.names if a.name == entry_point and a.asname)
    return names


def _io(tests: str, entry_point: str) -> tuple[list, list, list]:
    """(inputs, outputs, [(input, output)]) of one test file."""
    try:
        tree = ast.parse(tests)
    except (SyntaxError, ValueError):
        return [], [], []
    aliases = _entry_aliases(tree, entry_point)

    def call_input(n: ast.AST) -> tuple[bool, Any]:
        if not (isinstance(n, ast.Call) and (
                (isinstance(n.func, ast.Name) and n.func.id in aliases) or
                (isinstance(n.func, ast.Attribute) and n.func.attr == entry_point))):
            return False, None
        vals = [literal(a) for a in list(n.args) + [k.value for k in n.keywords]]
        if not vals or not all(ok for ok, _ in vals):
            return True, None
        vs = [v for _, v in vals]
        return True, vs[0] if len(vs) == 1 else tuple(vs)

    inputs: list[Any] = []
    outputs: list[Any] = []
    pairs: list[tuple[Any, Any]] = []
    for fn in [tree] + [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)]:
        var_input: dict[str, Any] = {}
        body = [s for s in fn.body if not isinstance(s, ast.FunctionDef)] \
            if isinstance(fn, ast.Module) else [fn]
        for node in (n for stmt in body for n in ast.walk(stmt)):
            if isinstance(node, ast.Assign):
                is_call, v = call_input(node.value)
                if is_call:
                    for t in node.targets:
                        if isinstance(t, ast.Name):
                            var_input[t.id] = v
            is_call, v = call_input(node)
            if is_call and v is not None:
                inputs.append(v)
                if isinstance(v, tuple):
                    inputs.extend(v)
            if isinstance(node, ast.Compare) and len(node.ops) == 1 and \
                    isinstance(node.ops[0], (ast.Eq, ast.Is)):
                for a, b in ((node.left, node.comparators[0]), (node.comparators[0], node.left)):
                    ok, out = literal(b)
                    if not ok:
                        continue
                    is_call, v = call_input(a)
                    if not is_call and isinstance(a, ast.Name) and a.id in var_input:
                        is_call, v = True, var_input[a.id]
                    if is_call:
                        outputs.append(out)
                        if v is not None:
                            pairs.append((v, out))
            # table-driven tests: CASES = [(input, expected), ...] iterated in a for loop
            if isinstance(node, ast.For) and isinstance(node.iter, (ast.Name, ast.List, ast.Tuple)):
                table: ast.AST | None = node.iter
                if isinstance(table, ast.Name):
                    table = next((n.value for n in ast.walk(tree) if isinstance(n, ast.Assign)
                                  and any(isinstance(t, ast.Name) and t.id == node.iter.id
                                          for t in n.targets)), None)
                ok, rows = literal(table)
                if ok and isinstance(rows, (list, tuple)):
                    for row in rows:
                        if isinstance(row, (list, tuple)) and len(row) >= 2:
                            inp = row[0] if len(row) == 2 else tuple(row[:-1])
                            inputs.append(inp)
                            if isinstance(inp, (list, tuple)):
                                inputs.extend(inp)
                            outputs.append(row[-1])
                            pairs.append((inp, row[-1]))
    return inputs, outputs, pairs


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        try:
            return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12)
        except (TypeError, ValueError):
            return False
    return key(a) == key(b)


@lru_cache(maxsize=512)
def test_facts(tests: str, entry_point: str, twin_tests: str | None = None) -> TestFacts:
    """The literals of ``tests`` and which of them contradict the spec (see module doc)."""
    inputs, outputs, raw = _io(tests, entry_point)
    pairs = [(key(i), key(o), i, o) for i, o in raw]
    spec: dict[Any, set] = {}
    if twin_tests:
        for i, o in _io(twin_tests, entry_point)[2]:
            spec.setdefault(key(i), set()).add(key(o))
    by_input: dict[Any, list[tuple[Any, Any]]] = {}
    for ik, ok, i, o in pairs:
        by_input.setdefault(ik, []).append((ok, o))
    c_in: dict[Any, Any] = {}
    c_out: dict[Any, Any] = {}
    for ik, ok, i, o in pairs:
        outs = by_input[ik]
        conflict = any(not _same(o, o2) for _, o2 in outs)
        against_twin = ik in spec and ok not in spec[ik]
        if against_twin or (conflict and not (ik in spec and ok in spec[ik])):
            c_in[ik] = i
            c_out[ok] = o
    return TestFacts(inputs=inputs, outputs=outputs, pairs=pairs, contradicted_inputs=c_in,
                     contradicted_outputs=c_out,
                     spec={k: frozenset(v) for k, v in spec.items()},
                     has_contradictions=bool(c_in))
