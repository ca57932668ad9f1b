"""Compatibility module: the judge, runner and summaries now live in :mod:`steer.evals.agentic`
(``judge``, ``run``, ``agreement``); every name that was importable from here still is."""
from .agentic.agreement import cohen_kappa, confusion_table, format_agreement, judge_agreement
from .agentic.judge import (JUDGE_RUBRIC, JUDGE_SYSTEM, UNPARSED, judge_agentic, judge_agentic_batch, judge_prompt,
                            merge_judge, parse_judge_label, resolve_judge)
from .agentic.run import agentic_rates, run_agentic_episodes

__all__ = ["JUDGE_SYSTEM", "JUDGE_RUBRIC", "UNPARSED", "judge_prompt", "parse_judge_label", "resolve_judge",
           "judge_agentic", "judge_agentic_batch", "merge_judge", "cohen_kappa", "confusion_table",
           "judge_agreement", "format_agreement", "agentic_rates", "run_agentic_episodes"]
