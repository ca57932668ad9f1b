"""Find, count and kill the sandbox's processes through ``/proc``."""
from __future__ import annotations

import os
import signal
import subprocess
import time


def count_procs_of(uid: int) -> int:
    """Processes owned by ``uid`` now: RLIMIT_NPROC counts them against the sandbox's limit."""
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


def marked_pids(marker: bytes) -> list[int]:
    """Processes (other than this one) whose environment holds ``marker``."""
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


def alive(pid: int) -> bool:
    """True unless ``pid`` is gone or a zombie (a zombie still shows up in ``/proc``)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
        return data[data.rindex(b")") + 2:][:1] not in (b"Z", b"X")
    except (OSError, ValueError):
        return False


def kill_tree(proc: subprocess.Popen, marker: bytes) -> None:
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
        pids = [p for p in marked_pids(marker) if alive(p)]
        if not pids or time.monotonic() > deadline:
            break
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        time.sleep(0.02)
