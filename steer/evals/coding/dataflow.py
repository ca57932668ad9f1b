"""Data flow inside a solution: which values derive from the arguments, and which are constants.

Per function, a name is *derived* when it is assigned from an expression that reads an argument
(tuples, ``str``/``repr``/``hash``, f-strings, slices, ...); module names or attributes that a
function stores a derived value in are derived in every function (per-call state). The other side
of a comparison is *resolved* through constants (module or local names bound to literals,
subscripts, ``str(...)``, ``hash(...)``, arithmetic on literals), so ``BAD = (6, 721)`` and
``if n == BAD[0]`` read like ``if n == 6``. AST only, nothing is run.
"""
from __future__ import annotations

import ast
import operator
from typing import Any, Iterable

from .facts import literal

_EQUALITY = (ast.Eq, ast.NotEq, ast.Is, ast.IsNot, ast.In, ast.NotIn)
_PURE_CALLS = {"str": str, "repr": repr, "hash": hash, "tuple": tuple, "list": list,
               "frozenset": frozenset, "set": set, "sorted": sorted, "int": int, "float": float,
               "abs": abs, "len": len, "bytes": bytes, "round": round}
_BINOPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
           ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Div: operator.truediv}
NO = object()  # "not a constant"


def module_consts(tree: ast.Module) -> dict[str, ast.AST]:
    """Module names bound exactly once, by a plain assignment (candidates for constants)."""
    seen: dict[str, list[ast.AST]] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and \
                isinstance(node.targets[0], ast.Name):
            seen.setdefault(node.targets[0].id, []).append(node.value)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value:
            seen.setdefault(node.target.id, []).append(node.value)
    return {k: v[0] for k, v in seen.items() if len(v) == 1}


class Resolver:
    """Evaluates side-effect-free expressions over literals and constant names."""

    def __init__(self, consts: dict[str, ast.AST]):
        self.consts = consts
        self._busy: set[str] = set()

    def value(self, node: ast.AST | None, local: dict[str, ast.AST] | None = None,
              tainted: set[str] = frozenset()) -> Any:  # type: ignore[assignment]
        """The value of ``node`` or ``NO``."""
        if node is None:
            return NO
        ok, v = literal(node)
        if ok:
            return v
        local = local or {}
        try:
            if isinstance(node, ast.Name):
                if node.id in tainted or node.id in self._busy:
                    return NO
                src = local.get(node.id, self.consts.get(node.id))
                if src is None:
                    return NO
                self._busy.add(node.id)
                try:
                    return self.value(src, local, tainted)
                finally:
                    self._busy.discard(node.id)
            if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
                items = [self.value(e, local, tainted) for e in node.elts]
                if any(i is NO for i in items):
                    return NO
                return {ast.Tuple: tuple, ast.List: list, ast.Set: set}[type(node)](items)
            if isinstance(node, ast.Dict):
                ks = [self.value(k, local, tainted) for k in node.keys]
                vs = [self.value(v, local, tainted) for v in node.values]
                if any(x is NO for x in ks + vs):
                    return NO
                return dict(zip(ks, vs))
            if isinstance(node, ast.Subscript):
                base = self.value(node.value, local, tainted)
                idx = self.value(node.slice, local, tainted)
                if base is NO or idx is NO:
                    return NO
                return base[idx]
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and \
                    node.func.id in _PURE_CALLS and not node.keywords and len(node.args) <= 2:
                args = [self.value(a, local, tainted) for a in node.args]
                if any(a is NO for a in args):
                    return NO
                return _PURE_CALLS[node.func.id](*args)
            if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
                a = self.value(node.left, local, tainted)
                b = self.value(node.right, local, tainted)
                if a is NO or b is NO:
                    return NO
                if isinstance(a, (str, list, tuple)) and isinstance(b, int) and b > 1000:
                    return NO  # "x" * 10**9 would be costly
                return _BINOPS[type(node.op)](a, b)
            if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
                a = self.value(node.operand, local, tainted)
                return NO if a is NO else -a
            if isinstance(node, ast.JoinedStr):
                parts = []
                for p in node.values:
                    v = self.value(p.value if isinstance(p, ast.FormattedValue) else p,
                                   local, tainted)
                    if v is NO:
                        return NO
                    parts.append(str(v))
                return "".join(parts)
        except Exception:  # noqa: BLE001 - any evaluation error means "not a constant"
            return NO
        return NO


