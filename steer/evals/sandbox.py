"""Run untrusted, model-written Python against a test file, safely, with unforgeable outcomes.

Public API
----------
``run_tests(solution_code, test_code, *, timeout_s=None, limits=None, backend="auto")``
    -> :class:`SandboxResult`

Every ``test_*`` function of ``test_code`` runs in its **own** fresh process inside the sandbox.
A test counts as passed only when the harness reads the line ``"<nonce> <test> PASS"`` on a
private result pipe, where ``nonce`` is a fresh random secret per test process. That line is
written by an in-process guard (a CPython audit hook installed *before* the solution or the test
module is imported) and only if

* the test function returned normally, called from the harness's own frame, in the original
  process (not a fork);
* every comparison in the test module (``==``, ``<``, ``in``, ...) and every ``assert`` saw exact
  builtin types (so an ``__eq__``/``__bool__`` override cannot make a wrong answer pass);
* builtins, the ``time`` module's clocks and the test module's globals are unchanged;
* no guarded operation (frame/gc introspection, ctypes, spawning programs, ...) was attempted.

The nonce, the verdict logic and the result fd live only in closures of the audit hook, which no
Python code can reach once frame access, ``gc`` and ``ctypes`` are blocked (see docs/evals.md for
the threat model). Isolation from the host is provided by bubblewrap (``bwrap``) when it works,
otherwise by a weaker rlimit-only fallback that warns loudly.

This module is deliberately light: stdlib only, no torch, no model code.
"""
from __future__ import annotations

import ast
import json
import logging
import math
import os
import resource
import secrets
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
import warnings
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable

__all__ = [
    "Limits",
    "SandboxResult",
    "TestOutcome",
    "SandboxUnavailable",
    "run_tests",
    "collect_test_names",
    "bwrap_available",
    "default_backend",
]

log = logging.getLogger("steer.evals.sandbox")

#: uid/gid the sandboxed code drops to when the harness runs as root (the kernel does not apply
#: RLIMIT_NPROC to root, so a fork bomb would otherwise be unbounded).
UNPRIVILEGED_UID = 65534
UNPRIVILEGED_GID = 65534

#: path of the working directory as seen from inside a bwrap sandbox
_INSIDE_WORKDIR = "/tmp/sandbox"
_SOLUTION_FILE = "solution.py"
_DEFAULT_TEST_FILE = "test_solution.py"
_OUTPUT_CAP = 8_000  # characters of stdout/stderr kept per test process
_TOTAL_OUTPUT_CAP = 32_000
_ERROR_CAP = 600


class SandboxUnavailable(RuntimeError):
    """Raised when ``backend="bwrap"`` is requested but bubblewrap cannot create a sandbox here."""


@dataclass(frozen=True)
class Limits:
    """Resource limits for one sandboxed test process (each test runs in its own process).

    timeout_s        wall-clock limit per test process (seconds)
    cpu_s            RLIMIT_CPU per process; default ``ceil(timeout_s) + 1``
    memory_mb        RLIMIT_AS (address space) per process
    file_size_mb     RLIMIT_FSIZE: largest file the code may write (stdout capture included)
    max_procs        RLIMIT_NPROC: processes/threads the sandbox may own (see docs for root)
    open_files       RLIMIT_NOFILE
    tmpfs_mb         size of the private /tmp inside bwrap (if this bwrap supports ``--size``)
    total_timeout_s  budget for the whole run; default ``max(3 * timeout_s, timeout_s + 5)``.
                     Tests that did not start before it ran out fail with "not run".
    allow_fork       let the code fork (default False: ``os.fork`` raises). Fork bombs are then
                     contained only by the OS layer (RLIMIT_NPROC + pid namespace + kill).
                     Forced off when RLIMIT_NPROC cannot be enforced (root without a uid drop).
    harden           install the in-process guard's *blocking* rules (default True). With
                     False only the unforgeable-verdict machinery stays; used by the test-suite
                     to check the OS isolation layer on its own. Never use False for grading.
    """

    timeout_s: float = 10.0
    cpu_s: float | None = None
    memory_mb: int = 1024
    file_size_mb: int = 16
    max_procs: int = 32
    open_files: int = 256
    tmpfs_mb: int = 64
    total_timeout_s: float | None = None
    allow_fork: bool = False
    harden: bool = True

    def cpu_seconds(self) -> int:
        if self.cpu_s is not None:
            return max(1, int(math.ceil(self.cpu_s)))
        return max(1, int(math.ceil(self.timeout_s)) + 1)

    def total_seconds(self) -> float:
        if self.total_timeout_s is not None:
            return float(self.total_timeout_s)
        return max(3.0 * self.timeout_s, self.timeout_s + 5.0)


@dataclass
class TestOutcome:
    """Result of one test function (``error`` is a short human-readable reason when not passed)."""

    __test__ = False  # not a pytest test class

    name: str
    passed: bool
    error: str | None = None
    duration_s: float = 0.0
    timed_out: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class SandboxResult:
    tests: list[TestOutcome]
    collected: list[str]
    all_passed: bool
    timed_out: bool
    backend: str
    stdout: str = ""
    stderr: str = ""
    duration_s: float = 0.0
    error: str | None = None  # problem with the test file itself (nothing could run)
    notes: list[str] = field(default_factory=list)

    @property
    def n_passed(self) -> int:
        return sum(t.passed for t in self.tests)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["n_passed"] = self.n_passed
        return d


