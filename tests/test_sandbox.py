"""Hostile-solution tests for steer.evals.sandbox, against bubblewrap AND the rlimit fallback.

Every hostile solution below must end as a NON-pass; where a test could be "passed" by forging
the harness (exit codes, fake output, patched builtins/timers, __eq__ overrides, ...) the test
asks for a value the honest computation cannot produce, so only a forged verdict would pass.
The bwrap tests fail (not skip) when bubblewrap cannot run here: CI installs it.
"""
from __future__ import annotations

import json
import os
import socket
import sys
import tempfile
import threading
import time
import uuid
import warnings
from pathlib import Path

import pytest

from steer.evals.sandbox import probe, procs
from steer.evals.sandbox import (
    Limits,
    SandboxResult,
    SandboxUnavailable,
    collect_test_names,
    run_tests,
)

pytestmark = pytest.mark.filterwarnings("ignore:steer sandbox:RuntimeWarning")

BACKENDS = ["bwrap", "rlimit"]
FAST = Limits(timeout_s=5, memory_mb=256)

ONE_TEST = """\
from solution import f


def test_one():
    assert f(2) == 5
"""


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    if request.param == "bwrap":
        why = probe.bwrap_unavailable_reason()
        assert not why, f"bubblewrap must work for these tests (CI installs it): {why}"
    return request.param


def run(solution: str, tests: str = ONE_TEST, backend: str = "bwrap",
        limits: Limits = FAST, **kw) -> SandboxResult:
    return run_tests(solution, tests, backend=backend, limits=limits, **kw)


def only(res: SandboxResult):
    assert len(res.tests) == 1, res
    return res.tests[0]


def assert_not_passed(res: SandboxResult, *fragments: str):
    t = only(res)
    assert not t.passed and not res.all_passed, res
    assert t.error, res
    for frag in fragments:
        assert frag in t.error, (frag, t.error)
    return t


def sandbox_procs() -> list[int]:
    """Live processes started by any sandbox run (they carry STEER_SANDBOX_ID in environ)."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            if b"STEER_SANDBOX_ID=" in Path(f"/proc/{entry}/environ").read_bytes() and \
                    procs.alive(int(entry)):
                out.append(int(entry))
        except OSError:
            continue
    return out


# --------------------------------------------------------------------------- honest code
def test_honest_correct_code_passes(backend):
    tests = ONE_TEST + "\n\ndef test_two():\n    assert f(10) == 13\n"
    res = run("def f(x):\n    return x + 3\n", tests, backend)
    assert res.backend == backend
    assert res.all_passed and res.n_passed == 2 and res.collected == ["test_one", "test_two"]
    assert [t.name for t in res.tests] == ["test_one", "test_two"]
    assert all(t.error is None and t.duration_s > 0 for t in res.tests)
    json.dumps(res.to_dict())  # JSON-serialisable


def test_honest_wrong_code_fails_with_a_useful_error(backend):
    t = assert_not_passed(run("def f(x):\n    return x * 2\n", backend=backend))
    assert "test_solution.py:5" in t.error and "assert f(2) == 5" in t.error
    assert "left: 4" in t.error and "right: 5" in t.error


def test_exception_in_solution_reports_type_message_and_location(backend):
    t = assert_not_passed(run("def f(x):\n    return {}['missing']\n", backend=backend),
                          "KeyError", "solution.py:2", "test_solution.py:5")
    assert not t.timed_out


def test_stdlib_and_builtin_subclasses_compare_by_value(backend):
    tests = """\
from solution import f
import math


def test_counter():
    assert f('aab') == {'a': 2, 'b': 1}
    assert math.isclose(len(f('aab')), 2.0)
"""
    res = run("from collections import Counter\ndef f(s):\n    return Counter(s)\n",
              tests, backend)
    assert res.all_passed, res


def test_honest_code_may_use_the_standard_library(backend):
    """Modules imported after the guard is armed (C extensions included), asyncio, warnings
    raised from the tests' frames, dataclasses/enums/namedtuples: none of it is tampering."""
    sol = """\
import asyncio, dataclasses, decimal, enum, fractions, random, statistics, warnings
from collections import namedtuple
from typing import List

@dataclasses.dataclass
class Box:
    value: int

class Kind(enum.IntEnum):
    ONE = 1

Pair = namedtuple("Pair", "a b")

async def _add(x: int) -> int:
    await asyncio.sleep(0)
    return x + 3

def f(x: int) -> int:
    warnings.warn("old API", DeprecationWarning, stacklevel=2)
    random.seed(0)
    parts: List[int] = [Box(x).value, int(decimal.Decimal(1)), int(fractions.Fraction(2, 2))]
    assert statistics.mean(parts) >= 1 and Kind.ONE == 1 and Pair(1, 2).b == 2
    return asyncio.run(_add(x))
"""
    res = run(sol, backend=backend)
    assert res.all_passed, res


