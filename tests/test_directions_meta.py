"""Self-describing direction sets: what a saved set records, and loading it on the wrong model or
hook site is a one-line SteerError unless forced. Tiny random models: seconds."""
from __future__ import annotations

import copy
import json

import pytest
import torch

import steer
from steer import DirectionSet
from steer.directions import FORMAT_VERSION
from steer.errors import SteerError

from .helpers import tiny_model
from .test_extraction import CORPUS, NEUTRAL


@pytest.fixture(scope="module")
def tiny(tokenizer):
    return steer.load_model(tiny_model("llama", len(tokenizer), seed=1), tokenizer=tokenizer)


@pytest.fixture(scope="module")
def tiny_set(tiny):
    return steer.extract_directions(tiny, corpus=CORPUS, neutral=NEUTRAL, holdout=0.0, cache=False, progress=False)


def test_extracted_set_records_op_site_layers_norms_model_and_recipe(tiny, tiny_set):
    meta = tiny_set.meta
    assert meta["format_version"] == FORMAT_VERSION == 2
    assert meta["hook_site"] == "block_output" and "hidden_states[L + 1]" in meta["hook_site_doc"]
    assert meta["op"] == "add" and meta["scale"] == "norm" and meta["dtype"] == "float32"
    assert meta["model"] == tiny.name and meta["model_fingerprint"] == tiny.fingerprint
    assert meta["tokenizer_fingerprint"] == tiny.tokenizer_fingerprint
    assert meta["model_type"] == "llama" and meta["n_layers"] == 4 and meta["d_model"] == 64
    assert meta["model_dtype"] == "float32" and meta["block_path"] == "model.layers"
    assert meta["residual_norms"] == [tiny.residual_norm(L) for L in tiny_set.layers]
    assert meta["layer_map"]["0"] == {"module": "model.layers.0", "hidden_states": 1, "llama_cpp": None}
    assert meta["layer_map"]["3"] == {"module": "model.layers.3", "hidden_states": 4, "llama_cpp": "direction.3"}
    recipe = meta["recipe"]
    assert recipe["method"] == "mean_diff" and recipe["corpus_hash"] == meta["corpus_hash"]
    assert recipe["neutral_pcs"] == meta["neutral_pcs"] and len(recipe["neutral_pcs"]) == 4
    # The layer map's claim, checked: steer's layer L is transformers' hidden_states[L + 1].
    enc = tiny.tokenize(["We danced in the kitchen"])
    with torch.no_grad():
        hs = tiny.hf(**enc, output_hidden_states=True).hidden_states
    res = tiny.residuals(["We danced in the kitchen"], layers=[1, 2])
    for L in (1, 2):
        assert torch.allclose(res[L], hs[meta["layer_map"][str(L)]["hidden_states"]], atol=1e-5, rtol=0)


def test_load_refuses_another_model_tokenizer_or_hook_site_unless_forced(tiny, tiny_set, tokenizer, tmp_path):
    path = tmp_path / "set"
    tiny_set.save(path)
    assert DirectionSet.load(path, model=tiny).meta == json.loads(path.with_suffix(".json").read_text())["meta"]

    other = steer.load_model(tiny_model("llama", len(tokenizer), seed=2), tokenizer=tokenizer)
    with pytest.raises(SteerError, match="pass force=True") as err:
        DirectionSet.load(path, model=other)
    assert "\n" not in str(err.value) and tiny.fingerprint in str(err.value)
    assert torch.equal(DirectionSet.load(path, model=other, force=True).vectors, tiny_set.vectors)

    tok2 = copy.deepcopy(tokenizer)
    tok2.add_tokens(["<steer-extra>"])
    same_weights = steer.load_model(tiny.hf, tokenizer=tok2)
    assert same_weights.fingerprint == tiny.fingerprint
    with pytest.raises(SteerError, match="another tokenizer"):
        DirectionSet.load(path, model=same_weights)

    info = json.loads(path.with_suffix(".json").read_text())
    info["meta"]["hook_site"] = "hidden_states"
    path.with_suffix(".json").write_text(json.dumps(info))
    with pytest.raises(SteerError, match="hook site 'hidden_states'"):
        DirectionSet.load(path, model=tiny)
    with pytest.raises(SteerError, match="hook site"):
        DirectionSet.load(path)                    # the site is checked even without a model
    assert DirectionSet.load(path, model=tiny, hook_site="hidden_states").layers == tiny_set.layers
    assert DirectionSet.load(path, model=tiny, force=True).layers == tiny_set.layers
    with pytest.raises(SteerError, match="unknown hook_site"):
        DirectionSet.load(path, hook_site="attn_out")


def test_force_never_skips_width_or_layer_range(tiny):
    narrow = DirectionSet.from_dict({1: torch.randn(32)}, "narrow")
    with pytest.raises(SteerError, match="dimension 32"):
        narrow.check(tiny, force=True)
    deep = DirectionSet.from_dict({9: torch.randn(64)}, "deep")
    with pytest.raises(SteerError, match="layer 9"):
        deep.check(tiny, force=True)
    with pytest.raises(SteerError, match="fingerprint None"):       # no recorded model: only by force
        DirectionSet.from_dict({1: torch.randn(64)}, "anon").check(tiny)


def test_sets_saved_before_provenance_still_load_and_get_it_from_the_cache(tiny, tmp_path, monkeypatch):
    monkeypatch.setenv("STEER_CACHE_DIR", str(tmp_path / "cache"))
    kw = dict(corpus=CORPUS, neutral=NEUTRAL, holdout=0.0, progress=False)
    first = steer.extract_directions(tiny, **kw)
    cached = list((tmp_path / "cache" / "directions").glob("*.json"))
    assert len(cached) == 1
    info = json.loads(cached[0].read_text())
    new_keys = ("format_version", "hook_site", "hook_site_doc", "op", "scale", "dtype", "layer_map",
                "tokenizer_fingerprint", "model_type", "n_layers", "d_model", "model_dtype", "block_path", "recipe")
    for key in new_keys:
        info["meta"].pop(key)
    cached[0].write_text(json.dumps(info))           # now shaped like a format-1 set
    old = DirectionSet.load(cached[0], model=tiny)
    assert "format_version" not in old.meta and torch.equal(old.vectors, first.vectors)
    again = steer.extract_directions(tiny, **kw)     # a cache hit, upgraded on the way out
    assert {k: again.meta[k] for k in new_keys} == {k: first.meta[k] for k in new_keys}
    assert torch.equal(again.vectors, first.vectors)
