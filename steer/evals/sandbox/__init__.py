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

Modules: ``limits`` (Limits, results), ``api`` (run_tests), ``probe`` (choosing the backend),
``backends`` (bwrap/rlimit command lines, uid drop), ``procs`` (process accounting and kill),
``script`` (the program the sandbox runs, built from the files of ``inside/``).

This package is deliberately light: stdlib only, no torch, no model code.
"""
from __future__ import annotations

from .api import collect_test_names, run_tests
from .backends import UNPRIVILEGED_GID, UNPRIVILEGED_UID  # noqa: F401 - public, not in __all__
from .limits import Limits, SandboxResult, SandboxUnavailable, TestOutcome
from .probe import bwrap_available, bwrap_unavailable_reason  # noqa: F401 - as above
from .probe import default_backend

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