# --------------------------------------------------------------------------- resource bombs
def test_fork_bomb_is_blocked_fast_and_leaves_no_processes(backend):
    before = sandbox_procs()
    t0 = time.monotonic()
    res = run("import os\ndef f(x):\n    while True:\n        os.fork()\n", backend=backend)
    assert time.monotonic() - t0 < 5
    assert_not_passed(res, "fork is disabled")
    assert sandbox_procs() == before == []


def test_real_fork_bomb_is_contained_by_the_os_layer():
    """allow_fork + harden=False: only RLIMIT_NPROC, the pid namespace and the kill contain it."""
    why = probe.bwrap_unavailable_reason()
    assert not why, why
    peak = [0]
    done = threading.Event()

    def monitor():
        while not done.is_set():
            peak[0] = max(peak[0], len(sandbox_procs()))
            time.sleep(0.05)

    th = threading.Thread(target=monitor, daemon=True)
    th.start()
    t0 = time.monotonic()
    res = run("import os\ndef f(x):\n    while True:\n        try:\n            os.fork()\n"
              "        except OSError:\n            pass\n", backend="bwrap",
              limits=Limits(timeout_s=1, max_procs=16, harden=False, allow_fork=True))
    elapsed = time.monotonic() - t0
    done.set()
    th.join()
    t = assert_not_passed(res, "timed out")
    assert t.timed_out and res.timed_out
    assert elapsed < 5, elapsed
    assert 0 < peak[0] <= 16 + 8, peak  # max_procs (+ bwrap's own processes and slack)
    assert sandbox_procs() == []


def test_memory_bomb(backend):
    res = run("def f(x):\n    a = []\n    while True:\n        a.append(bytearray(10**7))\n",
              backend=backend, limits=Limits(timeout_s=5, memory_mb=128))
    t = assert_not_passed(res)
    assert "MemoryError" in t.error or "killed" in t.error, t.error


def test_infinite_loop_hits_the_wall_clock_timeout(backend):
    t0 = time.monotonic()
    res = run("def f(x):\n    while True:\n        pass\n", backend=backend,
              limits=Limits(timeout_s=0.5))
    assert time.monotonic() - t0 < 4
    t = assert_not_passed(res, "timed out after 0.5s")
    assert t.timed_out and res.timed_out


def test_cpu_time_limit(backend):
    res = run("def f(x):\n    while True:\n        pass\n", backend=backend,
              limits=Limits(timeout_s=10, cpu_s=1))
    assert_not_passed(res, "CPU time limit")


def test_hanging_import_skips_the_remaining_tests(backend):
    tests = ONE_TEST + "\n\ndef test_two():\n    assert f(1) == 4\n"
    t0 = time.monotonic()
    res = run("while True:\n    pass\n", tests, backend, limits=Limits(timeout_s=0.5))
    assert time.monotonic() - t0 < 4
    assert res.tests[0].timed_out and "while importing" in res.tests[0].error
    assert not res.tests[1].passed and res.tests[1].error.startswith("not run")


def test_file_size_limit(backend):
    res = run("def f(x):\n    open('big.bin', 'wb').write(b'x' * 3_000_000)\n    return 5\n",
              backend=backend, limits=Limits(timeout_s=5, file_size_mb=1))
    assert_not_passed(res, "File too large")


# --------------------------------------------------------------------------- isolation
@pytest.fixture()
def host_listener():
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    srv.settimeout(0.2)
    hits: list[int] = []
    stop = threading.Event()

    def accept():
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
                hits.append(1)
                conn.close()
            except OSError:
                continue

    th = threading.Thread(target=accept, daemon=True)
    th.start()
    yield srv.getsockname()[1], hits
    stop.set()
    th.join()
    srv.close()


