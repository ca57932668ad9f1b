"""Loading: the embedded model, .gguf paths, local directories, offline errors, the cache."""
from __future__ import annotations

import pytest
import torch

import steer
from steer.errors import SteerError
from steer.loading import embedded_gguf

from .helpers import tiny_model


def test_embedded_model(model):
    assert (model.n_layers, model.d_model) == (30, 576)
    assert model.name == "smollm2-135m"
    assert model.tokenizer.padding_side == "left"
    assert len(model.fingerprint) == 16
    norms = [model.residual_norm(L) for L in range(model.n_layers)]
    assert all(n > 0 for n in norms)


def test_gguf_path_is_the_same_model(model):
    again = steer.load_model(str(embedded_gguf()))
    assert again.fingerprint == model.fingerprint
    assert steer.load_model("smollm2-135m").fingerprint == model.fingerprint


def test_local_directory(tmp_path, tokenizer):
    hf = tiny_model("qwen2", len(tokenizer))
    hf.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    m = steer.load_model(str(tmp_path))
    assert (m.n_layers, m.d_model) == (4, 64)
    enc = m.tokenize(["a b c"])
    with torch.no_grad():
        want = hf(**enc).logits
    assert torch.allclose(m.logits(["a b c"]), want, atol=1e-5)


def test_offline_missing_model_is_one_clear_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(SteerError) as err:
        steer.load_model("nobody-here/no-such-model-xyz")
    msg = str(err.value)
    assert "nobody-here/no-such-model-xyz" in msg and "\n" not in msg
    assert "HF_HUB_OFFLINE" in msg


@pytest.mark.parametrize("spec", ["./no/such/dir", "/tmp/none-here.gguf", 42])
def test_bad_specs(spec):
    with pytest.raises(SteerError) as err:
        steer.load_model(spec)
    assert str(spec) in str(err.value) and "\n" not in str(err.value)


def test_norm_cache_location_is_overridable(monkeypatch, tmp_path, tokenizer):
    monkeypatch.setenv("STEER_CACHE_DIR", str(tmp_path))
    m = steer.load_model(tiny_model("llama", len(tokenizer)), tokenizer=tokenizer)
    norm = m.residual_norm(2)
    files = list((tmp_path / "norms").glob("*.json"))
    assert len(files) == 1 and m.fingerprint in files[0].name
    m._norms = None
    assert m.residual_norm(2) == norm            # read back from disk


def test_wrapping_a_model_needs_its_tokenizer(tokenizer):
    with pytest.raises(SteerError, match="tokenizer"):
        steer.load_model(tiny_model("llama", len(tokenizer)))
