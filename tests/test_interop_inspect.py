"""The Inspect AI provider: a real `inspect eval steer/valence --model steer/smollm2-135m` run
(entry point, -M args, batched generation, the steered model in an Inspect task), checked
against steer's own generate, plus the provider's argument errors."""
from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

import steer
from steer.errors import SteerError

from .test_extraction import CORPUS, NEUTRAL

INSPECT = Path(sys.executable).with_name("inspect")


@pytest.fixture(scope="module")
def joy_path(model, tmp_path_factory):
    ds = steer.extract_directions(model, corpus=CORPUS, neutral=NEUTRAL, layers=[15], holdout=0.0,
                                  cache=False, progress=False)
    return ds.save(tmp_path_factory.mktemp("dirs") / "joy")


@pytest.mark.slow
def test_inspect_eval_runs_the_steered_model_in_batches(model, joy_path, tmp_path):
    from inspect_ai.log import read_eval_log

    from steer.interop.inspect_tasks import PROMPTS, valence_of

    cmd = [str(INSPECT), "eval", "steer/valence", "--model", "steer/smollm2-135m",
           "-M", "intervention=joy:add:15:0.3", "-M", f"directions={joy_path}",
           "-T", "samples=4", "-T", "max_tokens=12", "--log-dir", str(tmp_path / "logs"), "--display", "none"]
    env = {**os.environ, "INSPECT_LOG_FORMAT": "eval"}
    done = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    (log_file,) = (tmp_path / "logs").glob("*.eval")
    log = read_eval_log(str(log_file))
    assert log.status == "success" and log.eval.model == "steer/smollm2-135m"
    assert log.eval.model_args["intervention"] == "joy:add:15:0.3"
    samples = sorted(log.samples, key=lambda s: s.id)
    assert len(samples) == 4
    # Inspect started all four samples together; the provider generated them as one packed batch.
    assert {s.output.metadata["batch_rows"] for s in samples} == {4}
    described = samples[0].output.metadata["steer_interventions"]
    assert described == [{"op": "add", "direction": "joy", "layers": [15], "strength": 0.3, "value": None,
                          "positions": "all", "scale": "norm"}]
    # The same edit through steer directly gives the same greedy tokens the eval logged.
    ds = steer.DirectionSet.load(joy_path, model=model)
    iv = steer.Intervention("add", direction="joy", layers=[15], strength=0.3, directions=ds)
    direct = model.generate([[{"role": "user", "content": p}] for p in PROMPTS[:4]], interventions=[iv],
                            chat=True, max_new_tokens=12)
    assert [s.output.completion for s in samples] == direct.texts
    assert [s.scores["valence_scorer"].value for s in samples] == [valence_of(t) for t in direct.texts]
    plain = model.generate([[{"role": "user", "content": p}] for p in PROMPTS[:4]], chat=True, max_new_tokens=12)
    assert plain.texts != direct.texts                 # the steering reached the eval's model


def test_provider_batches_concurrent_requests_and_checks_its_args(model, joy_path, tokenizer):
    from inspect_ai.model import ChatMessageUser, GenerateConfig

    from steer.interop.inspect_provider import SteerAPI

    api = SteerAPI("smollm2-135m", emotion="joy", layers="15", strength="0.2", directions=str(joy_path),
                   batch_size=3)
    assert api.max_connections() == 3 and len(api.interventions) == 1

    async def ask() -> list:
        cfg = GenerateConfig(max_tokens=4)
        calls = [api.generate([ChatMessageUser(content=f"Count to {n}.")], [], "none", cfg) for n in range(5)]
        return await asyncio.gather(*calls)

    outs = asyncio.run(ask())
    assert sorted(o.metadata["batch_rows"] for o in outs) == [2, 2, 3, 3, 3]    # 5 requests, batches of <= 3
    assert all(o.usage.output_tokens <= 4 for o in outs)
    with pytest.raises(SteerError, match="unknown steer model arg 'temprature'"):
        SteerAPI("smollm2-135m", temprature=0.5)
    with pytest.raises(SteerError, match="cannot read layers"):
        SteerAPI("smollm2-135m", intervention="joy:add:late:0.1", directions=str(joy_path))
    from .helpers import tiny_model

    tiny = steer.load_model(tiny_model("llama", len(tokenizer), seed=1), tokenizer=tokenizer)
    other = steer.extract_directions(tiny, corpus=CORPUS, neutral=NEUTRAL, layers=[1], holdout=0.0,
                                     cache=False, progress=False)
    path = other.save(Path(joy_path).parent / "tiny")
    with pytest.raises(SteerError, match="dimension 64"):
        SteerAPI("smollm2-135m", intervention="joy:add:1:0.1", directions=str(path))