# ----------------------------------------------------------------------------------------------
# The runner: executed by ``python -I -S -B`` inside the sandbox, one process per test function.
# It is compiled with the file name "<steer-runner>" and its own private globals.
# ----------------------------------------------------------------------------------------------
_RUNNER_SOURCE = r'''
import os, sys, json, ast, types, builtins, time, warnings, operator, resource, _thread, _signal
import _imp

_PH = "\x00steer:"
_TIMERS = ("perf_counter", "perf_counter_ns", "time", "time_ns", "monotonic", "monotonic_ns",
           "process_time", "process_time_ns", "thread_time", "thread_time_ns")
# cheap modules that solutions commonly use; anything else is imported (from source) on demand
_PREIMPORT = ("collections", "functools", "itertools", "math", "re", "heapq", "bisect", "string",
              "typing", "copy")
_BLOCKED_IMPORTS = frozenset({
    "ctypes", "_ctypes", "_posixsubprocess", "_testcapi", "_testinternalcapi", "_testbuffer",
    "_testmultiphase", "_testimportmultiple", "_testsinglephase", "_xxsubinterpreters",
    "_xxinterpchannels", "_interpreters", "_interpchannels", "_interpqueues", "_xxtestfuzz",
    "_lsprof", "_sqlite3", "_dbm", "_gdbm", "readline", "_curses", "_curses_panel", "_tkinter",
    "cffi", "_cffi_backend"})
_PROTECTED_MODULES = frozenset({"_signal", "_thread", "_imp", "gc", "sys", "builtins", "marshal",
                                "_io", "posix", "time", "_frozen_importlib",
                                "_frozen_importlib_external", "_weakref", "_abc", "_warnings"})
_SERIOUS_EVENTS = frozenset({
    "gc.get_objects", "gc.get_referrers", "gc.get_referents", "sys._current_frames",
    "sys._current_exceptions", "sys.settrace", "sys.setprofile", "code.__new__",
    "function.__new__", "marshal.load", "marshal.loads", "os.exec", "os.posix_spawn",
    "os.spawn", "os.system", "subprocess.Popen", "pty.spawn", "os.startfile", "sqlite3.connect",
    "sqlite3.enable_load_extension", "sqlite3.load_extension", "sys.monitoring.register_callback",
    "sys.monitoring.use_tool_id", "sys.remote_exec", "os.setns", "os.unshare"})
_FS_EVENTS = {"os.remove": (0,), "os.rmdir": (0,), "os.mkdir": (0,), "os.rename": (0, 1),
              "os.link": (0, 1), "os.symlink": (1,), "os.truncate": (0,), "os.chmod": (0,),
              "os.chown": (0,), "os.utime": (0,), "os.chflags": (0,), "os.lchflags": (0,),
              "os.setxattr": (0,), "os.removexattr": (0,), "os.mkfifo": (0,), "os.mknod": (0,)}


def _read_config(fd):
    parts = []
    while True:
        b = os.read(fd, 1 << 16)
        if not b:
            break
        parts.append(b)
    os.close(fd)
    return json.loads(b"".join(parts).decode("utf-8"))


def _emit(fd, line):
    data = (line.replace("\n", " ") + "\n").encode("utf-8", "replace")
    try:
        while data:
            n = os.write(fd, data)
            data = data[n:]
    except OSError:
        pass


def _err(fd, test, msg):
    _emit(fd, "ERR " + json.dumps({"test": test, "error": str(msg)[:2000]}))


# ---------------------------------------------------------------- test-module rewriting
def _bound_names(tree):
    names = set()
    for n in ast.walk(tree):
        t = type(n)
        if t is ast.Name and type(n.ctx) is not ast.Load:
            names.add(n.id)
        elif t in (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef):
            names.add(n.name)
        elif t is ast.arg:
            names.add(n.arg)
        elif t in (ast.Import, ast.ImportFrom):
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


def _non_import_bindings(tree):
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


_NO = object()


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
            top = a.name.split(".")[0]
            mod = sys.modules.get(a.name if a.asname else top)
            if top == "solution" or mod is None or a.name not in sys.modules:
                keep.append(a)
                continue
            out.append(ast.copy_location(
                ast.Assign([ast.Name(a.asname or top, ast.Store())], self._obj(mod, node)), node))
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
            obj = getattr(mod, a.name, _NO) if a.name != "*" else _NO
            if obj is _NO:
                obj = sys.modules.get(node.module + "." + a.name, _NO)
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


def _preimport_test_deps(tree):
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


def _import_aliases(tree, other):
    """name -> object for names bound only by (resolvable) imports, consistently."""
    found = {}
    bad = set(other)
    for n in ast.walk(tree):
        if type(n) is ast.Import:
            for a in n.names:
                top = a.name.split(".")[0]
                name = a.asname or top
                mod = sys.modules.get(a.name if a.asname else top)
                if top == "solution" or mod is None or a.name not in sys.modules:
                    bad.add(name)
                elif found.get(name, mod) is not mod:
                    bad.add(name)
                else:
                    found[name] = mod
        elif type(n) is ast.ImportFrom:
            for a in n.names:
                name = a.asname or a.name
                mod = sys.modules.get(n.module) if (not n.level and n.module) else None
                if mod is None or n.module.split(".")[0] == "solution" or a.name == "*":
                    bad.add(name)
                    continue
                obj = getattr(mod, a.name, _NO)
                if obj is _NO:
                    obj = sys.modules.get(n.module + "." + a.name, _NO)
                if obj is _NO or found.get(name, obj) is not obj:
                    bad.add(name)
                else:
                    found[name] = obj
    return {k: v for k, v in found.items() if k not in bad}


def _compile_tests(source, filename):
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


def _inject(code, table):
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


def _find_test_code(module_code, tree, name):
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


# ---------------------------------------------------------------- trusted checkers
# Created with empty globals: every name they use is a closure variable (captured before any
# untrusted code runs), so patching builtins/operator cannot affect them.
def _normalize_factory(K):
    """norm(v) -> a fresh copy of v made only of exact builtin data, or raises TypeError.

    Instances of subclasses of builtin types (Counter, defaultdict, OrderedDict, namedtuple,
    IntEnum, str subclasses, ...) are read through the *builtin base type's* C methods, so any
    __eq__/__iter__/__hash__ override on the subclass is never called; anything else (a class
    with its own __eq__, a deque, a Fraction, ...) is rejected."""
    _type = K["type"]; _id = K["id"]; _len = K["len"]; _mro = K["mro"]
    _TypeError = K["TypeError"]; _set = K["set"]; _frozenset = K["frozenset"]
    _list = K["list"]; _tuple = K["tuple"]; _dict = K["dict"]; _bytearray = K["bytearray"]
    _int = K["int"]; _float = K["float"]; _complex = K["complex"]; _str = K["str"]
    _bytes = K["bytes"]
    scalar = K["scalar_ids"]
    d_items = K["dict_items"]; l_iter = K["list_iter"]; t_iter = K["tuple_iter"]
    s_iter = K["set_iter"]; fs_iter = K["frozenset_iter"]
    to_int = K["int_int"]; to_float = K["float_float"]; to_complex = K["complex_complex"]
    to_str = K["str_str"]; to_bytes = K["bytes_bytes"]
    keys_t = K["keys_type"]; values_t = K["values_type"]; items_t = K["items_type"]
    tname = K["type_name"]

    def norm(v, active=None, depth=0):
        t = _type(v)
        if _id(t) in scalar:
            return v
        if depth > 500:
            raise _TypeError("structure nested too deeply")
        if active is None:
            active = _set()
        vid = _id(v)
        if vid in active:
            raise _TypeError("recursive structure")
        base = None
        if t is _list or t is _tuple or t is _dict or t is _set or t is _frozenset \
                or t is _bytearray or t is keys_t or t is values_t or t is items_t:
            base = t
        else:
            for b in _mro(t):
                if b is _dict or b is _list or b is _tuple or b is _set or b is _frozenset \
                        or b is _int or b is _float or b is _str or b is _bytes \
                        or b is _complex or b is _bytearray:
                    base = b
                    break
        if base is None:
            raise _TypeError("value of non-builtin type %s" % tname(t))
        if base is _int:
            return to_int(v)
        if base is _float:
            return to_float(v)
        if base is _str:
            return to_str(v)
        if base is _bytes:
            return to_bytes(v)
        if base is _complex:
            return to_complex(v)
        if base is _bytearray:
            return _bytearray(v)
        active.add(vid)
        try:
            d = depth + 1
            if base is _list:
                return [norm(x, active, d) for x in l_iter(v)]
            if base is _tuple:
                return _tuple([norm(x, active, d) for x in t_iter(v)])
            if base is _dict:
                return {norm(k, active, d): norm(x, active, d) for k, x in d_items(v)}
            if base is _set:
                return {norm(x, active, d) for x in s_iter(v)}
            if base is _frozenset:
                return _frozenset([norm(x, active, d) for x in fs_iter(v)])
            if base is keys_t or base is items_t:
                return {norm(x, active, d) for x in v}
            return [norm(x, active, d) for x in v]  # dict values view
        finally:
            active.discard(vid)
    return norm


def _checker_factory(K):
    _type = K["type"]; _len = K["len"]; _repr = K["repr"]; _bool = K["bool"]
    _audit = K["audit"]; _AssertionError = K["AssertionError"]; _Exception = K["Exception"]
    _TypeError = K["TypeError"]
    _ops = K["ops"]; _ident = K["ident_ops"]; _fname = K["filename"]; _range = K["range"]
    norm = K["norm"]

    def short(v):
        try:
            r = _repr(v)
        except _Exception:
            r = "<unrepresentable>"
        if _len(r) > 160:
            r = r[:157] + "..."
        return r

    def fail(msg):
        _audit("steer.fail", msg)
        raise _AssertionError(msg)

    def trusted(lineno, v, what):
        try:
            return norm(v)
        except _TypeError as e:
            fail("%s:%d: %s a %s; only builtin data is trusted (an __eq__/__bool__ override "
                 "cannot count)" % (_fname, lineno, what, e.args[0] if e.args else "bad value"))

    def compare(lineno, ops, operands):
        for i in _range(_len(ops)):
            op = ops[i]
            a = operands[i]
            b = operands[i + 1]
            if op not in _ident:
                a = trusted(lineno, a, "compared")
                b = trusted(lineno, b, "compared")
            if not _ops[op](a, b):
                return i, a, b
        return -1, None, None

    def cmp(lineno, ops, *operands):
        return compare(lineno, ops, operands)[0] < 0

    def assert_cmp(src, lineno, ops, *operands):
        i, a, b = compare(lineno, ops, operands)
        if i >= 0:
            fail("%s:%d: assert %s  (left: %s, right: %s)"
                 % (_fname, lineno, src, short(a), short(b)))

    def truthy(lineno, v):
        if _type(v) is _bool:
            return v
        return _bool(trusted(lineno, v, "took the truth value of"))

    def assert_(lineno, src, v):
        if not truthy(lineno, v):
            fail("%s:%d: assert %s" % (_fname, lineno, src))

    def not_(lineno, v):
        return not truthy(lineno, v)

    return {"cmp": cmp, "assert_cmp": assert_cmp, "assert": assert_, "not": not_,
            "truth": truthy}


# ---------------------------------------------------------------- the guard (audit hook)
# Also created with empty globals. Holds the nonce; writes the PASS line; blocks introspection.
def _guard_factory(G, nonce):
    _type = G["type"]; _str = G["str"]; _bytes = G["bytes"]; _int = G["int"]; _len = G["len"]
    _tuple = G["tuple"]; _list = G["list"]; _dict = G["dict"]; _id = G["id"]
    _getframe = G["getframe"]; _getpid = G["getpid"]; _getppid = G["getppid"]
    _write = G["write"]; _lstat = G["lstat"]; _stat = G["stat"]; _readlink = G["readlink"]
    _getcwd = G["getcwd"]; _bdecode = G["bytes_decode"]
    _FunctionType = G["FunctionType"]; _CodeType = G["CodeType"]; _TB = G["TracebackType"]
    _gen_types = G["gen_types"]; _Namespace = G["SimpleNamespace"]
    _oga = G["object_getattribute"]; _str_copy = G["str_copy"]; _trampoline = G["trampoline"]
    _PermissionError = G["PermissionError"]; _ValueError = G["ValueError"]
    _AttributeError = G["AttributeError"]; _ImportError = G["ImportError"]
    _RuntimeError = G["RuntimeError"]; _AssertionError = G["AssertionError"]
    _OSError = G["OSError"]; _norm = G["norm"]; _TypeError = G["TypeError"]
    harden = G["harden"]; allow_fork = G["allow_fork"]; block_net = G["block_net"]
    read_roots = G["read_roots"]; write_roots = G["write_roots"]; dev_ok = G["dev_ok"]
    dynload_roots = G["dynload_roots"]; protected_files = G["protected_files"]
    report_files = G["report_files"]; result_fd = G["result_fd"]
    blocked_imports = G["blocked_imports"]; protected_modules = G["protected_modules"]
    serious_events = G["serious_events"]; fs_events = G["fs_events"]; real_imp = G["imp"]
    builtins_dict = G["builtins_dict"]; time_dict = G["time_dict"]; time_mod = G["time_mod"]
    sys_modules = G["sys_modules"]; timers = G["timers"]; write_flags = G["write_flags"]
    dir_flags = G["dir_flags"]; builtins_objs = G["builtins_objs"]
    coroutine_code = G["coroutine_code"]; af_unix = G["af_unix"]
    MISSING = G["missing"]
    DEPTH_OK = ("sys._getframe", "object.__getattr__")
    FRAME_ATTRS = ("tb_frame", "gi_frame", "cr_frame", "ag_frame", "f_back")
    CODE_ATTRS = ("__code__", "gi_code", "cr_code", "ag_code")
    CALLER_EVENTS = ("steer.arm", "steer.seal", "steer.finish", "code.__new__",
                     "object.__setattr__")

    st = {"frame": None, "pid": 0, "done": False, "depth": 0, "fails": [], "viol": [],
          "expected": None, "seal": None, "bsnap": None, "tsnap": None}

    def block(msg, exc, serious):
        if serious and _len(st["viol"]) < 20:
            st["viol"].append(msg)
        raise exc("sandbox: " + msg)

    # -- paths
    def resolve(p):
        if not p.startswith("/"):
            p = _getcwd() + "/" + p
        todo = p.split("/")
        todo.reverse()
        res = []
        hops = 0
        while todo:
            c = todo.pop()
            if c == "" or c == ".":
                continue
            if c == "..":
                if res:
                    res.pop()
                continue
            res.append(c)
            cand = "/" + "/".join(res)
            try:
                mode = _lstat(cand).st_mode
            except _OSError:
                continue
            if (mode & 0o170000) == 0o120000:
                hops += 1
                if hops > 40:
                    block("too many symbolic links", _PermissionError, False)
                res.pop()
                target = _readlink(cand)
                if target.startswith("/"):
                    res = []
                more = target.split("/")
                more.reverse()
                todo.extend(more)
        return "/" + "/".join(res)

    def within(path, roots):
        for r in roots:
            if path == r or path.startswith(r + "/"):
                return True
        return False

    def as_path(p, what):
        t = _type(p)
        if t is _str:
            return p
        if t is _bytes:
            return _bdecode(p, "utf-8", "surrogateescape")
        block("%s: unsupported path type" % what, _PermissionError, False)

    def is_dir(rp):
        try:
            return (_stat(rp).st_mode & 0o170000) == 0o040000
        except _OSError:
            return False

    # -- code objects of protected functions (the test module and the runner itself)
    def protected(obj):
        t = _type(obj)
        st["depth"] += 1
        try:
            if t is _FunctionType:
                code = obj.__code__
            elif t in _gen_types:
                code = _gen_types[t](obj)
            elif t is _CodeType:
                code = obj
            else:
                return False
        finally:
            st["depth"] -= 1
        fn = code.co_filename
        return _type(fn) is _str and fn in protected_files

    # -- handlers
    def h_getframe(args):
        if harden:
            block("stack frame introspection is disabled", _ValueError, False)

    def h_getattr(args):
        if not harden or _type(args) is not _tuple or _len(args) < 2:
            return
        obj, name = args[0], args[1]
        if _type(name) is not _str:
            return
        if name in FRAME_ATTRS:
            block("access to frame objects (%s) is disabled" % name, _AttributeError, False)
        if name in CODE_ATTRS and protected(obj):
            block("access to the harness's code objects is disabled", _AttributeError, True)

    def h_code_new(args, caller, code):
        # types.coroutine (asyncio) only sets a flag on an existing, compiled code object
        if harden and code is not coroutine_code:
            block("code.__new__ is disabled", _PermissionError, True)

    def h_setattr(args, caller=None, code=None):
        if not harden or _type(args) is not _tuple or _len(args) < 2:
            return
        obj, name = args[0], args[1]
        if _type(name) is not _str:
            return
        if name == "__code__" and code is not None and code is coroutine_code:
            return
        if name == "__code__":
            block("replacing __code__ is disabled", _PermissionError, True)
        if name in ("__defaults__", "__kwdefaults__", "__globals__", "__closure__") and \
                protected(obj):
            block("modifying the harness's functions is disabled", _PermissionError, True)

    def h_serious(event):
        def h(args):
            if harden:
                block("%s is disabled" % event, _PermissionError, True)
        return h

    def h_fork(args):
        if harden and not allow_fork:
            block("fork is disabled", _PermissionError, False)

    def h_kill(args):
        if not harden:
            return
        pid = args[0] if _type(args) is _tuple and args else None
        if _type(pid) is _int and pid == _getpid():
            return
        if allow_fork and _type(pid) is _int and pid > 1 and pid != _getppid():
            return
        block("sending signals to other processes is disabled", _PermissionError, True)

    def h_import(args):
        if not harden or _type(args) is not _tuple or not args:
            return
        name = args[0]
        if _type(name) is not _str:
            block("import of a non-str module name", _ImportError, True)
        top = name.partition(".")[0]
        if top in blocked_imports:
            block("import of %s is disabled" % name, _ImportError, True)

    def h_open(args):
        if not harden or _type(args) is not _tuple or not args:
            return
        path = args[0]
        if _type(path) is _int:
            return
        mode = args[1] if _len(args) > 1 else None
        flags = args[2] if _len(args) > 2 else 0
        rp = resolve(as_path(path, "open"))
        if rp == "/proc" or rp.startswith("/proc/"):
            block("access to /proc is disabled", _PermissionError, True)
        writing = False
        if _type(mode) is _str:
            for ch in "wax+":
                if ch in mode:
                    writing = True
        if _type(flags) is _int:
            if flags & write_flags:
                writing = True
            if flags & dir_flags:
                block("opening directories is disabled", _PermissionError, False)
        if rp in dev_ok:
            return
        if is_dir(rp):
            block("opening directories is disabled", _PermissionError, False)
        if writing:
            if not within(rp, write_roots):
                block("writing outside the working directory is disabled (%s)" % rp,
                      _PermissionError, True)
        elif not within(rp, read_roots) and not within(rp, write_roots):
            block("reading %s is disabled" % rp, _PermissionError, False)

    def h_listdir(args):
        if not harden or _type(args) is not _tuple or not args:
            return
        path = args[0]
        if path is None or _type(path) is _int:
            return
        rp = resolve(as_path(path, "listdir"))
        if rp.startswith("/proc"):
            block("access to /proc is disabled", _PermissionError, True)
        if not within(rp, read_roots) and not within(rp, write_roots):
            block("listing %s is disabled" % rp, _PermissionError, False)

    def h_fs(event, idx):
        def h(args):
            if not harden or _type(args) is not _tuple:
                return
            for i in idx:
                if i >= _len(args):
                    continue
                p = args[i]
                if _type(p) is _int:
                    continue
                rp = resolve(as_path(p, event))
                if not within(rp, write_roots):
                    block("%s outside the working directory is disabled (%s)" % (event, rp),
                          _PermissionError, True)
        return h

    def h_prlimit(args):
        if harden and _type(args) is _tuple and args and args[0] not in (0, _getpid()):
            block("changing limits of other processes is disabled", _PermissionError, True)

    def h_blocked(args):
        what = args[0] if _type(args) is _tuple and args and _type(args[0]) is _str else "this"
        block("%s is disabled" % what, _RuntimeError, False)

    def h_imp(args):
        if _type(args) is not _tuple or _len(args) != 3:
            block("bad _imp call", _ImportError, True)
        fname, call_args, box = args
        if _type(fname) is not _str or fname not in real_imp or _type(call_args) is not _tuple \
                or _type(box) is not _list or not call_args:
            block("bad _imp call", _ImportError, True)
        if fname == "get_frozen_object":
            if _len(call_args) > 1 and call_args[1] is not None and harden:
                block("unmarshalling code is disabled", _ImportError, True)
            name = call_args[0]
            if _type(name) is not _str:
                block("bad module name", _ImportError, True)
            box.append(_trampoline(real_imp[fname], (_str_copy(name),) + call_args[1:]))
            return
        # Read the caller's spec exactly once and hand the real function a private, immutable
        # copy, so a spec whose attributes change between reads cannot slip past the checks.
        spec = call_args[0]
        name = _oga(spec, "name")
        if _type(name) is not _str:
            block("bad module name", _ImportError, True)
        name = _str_copy(name)
        origin = None
        if fname == "create_dynamic":
            origin = _oga(spec, "origin")
            if _type(origin) is not _str:
                block("bad extension module origin", _ImportError, True)
            origin = _str_copy(origin)
        if harden:
            if name in protected_modules or name.partition(".")[0] in blocked_imports:
                block("re-creating or loading %s is disabled" % name, _ImportError, True)
            if fname == "create_dynamic" and not within(resolve(origin), dynload_roots):
                block("loading native extension modules from outside the standard library "
                      "is disabled", _ImportError, True)
        # call through a trampoline whose frame has the real builtins: extension modules
        # look up __import__ & co. in the current frame while they initialise
        box.append(_trampoline(real_imp[fname], (_Namespace(name=name, origin=origin),)
                               + call_args[1:]))

    def h_fail(args):
        if _len(st["fails"]) < 50:
            msg = args[0] if _type(args) is _tuple and args and _type(args[0]) is _str else "?"
            st["fails"].append(msg)

    def h_arm(args, caller, code):
        if st["frame"] is not None:
            block("the harness is already armed", _RuntimeError, True)
        f = caller
        expected = args[0] if _type(args) is _tuple and args else None
        if _type(expected) is not _CodeType:
            raise _RuntimeError("sandbox: bad arm call")
        st["frame"] = f
        st["pid"] = _getpid()
        st["expected"] = expected
        st["bsnap"] = [(k, v) for k, v in builtins_dict.items()]
        st["tsnap"] = [(k, time_dict.get(k, MISSING)) for k in timers]

    def h_seal(args, caller, code):
        if st["frame"] is None or st["seal"] is not None or caller is not st["frame"]:
            block("unexpected seal", _RuntimeError, True)
        d = args[0] if _type(args) is _tuple and args else None
        if _type(d) is not _dict:
            raise _RuntimeError("sandbox: bad seal call")
        b = d.get("__builtins__", MISSING)
        if b is not builtins_objs[0] and b is not builtins_objs[1]:
            st["fails"].append("the test module's __builtins__ was replaced")
        snap = []
        for k, v in d.items():
            if _type(k) is not _str:
                st["fails"].append("test module namespace has a non-str key")
                continue
            if k == "__warningregistry__":  # maintained by the warnings machinery
                continue
            try:
                c = _norm(v)
            except _TypeError:
                c = MISSING
            snap.append((k, v, c))
        st["seal"] = (d, snap)

    def verdict(name, fn, caller):
        if st["frame"] is None or caller is not st["frame"]:
            return "result reported from an unexpected place"
        if _getpid() != st["pid"]:
            return "result reported from a forked process"
        if st["done"]:
            return "result already reported"
        if st["seal"] is None:
            return "test module was not sealed"
        if st["fails"]:
            return "a check failed: " + st["fails"][0]
        if st["viol"]:
            return "the code attempted a blocked operation: " + st["viol"][0]
        if _type(name) is not _str or _type(fn) is not _FunctionType:
            return "bad test function"
        st["depth"] += 1
        try:
            code = fn.__code__
        finally:
            st["depth"] -= 1
        if code is not st["expected"]:
            return "the test function was replaced"
        bsnap = st["bsnap"]
        if _len(builtins_dict) != _len(bsnap):
            return "builtins were modified (names added or removed)"
        for k, v in bsnap:
            if builtins_dict.get(k, MISSING) is not v:
                return "builtins were modified (%s)" % k
        if sys_modules.get("time", MISSING) is not time_mod:
            return "sys.modules['time'] was replaced"
        for k, v in st["tsnap"]:
            if time_dict.get(k, MISSING) is not v:
                return "time.%s was replaced" % k
        d, snap = st["seal"]
        n = 0
        for k in d:
            if _type(k) is not _str:
                return "the test module's globals were modified (a non-str key was added)"
            if k != "__warningregistry__":
                n += 1
        if n != _len(snap):
            return "the test module's globals were modified (names added or removed)"
        for k, v, c in snap:
            cur = d.get(k, MISSING)
            if cur is not v:
                return "the test module's global %r was replaced" % k
            if c is not MISSING:
                try:
                    now = _norm(cur)
                except _TypeError:
                    now = MISSING
                if now is MISSING or now != c:
                    return "the test module's global %r was mutated" % k
        return None

    def h_finish(args, caller, code):
        if _type(args) is not _tuple or _len(args) != 2:
            raise _RuntimeError("sandbox: bad finish call")
        name, fn = args
        why = verdict(name, fn, caller)
        if why is not None:
            raise _AssertionError(why)
        st["done"] = True
        data = (nonce + " " + name + " PASS\n").encode("utf-8")
        while data:
            n = _write(result_fd, data)
            data = data[n:]

    def h_tb(args):
        if _type(args) is not _tuple or _len(args) != 2:
            return
        tb, out = args
        if _type(out) is not _list:
            return
        n = 0
        while _type(tb) is _TB and n < 64:
            n += 1
            st["depth"] += 1
            try:
                code = tb.tb_frame.f_code
            finally:
                st["depth"] -= 1
            fn = code.co_filename
            if _type(fn) is _str and fn in report_files:
                out.append((fn, tb.tb_lineno, code.co_name))
            tb = tb.tb_next

    handlers = {
        "sys._getframe": h_getframe, "sys._getframemodulename": h_getframe,
        "object.__getattr__": h_getattr, "object.__setattr__": h_setattr,
        "object.__delattr__": h_setattr, "code.__new__": h_code_new, "os.fork": h_fork, "os.forkpty": h_fork,
        "os.kill": h_kill, "os.killpg": h_kill, "import": h_import, "open": h_open,
        "os.listdir": h_listdir, "os.scandir": h_listdir, "resource.prlimit": h_prlimit,
        "steer.blocked": h_blocked, "steer.imp": h_imp, "steer.fail": h_fail,
        "steer.arm": h_arm, "steer.seal": h_seal, "steer.finish": h_finish, "steer.tb": h_tb,
    }
    for ev in serious_events:
        if ev not in handlers:
            handlers[ev] = h_serious(ev)
    for ev, idx in fs_events.items():
        handlers[ev] = h_fs(ev, idx)

    def hook(event, args):
        if _type(event) is not _str:
            return
        if st["depth"] and event in DEPTH_OK:
            return
        h = handlers.get(event)
        if h is not None:
            if event in CALLER_EVENTS:
                st["depth"] += 1
                try:
                    caller = _getframe(1)
                    code = caller.f_code
                finally:
                    st["depth"] -= 1
                h(args, caller, code)
            else:
                h(args)
        elif harden and (event.startswith("ctypes.") or
                         (block_net and event.startswith("socket."))):
            if event == "socket.__new__" and _type(args) is _tuple and _len(args) > 1 and \
                    _type(args[1]) is _int and args[1] == af_unix:
                return  # e.g. asyncio's socketpair; connect/bind/sendto stay blocked
            block("%s is disabled" % event, _PermissionError, True)

    return hook


def _trampoline(fn, args):
    return fn(*args)


def _blocker_factory(audit, what):
    def blocked(*args, **kwargs):
        audit("steer.blocked", what)
    return blocked


def _imp_wrapper_factory(audit, fname):
    def wrapper(*args):
        box = []
        audit("steer.imp", fname, args, box)
        return box[0]
    return wrapper


def _isolated(fn):
    """Re-create a function with empty globals (no builtins): it can only use its arguments."""
    return types.FunctionType(fn.__code__, {"__builtins__": {}}, fn.__name__)


def _describe(exc, audit, test_base, max_len=600):
    try:
        tname = type(exc).__name__
    except Exception:
        tname = "Exception"
    try:
        msg = str(exc)
    except Exception:
        msg = "<unprintable>"
    if msg.startswith(test_base + ":"):
        return msg if len(msg) <= max_len else msg[: max_len - 3] + "..."
    text = tname + (": " + msg if msg else "")
    where = []
    try:
        audit("steer.tb", exc.__traceback__, where)
    except Exception:
        pass
    if where:
        loc = " <- ".join("%s:%d in %s" % (os.path.basename(f), ln, n)
                          for f, ln, n in reversed(where[-4:]))
        text = text + "  [at " + loc + "]"
    return text if len(text) <= max_len else text[: max_len - 3] + "..."


def _run_test(code, expected, name, modname, filename, result_fd):
    audit = sys.audit
    base = os.path.basename(filename)
    audit("steer.arm", expected)
    mod = types.ModuleType(modname)
    mod.__file__ = filename
    sys.modules[modname] = mod
    try:
        exec(code, mod.__dict__)
    except BaseException as e:  # noqa: B902 - SystemExit etc. from the solution included
        _err(result_fd, name, "error while importing the test module (and the solution): "
             + _describe(e, audit, base))
        return
    _emit(result_fd, "IMPORTED")
    audit("steer.seal", mod.__dict__)
    fn = mod.__dict__.get(name)
    if type(fn) is not types.FunctionType:
        _err(result_fd, name, "test function %s is missing or was replaced" % name)
        return
    try:
        fn()
    except BaseException as e:  # noqa: B902
        _err(result_fd, name, _describe(e, audit, base))
        return
    try:
        audit("steer.finish", name, fn)
    except BaseException as e:  # noqa: B902
        _err(result_fd, name, "not counted as passed: " + str(e))


def _main():
    cfg = _read_config(int(sys.argv[1]))
    result_fd = cfg["result_fd"]
    name = cfg["test"]
    try:
        # rlimits first (lowering needs no privilege and survives the uid drop below)
        for rname, (soft, hard) in cfg["rlimits"].items():
            res = getattr(resource, "RLIMIT_" + rname)
            cur_hard = resource.getrlimit(res)[1]
            if cur_hard != resource.RLIM_INFINITY:
                hard = min(hard, cur_hard)
            resource.setrlimit(res, (min(soft, hard), hard))
        _signal.signal(_signal.SIGINT, _signal.SIG_IGN)
        drop = cfg.get("drop")
        if drop:
            uid, gid = drop
            os.setgroups([])
            os.setresgid(gid, gid, gid)
            os.setresuid(uid, uid, uid)
            if os.getuid() != uid or os.geteuid() != uid or os.getgid() != gid:
                raise RuntimeError("could not drop privileges")
        os.umask(0o022)
        os.chdir(cfg["workdir"])
        for m in _PREIMPORT:
            try:
                __import__(m)
            except Exception:
                pass
        filename = cfg["test_path"]
        try:
            code, used, tree = _compile_tests(cfg["test_source"], filename)
        except SyntaxError as e:
            _err(result_fd, name, "test file does not compile: %s" % e)
            return
        op_in, op_not_in = _isolated(_ops_factory)(operator.contains)
        scalars = [type(None), bool, int, float, complex, str, bytes, range, type(Ellipsis),
                   type]
        K = {"type": type, "id": id, "len": len, "repr": repr, "bool": bool, "audit": sys.audit,
             "AssertionError": AssertionError, "Exception": Exception, "TypeError": TypeError,
             "range": range, "set": set, "frozenset": frozenset, "list": list, "tuple": tuple,
             "dict": dict, "bytearray": bytearray, "int": int, "float": float,
             "complex": complex, "str": str, "bytes": bytes,
             "filename": os.path.basename(filename),
             "type_name": type.__dict__["__qualname__"].__get__,
             "mro": type.__dict__["__mro__"].__get__,
             "scalar_ids": {id(t): True for t in scalars},
             "dict_items": dict.items, "list_iter": list.__iter__, "tuple_iter": tuple.__iter__,
             "set_iter": set.__iter__, "frozenset_iter": frozenset.__iter__,
             "int_int": int.__int__, "float_float": float.__float__,
             "complex_complex": complex.__complex__, "str_str": str.__str__,
             "bytes_bytes": bytes.__bytes__, "keys_type": type({}.keys()),
             "values_type": type({}.values()), "items_type": type({}.items()),
             "ident_ops": frozenset({"Is", "IsNot"}),
             "ops": {"Eq": operator.eq, "NotEq": operator.ne, "Lt": operator.lt,
                     "LtE": operator.le, "Gt": operator.gt, "GtE": operator.ge,
                     "Is": operator.is_, "IsNot": operator.is_not,
                     "In": op_in, "NotIn": op_not_in}}
        K["norm"] = _isolated(_normalize_factory)(K)
        checkers = _isolated(_checker_factory)(K)
        table = {}
        for key, obj in used.items():
            kind = key[len(_PH):].partition(":")[0]
            table[key] = obj if kind == "obj" else checkers[kind]
        code = _inject(code, table)
        expected = _find_test_code(code, tree, name)
        if expected is None:
            _err(result_fd, name, "test function %s not found in the test file" % name)
            return
        if expected.co_flags & (0x20 | 0x80 | 0x100 | 0x200) or expected.co_argcount:
            _err(result_fd, name, "test function %s must be a plain function without "
                 "parameters (no generator/async tests)" % name)
            return
        workdir = cfg["workdir"]
        sys.path.append(workdir)
        sys.pycache_prefix = "/nonexistent-steer-pycache"
        gen_types = {types.GeneratorType: lambda g: g.gi_code,
                     types.CoroutineType: lambda c: c.cr_code,
                     types.AsyncGeneratorType: lambda a: a.ag_code}
        G = {"type": type, "str": str, "bytes": bytes, "int": int, "len": len, "tuple": tuple,
             "list": list, "dict": dict, "id": id, "getframe": sys._getframe,
             "getpid": os.getpid, "getppid": os.getppid, "write": os.write, "lstat": os.lstat,
             "stat": os.stat, "readlink": os.readlink, "getcwd": os.getcwd,
             "bytes_decode": bytes.decode, "FunctionType": types.FunctionType,
             "CodeType": types.CodeType, "TracebackType": types.TracebackType,
             "gen_types": gen_types, "SimpleNamespace": types.SimpleNamespace,
             "str_copy": str.__str__,
             "trampoline": types.FunctionType(_trampoline.__code__,
                                              {"__builtins__": builtins.__dict__}),
             "object_getattribute": object.__getattribute__,
             "PermissionError": PermissionError, "ValueError": ValueError,
             "AttributeError": AttributeError, "ImportError": ImportError,
             "RuntimeError": RuntimeError, "AssertionError": AssertionError, "OSError": OSError,
             "TypeError": TypeError,
             "norm": K["norm"],
             "harden": bool(cfg["harden"]), "allow_fork": bool(cfg["allow_fork"]),
             "block_net": bool(cfg["harden"]),
             "read_roots": tuple(cfg["read_roots"]), "write_roots": tuple(cfg["write_roots"]),
             "dev_ok": tuple(cfg["dev_ok"]), "dynload_roots": tuple(cfg["dynload_roots"]),
             "protected_files": frozenset({filename, "<steer-runner>"}),
             "report_files": frozenset({filename, os.path.join(workdir, "solution.py")}),
             "result_fd": result_fd, "blocked_imports": _BLOCKED_IMPORTS,
             "protected_modules": _PROTECTED_MODULES, "serious_events": _SERIOUS_EVENTS,
             "fs_events": dict(_FS_EVENTS),
             "imp": {"create_builtin": _imp.create_builtin,
                     "create_dynamic": _imp.create_dynamic,
                     "get_frozen_object": _imp.get_frozen_object},
             "builtins_dict": builtins.__dict__, "time_dict": time.__dict__, "time_mod": time,
             "sys_modules": sys.modules, "timers": _TIMERS,
             "write_flags": os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND,
             "dir_flags": os.O_DIRECTORY | getattr(os, "O_PATH", 0), "missing": object(),
             "builtins_objs": (builtins, builtins.__dict__),
             "coroutine_code": types.coroutine.__code__, "af_unix": 1}
        hook = _isolated(_guard_factory)(G, cfg.pop("nonce"))
        del cfg["test_source"]
        audit = sys.audit
        iso_block = _isolated(_blocker_factory)
        iso_imp = _isolated(_imp_wrapper_factory)
        thread_blocker = iso_block(audit, "starting threads")
        signal_blockers = {a: iso_block(audit, "signal handling (%s)" % a)
                           for a in ("signal", "pidfd_send_signal", "siginterrupt",
                                     "set_wakeup_fd")}
        gc_blocker = iso_block(audit, "gc.set_debug")
        if cfg["harden"] and "_posixsubprocess" not in sys.modules:
            # importing subprocess/asyncio works; spawning is refused (and audited anyway)
            stub = types.ModuleType("_posixsubprocess")
            stub.fork_exec = iso_block(audit, "spawning processes")
            sys.modules["_posixsubprocess"] = stub
        imp_wrappers = {a: iso_imp(audit, a)
                        for a in ("create_builtin", "create_dynamic", "get_frozen_object")}
        import gc
        sys.addaudithook(hook)
        del hook
        if cfg["harden"]:
            for attr in ("start_new_thread", "start_new", "start_joinable_thread"):
                if hasattr(_thread, attr):
                    setattr(_thread, attr, thread_blocker)
            threading_mod = sys.modules.get("threading")
            if threading_mod is not None:
                threading_mod._start_new_thread = thread_blocker
            for attr, blocker in signal_blockers.items():
                if hasattr(_signal, attr):
                    setattr(_signal, attr, blocker)
            gc.set_debug(0)
            gc.set_debug = gc_blocker
            for attr, wrapper in imp_wrappers.items():
                setattr(_imp, attr, wrapper)
        _run_test(code, expected, name, cfg["modname"], filename, result_fd)
    except BaseException as e:  # noqa: B902
        try:
            _err(result_fd, name, "harness error: %s: %s" % (type(e).__name__, e))
        except BaseException:
            pass
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except BaseException:
                pass
        os._exit(0)


def _ops_factory(contains):
    def op_in(a, b):
        return contains(b, a)

    def op_not_in(a, b):
        return not contains(b, a)
    return op_in, op_not_in


_main()
'''

