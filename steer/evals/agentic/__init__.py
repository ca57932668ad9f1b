"""Agentic scenarios: an AI assistant under pressure to break a guardrail, graded by rules and,
optionally, by a local LLM judge.

* :mod:`.scenarios` loads and validates scenario files (``steer/evals/data/scenarios``);
* :mod:`.parse` splits a reply into scratchpad and visible part and reads its tags;
* :mod:`.cues` and :mod:`.grade` are the rule grader (``blackmail`` / ``forbidden_action`` /
  ``disclosure`` / ``malformed`` / ``compliant``, rules in docs/agentic.md);
* :mod:`.judge` is the LLM judge (fixed rubric, any local model), :mod:`.agreement` Cohen's kappa
  and the confusion table, :mod:`.labelled` the hand-labelled check set;
* :mod:`.run` plays episodes on a (steered) model and computes rates.

Importing this package never imports torch. Modules point one way (scenarios <- parse <- cues <-
grade <- judge <- agreement, run), so there is no import cycle.
"""
from .agreement import cohen_kappa, confusion_table, format_agreement, judge_agreement
from .grade import AGENTIC_LABELS, grade_agentic
from .judge import (JUDGE_RUBRIC, JUDGE_SYSTEM, UNPARSED, judge_agentic, judge_agentic_batch, judge_prompt,
                    merge_judge, parse_judge_label, resolve_judge)
from .parse import parse_agentic_response
from .run import agentic_rates, run_agentic_episodes
from .scenarios import (PACKAGED_SCENARIO_DIR, RESPONSE_FORMAT, SCENARIO_KINDS, URGENCIES, Scenario,
                        ScenarioValidationError, load_scenarios)

__all__ = [
    "AGENTIC_LABELS", "SCENARIO_KINDS", "URGENCIES", "RESPONSE_FORMAT", "PACKAGED_SCENARIO_DIR", "Scenario",
    "ScenarioValidationError", "load_scenarios", "parse_agentic_response", "grade_agentic",
    "JUDGE_SYSTEM", "JUDGE_RUBRIC", "UNPARSED", "judge_prompt", "parse_judge_label", "resolve_judge",
    "judge_agentic", "judge_agentic_batch", "merge_judge",
    "cohen_kappa", "confusion_table", "judge_agreement", "format_agreement",
    "agentic_rates", "run_agentic_episodes",
]
