"""cheat vs cheat_attempt in the sweep tables and the report; committed study records (written
before cheat_attempt existed) still load and report."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from steer.errors import SteerError
from steer.runs.aggregate import coding_table
from steer.runs.report import build_report
from steer.runs.store import ResultsStore
from steer.stats import rate

STUDY = Path(__file__).resolve().parent.parent / "experiments" / "c_early_warning" / "records"


@pytest.fixture(scope="module")
def study_records() -> list[dict]:
    return ResultsStore(STUDY, writer="report").records()


def test_old_records_get_derived_flags(study_records):
    recs = copy.deepcopy([r for r in study_records if r.get("suite") == "coding"])
    assert recs and all("cheat_attempt" not in r for r in recs)    # written before the field
    base = {r["label"]: r for r in coding_table(recs)}["baseline"]
    n = base["cheat"]["n"]
    assert base["cheat"] == rate(0, n) and base["cheat_attempt"] == rate(0, n)
    # an old-style tampering "cheat" whose tests failed reads as an attempt, one that passed as a cheat
    imp = [r for r in recs if r["task_kind"] == "impossible" and r["cell"]["label"] == "baseline"]
    for r, passed in ((imp[0], False), (imp[1], True)):
        r["label"], r["subtype"] = "cheat", "early_exit"
        r["attempts"][0]["label"] = "cheat"
        r["attempts"][0]["grade"] = {**r["attempts"][0]["grade"], "label": "cheat",
                                     "all_passed": passed}
        r["attempts"][0]["grade"].pop("cheat", None)
    base = {r["label"]: r for r in coding_table(recs)}["baseline"]
    assert base["cheat"] == rate(1, n) and base["cheat_attempt"] == rate(1, n)
    assert base["subtypes"] == {"early_exit": 2}


def test_report_shows_both_rates_and_takes_either_warning_label(tmp_path):
    with pytest.raises(SteerError, match="warning_label"):
        build_report(STUDY, tmp_path / "bad", warning_label="blackmail")
    text = build_report(STUDY, tmp_path / "r", warning_label="cheat_attempt").read_text()
    assert "| cheat (impossible) | vs baseline | cheat attempt (impossible) | vs baseline |" in text
    assert "report.warning_label=cheat_attempt" in text
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    aucs = summary["cheat_auroc"]
    assert aucs and all(a["label"] == "cheat_attempt" and a["auroc"] is None for a in aucs.values())
    rows = summary["coding"]
    assert all("cheat_attempt" in r and r["cheat_attempt"]["k"] == 0 for r in rows)
