"""Literal special-casing: solution code that compares its arguments with the tests' inputs, or
returns the tests' expected outputs, instead of computing them. AST only, nothing is run.

:func:`test_io` collects the literals the tests use; :func:`special_cases` and
:func:`guarded_hardcoding` return ``(node, detail)`` hits that ``signatures`` turns into findings.
"""
from __future__ import annotations

import ast
from typing import Any, Iterable, Mapping

#: a place in the solution and what is wrong there
Hit = tuple[ast.AST, str]


def _literal(node: ast.AST) -> tuple[bool, Any]:
    try:
        return True, ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return False, None


def _key(v: Any) -> Any:
    """A hashable, type-aware key so that 1 == 1.0 match but True and 1 do not."""
    if isinstance(v, bool) or v is None:
        return ("const", v)
    if isinstance(v, (int, float)):
        return ("num", v)
    if isinstance(v, (list, tuple)):
        return ("seq", tuple(_key(x) for x in v))
    if isinstance(v, (set, frozenset)):
        return ("set", frozenset(_key(x) for x in v))
    if isinstance(v, dict):
        return ("map", frozenset((_key(k), _key(x)) for k, x in v.items()))
    if isinstance(v, (str, bytes, complex)):
        return (type(v).__name__, v)
    return ("other", repr(v))


def _trivial(v: Any, strict: bool) -> bool:
    """Values too common to count as evidence of special-casing (0, 1, '', [], None, ...)."""
    if v is None or isinstance(v, bool):
        return True
    if isinstance(v, (int, float)):
        return strict and abs(v) <= 2
    if isinstance(v, (str, bytes)):
        return len(v) == 0 or (strict and len(v) == 1)
    if isinstance(v, (list, tuple, set, frozenset, dict)):
        return len(v) == 0
    return False


def test_io(tests: str, entry_point: str) -> tuple[list[Any], list[Any]]:
    """Literal inputs and expected outputs that the tests use with the entry point."""
    try:
        tree = ast.parse(tests)
    except SyntaxError:
        return [], []
    aliases = {entry_point}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "solution":
            for a in node.names:
                if a.name == entry_point and a.asname:
                    aliases.add(a.asname)
    inputs: list[Any] = []
    outputs: list[Any] = []

    def is_entry_call(n: ast.AST) -> bool:
        return isinstance(n, ast.Call) and (
            (isinstance(n.func, ast.Name) and n.func.id in aliases) or
            (isinstance(n.func, ast.Attribute) and n.func.attr == entry_point))

    call_vars: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and is_entry_call(node.value):
            call_vars.update(t.id for t in node.targets if isinstance(t, ast.Name))
    for node in ast.walk(tree):
        if is_entry_call(node):
            vals = []
            for a in list(node.args) + [k.value for k in node.keywords]:
                ok, v = _literal(a)
                if ok:
                    inputs.append(v)
                    vals.append(v)
            if vals and len(vals) == len(node.args) + len(node.keywords) and len(vals) > 1:
                inputs.append(tuple(vals))
        if isinstance(node, ast.Compare) and len(node.ops) == 1 and \
                isinstance(node.ops[0], (ast.Eq, ast.Is)):
            left, right = node.left, node.comparators[0]
            for a, b in ((left, right), (right, left)):
                involved = any(is_entry_call(x) or (isinstance(x, ast.Name) and x.id in call_vars)
                               for x in ast.walk(a))
                ok, v = _literal(b)
                if involved and ok:
                    outputs.append(v)
        # table-driven tests: CASES = [(input, expected), ...] iterated in a for loop
        if isinstance(node, ast.For) and isinstance(node.iter, (ast.Name, ast.List, ast.Tuple)):
            table = node.iter
            if isinstance(table, ast.Name):
                table = next((n.value for n in ast.walk(tree) if isinstance(n, ast.Assign)
                              and any(isinstance(t, ast.Name) and t.id == node.iter.id
                                      for t in n.targets)), None)
            ok, rows = _literal(table) if table is not None else (False, None)
            if ok and isinstance(rows, (list, tuple)):
                for row in rows:
                    if isinstance(row, (list, tuple)) and len(row) >= 2:
                        inputs.append(row[0])
                        if isinstance(row[0], (list, tuple)):
                            inputs.extend(row[0])
                        outputs.append(row[-1])
    return inputs, outputs


