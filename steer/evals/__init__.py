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
    SHORTCUT_LABELS,
    TAMPER_SUBTYPES,
    Answer,
    ImportReport,
    Task,
    TaskValidationError,
    analyze_solution,
    grade_coding,
    grade_episode,
    grade_response,
    import_tasks,
    load_tasks,
    parse_answer,
)
from .agentic import (
    AGENTIC_LABELS,
    PACKAGED_SCENARIO_DIR,
    RESPONSE_FORMAT,
    Scenario,
    ScenarioValidationError,
    grade_agentic,
    load_scenarios,
    parse_agentic_response,
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
    "SHORTCUT_LABELS",
    "TAMPER_SUBTYPES",
    "Answer",
    "ImportReport",
    "Task",
    "TaskValidationError",
    "analyze_solution",
    "grade_coding",
    "grade_episode",
    "grade_response",
    "import_tasks",
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
    "AGENTIC_LABELS",
    "PACKAGED_SCENARIO_DIR",
    "RESPONSE_FORMAT",
    "Scenario",
    "ScenarioValidationError",
    "agentic_rates",
    "grade_agentic",
    "judge_agreement",
    "load_scenarios",
    "parse_agentic_response",
    "judge_agentic",
    "run_agentic_episodes",
    "run_coding_episodes",
    "coding_rates",
    "cheat_auroc",
    "projection_trajectory",
    "format_rates_table",
]

# Model-using functions load on first use, so `import steer.evals` stays light.
_LAZY = {
    "agentic_rates": "steer.evals.agentic_run",
    "judge_agentic": "steer.evals.agentic_run",
    "judge_agreement": "steer.evals.agentic_run",
    "run_agentic_episodes": "steer.evals.agentic_run",
    "run_coding_episodes": "steer.evals.loop",
    "coding_rates": "steer.evals.rates",
    "cheat_auroc": "steer.evals.rates",
    "projection_trajectory": "steer.evals.rates",
    "format_rates_table": "steer.evals.rates",
}


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'steer.evals' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
