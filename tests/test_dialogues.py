"""The shipped dialogue corpus (speaker and deflection states): schema, balance, banned words, loader errors."""
from __future__ import annotations

import json

import pytest

from steer.emotions import dialogues as D
from steer.errors import SteerError


def test_every_shipped_concept_has_eight_of_each_kind_and_no_banned_word():
    concepts = D.shipped_concepts()
    assert len(concepts) >= 14
    rows = D.dialogues()
    for c in concepts:
        mine = [d for d in rows if d.emotion == c]
        for kind in ("present", "other", "deflection"):
            assert sum(d.kind == kind for d in mine) >= 8, (c, kind)
    assert all(D.banned_in(d) == [] for d in rows)
    assert len({d.id for d in rows}) == len(rows)


def test_turns_start_with_user_and_alternate():
    for d in D.dialogues():
        roles = [r for r, _ in d.turns]
        assert roles[0] == "user" and all(a != b for a, b in zip(roles, roles[1:])), d.id


@pytest.mark.parametrize("row,match", [
    ({"id": "x-1", "emotion": "calm", "kind": "sideways", "topic": "t",
      "turns": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "ok"}]}, "kind"),
    ({"id": "x-2", "emotion": "calmish", "kind": "present", "topic": "t",
      "turns": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "ok"}]}, "calmish"),
    ({"id": "x-3", "emotion": "calm", "kind": "present", "topic": "t",
      "turns": [{"role": "assistant", "content": "ok"}, {"role": "user", "content": "hi"}]}, "user"),
])
def test_malformed_user_files_name_file_and_problem(tmp_path, row, match):
    path = tmp_path / "mine.jsonl"
    path.write_text(json.dumps(row) + "\n")
    with pytest.raises(SteerError, match=match):
        D.load_dialogues(path)
