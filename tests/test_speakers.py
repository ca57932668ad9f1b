"""Speaker-specific directions on a small fixture of dialogues (tests/data): readouts at a
speaker's tokens are exact means, the recipe is extraction's, and the validation page builds."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from steer import SteerError
from steer.extraction import neutral_basis
from steer.speakers import (KINDS, extract_speaker_directions, load_exchanges, speaker_means, split,
                            validate_speakers)

FIXTURE = Path(__file__).parent / "data" / "dialogues_fixture.jsonl"
LAYERS = [8, 14]


def test_fixture_loads_and_bad_rows_fail(tmp_path):
    xs = load_exchanges(FIXTURE)
    assert len(xs) == 22 and {x.kind for x in xs} == set(KINDS) | {"neutral"}
    assert all(x.emotion is None for x in xs if x.kind == "neutral")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "x", "emotion": "calm", "kind": "sideways", "turns": [{"role": "user", "content": "hi"}]}\n')
    with pytest.raises(SteerError, match="bad.jsonl:1: kind 'sideways'"):
        load_exchanges(bad)
    bad.write_text('{"id": "x", "emotion": null, "kind": "present", "turns": [{"role": "user", "content": "hi"}]}\n')
    with pytest.raises(SteerError, match="needs an emotion"):
        load_exchanges(bad)


def test_split_holds_out_every_kth_of_each_concept_and_kind():
    xs = load_exchanges(FIXTURE)
    train, test = split(xs, 0.5)
    assert [x.id for x in test] == [x.id for x in xs if x.kind != "neutral" and x.id.endswith("-02")]
    assert len(train) + len(test) == len(xs)


def test_speaker_means_are_the_mean_over_that_speakers_tokens(model):
    xs = [x for x in load_exchanges(FIXTURE) if x.id in ("calm-present-01", "neutral-03", "happy-other-02")]
    got = speaker_means(model, xs, LAYERS, progress=False)
    chats = [x.chat() for x in xs]
    res = model.residuals(chats, layers=LAYERS, chat=True)
    T = res.mask.shape[1]
    for b, turns in enumerate(model.chat_turns(chats)):
        start = T - int(res.mask[b].sum())
        for role in ("assistant", "user"):
            idx = [start + p for t in turns if t.role == role for p in range(t.start, t.end)]
            for j, L in enumerate(LAYERS):
                assert torch.allclose(got[role][b, j], res[L][b, idx].mean(0), atol=1e-4)
    assert got["neutral"][0].shape[1] == model.d_model and got["neutral"][0].shape[0] > 0


@pytest.fixture(scope="module")
def sets(model):
    return extract_speaker_directions(model, dialogues=FIXTURE, layers=LAYERS, holdout=0.5, cache=False,
                                      progress=False)


def test_three_sets_follow_the_mean_diff_recipe(model, sets):
    xs = load_exchanges(FIXTURE)
    train, _ = split(xs, 0.5)
    stats = speaker_means(model, train + [x for x in xs if x.kind == "neutral"], LAYERS, progress=False)
    for kind, role in (("present", "assistant"), ("other", "user"), ("deflection", "assistant")):
        ds = sets[kind]
        assert ds.emotions == ["calm", "desperate", "happy"] and ds.layers == LAYERS
        assert ds.meta["read_role"] == role and ds.meta["n_train"] == {"calm": 1, "desperate": 1, "happy": 1}
        rows = {e: [i for i, x in enumerate(train) if x.kind == kind and x.emotion == e] for e in ds.emotions}
        for j, L in enumerate(LAYERS):
            means = torch.stack([stats[role][rows[e], j].mean(0) for e in ds.emotions])
            basis = neutral_basis(stats["neutral"][j], 0.5)
            v = means - means.mean(0)
            v = v - (v @ basis.T) @ basis
            assert torch.allclose(ds.matrix(L), v / v.norm(dim=1, keepdim=True), atol=1e-5)
            assert torch.allclose(ds.matrix(L) @ basis.T, torch.zeros(3, basis.shape[0]), atol=1e-5)


def test_validation_page(model, sets, tmp_path):
    res = validate_speakers(model, sets, stories=sets["present"], out_dir=tmp_path, progress=False)
    assert res["n_heldout"] == {"present": 3, "other": 3, "deflection": 3} and res["chance"] == pytest.approx(1 / 3)
    assert res["cosine_story"]["present"] == pytest.approx([1.0, 1.0], abs=1e-5)   # a set against itself
    for t in res["crossclass"]:
        assert set(t) == set(KINDS) and all(0.0 <= t[k][h] <= 1.0 for k in KINDS for h in KINDS)
    assert all(-1.0 <= c <= 1.0 for v in res["cosine"].values() for c in v)
    assert res["best_layer"] in LAYERS
    names = {p.name for p in tmp_path.iterdir()}
    assert {"report.md", "results.json", "cosine_by_layer.png", "crossclass_by_layer.png", "crossclass_table.png"} <= names
    assert "| present (assistant) |" in (tmp_path / "report.md").read_text()


def test_missing_kind_is_one_clear_error(model, tmp_path):
    lines = [x for x in FIXTURE.read_text().splitlines() if '"kind": "deflection"' not in x or "calm" not in x]
    path = tmp_path / "d.jsonl"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(SteerError, match="no 'deflection' dialogues for emotion 'calm'"):
        extract_speaker_directions(model, dialogues=path, emotions=["calm", "happy"], layers=LAYERS, cache=False)