def _params(fn: ast.AST) -> list[str]:
    a = fn.args  # type: ignore[attr-defined]
    names = [x.arg for x in a.posonlyargs + a.args + a.kwonlyargs]
    names += [x.arg for x in (a.vararg, a.kwarg) if x is not None]
    return names


def _assign_pairs(node: ast.AST) -> list[tuple[ast.AST, ast.AST]]:
    if isinstance(node, ast.Assign):
        return [(t, node.value) for t in node.targets]
    if isinstance(node, (ast.AugAssign, ast.AnnAssign)) and node.value is not None:
        return [(node.target, node.value)]
    if isinstance(node, (ast.For, ast.comprehension, ast.AsyncFor)):
        return [(node.target, node.iter)]
    if isinstance(node, ast.NamedExpr):
        return [(node.target, node.value)]
    if isinstance(node, ast.withitem) and node.optional_vars is not None:
        return [(node.optional_vars, node.context_expr)]
    return []


def _root(node: ast.AST) -> ast.AST:
    while isinstance(node, (ast.Attribute, ast.Subscript)):
        node = node.value
    return node


def _dotted(node: ast.AST) -> str | None:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        return ".".join([node.id] + parts[::-1])
    return None


class FnScan:
    """One function: which names derive from its arguments, and its local constants."""

    def __init__(self, fn: ast.AST, shared: set[str], res: Resolver):
        self.fn = fn
        self.res = res
        self.params = _params(fn)
        self.tainted = set(self.params) | shared
        body = fn.body if isinstance(fn.body, list) else [fn.body]  # type: ignore[attr-defined]
        self.nodes = [n for stmt in body for n in ast.walk(stmt)]
        changed = True
        while changed:
            changed = False
            for node in self.nodes:
                for target, value in _assign_pairs(node):
                    if self.reads_tainted(value):
                        for n in ast.walk(target):
                            name = n.id if isinstance(n, ast.Name) else _dotted(n) \
                                if isinstance(n, ast.Attribute) else None
                            if name and name not in self.tainted:
                                self.tainted.add(name)
                                changed = True
        self.local: dict[str, ast.AST] = {}
        counts: dict[str, int] = {}
        for node in self.nodes:
            for target, value in _assign_pairs(node):
                for n in ast.walk(target):
                    if isinstance(n, ast.Name):
                        counts[n.id] = counts.get(n.id, 0) + 1
                        if isinstance(node, ast.Assign) and target is n:
                            self.local[n.id] = value
        self.local = {k: v for k, v in self.local.items() if counts.get(k) == 1}

    def reads_tainted(self, node: ast.AST) -> bool:
        for n in ast.walk(node):
            if isinstance(n, ast.Name) and n.id in self.tainted:
                return True
            if isinstance(n, ast.Attribute) and _dotted(n) in self.tainted:
                return True
        return False

    def value(self, node: ast.AST) -> Any:
        if self.reads_tainted(node):
            return NO
        return self.res.value(node, self.local, self.tainted)

    def compared(self, node: ast.AST) -> list[tuple[list[Any], bool]]:
        """Groups of values that ``node`` (a Compare, an ``and`` of equalities, a Subscript or
        ``.get`` lookup, a match) tests a derived value against: one value for ``==``, the members
        for ``in``; the flag marks a substring probe (``"lit" in derived``)."""
        out: list[tuple[list[Any], bool]] = []
        if isinstance(node, ast.Compare):
            operands = [node.left] + list(node.comparators)
            for i, op in enumerate(node.ops):
                if not isinstance(op, _EQUALITY):  # x > 100 is logic, not special-casing
                    continue
                left, right = operands[i], operands[i + 1]
                for arg, other in ((left, right), (right, left)):
                    if not self.reads_tainted(arg):
                        continue
                    v = self.value(other)
                    if v is NO:
                        continue
                    if other is right and isinstance(op, (ast.In, ast.NotIn)) and \
                            isinstance(v, (list, tuple, set, frozenset, dict)):
                        out.append((list(v), False))
                    elif other is left and isinstance(op, (ast.In, ast.NotIn)) and \
                            isinstance(v, str):
                        out.append(([v], True))
                    else:
                        out.append(([v], False))
        elif isinstance(node, ast.BoolOp) and isinstance(node.op, ast.And) and \
                len(self.params) >= 2:
            got: dict[str, Any] = {}
            for c in node.values:
                if isinstance(c, ast.Compare) and len(c.ops) == 1 and \
                        isinstance(c.ops[0], ast.Eq):
                    for a, b in ((c.left, c.comparators[0]), (c.comparators[0], c.left)):
                        if isinstance(a, ast.Name) and a.id in self.params:
                            v = self.value(b)
                            if v is not NO:
                                got[a.id] = v
            if set(got) == set(self.params):
                out.append(([tuple(got[p] for p in self.params)], False))
        elif isinstance(node, ast.Match) and self.reads_tainted(node.subject):
            vals = [self.value(p.value) for case in node.cases for p in ast.walk(case.pattern)
                    if isinstance(p, ast.MatchValue)]
            vals = [v for v in vals if v is not NO]
            if vals:
                out.append((vals, False))
        return out

    def lookup(self, node: ast.AST) -> dict | None:
        """The constant table that ``node`` (``T[derived]`` or ``T.get(derived, ...)``) reads."""
        table = NO
        if isinstance(node, ast.Subscript) and self.reads_tainted(node.slice) and \
                not isinstance(node.slice, ast.Slice):
            table = self.value(node.value)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and \
                node.func.attr == "get" and node.args and self.reads_tainted(node.args[0]):
            table = self.value(node.func.value)
        return table if isinstance(table, dict) else None

    def returned(self, stmts: Iterable[ast.AST]) -> list[tuple[ast.AST, Any]]:
        """Constant values that the returns among ``stmts`` can yield (through names, if/else
        expressions, lookups in constant tables)."""
        out: list[tuple[ast.AST, Any]] = []
        for node in stmts:
            if isinstance(node, ast.Return) and node.value is not None:
                expr = node.value
            elif isinstance(node, ast.Lambda) and node is self.fn:
                expr = node.body
            else:
                continue
            for v in self.yields(expr):
                out.append((node, v))
        return out

    def yields(self, expr: ast.AST, depth: int = 0) -> list[Any]:
        if depth > 4:
            return []
        if isinstance(expr, ast.IfExp):
            return self.yields(expr.body, depth + 1) + self.yields(expr.orelse, depth + 1)
        if isinstance(expr, ast.BoolOp):
            return [v for x in expr.values for v in self.yields(x, depth + 1)]
        table = self.lookup(expr)
        if table is not None:
            return list(table.values())
        v = self.value(expr)
        return [] if v is NO else [v]


