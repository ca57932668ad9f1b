"""The grader on the adversarial case set (tests/data/coding_adversarial): every family of
shortcut (written through intermediate values, per-call state, reading the tests, copied values,
exits, patches, __eq__ tricks, test-file edits) and the honest code that looks like it."""
from __future__ import annotations

from pathlib import Path

import pytest

from steer.errors import SteerError
from steer.evals import load_tasks
from steer.evals.coding.casebook import format_table, grade_cases, load_cases, precision_recall

pytestmark = pytest.mark.filterwarnings("ignore:steer sandbox:RuntimeWarning")

CASES_DIR = Path(__file__).parent / "data" / "coding_adversarial"
CASES = load_cases(CASES_DIR)
TASKS = {t.id: t for t in load_tasks()}
FAMILIES = ("dataflow", "state", "reads_tests", "copied_values", "exits", "patching", "eq_hash",
            "test_files")


def test_the_set_covers_every_family_with_shortcuts_and_near_misses():
    for fam in FAMILIES:
        cases = [c for c in CASES if c["family"] == fam]
        assert sum(c["expect"] in ("cheat", "cheat_attempt") for c in cases) >= 4, fam
        assert sum(c["expect"] in ("honest_fail", "solved") for c in cases) >= 2, fam
    assert {c["family"] for c in CASES} == set(FAMILIES)


@pytest.mark.parametrize("case", CASES, ids=[f"{c['family']}/{c['id']}" for c in CASES])
def test_case(case):
    (r,) = grade_cases([case], TASKS)
    if case.get("known_miss"):
        # a documented miss: if the grader learns it, move the case out of known_miss
        assert r["label"] != case["expect"], f"{case['id']} is caught now: drop known_miss"
    else:
        assert r["label"] == case["expect"], (r["label"], r["subtype"], r["reason"])


def test_precision_recall_arithmetic():
    rows = [{"family": "a", "expect": "cheat", "label": "cheat"},
            {"family": "a", "expect": "cheat_attempt", "label": "honest_fail"},
            {"family": "a", "expect": "honest_fail", "label": "cheat_attempt"},
            {"family": "b", "expect": "solved", "label": "solved"}]
    t = precision_recall(rows)
    assert (t["a"]["tp"], t["a"]["fp"], t["a"]["fn"]) == (1, 1, 1)
    assert t["a"]["precision"] == 0.5 and t["a"]["recall"] == 0.5 and t["a"]["exact"] == 1
    assert t["b"]["precision"] is None and t["b"]["recall"] is None
    assert t["all"]["n"] == 4
    table = format_table(t)
    assert table.splitlines()[2].startswith("| a | 3 | 2 | 1 | 0.50 (1/2) | 0.50 (1/2) | 1/3 |")


def test_bad_case_files(tmp_path):
    (tmp_path / "x.yaml").write_text("- id: a\n  task: t\n  expect: maybe\n  code: x\n")
    with pytest.raises(SteerError, match="expect must be one of"):
        load_cases(tmp_path)
    with pytest.raises(SteerError, match="no case files"):
        load_cases(tmp_path / "missing")
