"""steer's `add` against the real llama.cpp (llama-cpp-python, `make install-llamacpp`): the embedded
SmolLM2 GGUF run by llama.cpp with a control vector exported by `DirectionSet.to_gguf` must move
the next-token distribution the way steer's own add does at the same layer and strength.

Tolerances, and why: steer runs float32 weights dequantized from this very Q4_1 file, so the
weights are the same; llama.cpp quantizes activations to 8 bits for every Q4_1 matmul and sums
in another order, which leaves its unsteered logits off by up to 0.9 (of 31) and a KL of 0.004
nats from steer's. Most of that error is common to the steered and unsteered runs, so we compare
the shift (steered - unsteered log-probs over the whole vocabulary): measured correlation 0.996
and norm ratio 0.996 at the exported layer, 0.82 / 0.85 at the neighbouring layers (at strength
0.1 the shift is smaller against the same noise: 0.976 and 1.09). We require
correlation >= 0.97, the norm ratio within 15%, and the exported layer to beat both neighbours by
0.05, which pins the index convention (direction.N = output of block N = steer layer N).
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

import steer
from steer.interop import read_gguf
from steer.interop.llama_cpp import LlamaCpp, ggml_read_control_vector
from steer.loading import embedded_gguf

from .test_extraction import CORPUS, NEUTRAL

LAYER, STRENGTH = 12, 0.5
TEXT = "Describe how your day went. My day was"


@pytest.fixture(scope="module")
def joy(model):
    return steer.extract_directions(model, corpus=CORPUS, neutral=NEUTRAL, layers=[LAYER - 1, LAYER, LAYER + 1],
                                    holdout=0.0, cache=False, progress=False)


@pytest.fixture(scope="module")
def lc():
    return LlamaCpp(embedded_gguf(), n_ctx=128, n_threads=2)


def _logprobs(logits: np.ndarray) -> np.ndarray:
    return torch.log_softmax(torch.as_tensor(logits[-1], dtype=torch.float64), -1).numpy()


def test_exported_vector_moves_llama_cpp_like_steer_add(model, joy, lc, tmp_path):
    path = joy.to_gguf(tmp_path / "joy.gguf", "joy", STRENGTH, layers=[LAYER])
    # llama.cpp's own GGUF reader sees exactly what steer wrote.
    vectors, arch = ggml_read_control_vector(path)
    assert arch == "controlvector" and sorted(vectors) == [LAYER]
    assert np.array_equal(vectors[LAYER], read_gguf(path)[0][LAYER].numpy())

    ids = model.tokenizer(TEXT)["input_ids"]
    lc.clear_control_vector()
    base_lc = _logprobs(lc.logits(ids))
    lc.set_control_vector(path)
    steered_lc = _logprobs(lc.logits(ids))
    lc.clear_control_vector()
    assert np.array_equal(_logprobs(lc.logits(ids)), base_lc)        # cleared = unsteered again

    base = _logprobs(model.logits([TEXT]).numpy()[0])
    p = np.exp(base)
    assert float((p * (base - base_lc)).sum()) < 0.02                  # the quantization gap, unsteered
    shift_lc = steered_lc - base_lc
    corr = {}
    for L in (LAYER - 1, LAYER, LAYER + 1):
        iv = steer.Intervention("add", direction="joy", layers=[L], strength=STRENGTH, directions=joy)
        shift = _logprobs(model.logits([TEXT], interventions=[iv]).numpy()[0]) - base
        corr[L] = float(np.corrcoef(shift_lc, shift)[0, 1])
        if L == LAYER:
            ratio = float(np.linalg.norm(shift_lc) / np.linalg.norm(shift))
            up, down = np.argsort(-shift)[:20], np.argsort(shift)[:20]
            same_way = (shift_lc[up] > 0).mean(), (shift_lc[down] < 0).mean()
    assert corr[LAYER] >= 0.97, corr
    assert 0.85 <= ratio <= 1.15, ratio
    assert corr[LAYER] >= max(corr[LAYER - 1], corr[LAYER + 1]) + 0.05, corr
    assert same_way == (1.0, 1.0)      # steer's 20 most raised / lowered tokens move the same way there


def test_scaled_vectors_equal_vectors_written_scaled(model, joy, lc, tmp_path):
    """`--control-vector-scaled file:-2` is exactly a file written at -2 x the strength."""
    ids = model.tokenizer(TEXT)["input_ids"]
    plus = joy.to_gguf(tmp_path / "plus.gguf", "joy", STRENGTH / 2, layers=[LAYER])
    minus = joy.to_gguf(tmp_path / "minus.gguf", "joy", -STRENGTH, layers=[LAYER])
    lc.set_control_vector(plus, scale=-2.0)
    scaled = lc.logits(ids)
    lc.set_control_vector(minus)
    written = lc.logits(ids)
    lc.clear_control_vector()
    assert np.array_equal(scaled, written)
    lc.set_control_vector(minus, layer_start=LAYER + 1)     # outside llama.cpp's layer range: no edit
    outside = lc.logits(ids)
    lc.clear_control_vector()
    assert np.array_equal(outside, lc.logits(ids))