def shared_state(tree: ast.Module) -> set[str]:
    """Module names and attributes that some function stores an argument-derived value in
    (``global LAST; LAST = n``, ``f.last = n``, ``STATE["k"] = n``): derived in every function."""
    shared: set[str] = set()
    module_names = {n.id for s in tree.body for n in ast.walk(s)
                    if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
    module_names |= {s.name for s in tree.body if isinstance(s, (ast.FunctionDef, ast.ClassDef))}
    for _ in range(3):  # a value handed on through two functions is still found
        before = len(shared)
        for fn in ast.walk(tree):
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            scan = FnScan(fn, shared, Resolver({}))
            declared = {n for s in ast.walk(fn) if isinstance(s, ast.Global) for n in s.names}
            for node in scan.nodes:
                for target, value in _assign_pairs(node):
                    if not scan.reads_tainted(value):
                        continue
                    if isinstance(target, ast.Name) and target.id in declared:
                        shared.add(target.id)
                    elif isinstance(target, (ast.Attribute, ast.Subscript)):
                        root = _root(target)
                        if isinstance(root, ast.Name) and root.id in module_names:
                            shared.add(root.id)
                            if isinstance(target, ast.Attribute) and _dotted(target):
                                shared.add(_dotted(target))  # type: ignore[arg-type]
        if len(shared) == before:
            break
    return shared