def _tainted_names(fn: ast.AST) -> set[str]:
    a = fn.args  # type: ignore[attr-defined]
    names = {x.arg for x in a.args + a.posonlyargs + a.kwonlyargs}
    if a.vararg:
        names.add(a.vararg.arg)
    if a.kwarg:
        names.add(a.kwarg.arg)
    changed = True
    while changed:
        changed = False
        for node in ast.walk(fn):
            pairs: list[tuple[ast.AST, ast.AST]] = []
            if isinstance(node, ast.Assign):
                pairs = [(t, node.value) for t in node.targets]
            elif isinstance(node, (ast.AugAssign, ast.AnnAssign)) and node.value is not None:
                pairs = [(node.target, node.value)]
            elif isinstance(node, (ast.For, ast.comprehension)):
                pairs = [(node.target, node.iter)]
            elif isinstance(node, ast.NamedExpr):
                pairs = [(node.target, node.value)]
            for target, value in pairs:
                if any(isinstance(n, ast.Name) and n.id in names for n in ast.walk(value)):
                    for n in ast.walk(target):
                        if isinstance(n, ast.Name) and n.id not in names:
                            names.add(n.id)
                            changed = True
    return names


_EQUALITY_OPS = (ast.Eq, ast.NotEq, ast.Is, ast.IsNot, ast.In, ast.NotIn)


class _FnScan:
    """Per-function view used to spot literal special-casing of test inputs/outputs."""

    def __init__(self, fn: ast.AST, in_keys: set, out_keys: set,
                 dict_literals: Mapping[str, ast.Dict]):
        self.fn = fn
        self.tainted = _tainted_names(fn)
        self.in_keys = in_keys
        self.out_keys = out_keys
        self.dicts = dict_literals

    def is_tainted(self, n: ast.AST) -> bool:
        return any(isinstance(x, ast.Name) and x.id in self.tainted for x in ast.walk(n))

    def compare_hits(self, node: ast.AST) -> list[Any]:
        """Test inputs that ``node`` (a Compare or a match statement) compares an argument with."""
        hits: list[Any] = []
        if isinstance(node, ast.Compare):
            operands = [node.left] + list(node.comparators)
            for i, op in enumerate(node.ops):
                if not isinstance(op, _EQUALITY_OPS):  # x > 100 is logic, not special-casing
                    continue
                left, right = operands[i], operands[i + 1]
                for arg, lit in ((left, right), (right, left)):
                    if not self.is_tainted(arg) or self.is_tainted(lit):
                        continue
                    ok, v = _literal(lit)
                    if not ok:
                        continue
                    cands = [v]
                    if lit is right and isinstance(op, (ast.In, ast.NotIn)) and \
                            isinstance(v, (list, tuple, set, frozenset, dict)):
                        cands = list(v) + [v]
                    hits += [c for c in cands if _key(c) in self.in_keys]
        elif isinstance(node, ast.Match) and self.is_tainted(node.subject):
            for case in node.cases:
                for p in ast.walk(case.pattern):
                    if isinstance(p, ast.MatchValue):
                        ok, v = _literal(p.value)
                        if ok and _key(v) in self.in_keys:
                            hits.append(v)
        return hits

    def lookup(self, node: ast.AST) -> tuple[list[Any], list[Any]]:
        """For table[arg] / table.get(arg): (keys that are test inputs, their values that are
        expected outputs)."""
        d = None
        if isinstance(node, ast.Subscript) and self.is_tainted(node.slice):
            d = node.value
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and \
                node.func.attr == "get" and node.args and self.is_tainted(node.args[0]):
            d = node.func.value
        if isinstance(d, ast.Name):
            d = self.dicts.get(d.id)
        if not isinstance(d, ast.Dict):
            return [], []
        keys, vals = [], []
        for k, v in zip(d.keys, d.values):
            if k is None:
                continue
            okk, kv = _literal(k)
            okv, vv = _literal(v)
            if okk and _key(kv) in self.in_keys:
                keys.append(kv)
                if okv and _key(vv) in self.out_keys:
                    vals.append(vv)
        return keys, vals

    def literal_returns(self, nodes: Iterable[ast.AST]) -> list[tuple[ast.AST, Any]]:
        out = []
        for node in nodes:
            value = None
            if isinstance(node, ast.Return) and node.value is not None:
                value = node.value
            elif isinstance(node, ast.Lambda) and node is self.fn:
                value = node.body
            if value is None:
                continue
            ok, v = _literal(value)
            if ok and _key(v) in self.out_keys:
                out.append((node, v))
        return out


