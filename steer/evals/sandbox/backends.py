"""How to start one sandboxed process: the bwrap or rlimit command line, its rlimits, the uid drop.

:func:`make_plan` computes a :class:`Plan` once per run; ``api`` starts one process per test from
it and ``probe`` uses it to check that bubblewrap works on this machine.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import threading
from dataclasses import dataclass
from typing import Any, Callable, Iterable, TypeVar

from .limits import Limits, SandboxUnavailable
from .procs import count_procs_of

#: uid/gid the sandboxed code drops to when the harness runs as root (the kernel does not apply
#: RLIMIT_NPROC to root, so a fork bomb would otherwise be unbounded).
UNPRIVILEGED_UID = 65534
UNPRIVILEGED_GID = 65534

#: path of the working directory as seen from inside a bwrap sandbox
INSIDE_WORKDIR = "/tmp/sandbox"
#: device files the sandboxed code may open
DEV_OK = ("/dev/null", "/dev/zero", "/dev/urandom", "/dev/random", "/dev/full")
#: isolated mode (no environment variables, no user site), no site module, no .pyc writes
PY_FLAGS = ["-I", "-S", "-B"]
_PATH = "/usr/bin:/bin"
_EXTRA_READ_ROOTS = ("/usr/share/zoneinfo", "/usr/lib/locale")

_lock = threading.RLock()
_T = TypeVar("_T")


def cached(cache: dict, key: Any, compute: Callable[[], _T]) -> _T:
    """``cache[key]``, computed on first use (not under the lock: probes start processes)."""
    with _lock:
        if key in cache:
            return cache[key]
    value = compute()
    with _lock:
        cache[key] = value
    return value


# ------------------------------------------------------------------------- the interpreter
_py_paths: dict[str, dict[str, Any]] = {}


def python_paths() -> dict[str, Any]:
    """The interpreter (real path of ``sys.executable``) and the directories it needs when
    started with ``-I -S`` (asked from the interpreter itself; cached)."""
    return cached(_py_paths, "paths", _ask_interpreter)


def _ask_interpreter() -> dict[str, Any]:
    exe = os.path.realpath(sys.executable)
    out = subprocess.run(
        [exe, *PY_FLAGS, "-c",
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
    return {"exe": exe, "roots": _minimal_roots(roots), "dynload": dynload}


def _minimal_roots(paths: Iterable[str]) -> list[str]:
    """The paths that are not below another one of them."""
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


# ------------------------------------------------------------------------- limits
def rlimits(limits: Limits, nproc: int | None) -> dict[str, list[int]]:
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


def _nproc(limits: Limits, uid: int) -> int:
    """RLIMIT_NPROC counts every process of ``uid``: allow ``max_procs`` more than it has now."""
    return int(limits.max_procs) + count_procs_of(uid) + 2


def _per_userns_nproc() -> bool:
    """Since Linux 5.14 RLIMIT_NPROC is accounted per user namespace (ucounts)."""
    try:
        major, minor = (int(x) for x in os.uname().release.split(".")[:2])
    except ValueError:
        return False
    return (major, minor) >= (5, 14)


# ------------------------------------------------------------------------- plans
@dataclass
class Plan:
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

    def popen_env(self) -> dict[str, str]:
        """Environment to start the process with (bwrap sets the sandbox's own with --setenv)."""
        return self.env if self.backend == "rlimit" else {"PATH": _PATH}


def make_plan(backend: str, host_workdir: str, limits: Limits, marker: str,
              probing: bool = False) -> Plan:
    """``backend``: "bwrap" or "rlimit"; ``marker`` goes into the environment of every process
    (see :func:`~.procs.kill_tree`); ``probing``: no RLIMIT_NPROC (no process count needed)."""
    if backend == "bwrap":
        return _bwrap_plan(host_workdir, limits, marker, probing)
    return _rlimit_plan(host_workdir, limits, marker, probing)


def _sandbox_env(home: str, marker: str) -> dict[str, str]:
    return {"PATH": _PATH, "HOME": home, "LANG": "C.UTF-8", "STEER_SANDBOX_ID": marker}


def _bwrap_plan(host_workdir: str, limits: Limits, marker: str, probing: bool) -> Plan:
    pyp = python_paths()
    root = os.geteuid() == 0
    py = pyp["exe"]
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
    drop = [UNPRIVILEGED_UID, UNPRIVILEGED_GID] if root else None
    if root:
        args += _unhide(pyp["roots"] + [os.path.dirname(py)], feats)
    args += ["--bind", host_workdir, INSIDE_WORKDIR, "--chdir", INSIDE_WORKDIR]
    if root:
        # No user namespace: bwrap runs privileged, the runner then drops to a real
        # unprivileged uid, so RLIMIT_NPROC is enforced by the kernel (not so for uid 0).
        args += ["--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts",
                 "--unshare-cgroup-try", "--cap-drop", "ALL", "--cap-add", "CAP_SETUID",
                 "--cap-add", "CAP_SETGID"]
    else:
        args += ["--unshare-all"]
    args += ["--die-with-parent", "--new-session", "--clearenv"]
    for k, v in _sandbox_env(INSIDE_WORKDIR, marker).items():
        args += ["--setenv", k, v]
    args.append("--")
    if probing:
        nproc = None
    elif root:  # no user namespace: the kernel counts every process of uid 65534
        nproc = _nproc(limits, UNPRIVILEGED_UID)
    elif _per_userns_nproc():  # counted inside the sandbox's own user namespace
        nproc = int(limits.max_procs) + 2
    else:
        nproc = _nproc(limits, os.getuid())
    write_roots = ["/tmp"] if tmp_writable else [INSIDE_WORKDIR]
    return Plan("bwrap", args, py, {}, host_workdir, INSIDE_WORKDIR, drop, nproc,
                pyp["roots"] + list(_EXTRA_READ_ROOTS) + ["/tmp"], write_roots,
                pyp["dynload"], bool(limits.allow_fork), [])


def _unhide(roots: list[str], feats: str) -> list[str]:
    """bwrap arguments that let the unprivileged uid reach ``roots``: over each ancestor it
    cannot traverse (e.g. /root) a private, world-traversable tmpfs, with only ``roots`` bound
    back (read-only)."""
    hidden: dict[str, list[str]] = {}
    for r in roots:
        a = _hidden_ancestor(r, UNPRIVILEGED_UID, UNPRIVILEGED_GID)
        if a and not (a == "/tmp" or a.startswith("/tmp/")):
            hidden.setdefault(a, []).append(r)
    args: list[str] = []
    for a in sorted(hidden, key=len):
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
    return args


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


def _rlimit_plan(host_workdir: str, limits: Limits, marker: str, probing: bool) -> Plan:
    pyp = python_paths()
    root = os.geteuid() == 0
    notes: list[str] = []
    drop = None
    allow_fork = bool(limits.allow_fork)
    if root:
        if _fallback_can_drop():
            drop = [UNPRIVILEGED_UID, UNPRIVILEGED_GID]
        else:
            notes.append("running as root without a uid drop (the interpreter is not readable "
                         "by uid %d): RLIMIT_NPROC is not enforced, fork is disabled"
                         % UNPRIVILEGED_UID)
            allow_fork = False
    uid = UNPRIVILEGED_UID if drop else os.getuid()
    nproc = None if (probing or (root and not drop)) else _nproc(limits, uid)
    workdir = os.path.realpath(host_workdir)
    return Plan("rlimit", [], pyp["exe"], _sandbox_env(host_workdir, marker), workdir, workdir,
                drop, nproc, pyp["roots"] + list(_EXTRA_READ_ROOTS), [workdir], pyp["dynload"],
                allow_fork, notes)


# ------------------------------------------------------------------------- probes
_PROBE_CODE = ("import os\n"
               "d = %r\n"
               "if d:\n"
               "    os.setgroups([]); os.setresgid(d[1], d[1], d[1]); os.setresuid(d[0], d[0], d[0])\n"
               "import json, ast, collections, math\n"
               "open('probe.txt', 'w').write('x')\n"
               "print('steer-ok', os.getuid())\n")


def probe_argv(py: str, drop: list[int] | None) -> list[str]:
    """A python command line that drops to ``drop``, imports a few modules and writes a file."""
    return [py, *PY_FLAGS, "-c", _PROBE_CODE % (drop,)]


def run_probe(argv: list[str], env: dict[str, str] | None, cwd: str) -> tuple[bool, str]:
    """(worked, last line of its error output) for a :func:`probe_argv` command."""
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=20, env=env, cwd=cwd,
                             stdin=subprocess.DEVNULL, start_new_session=True)
    except (OSError, subprocess.SubprocessError) as e:
        return False, f"{type(e).__name__}: {e}"
    if out.returncode == 0 and "steer-ok" in out.stdout:
        return True, ""
    msg = (out.stderr or out.stdout).strip().splitlines()
    return False, (msg[-1] if msg else f"exit status {out.returncode}")[:300]


_drop_cache: dict[str, bool] = {}


def _fallback_can_drop() -> bool:
    """Root without bwrap: can the interpreter run as the unprivileged uid (cached)?"""
    return cached(_drop_cache, sys.executable, _probe_drop)


def _probe_drop() -> bool:
    workdir = tempfile.mkdtemp(prefix="steer-probe-")
    try:
        os.chown(workdir, UNPRIVILEGED_UID, UNPRIVILEGED_GID)
        argv = probe_argv(os.path.realpath(sys.executable), [UNPRIVILEGED_UID, UNPRIVILEGED_GID])
        return run_probe(argv, {"PATH": _PATH}, workdir)[0]
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
