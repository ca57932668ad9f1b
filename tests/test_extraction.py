"""Extraction math (exact on a tiny random model), methods, neutral projection, caching, and
DirectionSet arithmetic / persistence."""
from __future__ import annotations

import pytest
import torch

import steer
from steer import DirectionSet, Intervention
from steer.emotions import Record
from steer.errors import SteerError
from steer.extraction import neutral_basis, split_holdout, stream_means

from .helpers import tiny_model

CORPUS = [Record(t, e) for e, ts in {
    "joy": ["We danced in the kitchen until midnight laughing", "The letter said yes and I ran outside shouting",
            "Grandma hugged everyone twice at the party"],
    "gloom": ["Rain again and the house felt empty and grey", "Nobody called on my birthday this year at all",
              "The shop closed for good and the street went dark"],
    "fury": ["He slammed the door so hard the frame cracked", "She tore the parking ticket into tiny pieces",
             "They shouted at the referee until their throats hurt"],
}.items() for t in ts]
NEUTRAL = [Record(t) for t in ["The train leaves at nine from platform two", "Add two cups of flour and stir",
                               "A square has four equal sides", "Press the button to reset the device"]]


@pytest.fixture(scope="module")
def tiny(tokenizer):
    return steer.load_model(tiny_model("llama", len(tokenizer), seed=1), tokenizer=tokenizer)


def test_mean_diff_is_exact(tiny):
    ds = steer.extract_directions(tiny, corpus=CORPUS, neutral=NEUTRAL, neutral_variance=0.0, skip=2,
                                  holdout=0.0, cache=False, progress=False)
    assert ds.emotions == ["joy", "gloom", "fury"] and ds.layers == [0, 1, 2, 3]
    res = tiny.residuals([r.text for r in CORPUS], layers="all")
    for L in ds.layers:
        means = []
        for e in ds.emotions:
            rows = [i for i, r in enumerate(CORPUS) if r.emotion == e]
            toks = torch.cat([res[L][i][res.mask[i].bool()][2:] for i in rows])   # skip the first 2 tokens
            means.append(toks.double().mean(0))
        means = torch.stack(means)
        want = means - means.mean(0)
        want = (want / want.norm(dim=1, keepdim=True)).float()
        assert torch.allclose(ds.matrix(L), want, atol=1e-5)
        assert torch.allclose(ds.center[ds.layers.index(L)], means.mean(0).float(), atol=1e-4)


def test_neutral_components_are_projected_out(tiny):
    ds = steer.extract_directions(tiny, corpus=CORPUS, neutral=NEUTRAL, neutral_variance=0.5, holdout=0.0,
                                  cache=False, progress=False)
    stats = stream_means(tiny, [r.text for r in NEUTRAL], [-1] * len(NEUTRAL), 1, ds.layers, progress=False)
    for j, L in enumerate(ds.layers):
        basis = neutral_basis(stats["neutral"][j], 0.5)
        assert basis.shape[0] == ds.meta["neutral_pcs"][j] >= 1
        assert (ds.matrix(L) @ basis.T).abs().max() < 1e-5


@pytest.mark.parametrize("method", ["mean_diff", "pca", "logistic"])
def test_methods_give_unit_directions_pointing_at_their_class(tiny, method):
    ds = steer.extract_directions(tiny, corpus=CORPUS, neutral=NEUTRAL, method=method, layers=[1, 3],
                                  holdout=0.0, cache=False, progress=False)
    assert torch.allclose(ds.vectors.norm(dim=-1), torch.ones(3, 2), atol=1e-5)
    stats = stream_means(tiny, [r.text for r in CORPUS], [0] * len(CORPUS), 1, [1, 3],
                         keep_text_means=True, progress=False)
    labels = torch.tensor([ds.emotions.index(r.emotion) for r in CORPUS])
    for j, L in enumerate([1, 3]):
        scores = (stats["text_means"][:, j] - ds.center[j]) @ ds.matrix(L).T    # [texts, emotions]
        for e in range(3):
            own = scores[labels == e, e].mean()
            other = scores[labels != e, e].mean()
            assert own > other


