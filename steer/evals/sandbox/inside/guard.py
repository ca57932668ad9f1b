"""The guard: a CPython audit hook that holds the nonce, writes the PASS line and blocks tampering.

Runs inside the sandbox (see ``__init__``). It is installed before the solution or the test module
is imported. Its state, the nonce and the result fd live only in closures of the hook; the
factories are called through ``_isolated`` (empty globals, no builtins), so everything they use is
taken from ``G`` before any untrusted code runs. A test counts as passed only when ``verdict``
finds nothing wrong at ``steer.finish``.
"""

#: clocks of the ``time`` module that must not be replaced (timing-based tests would be forged)
_TIMERS = ("perf_counter", "perf_counter_ns", "time", "time_ns", "monotonic", "monotonic_ns",
           "process_time", "process_time_ns", "thread_time", "thread_time_ns")
#: native modules that reach past the guard (raw memory, process spawning, profiling hooks)
_BLOCKED_IMPORTS = frozenset({
    "ctypes", "_ctypes", "_posixsubprocess", "_testcapi", "_testinternalcapi", "_testbuffer",
    "_testmultiphase", "_testimportmultiple", "_testsinglephase", "_xxsubinterpreters",
    "_xxinterpchannels", "_interpreters", "_interpchannels", "_interpqueues", "_xxtestfuzz",
    "_lsprof", "_sqlite3", "_dbm", "_gdbm", "readline", "_curses", "_curses_panel", "_tkinter",
    "cffi", "_cffi_backend"})
#: modules whose objects the guard relies on: never re-created or re-loaded
_PROTECTED_MODULES = frozenset({"_signal", "_thread", "_imp", "gc", "sys", "builtins", "marshal",
                                "_io", "posix", "time", "_frozen_importlib",
                                "_frozen_importlib_external", "_weakref", "_abc", "_warnings"})
#: audit events that are blocked and count as an attempt to tamper (the test cannot pass)
_SERIOUS_EVENTS = frozenset({
    "gc.get_objects", "gc.get_referrers", "gc.get_referents", "sys._current_frames",
    "sys._current_exceptions", "sys.settrace", "sys.setprofile", "code.__new__",
    "function.__new__", "marshal.load", "marshal.loads", "os.exec", "os.posix_spawn",
    "os.spawn", "os.system", "subprocess.Popen", "pty.spawn", "os.startfile", "sqlite3.connect",
    "sqlite3.enable_load_extension", "sqlite3.load_extension", "sys.monitoring.register_callback",
    "sys.monitoring.use_tool_id", "sys.remote_exec", "os.setns", "os.unshare"})



def _guard_factory(G: dict, nonce: str):
    """The audit hook for one test process; ``nonce`` proves a PASS line came from it."""
    _type = G["type"]; _str = G["str"]; _int = G["int"]; _len = G["len"]
    _tuple = G["tuple"]; _list = G["list"]; _dict = G["dict"]
    _getframe = G["getframe"]; _getpid = G["getpid"]; _getppid = G["getppid"]
    _write = G["write"]
    _FunctionType = G["FunctionType"]; _CodeType = G["CodeType"]; _TB = G["TracebackType"]
    _gen_types = G["gen_types"]; _Namespace = G["SimpleNamespace"]
    _oga = G["object_getattribute"]; _str_copy = G["str_copy"]; _trampoline = G["trampoline"]
    _PermissionError = G["PermissionError"]; _ValueError = G["ValueError"]
    _AttributeError = G["AttributeError"]; _ImportError = G["ImportError"]
    _RuntimeError = G["RuntimeError"]; _AssertionError = G["AssertionError"]
    _norm = G["norm"]; _TypeError = G["TypeError"]
    harden = G["harden"]; allow_fork = G["allow_fork"]; block_net = G["block_net"]
    dynload_roots = G["dynload_roots"]; protected_files = G["protected_files"]
    report_files = G["report_files"]; result_fd = G["result_fd"]
    blocked_imports = G["blocked_imports"]; protected_modules = G["protected_modules"]
    serious_events = G["serious_events"]; real_imp = G["imp"]
    builtins_dict = G["builtins_dict"]; time_dict = G["time_dict"]; time_mod = G["time_mod"]
    sys_modules = G["sys_modules"]; timers = G["timers"]; builtins_objs = G["builtins_objs"]
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

    resolve, within, fs_handlers = G["fs_guard_factory"](G, block)

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
        "object.__delattr__": h_setattr, "code.__new__": h_code_new,
        "os.fork": h_fork, "os.forkpty": h_fork, "os.kill": h_kill, "os.killpg": h_kill,
        "import": h_import, "resource.prlimit": h_prlimit,
        "steer.blocked": h_blocked, "steer.imp": h_imp, "steer.fail": h_fail,
        "steer.arm": h_arm, "steer.seal": h_seal, "steer.finish": h_finish, "steer.tb": h_tb,
    }
    handlers.update(fs_handlers)
    for ev in serious_events:
        if ev not in handlers:
            handlers[ev] = h_serious(ev)

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


def _trampoline(fn, args: tuple):
    """Calls ``fn``; made with the real builtins as globals so that ``fn`` (an ``_imp`` function
    initialising an extension module) finds the real ``__import__`` in the current frame."""
    return fn(*args)


def _blocker_factory(audit, what: str):
    """A replacement for a dangerous function: calling it raises through the guard."""
    def blocked(*args, **kwargs):
        audit("steer.blocked", what)
    return blocked


def _imp_wrapper_factory(audit, fname: str):
    """A replacement for ``_imp.<fname>`` that lets the guard check (and make) the call."""
    def wrapper(*args):
        box = []
        audit("steer.imp", fname, args, box)
        return box[0]
    return wrapper
