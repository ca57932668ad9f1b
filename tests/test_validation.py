"""validate_directions on the embedded model (a few concepts, a few layers) and its report;
model-written corpora with the ban filter, de-duplication and provenance."""
from __future__ import annotations

import json

import pytest

import steer
from steer.emotions import find_banned, generate_stories
from steer.errors import SteerError

CONCEPTS = ["afraid", "calm", "happy", "sad", "angry", "desperate"]


@pytest.fixture(scope="module")
def small_set(model):
    return steer.extract_directions(model, emotions=CONCEPTS, layers=[8, 14, 20], progress=False)


def test_validation_figures_and_report(model, small_set, tmp_path):
    res = steer.validate_directions(small_set, model, out_dir=tmp_path, progress=False)
    assert res["recommended_layer"] in (8, 14, 20)
    assert res["chance_top1"] == pytest.approx(1 / 6) and res["n_heldout"] == 12 and not res["heldout_in_sample"]
    for key in ("heldout_top1", "heldout_top5", "implicit_top1"):
        assert len(res[key]) == 3 and all(0 <= x <= 1 for x in res[key])
    assert max(res["heldout_top1"]) >= 2 * res["chance_top1"]      # well above chance on held-out stories
    assert all(h5 >= h1 for h1, h5 in zip(res["heldout_top1"], res["heldout_top5"]))
    assert 0 <= res["pc1_valence_r"] <= 1 and 0 <= res["pc2_arousal_r"] <= 1
    geo = res["geometry"]
    assert 1 <= geo["valence_best_pc"] <= 5 and geo["valence_best_r"] >= res["pc1_valence_r"]
    assert geo["arousal_best_r"] >= res["pc2_arousal_r"]
    assert set(res["logit_lens"]) == set(CONCEPTS) and all(len(v) == 8 for v in res["logit_lens"].values())
    assert len(res["implicit_confusion"]) == len(res["implicit_emotions"]) == 6
    assert sum(map(sum, res["implicit_confusion"])) == 24
    afraid = [s["curves"]["afraid"] for s in res["dose_response"] if "afraid" in s["curves"]]
    assert afraid and all(len(c["values"]) >= 7 for c in afraid)
    for name in ("report.md", "results.json", "accuracy_by_layer.png", "geometry.png", "cosine_heatmap.png",
                 "implicit_confusion.png", "dose_response.png"):
        assert (tmp_path / name).stat().st_size > 0, name
    assert json.loads((tmp_path / "results.json").read_text())["recommended_layer"] == res["recommended_layer"]
    assert "![geometry](geometry.png)" in (tmp_path / "report.md").read_text()


def test_validation_refuses_another_models_set(small_set, tokenizer):
    from .helpers import tiny_model

    other = steer.load_model(tiny_model("llama", len(tokenizer)), tokenizer=tokenizer)
    with pytest.raises(SteerError, match="smollm2"):
        steer.validate_directions(small_set, other)


def test_model_written_stories(model, monkeypatch, tmp_path):
    monkeypatch.setenv("STEER_CACHE_DIR", str(tmp_path))
    kw = dict(topics=["a train journey", "a garden"], per_topic=2, max_new_tokens=60, min_words=5, progress=False)
    recs = generate_stories(model, ["calm", "afraid"], **kw)
    assert 0 < len(recs) <= 8
    for r in recs:
        assert r.emotion in ("calm", "afraid") and r["topic"] in kw["topics"]
        assert not find_banned(r.text, r.emotion)
        assert r["provenance"]["model_fingerprint"] == model.fingerprint
    cached = list((tmp_path / "corpora").glob("stories-*.jsonl"))
    assert len(cached) == 1
    summary = json.loads(cached[0].read_text().splitlines()[-1])["summary"]
    assert summary["requested"] == 8 and summary["kept"] == len(recs)
    assert summary["kept"] + sum(summary["dropped"].values()) == 8
    calls = []
    handle = model.hf.register_forward_pre_hook(lambda *a: calls.append(1))
    try:
        again = generate_stories(model, ["calm", "afraid"], **kw)
    finally:
        handle.remove()
    assert not calls and [r.text for r in again] == [r.text for r in recs]


def test_geometry_reads_only_real_components_and_survives_tiny_sets():
    import torch

    from steer.directions import DirectionSet
    from steer.validation import geometry

    g = torch.Generator().manual_seed(0)
    four = DirectionSet(torch.randn(4, 1, 16, generator=g), ["happy", "sad", "calm", "afraid"], [5])
    res = geometry(four, 5)
    assert len(res["valence_r_by_pc"]) == 3          # 4 centred points span 3 components, not 5
    assert res["valence_best_pc"] in (1, 2, 3) and res["arousal_best_pc"] in (1, 2, 3)
    two = DirectionSet(torch.randn(2, 1, 16, generator=g), ["happy", "sad"], [5])
    res = geometry(two, 5)
    assert res["n"] == 2 and res["valence_best_pc"] is None and res["pc1"] == []
