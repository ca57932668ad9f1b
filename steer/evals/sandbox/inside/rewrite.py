"""Rewrites the test module so that its checks and the objects it uses cannot be tampered with.

Runs inside the sandbox (see ``__init__``): comparisons and asserts are routed through the
trusted checkers of ``checks.py``, and every builtin, stdlib module and module attribute the test
file uses is pinned to the object captured before the solution is imported.
"""
import ast
import builtins
import sys
import types
import warnings

#: prefix of the placeholder constants that :func:`_inject` swaps for the real objects
_PH = "\x00steer:"


def _non_import_bindings(tree: ast.AST) -> set:
    """Names bound by an assignment, a def/class or a parameter (anything but an import)."""
    names = set()
    for n in ast.walk(tree):
        t = type(n)
        if t is ast.Name and type(n.ctx) is not ast.Load:
            names.add(n.id)
        elif t in (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef):
            names.add(n.name)
        elif t is ast.arg:
            names.add(n.arg)
    return names


def _bound_names(tree: ast.AST) -> set:
    """Every name the test module binds anywhere: such a name is never pinned to a builtin."""
    names = _non_import_bindings(tree)
    for n in ast.walk(tree):
        t = type(n)
        if t in (ast.Import, ast.ImportFrom):
            for a in n.names:
                names.add((a.asname or a.name).split(".")[0])
        elif t in (ast.Global, ast.Nonlocal):
            names.update(n.names)
        elif t is ast.ExceptHandler and n.name:
            names.add(n.name)
        elif t.__name__ in ("MatchAs", "MatchStar") and getattr(n, "name", None):
            names.add(n.name)
        elif t.__name__ == "MatchMapping" and getattr(n, "rest", None):
            names.add(n.rest)
    return names


_NO = object()  # "not resolvable" (None is a legitimate object to pin)


def _pinned_module(a: ast.alias) -> object:
    """The module ``import a.name [as x]`` binds if it is already imported (and is not the
    solution), else ``_NO``."""
    top = a.name.split(".")[0]
    mod = sys.modules.get(a.name if a.asname else top)
    if top == "solution" or mod is None or a.name not in sys.modules:
        return _NO
    return mod


def _from_import(mod: object, module: str, name: str) -> object:
    """What ``from module import name`` binds: the attribute, else the submodule, else ``_NO``."""
    obj = getattr(mod, name, _NO) if name != "*" else _NO
    if obj is _NO:
        obj = sys.modules.get(module + "." + name, _NO)
    return obj


class _Rewriter(ast.NodeTransformer):
    """Routes comparisons/asserts through trusted checkers and pins every builtin, stdlib module
    and module attribute the test file uses to the object captured before the solution runs.

    Placeholders are string constants swapped for the real objects in co_consts after
    compilation, so the solution cannot re-bind them (no global or builtin lookup happens)."""

    def __init__(self, source, builtin_names, aliases):
        self.source = source
        self.builtin_names = builtin_names
        self.aliases = aliases
        self.used = {}
        self._by_id = {}

    def _obj(self, obj, node):
        key = self._by_id.get(id(obj))
        if key is None:
            key = _PH + "obj:%d" % len(self._by_id)
            self._by_id[id(obj)] = key
        self.used[key] = obj
        return ast.copy_location(ast.Constant(key), node)

    def _ph(self, key, node):
        self.used[_PH + key] = None
        return ast.copy_location(ast.Constant(_PH + key), node)

    def _call(self, key, node, args):
        return ast.copy_location(ast.Call(self._ph(key, node), args, []), node)

    def _resolve(self, node):
        if type(node) is ast.Name:
            return self.aliases.get(node.id, _NO) if type(node.ctx) is ast.Load else _NO
        if type(node) is ast.Attribute and type(node.ctx) is ast.Load:
            base = self._resolve(node.value)
            if base is _NO or type(base) is not types.ModuleType:
                return _NO
            try:
                return getattr(base, node.attr)
            except AttributeError:
                return _NO
        return _NO

    def visit_Name(self, node):
        if type(node.ctx) is ast.Load:
            obj = self.aliases.get(node.id, _NO)
            if obj is not _NO:
                return self._obj(obj, node)
            if node.id in self.builtin_names:
                return self._obj(getattr(builtins, node.id), node)
        return node

    def visit_Attribute(self, node):
        obj = self._resolve(node)
        if obj is not _NO:
            return self._obj(obj, node)
        self.generic_visit(node)
        return node

    def visit_Import(self, node):
        keep, out = [], []
        for a in node.names:
            mod = _pinned_module(a)
            if mod is _NO:
                keep.append(a)
                continue
            name = a.asname or a.name.split(".")[0]
            out.append(ast.copy_location(
                ast.Assign([ast.Name(name, ast.Store())], self._obj(mod, node)), node))
        if keep:
            out.insert(0, ast.copy_location(ast.Import(keep), node))
        return out

    def visit_ImportFrom(self, node):
        if node.level or not node.module or node.module.split(".")[0] == "solution" \
                or node.module not in sys.modules:
            return node
        mod = sys.modules[node.module]
        keep, out = [], []
        for a in node.names:
            obj = _from_import(mod, node.module, a.name)
            if obj is _NO:
                keep.append(a)
                continue
            out.append(ast.copy_location(
                ast.Assign([ast.Name(a.asname or a.name, ast.Store())], self._obj(obj, node)),
                node))
        if keep:
            out.insert(0, ast.copy_location(
                ast.ImportFrom(node.module, keep, node.level), node))
        return out

    def _cmp_args(self, node):
        ops = tuple(type(o).__name__ for o in node.ops)
        return [ast.Constant(node.lineno), ast.Constant(ops), node.left] + list(node.comparators)

    def visit_Compare(self, node):
        self.generic_visit(node)
        return self._call("cmp", node, self._cmp_args(node))

    def visit_UnaryOp(self, node):
        self.generic_visit(node)
        if type(node.op) is ast.Not:
            return self._call("not", node, [ast.Constant(node.lineno), node.operand])
        return node

    def _truthy(self, node):
        if type(node) is ast.BoolOp:
            node.values = [self._call("truth", v, [ast.Constant(getattr(v, "lineno", 0)),
                                                   self._truthy(v)]) for v in node.values]
        elif type(node) is ast.IfExp:
            node.test = self._call("truth", node.test, [ast.Constant(node.lineno), node.test])
        return node

    def visit_Assert(self, node):
        src = ast.get_source_segment(self.source, node.test) or "<expression>"
        src = " ".join(src.split())
        if len(src) > 200:
            src = src[:197] + "..."
        test = node.test
        if type(test) is ast.Compare:
            self.generic_visit(test)
            call = self._call("assert_cmp", node, [ast.Constant(src)] + self._cmp_args(test))
        else:
            test = self._truthy(self.visit(test))
            call = self._call("assert", node, [ast.Constant(node.lineno), ast.Constant(src), test])
        return ast.copy_location(ast.Expr(call), node)