NET_OUT = ("import socket\ndef f(x):\n    socket.create_connection(('1.1.1.1', 80), timeout=2)"
           "\n    return 5\n")


def net_local(port: int) -> str:
    return ("import socket\ndef f(x):\n    socket.create_connection(('127.0.0.1', %d), "
            "timeout=2)\n    return 5\n" % port)


def test_network_is_blocked(backend, host_listener):
    port, hits = host_listener
    assert_not_passed(run(NET_OUT, backend=backend), "socket")
    assert_not_passed(run(net_local(port), backend=backend), "socket")
    assert hits == []


def test_bwrap_network_namespace_alone_blocks_network(host_listener):
    """Without the in-process guard (harden=False) the empty network namespace still isolates."""
    port, hits = host_listener
    raw = Limits(timeout_s=5, harden=False)
    assert_not_passed(run(NET_OUT, backend="bwrap", limits=raw), "unreachable")
    assert_not_passed(run(net_local(port), backend="bwrap", limits=raw), "refused")
    assert hits == []


def test_write_outside_the_temp_dir(backend, tmp_path):
    targets = [tmp_path / "pwned.txt", Path(__file__).parent / f"pwned-{uuid.uuid4().hex}.txt"]
    try:
        for target in targets:
            sol = f"def f(x):\n    open({str(target)!r}, 'w').write('x')\n    return 5\n"
            assert_not_passed(run(sol, backend=backend))
            assert not target.exists()
    finally:
        for target in targets:
            target.unlink(missing_ok=True)


def test_bwrap_filesystem_is_read_only_without_the_guard():
    target = Path(__file__).parent / f"pwned-{uuid.uuid4().hex}.txt"
    try:
        sol = f"def f(x):\n    open({str(target)!r}, 'w').write('x')\n    return 5\n"
        t = assert_not_passed(run(sol, backend="bwrap", limits=Limits(timeout_s=5, harden=False)))
        # The root is bound read-only; a checkout under /tmp is hidden by the sandbox's private
        # /tmp instead, so the directory is not there at all. Either way nothing reaches the host.
        hidden = Path(__file__).resolve().is_relative_to("/tmp")
        assert ("No such file or directory" if hidden else "Read-only file system") in t.error, t.error
        assert not target.exists()
    finally:
        target.unlink(missing_ok=True)


def test_callers_environment_does_not_leak(backend, monkeypatch):
    secret = "s3cr3t-" + uuid.uuid4().hex
    monkeypatch.setenv("STEER_TEST_SECRET", secret)
    sol = ("import os\ndef f(x):\n    print(dict(os.environ))\n"
           "    return os.environ.get('STEER_TEST_SECRET', 'missing')\n")
    tests = "from solution import f\n\n\ndef test_env():\n    assert f(0) != 'missing'\n"
    res = run(sol, tests, backend)
    t = assert_not_passed(res, "left: 'missing'")
    assert "STEER_SANDBOX_ID" in res.stdout  # the code ran and printed its environment
    assert secret not in res.stdout + res.stderr + t.error
    # /proc of other processes is off limits too
    res = run("def f(x):\n    return open('/proc/1/environ', 'rb').read()\n", backend=backend)
    assert_not_passed(res)


def test_kill_the_parent(backend):
    res = run("import os\ndef f(x):\n    os.kill(os.getppid(), 9)\n    return 5\n",
              backend=backend)
    assert_not_passed(res)
    assert os.getpid() > 0  # we are still alive


def test_bwrap_kill_parent_without_the_guard():
    res = run("import os\ndef f(x):\n    os.kill(os.getppid(), 9)\n    return 4\n",
              backend="bwrap", limits=Limits(timeout_s=5, harden=False))
    assert_not_passed(res)


def test_temp_dir_is_removed(backend):
    tmp = Path(tempfile.gettempdir())
    before = set(tmp.glob("steer-sandbox-*"))
    res = run("import os\ndef f(x):\n    open('junk.txt', 'w').write('x')\n    return 5\n",
              backend=backend)
    assert res.all_passed
    assert set(tmp.glob("steer-sandbox-*")) == before


# --------------------------------------------------------------------------- forged outcomes
@pytest.mark.parametrize("where", ["function", "import"])
@pytest.mark.parametrize("how", ["sys.exit(0)", "os._exit(0)", "raise SystemExit(0)", "exit(0)"])
def test_early_exit_never_passes(backend, how, where):
    if where == "function":
        sol = f"import os, sys\ndef f(x):\n    {how}\n"
    else:
        sol = f"import os, sys\n{how}\ndef f(x):\n    return 5\n"
    assert_not_passed(run(sol, backend=backend))


