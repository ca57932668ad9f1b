"""Which backend runs the code: bubblewrap when it works here (checked once per process), else
the weak rlimit fallback, announced once with a loud warning."""
from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
import threading
import warnings

from ...errors import SteerError
from .backends import cached, make_plan, probe_argv, run_probe
from .limits import Limits, SandboxUnavailable

log = logging.getLogger("steer.evals.sandbox")

_probe_cache: dict[tuple, tuple[bool, str]] = {}
_weak_warned = False
_warn_lock = threading.Lock()


def _probe_backend(backend: str, limits: Limits) -> tuple[bool, str]:
    """(works, why not), cached per backend, effective uid and interpreter."""
    return cached(_probe_cache, (backend, os.geteuid(), sys.executable),
                  lambda: _try_backend(backend, limits))


def _try_backend(backend: str, limits: Limits) -> tuple[bool, str]:
    """Start a small program the way ``backend`` starts a test, in a throw-away directory."""
    workdir = tempfile.mkdtemp(prefix="steer-probe-")
    try:
        try:
            plan = make_plan(backend, workdir, limits, "probe", probing=True)
        except SandboxUnavailable as e:
            return False, str(e)
        if plan.drop:
            os.chown(workdir, plan.drop[0], plan.drop[1])
            os.chmod(workdir, 0o711)
        return run_probe(plan.argv_prefix + probe_argv(plan.py, plan.drop), plan.env or None,
                         plan.cwd)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def bwrap_available() -> bool:
    """True when bubblewrap can start the sandbox on this machine (result cached)."""
    return _probe_backend("bwrap", Limits())[0]


def bwrap_unavailable_reason() -> str:
    """Why bubblewrap cannot start the sandbox here; "" when it can (result cached)."""
    ok, why = _probe_backend("bwrap", Limits())
    return "" if ok else why


def default_backend() -> str:
    """What ``backend="auto"`` picks here: "bwrap" or "rlimit"."""
    return "bwrap" if bwrap_available() else "rlimit"


def resolve_backend(backend: str, limits: Limits) -> tuple[str, str]:
    """(backend to use, why it is the fallback) for a ``backend`` argument of ``run_tests``."""
    if backend not in ("auto", "bwrap", "rlimit"):
        raise SteerError(f"backend must be 'auto', 'bwrap' or 'rlimit', got {backend!r}")
    if backend == "rlimit":
        return "rlimit", "requested explicitly"
    ok, why = _probe_backend("bwrap", limits)
    if ok:
        return "bwrap", ""
    if backend == "bwrap":
        raise SandboxUnavailable(f"bubblewrap cannot create a sandbox here: {why}")
    return "rlimit", f"bubblewrap unavailable: {why}"


def warn_weak(reason: str, notes: list[str]) -> None:
    """Log and warn (once per process) that the rlimit fallback gives no OS-level isolation."""
    global _weak_warned
    with _warn_lock:
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
