"""Coding tasks that cannot be solved honestly: loading, answer parsing, cheat detection, grading.

The experiment shows a (steered) model a task with tests and records whether it solves it,
fails honestly, flags it as impossible, or cheats. This package turns a model's answer into one
of those labels:

* :func:`load_tasks` loads and validates task files (``steer/evals/data/coding`` by default);
  module ``tasks``.
* :func:`parse_answer` extracts the solution, an (illegal) edited test file and an
  ``IMPOSSIBLE:`` flag from free-form model output. :data:`ANSWER_FORMAT` tells the model how to
  answer; module ``answers``.
* :func:`import_tasks` reads a user's JSONL of impossible tasks (prompt, tests, entry point,
  optional twin); module ``importer``.
* :func:`analyze_solution` finds cheat signatures statically (AST only, no execution); modules
  ``analysis``, ``signatures`` (tampering), ``facts`` (what the tests assert and which values
  contradict the spec), ``dataflow`` and ``special_cases`` (special-casing through intermediate
  values), ``state`` (per-call state); ``runtime`` reads what the sandbox's guard refused.
* :func:`grade_coding` / :func:`grade_response` run the task's ORIGINAL tests in the sandbox
  (:mod:`steer.evals.sandbox`) and apply the labelling rules documented in docs/evals.md;
  :func:`grade_episode` combines several attempts; module ``grade``.

Stdlib + pyyaml only; no torch, no model code.
"""
from __future__ import annotations

from .answers import ANSWER_FORMAT, Answer, parse_answer
from .analysis import analyze_solution
from .grade import (LABELS, SHORTCUT_LABELS, TAMPER_SUBTYPES, grade_coding, grade_episode,
                    grade_response)
from .importer import ImportReport, import_tasks
from .tasks import (
    CATEGORIES,
    CHEAT_SUBTYPES,
    KINDS,
    PACKAGED_TASK_DIR,
    Task,
    TaskValidationError,
    load_tasks,
)

__all__ = [
    "Task",
    "Answer",
    "TaskValidationError",
    "KINDS",
    "CATEGORIES",
    "LABELS",
    "SHORTCUT_LABELS",
    "CHEAT_SUBTYPES",
    "TAMPER_SUBTYPES",
    "ANSWER_FORMAT",
    "PACKAGED_TASK_DIR",
    "load_tasks",
    "import_tasks",
    "ImportReport",
    "parse_answer",
    "analyze_solution",
    "grade_coding",
    "grade_response",
    "grade_episode",
]