def test_fake_pass_lines(backend):
    sol = """\
import os, sys
for line in ('test_one PASS', 'PASSED', '1 passed', 'OK', 'x test_one PASS'):
    print(line)
    print(line, file=sys.stderr)
    for fd in range(3, 64):
        try:
            os.write(fd, (line + '\\n').encode())
        except OSError:
            pass
def f(x):
    return 4
"""
    assert_not_passed(run(sol, backend=backend), "left: 4")


@pytest.mark.parametrize("patch", [
    "import builtins\nbuiltins.AssertionError = Warning\nbuiltins.len = lambda x: 5\n",
    "import time\ntime.perf_counter = lambda: 0.0\ntime.time = lambda: 0.0\n"
    "time.monotonic = lambda: 0.0\n",
    "import unittest\nunittest.TestCase.assertEqual = lambda *a, **k: None\n",
    "import sys, types\nm = types.ModuleType('pytest')\nsys.modules['pytest'] = m\n",
])
def test_patching_the_runtime(backend, patch):
    sol = patch + "def f(x):\n    return 4\n"
    assert_not_passed(run(sol, backend=backend))


def test_patched_timer_cannot_fake_a_time_limit(backend):
    tests = """\
import time
from solution import f


def test_fast():
    start = time.perf_counter()
    assert f(0) == 5
    assert time.perf_counter() - start < 0.2
"""
    slow = ("import time\n_real = time.perf_counter\ndef f(x):\n    t = _real()\n"
            "    while _real() - t < 0.3:\n        pass\n"
            "    time.perf_counter = lambda: 0.0\n    time.monotonic = lambda: 0.0\n"
            "    return 5\n")
    assert_not_passed(run(slow, tests, backend), "assert time.perf_counter() - start < 0.2")
    fast = "import time\ndef f(x):\n    time.perf_counter = lambda: 0.0\n    return 5\n"
    assert_not_passed(run(fast, tests, backend), "time.perf_counter was replaced")


def test_eq_override_and_builtin_subclass_overrides(backend):
    always = "class A:\n    def __eq__(self, o):\n        return True\n    __hash__ = None\n"
    assert_not_passed(run(always + "def f(x):\n    return A()\n", backend=backend),
                      "non-builtin type A")
    sub = "class I(int):\n    def __eq__(self, o):\n        return True\n"
    assert_not_passed(run(sub + "def f(x):\n    return I(4)\n", backend=backend), "left: 4")
    truthy = "class B:\n    def __bool__(self):\n        return True\n"
    tests = "from solution import f\n\n\ndef test_truth():\n    assert f(0)\n"
    assert_not_passed(run(truthy + "def f(x):\n    return B()\n", tests, backend),
                      "non-builtin type B")


def test_closing_stdout_and_the_result_channel(backend):
    sol = "import os, sys\nsys.stdout.close()\nos.close(1)\nos.close(2)\ndef f(x):\n    return 4\n"
    assert_not_passed(run(sol, backend=backend))
    sol = "import os\ndef f(x):\n    os.closerange(0, 1024)\n    return 5\n"
    assert_not_passed(run(sol, backend=backend))


