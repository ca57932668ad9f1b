"""Steerability diagnostics: the exact pieces on synthetic tensors, one small real run whose
projection part is exact (read at the steered layer), and the sweep report's warning."""
from __future__ import annotations

import json
import math

import pytest
import torch

from steer import DirectionSet, SteerError
from steer.steerability import (fluency_break, emotion_tokens, log_odds, mean_pairwise_cosine, steerability,
                                warnings_for, word_tokens, wrong_way_fraction, EPISODES, NEUTRAL_WORDS)
from steer.steerability_report import write_steerability_report


def test_wrong_way_fraction_counts_moves_against_the_sign():
    assert wrong_way_fraction(torch.tensor([0.5, -0.1, 0.2, 0.0])) == 0.5
    assert wrong_way_fraction(torch.tensor([-1.0, 2.0, -3.0]), sign=-0.1) == pytest.approx(1 / 3)
    assert wrong_way_fraction(torch.ones(5)) == 0.0
    with pytest.raises(SteerError):
        wrong_way_fraction(torch.tensor([]))


def test_mean_pairwise_cosine_matches_the_pairs_one_by_one():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(7, 5, generator=g, dtype=torch.float64)
    pairs = [torch.nn.functional.cosine_similarity(x[i], x[j], dim=0) for i in range(7) for j in range(i + 1, 7)]
    assert mean_pairwise_cosine(x) == pytest.approx(float(torch.stack(pairs).mean()), abs=1e-12)
    assert mean_pairwise_cosine(torch.tensor([[1.0, 0.0], [0.0, 2.0], [3.0, 0.0]])) == pytest.approx(1 / 3)
    assert mean_pairwise_cosine(torch.tensor([[2.0, 1.0]] * 4)) == pytest.approx(1.0)
    assert math.isnan(mean_pairwise_cosine(torch.ones(1, 3)))


def test_fluency_break_is_the_smallest_strength_over_the_limit():
    assert fluency_break([0.1, 0.4, 0.2], [1.1, 3.0, 1.6]) == 0.2
    assert fluency_break([0.1, 0.2], [1.0, 1.49]) is None
    assert fluency_break([0.1, 0.2], [1.0, 1.2], limit=1.1) == 0.2


def test_log_odds_is_exact():
    logits = torch.log(torch.tensor([[1.0, 3.0, 2.0, 4.0]]))
    assert float(log_odds(logits, [1, 2], [0, 3])[0]) == pytest.approx(math.log(5 / 5))
    assert float(log_odds(logits, [1], [0])[0]) == pytest.approx(math.log(3.0))


def test_emotion_tokens_are_the_concepts_own_single_token_words(model):
    from steer.emotions.corpus import banned_words

    ids = emotion_tokens(model.tokenizer, "calm")
    words = {"calm", *banned_words()["calm"]}
    assert ids and all(model.tokenizer.decode([t]).strip() in words for t in ids)
    assert not set(ids) & set(word_tokens(model.tokenizer, NEUTRAL_WORDS))


@pytest.fixture(scope="module")
def random_set(model):
    """Random unit directions named like concepts (so they have emotion words), at every layer."""
    g = torch.Generator().manual_seed(3)
    v = torch.randn(2, model.n_layers, model.d_model, generator=g)
    return DirectionSet(v / v.norm(dim=-1, keepdim=True), ["calm", "desperate"], range(model.n_layers),
                        {"model": model.name, "model_fingerprint": model.fingerprint})


def test_read_at_the_steered_layer_the_projection_moves_by_exactly_the_strength(model, random_set):
    res = steerability(model, random_set, emotions=["calm"], layers=[10], strengths=[0.2], read_layer=10,
                       pairs=EPISODES[:4], progress=False)
    (e,) = res["entries"]
    assert len(e["delta_projection"]) == res["n_prompts"] == 4
    assert e["delta_projection"] == pytest.approx([0.2] * 4, abs=1e-4)
    assert e["wrong_way_projection"] == 0.0
    assert e["diff_cosine"] == pytest.approx(1.0, abs=1e-5)         # every difference is s * u


def test_a_small_real_run_and_its_report(model, random_set, tmp_path):
    res = steerability(model, random_set, layers=[[8, 12]], strengths=[0.1, 0.6], pairs=EPISODES[:4],
                       progress=False)
    assert [(e["emotion"], e["layers"]) for e in res["entries"]] == [("calm", [8, 12]), ("desperate", [8, 12])]
    for e in res["entries"]:
        assert e["read_layer"] == model.n_layers - 1 and e["strength"] == 0.1
        assert len(e["delta_logodds"]) == 4 and e["n_emotion_tokens"] > 0
        assert e["wrong_way_logodds"] == wrong_way_fraction(torch.tensor(e["delta_logodds"]))
        assert [b["strength"] for b in e["by_strength"]] == [0.1, 0.6]
        assert all(b["ppl_ratio"] > 0 for b in e["by_strength"])
        assert e["weak"] == (e["wrong_way_logodds"] >= 0.25 or e["mean_delta_logodds"] <= 0)
    path = write_steerability_report(res, tmp_path, command="test")
    assert {"report.md", "results.json", "summary.png", "calm.png", "desperate.png"} <= {p.name for p in tmp_path.iterdir()}
    assert json.loads((tmp_path / "results.json").read_text())["entries"][0]["emotion"] == "calm"
    assert "| calm | 8-12 |" in path.read_text()


def _entry(emotion, layers, weak, ww=0.5):
    return {"emotion": emotion, "layers": layers, "weak": weak, "strength": 0.1, "wrong_way_logodds": ww,
            "mean_delta_logodds": -0.3, "wrong_way_projection": 0.0, "diff_cosine": 0.4}


def test_sweep_report_warns_about_weak_directions(tmp_path):
    from steer.runs.report import _steerability_lines

    res = {"n_prompts": 8, "entries": [_entry("calm", [14], True), _entry("desperate", [14], False, 0.0)]}
    weak, missing = warnings_for([res], [("calm", [14]), ("desperate", [14]), ("calm", [14]), ("sad", "all")])
    assert len(weak) == 1 and weak[0].startswith("**calm at layer 14 is weakly steerable**")
    assert "50% of 8 neutral prompts" in weak[0] and missing == ["sad Lall"]
    (tmp_path / "steerability-main.json").write_text(json.dumps(res))
    records = [{"cell": {"kind": "emotion", "op": "add", "emotion": e, "layers": [14]}} for e in ("calm", "desperate")]
    summary: dict = {}
    lines = _steerability_lines(tmp_path, records + [{"cell": {"kind": "baseline"}}], summary)
    assert lines[0] == "## Steerability" and any("calm at layer 14" in x for x in lines)
    assert summary["steerability"]["not_measured"] == []
    assert _steerability_lines(tmp_path / "none", records, {}) == []
