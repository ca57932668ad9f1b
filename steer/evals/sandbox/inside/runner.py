"""The program each sandboxed test process runs: set limits, drop privileges, arm the guard, run.

Runs inside the sandbox: ``script.py`` joins the files of this folder into one source (this one
last) and starts it as ``python -I -S -B -c <source> <config fd>``, compiled with the file name
``<steer-runner>``. The host writes a JSON config (test name, nonce, limits, paths) to the config
fd; results go to the inherited result fd as lines: ``IMPORTED``, ``ERR {json}`` or (written by
the guard only) ``<nonce> <test> PASS``.
"""
import _imp
import _signal
import _thread
import builtins
import json
import operator
import os
import resource
import sys
import time
import types

from .checks import _checker_factory, _normalize_factory, _ops_factory
from .fsguard import _FS_EVENTS, _fs_guard_factory
from .guard import (_BLOCKED_IMPORTS, _PROTECTED_MODULES, _SERIOUS_EVENTS, _TIMERS,
                    _blocker_factory, _guard_factory, _imp_wrapper_factory, _trampoline)
from .rewrite import _PH, _compile_tests, _find_test_code, _inject

# cheap modules that solutions commonly use; anything else is imported (from source) on demand
_PREIMPORT = ("collections", "functools", "itertools", "math", "re", "heapq", "bisect", "string",
              "typing", "copy")


def _isolated(fn):
    """Re-create a function with empty globals (no builtins): it can only use its arguments."""
    return types.FunctionType(fn.__code__, {"__builtins__": {}}, fn.__name__)


def _read_config(fd: int) -> dict:
    parts = []
    while True:
        b = os.read(fd, 1 << 16)
        if not b:
            break
        parts.append(b)
    os.close(fd)
    return json.loads(b"".join(parts).decode("utf-8"))


def _emit(fd: int, line: str) -> None:
    data = (line.replace("\n", " ") + "\n").encode("utf-8", "replace")
    try:
        while data:
            n = os.write(fd, data)
            data = data[n:]
    except OSError:
        pass


def _err(fd: int, test: str, msg: object) -> None:
    _emit(fd, "ERR " + json.dumps({"test": test, "error": str(msg)[:2000]}))


def _describe(exc: BaseException, audit, test_base: str, max_len: int = 600) -> str:
    """A short reason: the exception's type and message and where in the test file or the
    solution it was raised (frames found by the guard, ``steer.tb``)."""
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


def _run_test(code: types.CodeType, expected: types.CodeType, name: str, modname: str,
              filename: str, result_fd: int) -> None:
    """Import the test module (and so the solution) and call the test function; the guard
    writes the PASS line at ``steer.finish`` if it finds nothing wrong."""
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


def _limit_and_drop(cfg: dict) -> None:
    """Apply the rlimits, ignore SIGINT, drop to the unprivileged uid if asked, enter the
    working directory."""
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


def _checker_kit(filename: str) -> dict:
    """``K``: what the trusted checkers are built from (captured before untrusted code runs)."""
    op_in, op_not_in = _isolated(_ops_factory)(operator.contains)
    scalars = [type(None), bool, int, float, complex, str, bytes, range, type(Ellipsis),
               type]
    return {"type": type, "id": id, "len": len, "repr": repr, "bool": bool, "audit": sys.audit,
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


def _guard_kit(cfg: dict, filename: str, norm) -> dict:
    """``G``: what the guard is built from (captured before untrusted code runs)."""
    workdir = cfg["workdir"]
    gen_types = {types.GeneratorType: lambda g: g.gi_code,
                 types.CoroutineType: lambda c: c.cr_code,
                 types.AsyncGeneratorType: lambda a: a.ag_code}
    return {"type": type, "str": str, "bytes": bytes, "int": int, "len": len, "tuple": tuple,
            "list": list, "dict": dict, "getframe": sys._getframe,
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
            "norm": norm,
            "harden": bool(cfg["harden"]), "allow_fork": bool(cfg["allow_fork"]),
            "block_net": bool(cfg["harden"]),
            "read_roots": tuple(cfg["read_roots"]), "write_roots": tuple(cfg["write_roots"]),
            "dev_ok": tuple(cfg["dev_ok"]), "dynload_roots": tuple(cfg["dynload_roots"]),
            "protected_files": frozenset({filename, "<steer-runner>"}),
            "report_files": frozenset({filename, os.path.join(workdir, "solution.py")}),
            "result_fd": cfg["result_fd"], "blocked_imports": _BLOCKED_IMPORTS,
            "protected_modules": _PROTECTED_MODULES, "serious_events": _SERIOUS_EVENTS,
            "fs_events": dict(_FS_EVENTS),
            "test_paths": frozenset({os.path.realpath(filename),
                                     os.path.realpath(os.path.join(workdir, "conftest.py"))}), "fs_guard_factory": _isolated(_fs_guard_factory),
            "imp": {"create_builtin": _imp.create_builtin,
                    "create_dynamic": _imp.create_dynamic,
                    "get_frozen_object": _imp.get_frozen_object},
            "builtins_dict": builtins.__dict__, "time_dict": time.__dict__, "time_mod": time,
            "sys_modules": sys.modules, "timers": _TIMERS,
            "write_flags": os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND,
            "dir_flags": os.O_DIRECTORY | getattr(os, "O_PATH", 0), "missing": object(),
            "builtins_objs": (builtins, builtins.__dict__),
            "coroutine_code": types.coroutine.__code__, "af_unix": 1}


def _install_guard(hook, harden: bool) -> None:
    """Install the audit hook; with ``harden`` also swap the functions that could get around it
    (threads, signals, gc debugging, ``_imp``) for ones that raise through the guard."""
    audit = sys.audit
    iso_block = _isolated(_blocker_factory)
    iso_imp = _isolated(_imp_wrapper_factory)
    thread_blocker = iso_block(audit, "starting threads")
    signal_blockers = {a: iso_block(audit, "signal handling (%s)" % a)
                       for a in ("signal", "pidfd_send_signal", "siginterrupt",
                                 "set_wakeup_fd")}
    gc_blocker = iso_block(audit, "gc.set_debug")
    if harden and "_posixsubprocess" not in sys.modules:
        # importing subprocess/asyncio works; spawning is refused (and audited anyway)
        stub = types.ModuleType("_posixsubprocess")
        stub.fork_exec = iso_block(audit, "spawning processes")
        sys.modules["_posixsubprocess"] = stub
    imp_wrappers = {a: iso_imp(audit, a)
                    for a in ("create_builtin", "create_dynamic", "get_frozen_object")}
    import gc
    sys.addaudithook(hook)
    del hook
    if harden:
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


def _main() -> None:
    cfg = _read_config(int(sys.argv[1]))
    result_fd = cfg["result_fd"]
    name = cfg["test"]
    try:
        _limit_and_drop(cfg)
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
        K = _checker_kit(filename)
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
        sys.path.append(cfg["workdir"])
        sys.pycache_prefix = "/nonexistent-steer-pycache"
        hook = _isolated(_guard_factory)(_guard_kit(cfg, filename, K["norm"]), cfg.pop("nonce"))
        del cfg["test_source"]
        _install_guard(hook, bool(cfg["harden"]))
        del hook
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


if __name__ == "__steer_runner__":  # set by script.BOOTSTRAP; importing this module runs nothing
    _main()
