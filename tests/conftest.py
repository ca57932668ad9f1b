"""Session fixtures: the embedded model (cached dequantized copy), a plain HF copy for
reference hooks, and the embedded tokenizer for tiny random models."""
from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="session")
def model():
    import steer

    return steer.load_model()


@pytest.fixture(scope="session")
def plain_hf(model):
    """A second, never-wrapped copy of the embedded model for the hook reference."""
    from transformers import AutoModelForCausalLM

    from steer.loading import dequantized_dir, embedded_gguf

    return AutoModelForCausalLM.from_pretrained(dequantized_dir(embedded_gguf()), dtype=torch.float32).eval()


@pytest.fixture(scope="session")
def tokenizer(model):
    from transformers import AutoTokenizer

    from steer.loading import dequantized_dir, embedded_gguf

    return AutoTokenizer.from_pretrained(dequantized_dir(embedded_gguf()))
