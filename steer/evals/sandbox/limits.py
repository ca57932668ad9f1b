"""What one sandbox run may use (:class:`Limits`) and what it reports (:class:`SandboxResult`)."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any


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
    """Outcome of one :func:`~steer.evals.sandbox.run_tests` call: one entry per test function."""

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