def test_holdout_split_is_per_emotion_and_deterministic():
    recs = [Record(f"{e}{i}", e) for e in "ab" for i in range(10)]
    train, test = split_holdout(recs, 0.2)
    assert [r.text for r in test] == ["a4", "a9", "b4", "b9"] and len(train) == 16
    with pytest.raises(SteerError, match="holdout"):
        split_holdout(recs, 1.5)


def test_rerun_loads_from_cache_without_running_the_model(tiny, monkeypatch, tmp_path):
    monkeypatch.setenv("STEER_CACHE_DIR", str(tmp_path))
    kw = dict(corpus=CORPUS, neutral=NEUTRAL, layers=[0, 2], holdout=0.0, progress=False)
    first = steer.extract_directions(tiny, **kw)
    calls = []
    handle = tiny.hf.register_forward_pre_hook(lambda *a: calls.append(1))
    try:
        again = steer.extract_directions(tiny, **kw)
    finally:
        handle.remove()
    assert not calls
    assert torch.equal(first.vectors, again.vectors) and again.meta["corpus_hash"] == first.meta["corpus_hash"]
    changed = steer.extract_directions(tiny, **{**kw, "skip": 1})
    assert not torch.equal(first.vectors, changed.vectors)


def test_bad_extraction_input(tiny):
    with pytest.raises(SteerError, match="'magic'"):
        steer.extract_directions(tiny, corpus=CORPUS, method="magic")
    with pytest.raises(SteerError, match="'nope'"):
        steer.extract_directions(tiny, corpus=CORPUS, emotions=["joy", "nope"])
    with pytest.raises(SteerError, match="layer 9"):
        steer.extract_directions(tiny, corpus=CORPUS, layers=[9])
    with pytest.raises(SteerError, match="two emotions"):
        steer.extract_directions(tiny, corpus=CORPUS[:3])


def test_direction_set_arithmetic_names_and_persistence(tiny, tmp_path, tokenizer):
    ds = steer.extract_directions(tiny, corpus=CORPUS, neutral=NEUTRAL, holdout=0.0, cache=False, progress=False)
    diff = ds.vector("joy", 2) - ds.vector("gloom", 2)
    d = ds["joy"] - ds["gloom"]
    assert torch.equal(d[2], diff) and d.layers == ds.layers
    iv = Intervention("add", direction=d, layers=[2], strength=1.0, scale="absolute")
    assert torch.allclose(iv.vector(2, 64), diff / diff.norm())
    by_name = tiny.logits(["a b c d"], interventions=[
        Intervention("add", direction="fury", layers=[1, 2], strength=2.0, scale="absolute", directions=ds)])
    by_vec = tiny.logits(["a b c d"], interventions=[
        Intervention("add", direction=ds["fury"], layers=[1, 2], strength=2.0, scale="absolute")])
    assert torch.equal(by_name, by_vec)
    also = tiny.logits(["a b c d"], interventions=[
        Intervention("add", direction="fury", layers=[1, 2], strength=2.0, scale="absolute")], directions=ds)
    assert torch.equal(by_name, also)

    path = ds.save(tmp_path / "sets" / "tiny")
    assert path.exists() and path.with_suffix(".json").exists()
    back = DirectionSet.load(tmp_path / "sets" / "tiny", model=tiny)
    assert torch.equal(back.vectors, ds.vectors) and torch.equal(back.center, ds.center)
    assert back.emotions == ds.emotions and back.meta["model_fingerprint"] == tiny.fingerprint
    other = steer.load_model(tiny_model("llama", len(tokenizer), seed=2), tokenizer=tokenizer)
    with pytest.raises(SteerError) as err:
        DirectionSet.load(tmp_path / "sets" / "tiny", model=other)
    assert "\n" not in str(err.value) and tiny.fingerprint in str(err.value)
    with pytest.raises(SteerError, match="no direction 'calmish'"):
        ds.vector("calmish", 1)
    with pytest.raises(SteerError, match="no layer 7"):
        ds.vector("joy", 7)
    sub = ds.subset(["fury", "joy"], [1])
    assert torch.equal(sub.vector("joy", 1), ds.vector("joy", 1)) and sub.center.shape == (1, 64)
    rnd = ds.with_direction("random", {L: torch.randn(64) for L in ds.layers})
    assert "random" in rnd and abs(float(rnd.vector("random", 0).norm()) - 1) < 1e-5
