"""The guard's file-system policy: which paths the sandboxed code may open, list or change.

Runs inside the sandbox (see ``__init__``). The guard (``guard.py``) calls the factory through
``_isolated`` and dispatches the audit events ``open``, ``os.listdir``/``os.scandir`` and those of
:data:`_FS_EVENTS` to the handlers it returns. Paths are resolved here, symlink by symlink, so a
link inside the working directory cannot point the check elsewhere.
"""

#: file-system audit events that change a path -> the indexes of their path arguments
_FS_EVENTS = {"os.remove": (0,), "os.rmdir": (0,), "os.mkdir": (0,), "os.rename": (0, 1),
              "os.link": (0, 1), "os.symlink": (1,), "os.truncate": (0,), "os.chmod": (0,),
              "os.chown": (0,), "os.utime": (0,), "os.chflags": (0,), "os.lchflags": (0,),
              "os.setxattr": (0,), "os.removexattr": (0,), "os.mkfifo": (0,), "os.mknod": (0,)}


def _fs_guard_factory(G: dict, block) -> tuple:
    """(resolve, within, handlers by audit event); ``block(msg, exc, serious)`` raises."""
    _type = G["type"]; _str = G["str"]; _bytes = G["bytes"]; _int = G["int"]; _len = G["len"]
    _tuple = G["tuple"]; _lstat = G["lstat"]; _stat = G["stat"]; _readlink = G["readlink"]
    _getcwd = G["getcwd"]; _bdecode = G["bytes_decode"]
    _PermissionError = G["PermissionError"]; _OSError = G["OSError"]
    harden = G["harden"]; read_roots = G["read_roots"]; write_roots = G["write_roots"]
    dev_ok = G["dev_ok"]; fs_events = G["fs_events"]; test_paths = G["test_paths"]
    write_flags = G["write_flags"]; dir_flags = G["dir_flags"]

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

    def readable(rp):
        return within(rp, read_roots) or within(rp, write_roots)

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
        if rp in test_paths:
            # the tests are fixed: changing them is tampering (serious); reading them to copy
            # expected values is refused, but linecache (warnings) may try, so it is not serious
            if writing:
                block("changing the test file is disabled", _PermissionError, True)
            block("reading the test file is disabled", _PermissionError, False)
        if is_dir(rp):
            block("opening directories is disabled", _PermissionError, False)
        if writing:
            if not within(rp, write_roots):
                block("writing outside the working directory is disabled (%s)" % rp,
                      _PermissionError, True)
        elif not readable(rp):
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
        if not readable(rp):
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
                if rp in test_paths:
                    block("changing the test file is disabled (%s)" % event, _PermissionError,
                          True)
                if not within(rp, write_roots):
                    block("%s outside the working directory is disabled (%s)" % (event, rp),
                          _PermissionError, True)
        return h

    handlers = {"open": h_open, "os.listdir": h_listdir, "os.scandir": h_listdir}
    for ev, idx in fs_events.items():
        handlers[ev] = h_fs(ev, idx)
    return resolve, within, handlers