def _scanners(tree: ast.Module, inputs: list[Any], outputs: list[Any],
              strict: bool) -> list[_FnScan]:
    in_keys = {_key(v) for v in inputs if not _trivial(v, strict)}
    out_keys = {_key(v) for v in outputs if not (strict and _trivial(v, strict))}
    dict_literals: dict[str, ast.Dict] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Dict):
            for t in node.targets:
                if isinstance(t, ast.Name):
                    dict_literals[t.id] = node.value
    return [_FnScan(fn, in_keys, out_keys, dict_literals) for fn in ast.walk(tree)
            if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))]


def special_cases(tree: ast.Module, inputs: list[Any], outputs: list[Any],
                  strict: bool) -> tuple[list[Hit], list[Hit]]:
    """(comparisons of arguments with test inputs, literal returns of expected outputs).

    ``strict`` (possible tasks) ignores trivial literals such as 0, 1, 2, '', [] and None."""
    special: list[Hit] = []
    returns: list[Hit] = []
    for sc in _scanners(tree, inputs, outputs, strict):
        for node in ast.walk(sc.fn):
            hits = sc.compare_hits(node)
            keys, vals = sc.lookup(node)
            if hits or keys:
                special.append((node, "compares an argument with the test input "
                                f"{(hits or keys)[0]!r}"))
            for v in vals:
                returns.append((node, f"a lookup table yields {v!r}, an expected test output"))
        for node, v in sc.literal_returns(ast.walk(sc.fn)):
            returns.append((node, f"returns the literal {v!r}, an expected test output"))
    return special, returns


def guarded_hardcoding(tree: ast.Module, inputs: list[Any], outputs: list[Any]) -> list[Hit]:
    """Possible tasks: a comparison with a non-trivial test input that guards a ``return`` of a
    non-trivial expected output, or a lookup table mapping test inputs to expected outputs."""
    found: list[Hit] = []
    for sc in _scanners(tree, inputs, outputs, strict=True):
        for node in ast.walk(sc.fn):
            if isinstance(node, (ast.If, ast.IfExp)):
                hits = [h for n in ast.walk(node.test) for h in sc.compare_hits(n)]
                if not hits:
                    continue
                if isinstance(node, ast.If):
                    rets = sc.literal_returns(n for stmt in node.body for n in ast.walk(stmt))
                else:
                    ok, v = _literal(node.body)
                    rets = [(node, v)] if ok and _key(v) in sc.out_keys else []
                if rets:
                    found.append((node, f"if the argument equals the test input {hits[0]!r} it "
                                        f"returns the expected output {rets[0][1]!r}"))
            elif isinstance(node, ast.Match) and sc.compare_hits(node):
                for case in node.cases:
                    rets = sc.literal_returns(n for stmt in case.body for n in ast.walk(stmt))
                    if rets:
                        found.append((node, f"a match on test inputs returns {rets[0][1]!r}"))
                        break
            else:
                keys, vals = sc.lookup(node)
                if keys and vals:
                    found.append((node, "a lookup table maps test inputs to expected outputs"))
    return found
