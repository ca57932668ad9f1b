"""run_tests: every test function of a test file against a solution, one sandboxed process each."""
from __future__ import annotations

import ast
import json
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from dataclasses import asdict
from typing import IO

from ...errors import SteerError
from .backends import DEV_OK, PY_FLAGS, Plan, make_plan, rlimits
from .limits import Limits, SandboxResult, TestOutcome
from .probe import resolve_backend, warn_weak
from .procs import kill_tree
from .script import BOOTSTRAP

_SOLUTION_FILE = "solution.py"
_DEFAULT_TEST_FILE = "test_solution.py"
_OUTPUT_CAP = 8_000  # characters of stdout/stderr kept per test process
_TOTAL_OUTPUT_CAP = 32_000
_ERROR_CAP = 600
_RESULT_CAP = 1 << 20  # bytes read from the result pipe


def collect_test_names(test_code: str) -> list[str]:
    """Names of the top-level ``def test*():`` functions, in file order (what the sandbox runs)."""
    tree = ast.parse(test_code)
    names: list[str] = []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("test"):
            if node.name not in names:
                names.append(node.name)
    return names


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
        raise SteerError("run_tests: solution_code and test_code must be str")
    if os.path.basename(test_filename) != test_filename or not test_filename.endswith(".py") \
            or test_filename == _SOLUTION_FILE:
        raise SteerError(f"run_tests: bad test_filename {test_filename!r}")
    chosen, why = resolve_backend(backend, limits)
    try:
        collected = collect_test_names(test_code)
    except SyntaxError as e:
        return SandboxResult([], [], False, False, chosen, error=f"test file does not parse: {e}")
    if not collected:
        return SandboxResult([], [], False, False, chosen, error="no test functions collected")

    marker = "steer-" + secrets.token_hex(12)
    host_workdir = tempfile.mkdtemp(prefix="steer-sandbox-")
    try:
        plan = make_plan(chosen, host_workdir, limits, marker)
        if chosen == "rlimit":
            warn_weak(why, plan.notes)
        _write_workdir(host_workdir, plan, {_SOLUTION_FILE: solution_code,
                                            test_filename: test_code})
        outcomes: list[TestOutcome] = []
        outs: list[str] = []
        errs: list[str] = []
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
            if out:
                outs.append(f"--- {name} ---\n{out}")
            if err:
                errs.append(f"--- {name} ---\n{err}")
            if import_hung:
                skip_reason = ("not run: importing the solution timed out in an earlier test "
                               f"({name})")
        return SandboxResult(
            tests=outcomes, collected=list(collected),
            all_passed=bool(outcomes) and all(t.passed for t in outcomes),
            timed_out=any(t.timed_out for t in outcomes), backend=plan.backend,
            stdout=_cap_output("\n".join(outs), _TOTAL_OUTPUT_CAP),
            stderr=_cap_output("\n".join(errs), _TOTAL_OUTPUT_CAP),
            duration_s=round(time.monotonic() - t_start, 4), notes=list(plan.notes))
    finally:
        shutil.rmtree(host_workdir, ignore_errors=True)


def _write_workdir(host_workdir: str, plan: Plan, files: dict[str, str]) -> None:
    """Write the solution and the tests; hand them to the unprivileged uid if the plan drops."""
    for fname, text in files.items():
        with open(os.path.join(host_workdir, fname), "w", encoding="utf-8") as f:
            f.write(text)
    if plan.drop:
        for p in [host_workdir] + [os.path.join(host_workdir, fname) for fname in files]:
            os.chown(p, plan.drop[0], plan.drop[1])
        # bwrap (uid 0 without capabilities) must be able to chdir into it
        os.chmod(host_workdir, 0o711)


def _cap_output(text: str, cap: int) -> str:
    return text[:cap] + "\n...[truncated]" if len(text) > cap else text