_RUNNER_CODE = compile(_RUNNER_SOURCE, "<steer-runner>", "exec")  # fail fast on a syntax error
_BOOTSTRAP = ("exec(compile(%r, '<steer-runner>', 'exec'), "
              "{'__name__': '__steer_runner__', '__builtins__': __builtins__})" % _RUNNER_SOURCE)

_lock = threading.RLock()
_DEV_OK = ("/dev/null", "/dev/zero", "/dev/urandom", "/dev/random", "/dev/full")
_EXTRA_READ_ROOTS = ("/usr/share/zoneinfo", "/usr/lib/locale")

_probe_cache: dict[tuple, tuple[bool, str]] = {}
_weak_warned = False


# ---------------------------------------------------------------------------------------- helpers
def collect_test_names(test_code: str) -> list[str]:
    """Names of the top-level ``def test*():`` functions, in file order (what the sandbox runs)."""
    tree = ast.parse(test_code)
    names: list[str] = []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("test"):
            if node.name not in names:
                names.append(node.name)
    return names


_PY_PATHS: dict[str, Any] = {}


def _python_paths() -> dict[str, Any]:
    """The interpreter (real path of ``sys.executable``) and the directories it needs when
    started with ``-I -S`` (asked from the interpreter itself; cached)."""
    with _lock:
        if _PY_PATHS:
            return _PY_PATHS
    exe = os.path.realpath(sys.executable)
    out = subprocess.run(
        [exe, "-I", "-S", "-B", "-c",
         "import sys, json; print(json.dumps([sys.prefix, sys.exec_prefix, sys.path]))"],
        capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    if out.returncode != 0:
        raise RuntimeError(f"cannot start the interpreter {exe}: {out.stderr.strip()[-300:]}")
    prefix, exec_prefix, path = json.loads(out.stdout.strip().splitlines()[-1])
    roots = {os.path.realpath(prefix), os.path.realpath(exec_prefix), os.path.dirname(exe)}
    dynload = []
    for entry in path:
        rp = os.path.realpath(entry)
        if os.path.isdir(rp):
            roots.add(rp)
            dynload.append(rp)
    libdir = sysconfig.get_config_var("LIBDIR")
    if libdir and os.path.isdir(libdir):
        roots.add(os.path.realpath(libdir))
    info = {"exe": exe, "roots": _minimal_roots(roots), "dynload": dynload}
    with _lock:
        _PY_PATHS.update(info)
    return info


def _minimal_roots(paths: Iterable[str]) -> list[str]:
    out: list[str] = []
    for p in sorted(set(paths), key=len):
        if not any(p == r or p.startswith(r.rstrip("/") + "/") for r in out):
            out.append(p)
    return out


def _hidden_ancestor(path: str, uid: int, gid: int) -> str | None:
    """Topmost ancestor directory of ``path`` that ``uid`` cannot traverse (ignoring root powers)."""
    cur = "/"
    for part in [p for p in path.split("/") if p]:
        cur = os.path.join(cur, part)
        try:
            st = os.stat(cur)
        except OSError:
            return None
        if not os.path.isdir(cur):
            return None
        if st.st_uid == uid:
            ok = bool(st.st_mode & 0o100)
        elif st.st_gid == gid:
            ok = bool(st.st_mode & 0o010)
        else:
            ok = bool(st.st_mode & 0o001)
        if not ok:
            return cur
    return None


def _count_procs_of(uid: int) -> int:
    n = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/status", "rb") as f:
                for line in f:
                    if line.startswith(b"Uid:"):
                        if int(line.split()[1]) == uid:
                            n += 1
                        break
        except (OSError, ValueError, IndexError):
            continue
    return n


def _per_userns_nproc() -> bool:
    """Since Linux 5.14 RLIMIT_NPROC is accounted per user namespace (ucounts)."""
    try:
        major, minor = (int(x) for x in os.uname().release.split(".")[:2])
    except ValueError:
        return False
    return (major, minor) >= (5, 14)


def _marked_pids(marker: bytes) -> list[int]:
    me = os.getpid()
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                if marker in f.read():
                    out.append(int(entry))
        except OSError:
            continue
    return out


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
        return data[data.rindex(b")") + 2:][:1] not in (b"Z", b"X")
    except (OSError, ValueError):
        return False


def _kill_tree(proc: subprocess.Popen, marker: bytes) -> None:
    """Kill the sandbox's whole process tree: its process group, then anything carrying the
    run's environment marker (covers processes that escaped with setsid), and wait for them."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass
    deadline = time.monotonic() + 3.0
    while True:
        pids = [p for p in _marked_pids(marker) if _alive(p)]
        if not pids or time.monotonic() > deadline:
            break
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        time.sleep(0.02)


def _rlimits(limits: Limits, nproc: int | None) -> dict[str, list[int]]:
    """Limits the runner applies to itself before any untrusted code runs (inherited by
    anything it forks). Applied in-process rather than with ``preexec_fn``, which is unsafe
    when the caller has threads."""
    cpu = limits.cpu_seconds()
    mem = int(limits.memory_mb) << 20
    fsize = int(limits.file_size_mb) << 20
    out = {"CPU": [cpu, cpu + 1], "AS": [mem, mem], "FSIZE": [fsize, fsize],
           "NOFILE": [int(limits.open_files)] * 2, "CORE": [0, 0]}
    if nproc is not None:
        out["NPROC"] = [nproc, nproc]
    return out


_FEATURES: dict[str, str] = {}


def _bwrap_features(bwrap: str) -> str:
    """``bwrap --help`` text (to detect --size/--perms support of older versions); cached."""
    if bwrap not in _FEATURES:
        try:
            out = subprocess.run([bwrap, "--help"], capture_output=True, text=True, timeout=10)
            _FEATURES[bwrap] = out.stdout + out.stderr
        except (OSError, subprocess.SubprocessError):
            return ""
    return _FEATURES[bwrap]


@dataclass
class _Plan:
    """How to start one sandboxed process (computed once per run)."""

    backend: str
    argv_prefix: list[str]      # everything before the python command line
    py: str
    env: dict[str, str]
    cwd: str                    # host cwd for Popen
    inside_workdir: str
    drop: list[int] | None
    nproc: int | None
    read_roots: list[str]
    write_roots: list[str]
    dynload_roots: list[str]
    allow_fork: bool
    notes: list[str]


def _plan(backend: str, host_workdir: str, limits: Limits, marker: str,
          probing: bool = False) -> _Plan:
    pyp = _python_paths()
    root = os.geteuid() == 0
    py = pyp["exe"]
    notes: list[str] = []
    if backend == "bwrap":
        bwrap = shutil.which("bwrap")
        if not bwrap:
            raise SandboxUnavailable("bwrap not found on PATH")
        feats = _bwrap_features(bwrap)
        args = [bwrap, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"]
        if "--size" in feats:
            args += ["--size", str(int(limits.tmpfs_mb) << 20)]
        tmp_writable = not root
        if root and "--perms" in feats:
            args += ["--perms", "1777"]
            tmp_writable = True
        args += ["--tmpfs", "/tmp"]
        drop = None
        if root:
            drop = [UNPRIVILEGED_UID, UNPRIVILEGED_GID]
            hidden: dict[str, list[str]] = {}
            for r in pyp["roots"] + [os.path.dirname(py)]:
                a = _hidden_ancestor(r, UNPRIVILEGED_UID, UNPRIVILEGED_GID)
                if a and not (a == "/tmp" or a.startswith("/tmp/")):
                    hidden.setdefault(a, []).append(r)
            for a in sorted(hidden, key=len):
                # a private, world-traversable tmpfs over the unreadable ancestor (e.g. /root),
                # with only the interpreter's directories bound back (read-only)
                args += ["--tmpfs", a]
                made = {a}
                for r in _minimal_roots(hidden[a]):
                    parts = os.path.relpath(r, a).split(os.sep)
                    for i in range(1, len(parts)):
                        d = os.path.join(a, *parts[:i])
                        if d not in made and "--perms" in feats:
                            args += ["--perms", "0755", "--dir", d]
                            made.add(d)
                    args += ["--ro-bind", r, r]
        args += ["--bind", host_workdir, _INSIDE_WORKDIR, "--chdir", _INSIDE_WORKDIR]
        if root:
            # No user namespace: bwrap runs privileged, the runner then drops to a real
            # unprivileged uid, so RLIMIT_NPROC is enforced by the kernel (not so for uid 0).
            args += ["--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts",
                      "--unshare-cgroup-try", "--cap-drop", "ALL", "--cap-add", "CAP_SETUID",
                      "--cap-add", "CAP_SETGID"]
        else:
            args += ["--unshare-all"]
        args += ["--die-with-parent", "--new-session", "--clearenv"]
        env = {"PATH": "/usr/bin:/bin", "HOME": _INSIDE_WORKDIR, "LANG": "C.UTF-8",
               "STEER_SANDBOX_ID": marker}
        for k, v in env.items():
            args += ["--setenv", k, v]
        args.append("--")
        if probing:
            nproc = None
        elif root:  # no user namespace: the kernel counts every process of uid 65534
            nproc = int(limits.max_procs) + _count_procs_of(UNPRIVILEGED_UID) + 2
        elif _per_userns_nproc():  # counted inside the sandbox's own user namespace
            nproc = int(limits.max_procs) + 2
        else:
            nproc = int(limits.max_procs) + _count_procs_of(os.getuid()) + 2
        write_roots = ["/tmp"] if tmp_writable else [_INSIDE_WORKDIR]
        return _Plan("bwrap", args, py, {}, host_workdir, _INSIDE_WORKDIR, drop, nproc,
                     pyp["roots"] + list(_EXTRA_READ_ROOTS) + ["/tmp"], write_roots,
                     pyp["dynload"], bool(limits.allow_fork), notes)

    # rlimit fallback
    drop = None
    allow_fork = bool(limits.allow_fork)
    if root:
        if _fallback_can_drop(limits):
            drop = [UNPRIVILEGED_UID, UNPRIVILEGED_GID]
        else:
            notes.append("running as root without a uid drop (the interpreter is not readable "
                         "by uid %d): RLIMIT_NPROC is not enforced, fork is disabled"
                         % UNPRIVILEGED_UID)
            allow_fork = False
    uid = UNPRIVILEGED_UID if drop else os.getuid()
    nproc = None if (probing or (root and not drop)) else \
        int(limits.max_procs) + _count_procs_of(uid) + 2
    env = {"PATH": "/usr/bin:/bin", "HOME": host_workdir, "LANG": "C.UTF-8",
           "STEER_SANDBOX_ID": marker}
    workdir = os.path.realpath(host_workdir)
    return _Plan("rlimit", [], py, env, workdir, workdir, drop, nproc,
                 pyp["roots"] + list(_EXTRA_READ_ROOTS), [workdir], pyp["dynload"],
                 allow_fork, notes)


def _probe(argv: list[str], env: dict[str, str] | None, cwd: str) -> tuple[bool, str]:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=20, env=env, cwd=cwd,
                             stdin=subprocess.DEVNULL, start_new_session=True)
    except (OSError, subprocess.SubprocessError) as e:
        return False, f"{type(e).__name__}: {e}"
    if out.returncode == 0 and "steer-ok" in out.stdout:
        return True, ""
    msg = (out.stderr or out.stdout).strip().splitlines()
    return False, (msg[-1] if msg else f"exit status {out.returncode}")[:300]


_PROBE_CODE = ("import os\n"
               "d = %r\n"
               "if d:\n"
               "    os.setgroups([]); os.setresgid(d[1], d[1], d[1]); os.setresuid(d[0], d[0], d[0])\n"
               "import json, ast, collections, math\n"
               "open('probe.txt', 'w').write('x')\n"
               "print('steer-ok', os.getuid())\n")


def _probe_backend(backend: str, limits: Limits) -> tuple[bool, str]:
    key = (backend, os.geteuid(), sys.executable)
    with _lock:
        if key in _probe_cache:
            return _probe_cache[key]
    workdir = tempfile.mkdtemp(prefix="steer-probe-")
    try:
        try:
            plan = _plan(backend, workdir, limits, "probe", probing=True)
        except SandboxUnavailable as e:
            res = (False, str(e))
        else:
            if plan.drop:
                os.chown(workdir, plan.drop[0], plan.drop[1])
                os.chmod(workdir, 0o711)
            argv = plan.argv_prefix + [plan.py, "-I", "-S", "-B", "-c", _PROBE_CODE % (plan.drop,)]
            res = _probe(argv, plan.env or None, plan.cwd)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    with _lock:
        _probe_cache[key] = res
    return res


def _fallback_can_drop(limits: Limits) -> bool:
    key = ("rlimit-drop", sys.executable)
    with _lock:
        if key in _probe_cache:
            return _probe_cache[key][0]
    workdir = tempfile.mkdtemp(prefix="steer-probe-")
    try:
        os.chown(workdir, UNPRIVILEGED_UID, UNPRIVILEGED_GID)
        code = _PROBE_CODE % ([UNPRIVILEGED_UID, UNPRIVILEGED_GID],)
        res = _probe([os.path.realpath(sys.executable), "-I", "-S", "-B", "-c", code],
                     {"PATH": "/usr/bin:/bin"}, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    with _lock:
        _probe_cache[key] = res
    return res[0]


def bwrap_available() -> bool:
    """True when bubblewrap can start the sandbox on this machine (result cached)."""
    return _probe_backend("bwrap", Limits())[0]


def bwrap_unavailable_reason() -> str:
    ok, why = _probe_backend("bwrap", Limits())
    return "" if ok else why


def default_backend() -> str:
    return "bwrap" if bwrap_available() else "rlimit"


def _warn_weak(reason: str, notes: list[str]) -> None:
    global _weak_warned
    with _lock:
        if _weak_warned:
            return
        _weak_warned = True
    msg = ("steer sandbox: using the WEAK 'rlimit' fallback (%s). Untrusted code runs without "
           "OS-level network or filesystem isolation: only rlimits, a new session, a clean "
           "environment, a temporary working directory and the in-process guard protect this "
           "machine. Install bubblewrap ('apt-get install bubblewrap') and allow user "
           "namespaces to get real isolation.%s"
           % (reason, (" " + " ".join(notes)) if notes else ""))
    log.warning(msg)
    warnings.warn(msg, RuntimeWarning, stacklevel=3)


def _resolve_backend(backend: str, limits: Limits) -> tuple[str, str]:
    if backend not in ("auto", "bwrap", "rlimit"):
        raise ValueError(f"backend must be 'auto', 'bwrap' or 'rlimit', got {backend!r}")
    if backend == "rlimit":
        return "rlimit", "requested explicitly"
    ok, why = _probe_backend("bwrap", limits)
    if ok:
        return "bwrap", ""
    if backend == "bwrap":
        raise SandboxUnavailable(f"bubblewrap cannot create a sandbox here: {why}")
    return "rlimit", f"bubblewrap unavailable: {why}"


def _read_capped(f, cap: int) -> str:
    f.seek(0)
    data = f.read(cap + 1)
    text = data.decode("utf-8", "replace")
    if len(data) > cap:
        text = text[:cap] + "\n...[truncated]"
    return text


def _signal_text(rc: int) -> str:
    sig = -rc
    names = {signal.SIGKILL: "killed (SIGKILL; wall-clock or memory limit?)",
             signal.SIGXCPU: "CPU time limit exceeded (SIGXCPU)",
             signal.SIGXFSZ: "file size limit exceeded (SIGXFSZ)",
             signal.SIGSEGV: "crashed (SIGSEGV; out of memory or stack?)",
             signal.SIGABRT: "aborted (SIGABRT)"}
    if sig in names:
        return names[sig]
    try:
        return f"killed by signal {signal.Signals(sig).name}"
    except ValueError:
        return f"killed by signal {sig}"


# ---------------------------------------------------------------------------------------- main API
def run_tests(solution_code: str, test_code: str, *, timeout_s: float | None = None,
              limits: Limits | None = None, backend: str = "auto",
              test_filename: str = _DEFAULT_TEST_FILE) -> SandboxResult:
    """Run every ``test_*`` function of ``test_code`` against ``solution_code`` in the sandbox.

    The solution is written to ``solution.py`` and the tests to ``test_filename`` in a fresh
    temporary directory (removed afterwards); the tests import it with ``from solution import``.
    Each test function runs in its own process, with ``timeout_s`` (default ``limits.timeout_s``,
    i.e. 10 s) of wall-clock time. ``backend``: ``"auto"`` (bwrap if it works here, else the
    rlimit fallback with a loud warning), ``"bwrap"`` (raise :class:`SandboxUnavailable` if it
    cannot work) or ``"rlimit"``.
    """
    limits = limits or Limits()
    if timeout_s is not None:
        limits = Limits(**{**asdict(limits), "timeout_s": float(timeout_s)})
    t_start = time.monotonic()
    if not isinstance(solution_code, str) or not isinstance(test_code, str):
        raise TypeError("solution_code and test_code must be str")
    if os.path.basename(test_filename) != test_filename or not test_filename.endswith(".py") \
            or test_filename == _SOLUTION_FILE:
        raise ValueError(f"bad test_filename {test_filename!r}")
    chosen, why = _resolve_backend(backend, limits)
    try:
        collected = collect_test_names(test_code)
    except SyntaxError as e:
        return SandboxResult([], [], False, False, chosen, error=f"test file does not parse: {e}")
    if not collected:
        return SandboxResult([], [], False, False, chosen, error="no test functions collected")

    marker = "steer-" + secrets.token_hex(12)
    host_workdir = tempfile.mkdtemp(prefix="steer-sandbox-")
    try:
        plan = _plan(chosen, host_workdir, limits, marker)
        if chosen == "rlimit":
            _warn_weak(why, plan.notes)
        with open(os.path.join(host_workdir, _SOLUTION_FILE), "w", encoding="utf-8") as f:
            f.write(solution_code)
        with open(os.path.join(host_workdir, test_filename), "w", encoding="utf-8") as f:
            f.write(test_code)
        if plan.drop:
            for p in (host_workdir, os.path.join(host_workdir, _SOLUTION_FILE),
                      os.path.join(host_workdir, test_filename)):
                os.chown(p, plan.drop[0], plan.drop[1])
            # bwrap (uid 0 without capabilities) must be able to chdir into it
            os.chmod(host_workdir, 0o711)
        outcomes: list[TestOutcome] = []
        outs: list[str] = []
        errs: list[str] = []
        any_timeout = False
        skip_reason: str | None = None
        deadline = t_start + limits.total_seconds()
        for name in collected:
            remaining = deadline - time.monotonic()
            if skip_reason is None and remaining < 0.05:
                skip_reason = "not run: the run's total time budget was exhausted"
            if skip_reason is not None:
                outcomes.append(TestOutcome(name, False, skip_reason))
                continue
            outcome, out, err, import_hung = _run_one(
                plan, limits, name, test_code, test_filename, marker,
                min(limits.timeout_s, remaining))
            outcomes.append(outcome)
            any_timeout = any_timeout or outcome.timed_out
            if out:
                outs.append(f"--- {name} ---\n{out}")
            if err:
                errs.append(f"--- {name} ---\n{err}")
            if import_hung:
                skip_reason = ("not run: importing the solution timed out in an earlier test "
                               f"({name})")
        stdout = "\n".join(outs)
        stderr = "\n".join(errs)
        if len(stdout) > _TOTAL_OUTPUT_CAP:
            stdout = stdout[:_TOTAL_OUTPUT_CAP] + "\n...[truncated]"
        if len(stderr) > _TOTAL_OUTPUT_CAP:
            stderr = stderr[:_TOTAL_OUTPUT_CAP] + "\n...[truncated]"
        return SandboxResult(
            tests=outcomes, collected=list(collected),
            all_passed=bool(outcomes) and all(t.passed for t in outcomes),
            timed_out=any_timeout, backend=plan.backend, stdout=stdout, stderr=stderr,
            duration_s=round(time.monotonic() - t_start, 4), notes=list(plan.notes))
    finally:
        shutil.rmtree(host_workdir, ignore_errors=True)


def _write_all(fd: int, data: bytes) -> None:
    try:
        view = memoryview(data)
        while view:
            n = os.write(fd, view)
            view = view[n:]
    except OSError:
        pass
    finally:
        os.close(fd)


def _run_one(plan: _Plan, limits: Limits, name: str, test_code: str, test_filename: str,
             marker: str, timeout: float) -> tuple[TestOutcome, str, str, bool]:
    nonce = secrets.token_hex(16)
    cfg_r, cfg_w = os.pipe()
    res_r, res_w = os.pipe()
    cfg = {"nonce": nonce, "test": name, "test_source": test_code,
           "test_path": os.path.join(plan.inside_workdir, test_filename),
           "modname": test_filename[:-3], "workdir": plan.inside_workdir, "result_fd": res_w,
           "drop": plan.drop, "harden": bool(limits.harden), "allow_fork": plan.allow_fork,
           "read_roots": plan.read_roots, "write_roots": plan.write_roots,
           "dev_ok": list(_DEV_OK), "dynload_roots": plan.dynload_roots,
           "rlimits": _rlimits(limits, plan.nproc)}
    payload = json.dumps(cfg).encode("utf-8")
    argv = plan.argv_prefix + [plan.py, "-I", "-S", "-B", "-c", _BOOTSTRAP, str(cfg_r)]
    writer = None
    out_f = tempfile.TemporaryFile()
    err_f = tempfile.TemporaryFile()
    t0 = time.monotonic()
    try:
        try:
            proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=out_f, stderr=err_f,
                pass_fds=(cfg_r, res_w), start_new_session=True, cwd=plan.cwd,
                env=plan.env if plan.backend == "rlimit" else {"PATH": "/usr/bin:/bin"})
        finally:
            os.close(cfg_r)
            os.close(res_w)
        if len(payload) < 60_000:
            _write_all(cfg_w, payload)
        else:
            writer = threading.Thread(target=_write_all, args=(cfg_w, payload), daemon=True)
            writer.start()
        timed_out = False
        try:
            proc.wait(timeout=max(0.01, timeout))
        except subprocess.TimeoutExpired:
            timed_out = True
        duration = time.monotonic() - t0
        _kill_tree(proc, ("STEER_SANDBOX_ID=" + marker).encode())
        os.set_blocking(res_r, False)
        chunks = []
        total = 0
        while total < 1 << 20:
            try:
                b = os.read(res_r, 65536)
            except BlockingIOError:
                break
            if not b:
                break
            chunks.append(b)
            total += len(b)
        result_text = b"".join(chunks).decode("utf-8", "replace")
        out = _read_capped(out_f, _OUTPUT_CAP)
        err = _read_capped(err_f, _OUTPUT_CAP)
    finally:
        os.close(res_r)
        out_f.close()
        err_f.close()
        if writer is not None:
            writer.join(timeout=1)
    lines = result_text.splitlines()
    imported = "IMPORTED" in lines
    if f"{nonce} {name} PASS" in lines:
        return TestOutcome(name, True, None, round(duration, 4), False), out, err, False
    error = None
    for line in lines:
        if line.startswith("ERR "):
            try:
                rec = json.loads(line[4:])
            except ValueError:
                continue
            if isinstance(rec, dict) and rec.get("test") == name and isinstance(rec.get("error"), str):
                error = rec["error"]
                break
    if timed_out:
        error = (f"timed out after {timeout:.3g}s" +
                 ("" if imported else " (while importing the test module / solution)"))
    elif error is None:
        rc = proc.returncode
        if rc is not None and plan.backend == "bwrap" and 128 < rc < 128 + 65:
            rc = -(rc - 128)  # bwrap reports a child killed by signal N as 128 + N
        if rc is not None and rc < 0:
            error = "the test process was " + _signal_text(rc)
        else:
            error = (f"the test process exited (status {rc}) without reporting a result: the "
                     "code ended the process early (sys.exit/os._exit/kill?)")
        tail = [ln for ln in err.strip().splitlines() if ln.strip()]
        if tail:
            error += f"; last stderr line: {tail[-1][-200:]}"
    if len(error) > _ERROR_CAP:
        error = error[: _ERROR_CAP - 3] + "..."
    return (TestOutcome(name, False, error, round(duration, 4), timed_out), out, err,
            timed_out and not imported)
