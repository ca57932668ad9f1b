"""Per-call state: code whose answer depends on how often, or in what order, it was called.

A conflicting test asserts two values for one input; a call counter (or a queue of answers, or
a file written between the test processes) returns the "right" one each time. Memoisation is
not flagged: ``cache[n] = value`` stores a computed value under the argument, while a counter
reads back what it stores (``d[k] = d.get(k, 0) + 1``), consumes a queue, or steps an iterator.
AST only, nothing is run.
"""
from __future__ import annotations

import ast

from .dataflow import _assign_pairs, _root

_GROW = {"append", "appendleft", "extend", "insert", "add"}
_CONSUME = {"pop", "popleft", "popitem"}
_WRITE_MODES = set("wax+")


def _module_names(tree: ast.Module) -> set[str]:
    names = {n.id for s in tree.body for n in ast.walk(s)
             if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)
             and not isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}
    names |= {s.name for s in tree.body if isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef,
                                                          ast.ClassDef))}
    for s in tree.body:
        if isinstance(s, (ast.Import, ast.ImportFrom)):
            names -= {(a.asname or a.name).split(".")[0] for a in s.names}
    return names


def _mutable_defaults(fn: ast.AST) -> set[str]:
    a = fn.args  # type: ignore[attr-defined]
    pos = a.posonlyargs + a.args
    out = set()
    for arg, d in list(zip(pos[len(pos) - len(a.defaults):], a.defaults)) + \
            [(k, d) for k, d in zip(a.kwonlyargs, a.kw_defaults) if d is not None]:
        if isinstance(d, (ast.List, ast.Dict, ast.Set, ast.ListComp, ast.DictComp)) or \
                (isinstance(d, ast.Call) and isinstance(d.func, ast.Name) and
                 d.func.id in ("list", "dict", "set", "deque", "Counter", "defaultdict")):
            out.add(arg.arg)
    return out


def _same_slot(target: ast.Subscript, value: ast.AST) -> bool:
    """Does ``value`` read the container of ``target`` at the same key (``d[k] + 1``,
    ``d.get(k, 0) + 1``), or at any key when the slot is a constant (``state["n"] + 1``)?"""
    base, slot = ast.dump(target.value), ast.dump(target.slice)
    const_slot = isinstance(target.slice, ast.Constant)
    for n in ast.walk(value):
        if isinstance(n, ast.Subscript) and ast.dump(n.value) == base and \
                (const_slot or ast.dump(n.slice) == slot):
            return True
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and \
                n.func.attr == "get" and ast.dump(n.func.value) == base and n.args and \
                (const_slot or ast.dump(n.args[0]) == slot):
            return True
    return False


def _write_mode(call: ast.Call) -> bool:
    mode = call.args[1] if len(call.args) > 1 else next(
        (k.value for k in call.keywords if k.arg == "mode"), None)
    return isinstance(mode, ast.Constant) and isinstance(mode.value, str) and \
        bool(set(mode.value) & _WRITE_MODES)


def per_call_state(tree: ast.Module) -> list[tuple[ast.AST, str]]:
    """``(node, detail)`` for every place a function keeps state across calls (see module doc)."""
    module = _module_names(tree)
    found: list[tuple[ast.AST, str]] = []
    writes: list[ast.AST] = []
    reads: list[ast.AST] = []
    for fn in ast.walk(tree):
        if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        declared = {n for s in ast.walk(fn) if isinstance(s, (ast.Global, ast.Nonlocal))
                    for n in s.names}
        local = {n.id for s in fn.body for n in ast.walk(s)
                 if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)} - declared
        persistent = ((module - local) | declared | _mutable_defaults(fn)) - \
            {a.arg for a in fn.args.args if a.arg not in _mutable_defaults(fn)}
        nodes = [n for s in fn.body for n in ast.walk(s)]
        sized = {n.args[0].id for n in nodes if isinstance(n, ast.Compare)
                 for n in ast.walk(n) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
                 and n.func.id == "len" and n.args and isinstance(n.args[0], ast.Name)}

        def root_name(t: ast.AST) -> str | None:
            r = _root(t)
            return r.id if isinstance(r, ast.Name) and r.id in persistent else None

        for node in nodes:
            if isinstance(node, ast.AugAssign):
                t = node.target
                if (isinstance(t, ast.Name) and t.id in declared) or \
                        (isinstance(t, (ast.Subscript, ast.Attribute)) and root_name(t)):
                    found.append((node, "updates a counter that outlives the call"))
            elif isinstance(node, ast.Assign):
                for t, v in _assign_pairs(node):
                    if isinstance(t, ast.Name) and t.id in declared and any(
                            isinstance(n, ast.Name) and n.id == t.id for n in ast.walk(v)):
                        found.append((node, f"steps the global {t.id!r} on every call"))
                    elif isinstance(t, ast.Subscript) and root_name(t) and _same_slot(t, v):
                        found.append((node, "counts calls in a table that outlives the call"))
                    elif isinstance(t, ast.Attribute) and root_name(t) and any(
                            (isinstance(n, ast.Attribute) and ast.dump(n.value) ==
                             ast.dump(t.value) and n.attr == t.attr) or
                            (isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and
                             n.func.id == "getattr" and len(n.args) >= 2 and
                             isinstance(n.args[1], ast.Constant) and n.args[1].value == t.attr)
                            for n in ast.walk(v)):
                        found.append((node, f"counts calls in the attribute {t.attr!r}"))
            elif isinstance(node, ast.Call):
                f = node.func
                if isinstance(f, ast.Attribute) and root_name(f.value):
                    name = root_name(f.value)
                    if f.attr in _CONSUME:
                        found.append((node, f"consumes queued values from {name!r}"))
                    elif f.attr in _GROW and name in sized:
                        found.append((node, f"counts calls by growing {name!r}"))
                elif isinstance(f, ast.Name) and f.id == "next" and node.args and \
                        root_name(node.args[0]):
                    found.append((node, "steps an iterator that outlives the call"))
                if (isinstance(f, ast.Name) and f.id == "open" and _write_mode(node)) or \
                        (isinstance(f, ast.Attribute) and f.attr in ("write_text", "write_bytes")):
                    writes.append(node)
                elif (isinstance(f, ast.Name) and f.id == "open") or (
                        isinstance(f, ast.Attribute) and f.attr in ("read_text", "read_bytes",
                                                                    "exists")):
                    reads.append(node)
    if writes and reads:  # a file written and read back: state kept between test processes
        found.append((writes[0], "writes a file and reads it back (state kept between the "
                                 "test processes)"))
    return found
