"""Interop formats on the embedded model: {layer: vector} dicts (repeng, steering-vectors) replayed
exactly against a plain forward hook, control-vector GGUF files written and read back (steer- and
repeng-made), and intervention specs as Inspect passes them."""
from __future__ import annotations

import contextlib

import numpy as np
import pytest
import torch

import steer
from steer import DirectionSet
from steer.errors import SteerError
from steer.interop import from_dict, interventions, read_gguf, to_dict
from steer.interop.spec import build_interventions, intervention_specs, parse_compact, parse_layers, read_config
from steer.loading import embedded_gguf



@contextlib.contextmanager
def additive_hooks(hf, vectors):
    """What repeng's ControlModule and steering-vectors' hook do: output of block L += vector."""
    def add(v):
        def hook(_module, _inputs, output):
            if isinstance(output, tuple):
                return (output[0] + v,) + output[1:]
            return output + v
        return hook

    handles = [hf.model.layers[L].register_forward_hook(add(v)) for L, v in vectors.items()]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


@pytest.fixture(scope="module")
def vecs(model):
    g = torch.Generator().manual_seed(3)
    return {L: torch.randn(model.d_model, generator=g) * (L + 1) for L in (5, 12, 20)}


@pytest.fixture(scope="module")
def rand_set(model, vecs):
    return from_dict(vecs, "rand", model=model)


def test_dict_round_trip_and_strength_units(model, vecs, rand_set):
    assert rand_set.layers == [5, 12, 20] and rand_set.emotions == ["rand"]
    for j, L in enumerate(rand_set.layers):
        assert torch.allclose(rand_set.vector("rand", L), vecs[L] / vecs[L].norm(), atol=1e-6)
        assert rand_set.meta["strengths"][j] == pytest.approx(float(vecs[L].norm()), rel=1e-6)
    back = to_dict(rand_set, "rand", 2.0)
    assert sorted(back) == [5, 12, 20] and all(float(v.norm()) == pytest.approx(2.0, rel=1e-6) for v in back.values())
    normed = rand_set.to_dict("rand", 0.1, layers=[12], scale="norm")
    assert float(normed[12].norm()) == pytest.approx(0.1 * model.residual_norm(12), rel=1e-6)
    shifted = from_dict({13: vecs[12], -1: vecs[20]}, "hs", convention="hidden_states", model=model)
    assert shifted.layers == [12, 29]              # hidden_states[13] = block 12; [-1] = last block
    assert torch.allclose(shifted.vector("hs", 12), rand_set.vector("rand", 12))
    with pytest.raises(SteerError, match="embedding output"):
        from_dict({0: vecs[5]}, convention="hidden_states")
    with pytest.raises(SteerError, match="pass model= or n_layers="):
        from_dict({-1: vecs[5]})
    with pytest.raises(SteerError, match="zero"):
        from_dict({3: torch.zeros(model.d_model)})
    with pytest.raises(SteerError, match="dimension 10"):
        from_dict({3: torch.ones(10)}, model=model)
    with pytest.raises(SteerError, match="out of range"):
        from_dict({30: vecs[5]}, model=model)


def test_replayed_dict_equals_a_plain_forward_hook(model, plain_hf, vecs, rand_set):
    """repeng's set_control(v, coeff) and steering-vectors' apply(multiplier=coeff) both add
    coeff x v to the output of block L; steer's replay must give the same logits."""
    coeff = 0.7
    texts = ["The parcel arrived a day late.", "Tell me about the sea."]
    want = {L: coeff * v for L, v in vecs.items()}
    enc = model.tokenize(texts)
    with torch.no_grad(), additive_hooks(plain_hf, want):
        ref = plain_hf(**enc).logits
    for source in (vecs, rand_set):
        got = model.logits(texts, interventions=interventions(source, coeff))
        real = enc["attention_mask"].bool()
        assert torch.allclose(got[real], ref[real], atol=1e-4, rtol=0)
    assert not torch.allclose(model.logits(texts)[real], ref[real], atol=1e-2)   # the edit did something


def test_gguf_round_trip_exact(model, rand_set, tmp_path):
    path = rand_set.to_gguf(tmp_path / "rand.gguf", "rand", 0.2, layers=[5, 12])
    vectors, info = read_gguf(path)
    assert sorted(vectors) == [5, 12]
    for L in (5, 12):
        want = 0.2 * model.residual_norm(L) * rand_set.vector("rand", L)
        assert torch.allclose(vectors[L], want, atol=1e-6, rtol=0)
    assert info["model_hint"] == "llama" and info["layer_count"] == 2
    assert info["emotion"] == "rand" and info["scale"] == "norm" and info["hook_site"] == "block_output"
    assert info["model_fingerprint"] == model.fingerprint
    back = DirectionSet.from_gguf(path, model=model)
    assert back.layers == [5, 12] and back.meta["model_fingerprint"] == model.fingerprint
    assert back.meta["strengths"] == pytest.approx([0.2 * model.residual_norm(L) for L in (5, 12)], rel=1e-6)
    replay = interventions(back)
    direct = [steer.Intervention("add", direction="rand", layers=[5, 12], strength=0.2, directions=rand_set)]
    assert torch.allclose(model.logits(["Hello there"], interventions=replay),
                          model.logits(["Hello there"], interventions=direct), atol=1e-4, rtol=0)
    absolute = rand_set.to_gguf(tmp_path / "abs.gguf", rand_set["rand"], -3.0, layers="all", scale="absolute")
    vectors, _ = read_gguf(absolute)
    assert sorted(vectors) == [5, 12, 20]
    assert torch.allclose(vectors[20], -3.0 * rand_set.vector("rand", 20), atol=1e-6)


