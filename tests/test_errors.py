"""Bad input gives a one-line SteerError naming the bad value, before the model runs."""
from __future__ import annotations

import pytest
import torch

from steer import Intervention
from steer.errors import SteerError

from .helpers import unit

U = unit(576, 0)


@pytest.fixture
def calls(model):
    count = []
    handle = model.hf.register_forward_pre_hook(lambda *a: count.append(1))
    yield count
    handle.remove()


def one_line(err, *needles):
    msg = str(err.value)
    assert "\n" not in msg
    for needle in needles:
        assert needle in msg, (needle, msg)


@pytest.mark.parametrize("kwargs,needles", [
    (dict(op="multiply", direction=U, layers=[3], strength=1.0), ["'multiply'"]),
    (dict(op="add", direction=U, layers=[3]), ["strength"]),
    (dict(op="clamp", direction=U, layers=[3]), ["value"]),
    (dict(op="ablate", direction=U, layers=[3], strength=0.1), ["ablate"]),
    (dict(op="add", direction=torch.zeros(576), layers=[3], strength=1.0), ["zero"]),
    (dict(op="add", direction=torch.full((576,), float("nan")), layers=[3], strength=1.0), ["NaN"]),
    (dict(op="add", direction=U, layers=[3], strength=1.0, positions="middle"), ["'middle'"]),
    (dict(op="add", direction=U, layers="some", strength=1.0), ["'some'"]),
    (dict(op="add", direction=U, layers=[-1], strength=1.0), ["-1"]),
    (dict(op="add", direction=U, layers=[3], strength=float("inf")), ["inf"]),
    (dict(op="add", direction=U, layers=[3], strength=1.0, scale="percent"), ["'percent'"]),
])
def test_bad_intervention(kwargs, needles):
    op = kwargs.pop("op")
    with pytest.raises(SteerError) as err:
        Intervention(op, **kwargs)
    one_line(err, *needles)


def test_layer_out_of_range_before_any_work(model, calls):
    iv = Intervention("add", direction=U, layers=[30], strength=0.1)
    with pytest.raises(SteerError) as err:
        model.generate(["hi"], interventions=[iv], max_new_tokens=4)
    one_line(err, "layer 30", "0..29")
    assert not calls


def test_wrong_dimension_before_any_work(model, calls):
    iv = Intervention("add", direction=torch.randn(100), layers=[3], strength=0.1)
    with pytest.raises(SteerError) as err:
        model.logits(["hi"], interventions=[iv])
    one_line(err, "100", "576")
    with pytest.raises(SteerError) as err:
        model.generate(["hi"], monitor={"bad": torch.randn(64)}, monitor_layers=[3])
    one_line(err, "'bad'", "64")
    assert not calls


def test_other_call_errors(model, calls):
    iv = Intervention("add", direction=U, layers=[3], strength=0.1)
    with pytest.raises(SteerError) as err:
        model.logits(["a", "b"], interventions=[[iv], [iv], [iv]])
    one_line(err, "3 per-row", "batch of 2")
    with pytest.raises(SteerError) as err:
        model.generate(["hi"], max_new_tokens=0)
    one_line(err, "max_new_tokens=0")
    with pytest.raises(SteerError) as err:
        model.logits(["hi"], interventions=[Intervention("add", direction="desperate", layers=[3], strength=0.1)])
    one_line(err, "'desperate'", "directions=")
    with pytest.raises(SteerError) as err:
        model.logits("just a string")
    one_line(err, "list")
    with pytest.raises(SteerError) as err:
        model.residual_norm(31)
    one_line(err, "31")
    bad_mask = torch.ones(3, 2, dtype=torch.bool)
    with pytest.raises(SteerError) as err:
        model.logits(["hi"], interventions=[Intervention("add", direction=U, layers=[3], strength=0.1, positions=bad_mask)])
    one_line(err, "(3, 2)")
    assert not calls