def _preimport_test_deps(tree: ast.AST) -> None:
    """Import (trusted phase) the non-solution modules the test file imports."""
    for n in ast.walk(tree):
        names = []
        if type(n) is ast.Import:
            names = [a.name for a in n.names]
        elif type(n) is ast.ImportFrom and not n.level and n.module:
            names = [n.module] + [n.module + "." + a.name for a in n.names if a.name != "*"]
        for name in names:
            if name.split(".")[0] == "solution" or name in sys.modules:
                continue
            try:
                __import__(name)
            except BaseException:
                pass


def _import_aliases(tree: ast.AST, other: set) -> dict:
    """name -> object for names bound only by (resolvable) imports, consistently."""
    found = {}
    bad = set(other)

    def bind(name, obj):
        if obj is _NO or found.get(name, obj) is not obj:
            bad.add(name)
        else:
            found[name] = obj

    for n in ast.walk(tree):
        if type(n) is ast.Import:
            for a in n.names:
                bind(a.asname or a.name.split(".")[0], _pinned_module(a))
        elif type(n) is ast.ImportFrom:
            for a in n.names:
                name = a.asname or a.name
                mod = sys.modules.get(n.module) if (not n.level and n.module) else None
                if mod is None or n.module.split(".")[0] == "solution" or a.name == "*":
                    bad.add(name)
                    continue
                bind(name, _from_import(mod, n.module, a.name))
    return {k: v for k, v in found.items() if k not in bad}


def _compile_tests(source: str, filename: str) -> tuple:
    """(code, placeholders used, rewritten tree) of the test module. Its imports are imported
    first (trusted phase) so that the objects it uses can be pinned."""
    tree = ast.parse(source, filename)
    _preimport_test_deps(tree)
    bound = _bound_names(tree)
    other = _non_import_bindings(tree)
    builtin_names = {n for n in dir(builtins) if not n.startswith("_") and n not in bound}
    aliases = _import_aliases(tree, other)
    rw = _Rewriter(source, builtin_names, aliases)
    tree = rw.visit(tree)
    ast.fix_missing_locations(tree)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        code = compile(tree, filename, "exec", dont_inherit=True)
    return code, rw.used, tree


def _inject(code: types.CodeType, table: dict) -> types.CodeType:
    """``code`` with every placeholder constant (in nested code objects too) taken from
    ``table``."""
    def fix(c):
        t = type(c)
        if t is str and c.startswith(_PH):
            return table[c]
        if t is tuple:
            return tuple(fix(x) for x in c)
        if t is frozenset:
            return frozenset(fix(x) for x in c)
        if t is types.CodeType:
            return _inject(c, table)
        return c
    return code.replace(co_consts=tuple(fix(c) for c in code.co_consts))


def _find_test_code(module_code: types.CodeType, tree: ast.Module,
                    name: str) -> types.CodeType | None:
    """The code object of the test function ``name`` (the guard accepts a PASS only from a
    function running exactly this code), or None."""
    want = None
    for node in tree.body:
        if type(node) in (ast.FunctionDef, ast.AsyncFunctionDef) and node.name == name:
            want = min([node.lineno] + [d.lineno for d in node.decorator_list])
    if want is None:
        return None
    for c in module_code.co_consts:
        if type(c) is types.CodeType and c.co_name == name and c.co_firstlineno == want:
            return c
    return None