@pytest.mark.parametrize("attack, fragment", [
    # find the nonce / harness objects through the garbage collector
    ("import gc\ndef f(x):\n    return [o for o in gc.get_objects() if o] and 5\n",
     "gc.get_objects is disabled"),
    # walk up the stack into the harness
    ("import sys\ndef f(x):\n    return sys._getframe(1).f_locals and 5\n",
     "frame introspection is disabled"),
    ("def f(x):\n    try:\n        1/0\n    except ZeroDivisionError as e:\n"
     "        return e.__traceback__.tb_frame.f_back.f_locals and 5\n", "frame objects"),
    ("import sys\ndef f(x):\n    sys.settrace(lambda *a: None)\n    return 5\n",
     "sys.settrace is disabled"),
    # replace or inspect the test function, or swap the test module's builtins
    ("import sys\ndef f(x):\n    sys.modules['test_solution'].test_one.__code__ = "
     "(lambda: None).__code__\n    return 5\n", "replacing __code__"),
    ("import sys\ndef f(x):\n    return sys.modules['test_solution'].test_one.__code__ and 5\n",
     "code objects"),
    ("import sys\nsys.modules['test_solution'].__builtins__ = {'__import__': __import__}\n"
     "def f(x):\n    return 5\n", "__builtins__ was replaced"),
    # escape hatches to native code, other programs, threads and signal handlers
    ("import ctypes\ndef f(x):\n    return 5\n", "import of ctypes is disabled"),
    ("import subprocess\ndef f(x):\n    subprocess.run(['true'])\n    return 5\n",
     "subprocess.Popen is disabled"),
    ("import _posixsubprocess\ndef f(x):\n    _posixsubprocess.fork_exec()\n    return 5\n",
     "spawning processes is disabled"),
    ("import os\ndef f(x):\n    os.system('true')\n    return 5\n", "os.system is disabled"),
    ("import threading\ndef f(x):\n    threading.Thread(target=print).start()\n    return 5\n",
     "starting threads is disabled"),
    ("import signal\ndef f(x):\n    signal.signal(signal.SIGALRM, lambda s, fr: None)\n"
     "    return 5\n", "signal handling"),
    ("import _imp, importlib.util\ndef f(x):\n"
     "    _imp.create_builtin(importlib.util.find_spec('_signal'))\n    return 5\n",
     "re-creating or loading _signal is disabled"),
    ("import marshal\ndef f(x):\n    marshal.loads(marshal.dumps((lambda: 0).__code__))\n"
     "    return 5\n", "marshal.loads is disabled"),
])
def test_attempts_to_reach_the_harness_fail(backend, attack, fragment):
    """Each would return the right answer (5) if the attack did not stop it."""
    assert_not_passed(run(attack, backend=backend), fragment)


@pytest.mark.parametrize("stmt", [
    "import gc; gc.get_objects()",
    "import sys; sys.settrace(lambda *a: None)",
    "import sys; sys.modules['test_solution'].test_one.__code__ = (lambda: 0).__code__",
    "import os; os.system('true')",
    "open('/etc/steer-pwned', 'w')",
])
def test_swallowed_tampering_still_fails(backend, stmt):
    """Catching the guard's exception does not help: the attempt itself is recorded."""
    sol = f"def f(x):\n    try:\n        {stmt}\n    except BaseException:\n        pass\n" \
          "    return 5\n"
    assert_not_passed(run(sol, backend=backend), "blocked operation")


def test_forked_children_cannot_report_results():
    """A solution that forks to try several answers must not get a PASS from the child that
    happened to be right (bwrap only: the fallback never allows fork when run as root)."""
    why = probe.bwrap_unavailable_reason()
    assert not why, why
    sol = ("import os\ndef f(x):\n    for guess in range(10):\n        if os.fork() == 0:\n"
           "            return guess\n    os.wait()\n    return -1\n")
    res = run(sol, backend="bwrap", limits=Limits(timeout_s=5, allow_fork=True))
    assert_not_passed(res)
    assert sandbox_procs() == []


def test_test_module_globals_are_sealed(backend):
    tests = """\
from solution import f

CASES = [(2, 5), (3, 7)]


def test_cases():
    for x, expected in CASES:
        assert f(x) == expected
"""
    honest = "def f(x):\n    return x + 3\n"
    assert_not_passed(run(honest, tests, backend), "left: 6, right: 7")
    sol = "import sys\ndef f(x):\n    sys.modules['test_solution'].CASES.clear()\n" \
          "    return x + 3\n"
    assert_not_passed(run(sol, tests, backend), "'CASES' was mutated")


def test_modules_imported_by_the_tests_cannot_be_swapped(backend):
    tests = """\
from solution import f
import math


def test_close():
    assert math.isclose(f(2), 5.5)
"""
    for sol in ("import sys, types\nm = types.ModuleType('math')\n"
                "m.isclose = lambda *a, **k: True\nsys.modules['math'] = m\n",
                "import math\nmath.isclose = lambda *a, **k: True\n"):
        assert_not_passed(run(sol + "def f(x):\n    return 1.0\n", tests, backend))
    assert run("def f(x):\n    return x + 3.5\n", tests, backend).all_passed