def _run_one(plan: Plan, limits: Limits, name: str, test_code: str, test_filename: str,
             marker: str, timeout: float) -> tuple[TestOutcome, str, str, bool]:
    """Run one test function in a fresh process: (outcome, stdout, stderr, import hung)."""
    nonce = secrets.token_hex(16)
    cfg_r, cfg_w = os.pipe()
    res_r, res_w = os.pipe()
    cfg = {"nonce": nonce, "test": name, "test_source": test_code,
           "test_path": os.path.join(plan.inside_workdir, test_filename),
           "modname": test_filename[:-3], "workdir": plan.inside_workdir, "result_fd": res_w,
           "drop": plan.drop, "harden": bool(limits.harden), "allow_fork": plan.allow_fork,
           "read_roots": plan.read_roots, "write_roots": plan.write_roots,
           "dev_ok": list(DEV_OK), "dynload_roots": plan.dynload_roots,
           "rlimits": rlimits(limits, plan.nproc)}
    payload = json.dumps(cfg).encode("utf-8")
    argv = plan.argv_prefix + [plan.py, *PY_FLAGS, "-c", BOOTSTRAP, str(cfg_r)]
    writer = None
    out_f = tempfile.TemporaryFile()
    err_f = tempfile.TemporaryFile()
    t0 = time.monotonic()
    try:
        try:
            proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=out_f, stderr=err_f,
                pass_fds=(cfg_r, res_w), start_new_session=True, cwd=plan.cwd,
                env=plan.popen_env())
        finally:
            os.close(cfg_r)
            os.close(res_w)
        if len(payload) < 60_000:  # fits the pipe buffer: no need for a writer thread
            _write_all(cfg_w, payload)
        else:
            writer = threading.Thread(target=_write_all, args=(cfg_w, payload), daemon=True)
            writer.start()
        timed_out = False
        try:
            proc.wait(timeout=max(0.01, timeout))
        except subprocess.TimeoutExpired:
            timed_out = True
        duration = round(time.monotonic() - t0, 4)
        kill_tree(proc, ("STEER_SANDBOX_ID=" + marker).encode())
        lines = _read_available(res_r).decode("utf-8", "replace").splitlines()
        out = _read_capped(out_f, _OUTPUT_CAP)
        err = _read_capped(err_f, _OUTPUT_CAP)
    finally:
        os.close(res_r)
        out_f.close()
        err_f.close()
        if writer is not None:
            writer.join(timeout=1)
    if f"{nonce} {name} PASS" in lines:
        return TestOutcome(name, True, None, duration, False), out, err, False
    imported = "IMPORTED" in lines
    if timed_out:
        error = (f"timed out after {timeout:.3g}s" +
                 ("" if imported else " (while importing the test module / solution)"))
    else:
        error = _reported_error(lines, name) or _exit_error(proc.returncode, plan.backend, err)
    return (TestOutcome(name, False, _truncate_error(error), duration, timed_out), out, err,
            timed_out and not imported)


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


def _read_available(fd: int) -> bytes:
    """What the (dead) process tree left in the result pipe, up to ``_RESULT_CAP`` bytes."""
    os.set_blocking(fd, False)
    chunks = []
    total = 0
    while total < _RESULT_CAP:
        try:
            b = os.read(fd, 65536)
        except BlockingIOError:
            break
        if not b:
            break
        chunks.append(b)
        total += len(b)
    return b"".join(chunks)


def _read_capped(f: IO[bytes], cap: int) -> str:
    f.seek(0)
    data = f.read(cap + 1)
    text = data.decode("utf-8", "replace")
    if len(data) > cap:
        text = text[:cap] + "\n...[truncated]"
    return text


def _reported_error(lines: list[str], name: str) -> str | None:
    """The error the runner reported for ``name`` (``ERR {json}`` lines), if any."""
    for line in lines:
        if line.startswith("ERR "):
            try:
                rec = json.loads(line[4:])
            except ValueError:
                continue
            if isinstance(rec, dict) and rec.get("test") == name and isinstance(rec.get("error"), str):
                return rec["error"]
    return None


def _exit_error(rc: int | None, backend: str, err: str) -> str:
    """Why a test process that reported nothing ended: a signal or an early exit."""
    if rc is not None and backend == "bwrap" and 128 < rc < 128 + 65:
        rc = -(rc - 128)  # bwrap reports a child killed by signal N as 128 + N
    if rc is not None and rc < 0:
        error = "the test process was " + _signal_text(rc)
    else:
        error = (f"the test process exited (status {rc}) without reporting a result: the "
                 "code ended the process early (sys.exit/os._exit/kill?)")
    tail = [ln for ln in err.strip().splitlines() if ln.strip()]
    if tail:
        error += f"; last stderr line: {tail[-1][-200:]}"
    return error


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


def _truncate_error(error: str) -> str:
    return error if len(error) <= _ERROR_CAP else error[: _ERROR_CAP - 3] + "..."