def test_gguf_errors(model, rand_set, tmp_path):
    zero = from_dict({0: torch.ones(model.d_model), 4: torch.ones(model.d_model)}, "z", model=model)
    with pytest.raises(SteerError, match="layer 0 cannot be steered"):
        zero.to_gguf(tmp_path / "z.gguf", "z", 0.1, layers=[0, 4])
    assert sorted(read_gguf(zero.to_gguf(tmp_path / "z.gguf", "z", 0.1, layers="all"))[0]) == [4]
    with pytest.raises(SteerError, match="is a 'llama' GGUF, not a control vector"):
        read_gguf(embedded_gguf())
    with pytest.raises(SteerError, match="no control-vector file"):
        read_gguf(tmp_path / "missing.gguf")
    with pytest.raises(SteerError, match="no vector for layer 7"):
        rand_set.to_gguf(tmp_path / "x.gguf", "rand", 0.1, layers=[7])
    bare = DirectionSet(rand_set.vectors, ["rand"], rand_set.layers)
    with pytest.raises(SteerError, match="model_hint"):
        bare.to_gguf(tmp_path / "x.gguf", "rand", 0.1, layers=[5], scale="absolute")
    with pytest.raises(SteerError, match="no recorded residual norm"):
        bare.to_gguf(tmp_path / "x.gguf", "rand", 0.1, layers=[5], model_hint="llama")


def _repeng_style(path, directions, model_hint):
    """A file laid out the way repeng's ControlVector.export_gguf writes one (no steer.* keys)."""
    import gguf

    writer = gguf.GGUFWriter(str(path), "controlvector")
    writer.add_string("controlvector.model_hint", model_hint)
    writer.add_uint32("controlvector.layer_count", len(directions))
    for layer, v in directions.items():
        writer.add_tensor(f"direction.{layer}", v)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def test_repeng_made_files(model, vecs, tmp_path):
    dirs = {L: (v / v.norm()).numpy().astype(np.float32) for L, v in vecs.items()}   # repeng: unit PCA axes
    _repeng_style(tmp_path / "honest.gguf", dirs, "llama")
    ds = DirectionSet.from_gguf(tmp_path / "honest.gguf", model=model)
    assert ds.emotions == ["honest"] and ds.layers == [5, 12, 20] and ds.meta["gguf"]["layer_count"] == 3
    assert ds.meta["strengths"] == pytest.approx([1.0] * 3, rel=1e-6)
    assert "model_fingerprint" not in ds.meta and ds.meta["model_type"] == "llama"
    for L in ds.layers:
        assert torch.allclose(ds.vector("honest", L), torch.from_numpy(dirs[L]), atol=1e-6)
    _repeng_style(tmp_path / "mistral.gguf", dirs, "mistral")
    with pytest.raises(SteerError, match="made for a 'mistral' model"):
        DirectionSet.from_gguf(tmp_path / "mistral.gguf", model=model)
    assert DirectionSet.from_gguf(tmp_path / "mistral.gguf", model=model, force=True).layers == [5, 12, 20]
    _repeng_style(tmp_path / "bad.gguf", {0: dirs[5]}, "llama")
    with pytest.raises(SteerError, match="direction.0 is invalid"):
        DirectionSet.from_gguf(tmp_path / "bad.gguf")


def test_intervention_specs(model, rand_set, tmp_path):
    assert parse_layers("12-14") == [12, 13, 14] and parse_layers(["3", 5]) == [3, 5]
    assert parse_layers("4+9") == [4, 9] and parse_layers("all") == "all"
    assert parse_compact("calm:clamp:12:2.5") == {"emotion": "calm", "op": "clamp", "layers": [12], "value": 2.5}
    assert parse_compact("sad:ablate:all") == {"emotion": "sad", "op": "ablate", "layers": "all"}
    specs = intervention_specs(["rand:add:5+12:0.2:generated", {"emotion": "rand", "layers": "20", "strength": "-0.1"}],
                               emotion="rand", op="subtract", layers=["5", "12"], strength=0.05)
    assert [s["op"] for s in specs] == ["add", "add", "subtract"]
    assert specs[0] == {"emotion": "rand", "op": "add", "layers": [5, 12], "strength": 0.2, "positions": "generated"}
    ivs = build_interventions(specs, rand_set)
    assert ivs[1].layers == (20,) and ivs[1].strength == -0.1 and ivs[2].layers == (5, 12)
    model.logits(["x y"], interventions=ivs)           # they resolve against the set and run
    cfg = tmp_path / "steer.yaml"
    cfg.write_text("interventions:\n  - {emotion: rand, op: add, layers: [12], strength: 0.1}\ndirections: /x\n")
    assert read_config(cfg) == {"interventions": [{"emotion": "rand", "op": "add", "layers": [12],
                                                   "strength": 0.1}], "directions": "/x"}
    cfg.write_text('{"emotion": "rand", "layers": 12, "strength": 0.1, "chat": false}')
    assert read_config(cfg) == {"interventions": [{"emotion": "rand", "layers": 12, "strength": 0.1}], "chat": False}
    for bad, msg in (("calm:add", "emotion:op:layers"), ("calm:add:x:0.1", "cannot read layers"),
                     ("calm:add:3:much", "not a number"), ({"emotion": "calm"}, "names no layers"),
                     ({"layers": 3}, "names no emotion"), ({"emotion": "c", "layers": 1, "dose": 2}, "unknown")):
        with pytest.raises(SteerError, match=msg):
            intervention_specs(bad)
    with pytest.raises(SteerError, match="unknown op"):
        build_interventions(intervention_specs("rand:push:5:0.1"), rand_set)