# --------------------------------------------------------------------------- API behaviour
def test_collect_test_names_and_bad_test_files(backend):
    assert collect_test_names("def test_b():\n    pass\ndef helper():\n    pass\n"
                              "def test_a():\n    pass\n") == ["test_b", "test_a"]
    res = run("def f(x):\n    return 5\n", "def test_(:\n", backend)
    assert not res.all_passed and res.tests == [] and "does not parse" in res.error
    res = run("def f(x):\n    return 5\n", "from solution import f\n", backend)
    assert not res.all_passed and res.error == "no test functions collected"


def test_output_is_captured_and_truncated(backend):
    res = run("print('hello from the solution')\ndef f(x):\n    print('x' * 50000)\n"
              "    return 5\n", backend=backend)
    assert res.all_passed
    assert "hello from the solution" in res.stdout and "[truncated]" in res.stdout
    assert len(res.stdout) < 20_000


def test_total_time_budget(backend):
    tests = "".join(f"\n\ndef test_{i}():\n    assert f(0) == 1\n" for i in range(4))
    res = run("import time\ndef f(x):\n    time.sleep(0.25)\n    return 1\n",
              "from solution import f\n" + tests, backend,
              limits=Limits(timeout_s=5, total_timeout_s=0.6))
    assert res.tests[0].passed
    assert any(t.error and "budget" in t.error for t in res.tests[1:])


def test_bad_arguments():
    from steer.errors import SteerError

    with pytest.raises(SteerError, match="backend"):
        run_tests("x = 1", ONE_TEST, backend="docker")
    with pytest.raises(SteerError, match="must be str"):
        run_tests(None, ONE_TEST)  # type: ignore[arg-type]
    with pytest.raises(SteerError, match="test_filename"):
        run_tests("x = 1", ONE_TEST, test_filename="../x.py")


def test_missing_bwrap_falls_back_loudly(monkeypatch, tmp_path, caplog):
    monkeypatch.setattr(probe, "_probe_cache", {})
    monkeypatch.setattr(probe, "_weak_warned", False)
    monkeypatch.setenv("PATH", str(tmp_path))  # no bwrap on PATH
    with pytest.raises(SandboxUnavailable, match="bwrap"):
        run_tests("def f(x):\n    return x + 3\n", ONE_TEST, backend="bwrap")
    with pytest.warns(RuntimeWarning, match="WEAK"):
        res = run_tests("def f(x):\n    return x + 3\n", ONE_TEST, backend="auto")
    assert res.backend == "rlimit" and res.all_passed
    assert any("WEAK" in r.getMessage() for r in caplog.records)
    with warnings.catch_warnings(record=True) as rec:  # only once per process
        warnings.simplefilter("always")
        run_tests("def f(x):\n    return x + 3\n", ONE_TEST, backend="rlimit")
    assert not [w for w in rec if "WEAK" in str(w.message)]


def test_sandbox_module_stays_light():
    code = ("import sys; import steer.evals, steer.evals.sandbox, steer.evals.coding; "
            "bad = [m for m in ('torch', 'numpy', 'transformers', 'nnsight') "
            "if m in sys.modules]; print(bad)")
    import subprocess
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parents[1], timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("code, needle", [
    ("open('test_solution.py', 'w').write('')\ndef f(x):\n    return 5\n", "changing the test file"),
    ("import os\nos.remove('test_solution.py')\ndef f(x):\n    return 5\n", "changing the test file"),
    ("import os\nos.rename('test_solution.py', 'x.py')\ndef f(x):\n    return 5\n",
     "changing the test file"),
    ("SRC = open('test_solution.py').read()\ndef f(x):\n    return 5\n", "reading the test file"),
])
def test_the_test_file_cannot_be_changed_or_read(code, needle):
    res = run_tests(code, ONE_TEST)
    assert not res.all_passed and needle in (res.tests[0].error or ""), res.tests[0].error


def test_changing_the_test_file_fails_even_when_caught():
    code = ("try:\n    open('test_solution.py', 'a').write('# x')\nexcept OSError:\n    pass\n"
            "def f(x):\n    return 5\n")
    res = run_tests(code, ONE_TEST)
    assert not res.all_passed and "changing the test file" in (res.tests[0].error or "")
    # an ordinary scratch file in the working directory is still fine
    ok = "open('scratch.txt', 'w').write('1')\ndef f(x):\n    return 5\n"
    assert run_tests(ok, ONE_TEST).all_passed
