"""Evaluations: sandboxed coding tasks (and, later, agentic scenarios).

Stdlib + pyyaml only: importing ``steer.evals`` never imports torch or model code.
"""
from .coding import (
    ANSWER_FORMAT,
    CATEGORIES,
    CHEAT_SUBTYPES,
    KINDS,
    LABELS,
    PACKAGED_TASK_DIR,
    TAMPER_SUBTYPES,
    Answer,
    Task,
    TaskValidationError,
    analyze_solution,
    grade_coding,
    grade_episode,
    grade_response,
    load_tasks,
    parse_answer,
)
from .sandbox import (
    Limits,
    SandboxResult,
    SandboxUnavailable,
    TestOutcome,
    bwrap_available,
    collect_test_names,
    default_backend,
    run_tests,
)

__all__ = [
    "ANSWER_FORMAT",
    "CATEGORIES",
    "CHEAT_SUBTYPES",
    "KINDS",
    "LABELS",
    "PACKAGED_TASK_DIR",
    "TAMPER_SUBTYPES",
    "Answer",
    "Task",
    "TaskValidationError",
    "analyze_solution",
    "grade_coding",
    "grade_episode",
    "grade_response",
    "load_tasks",
    "parse_answer",
    "Limits",
    "SandboxResult",
    "SandboxUnavailable",
    "TestOutcome",
    "bwrap_available",
    "collect_test_names",
    "default_backend",
    "run_tests",
]
