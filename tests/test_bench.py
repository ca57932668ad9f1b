"""`steer-bench --quick --json` runs end to end and reports every figure it promises.

Structure only: timings on a shared machine are noise, so no goal is asserted here."""
from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

RATIOS = ("steer_overhead", "monitor_overhead", "extract_ratio", "extract_memory_ratio", "packed_speedup")


def _positive(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) and x > 0


@pytest.mark.slow
def test_quick_bench_json_structure():
    proc = subprocess.run([sys.executable, "-m", "steer.bench", "--quick", "--json"],
                          capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "running on cpu" in proc.stderr               # says where it ran (stdout is the JSON)
    r = json.loads(proc.stdout)
    for key in RATIOS:
        assert _positive(r[key]), (key, r[key])
        assert isinstance(r["goals_met"][key], bool)
        assert key in r["goals"]
    assert set(r["goals_met"]) == set(RATIOS)
    assert r["device"] == "cpu" and r["where"].startswith("cpu")
    assert set(r["versions"]) >= {"torch", "transformers", "nnsight", "steer"}
    assert r["model"]["name"] and _positive(r["model"]["params"])
    for key in ("unsteered", "steered", "monitored", "packed", "one_call_per_condition"):
        assert _positive(r["tokens_per_s"][key]), key
    for key in ("hf_generate", "steered_generate", "monitored_generate", "packed_generate",
                "one_call_per_condition", "extract", "hf_forward"):
        assert _positive(r["seconds"][key]), key
        assert len(r["samples_s"][key]) >= 1
    assert _positive(r["peak_memory_mb"]["extract_1x"]) and _positive(r["peak_memory_mb"]["extract_4x"])
    assert r["peak_memory_mb"]["extract_1x"] > r["peak_memory_mb"]["working_set_1x"]   # the model counts
    assert _positive(r["extract_working_set_ratio"])
    assert r["settings"]["quick"] is True
    load = r["load_average"]["start"]
    assert load is None or len(load) == 3


def test_table_renders_every_key():
    from steer.bench import GOALS, table

    r = {k: 1.0 + 0.011 * (i + 1) for i, k in enumerate(GOALS)}           # a distinct value per key
    r.update({"goals_met": {k: i % 2 == 0 for i, k in enumerate(GOALS)}, "goals": {k: "<= 1" for k in GOALS},
              "where": "cpu: test", "total_seconds": 1.0, "extract_vs_trunk_forward": 1.0,
              "extract_tokens_per_s": 1.0,
              "model": {"name": "m", "params": 1e6, "dtype": "float32"},
              "versions": {"torch": "t", "transformers": "t", "nnsight": "n", "steer": "s"},
              "load_average": {"start": [0, 0, 0], "end": [0, 0, 0]},
              "seconds": dict.fromkeys(["steered_generate", "hf_generate", "monitored_generate", "extract",
                                        "hf_forward"], 1.0),
              "generation": {"prompts": 8, "new_tokens": 32, "monitor_directions": 4, "monitor_layers": [1],
                             "packed_conditions": 8},
              "extraction": {"batch_shape": [4, 4], "layers": 2},
              "peak_memory_mb": {"extract_1x": 1.0, "extract_4x": 1.0, "working_set_1x": 1.0,
                                 "working_set_4x": 1.0},
              "extract_working_set_ratio": 1.0,
              "episodes_per_s": {"packed": 1.0, "one_call_per_condition": 1.0},
              "tokens_per_s": dict.fromkeys(["unsteered", "steered", "monitored", "packed",
                                             "one_call_per_condition"], 1.0)})
    text = table(r)
    rows = {line.split()[0]: line for line in text.splitlines() if line.split() and line.split()[0] in GOALS}
    for i, k in enumerate(GOALS):
        assert f"{1.0 + 0.011 * (i + 1):.3f}" in rows[k]
        assert (" yes " if i % 2 == 0 else " NO ") in rows[k]


def test_random_llama_path_builds_and_steers_on_cpu():
    """The --device cuda model (a random Llama from config) on a tiny shape, on CPU: the same
    construction, wrapping and measured calls, so the GPU path is exercised where no GPU is."""
    import torch

    import steer
    from steer.bench import Settings, _embedded_tokenizer, generation_variants, random_llama

    tok = _embedded_tokenizer()
    shape = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                 intermediate_size=128, max_position_embeddings=256)
    hf = random_llama(tok, "cpu", torch.float32, shape=shape)
    assert hf.config.vocab_size >= len(tok) and hf.config.num_hidden_layers == 2
    m = steer.load_model(hf, tokenizer=tok)
    variants, info = generation_variants(hf, m, tok, Settings(new_tokens=3), "cpu")
    for name in ("hf_generate", "steered_generate", "monitored_generate", "packed_generate"):
        variants[name](3)                     # each asserts it produced exactly 3 new tokens
    assert info["steer_layer"] == 1 and info["packed_conditions"] == 8
