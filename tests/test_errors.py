"""Bad input gives a one-line SteerError naming the bad value, before the model runs; `steer-run`
prints that line (`steer-run: error: ...`) and exits 2, without a traceback, for every case."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

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


# ---- the Python API beyond interventions -----------------------------------------------------
def test_stats_refuse_impossible_counts():
    from steer.stats import auroc, fisher_exact, rate, wilson

    for call, needle in ((lambda: wilson(11, 10), "k=11"), (lambda: rate(1.5, 3), "1.5"),
                         (lambda: fisher_exact(1, 2, -1, 4), "k=-1"),
                         (lambda: auroc([0.1, 0.2], [True]), "(1,)")):
        with pytest.raises(SteerError) as err:
            call()
        one_line(err, needle)


def test_store_and_fluency_inputs(tmp_path):
    from steer.errors import DataError
    from steer.runs.fluency import response_perplexity
    from steer.runs.store import ResultsStore

    (tmp_path / "afile").write_text("x")
    with pytest.raises(DataError) as err:
        ResultsStore(tmp_path / "afile")
    one_line(err, "afile", "not a folder")
    with pytest.raises(SteerError) as err:
        ResultsStore(tmp_path / "s").append([{"label": "solved"}])
    one_line(err, "episode_key")
    with pytest.raises(SteerError) as err:
        response_perplexity(None, ["a", "b"], ["only one"])
    one_line(err, "2 prompts", "1 responses")


def test_direction_maps_and_saved_sets(tmp_path):
    from steer import DirectionSet

    with pytest.raises(SteerError) as err:
        Intervention("add", direction={"12": U}, layers=[12], strength=0.1)
    one_line(err, "'12'")
    (tmp_path / "ds.safetensors").write_bytes(b"not a safetensors file")
    (tmp_path / "ds.json").write_text('{"emotions": ["calm"], "layers": [3], "meta": {}}')
    with pytest.raises(SteerError) as err:
        DirectionSet.load(tmp_path / "ds")
    one_line(err, "ds")
    with pytest.raises(SteerError) as err:
        DirectionSet.load(tmp_path / "missing")
    one_line(err, "missing")


def test_error_classes_are_exported():
    import steer
    from steer.evals import ScenarioValidationError, TaskValidationError

    for cls in (steer.ConfigError, steer.DataError, TaskValidationError, ScenarioValidationError):
        assert issubclass(cls, steer.SteerError) and issubclass(cls, ValueError)


# ---- steer-run: one line on stderr, exit 2, no traceback -----------------------------------
# Most cases call the real entry point in-process (`steer.runs.cli.main`, the same code a shell
# runs, ~0.1 s each); the ones at the bottom spawn `steer-run` itself.
def cli(tmp_path, *args: str) -> tuple[int, str, str]:
    """Run `steer-run ARGS` in this process; (exit code, stdout, stderr)."""
    import contextlib
    import io
    import logging
    import sys

    from hydra.core.global_hydra import GlobalHydra

    from steer.runs import cli as entry

    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    out, err = io.StringIO(), io.StringIO()
    argv = sys.argv
    sys.argv = ["steer-run", *args, f"hydra.run.dir={tmp_path / 'run'}", f"hydra.sweep.dir={tmp_path / 'multi'}",
                "progress=false"]
    code: Any = 0
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            entry.main()
    except SystemExit as exc:
        code = exc.code
    finally:
        sys.argv = argv
        for h in root.handlers[:]:                   # Hydra configured logging for the job: undo it
            if h not in handlers:
                root.removeHandler(h)
                h.close()
        root.setLevel(level)
        GlobalHydra.instance().clear()
    return code, out.getvalue(), err.getvalue()


def assert_one_line(code: Any, stdout: str, stderr: str, *needles: str) -> str:
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert code == 2, (code, stderr[-2000:])
    assert len(lines) == 1, stderr[-2000:]
    assert "Traceback" not in stderr and "Traceback" not in stdout
    line = lines[0]
    assert line.startswith("steer-run: error: "), line
    for needle in needles:
        assert needle in line, (needle, line)
    return line


def write(path, text: str):
    path.write_text(text)
    return path


CASES = {
    # Hydra's own errors, shortened to one line
    "unknown key": (["eval.temprature=0.5"], ["'eval.temprature'", "did you mean 'eval.temperature'"]),
    "unknown key added with +": (["+model.quantize=4bit"], ["'model.quantize'"]),
    "wrong type": (["eval.batch_size=many"], ["eval.batch_size", "'many'"]),
    "wrong type in a list": (["sweep.strengths=[0.1,big]"], ["sweep.strengths", "'big'"]),
    "bad override syntax": (["intervention.layers=[14"], ["'intervention.layers=[14'"]),
    "unknown config group option": (["model=gpt5"], ["model/gpt5", "smollm2"]),
    "unknown experiment": (["experiment=quickstrat"], ["experiment/quickstrat", "quickstart"]),
    "unresolvable interpolation": (["model.name=${nope}"], ["model.name", "'nope'"]),
    "unknown task": (["task=train"], ["'train'", "sweep"]),
    # emotions
    "unknown intervention emotion": (["intervention.emotion=desprate"], ["intervention.emotion", "'desprate'"]),
    "emotion not extracted": (["intervention.emotion=happy", "directions.emotions=[calm,desperate]"],
                              ["intervention.emotion", "'happy'", "directions.emotions"]),
    "unknown extraction emotion": (["task=extract", "directions.emotions=[calm,hapy]"], ["'hapy'"]),
    "unknown sweep emotion": (["task=sweep", "sweep.emotions=[desperate,clam]"], ["sweep.emotions", "'clam'"]),
    "unknown monitored emotion": (["eval.monitor=[desperate,clam]"], ["eval.monitor", "'clam'"]),
    # models
    "missing model directory": (["model.spec=./no/such/model"], ["model.spec", "'./no/such/model'"]),
    "missing gguf": (["model.spec=/no/such/model.gguf"], ["model.spec", "'/no/such/model.gguf'"]),
    "bad device": (["model.device=gpu"], ["model.device", "'gpu'"]),
    # interventions and sweeps
    "bad op": (["intervention.emotion=desperate", "intervention.op=multiply"], ["'multiply'"]),
    "infinite strength": (["intervention.emotion=desperate", "intervention.strength=inf"], ["strength=inf"]),
    "bad positions": (["intervention.emotion=desperate", "intervention.positions=middle"], ["'middle'"]),
    "bad scale": (["intervention.emotion=desperate", "intervention.scale=percent"], ["'percent'"]),
    "layers not a list": (["intervention.emotion=desperate", "intervention.layers=some"],
                          ["intervention.layers", "'some'"]),
    "negative layer": (["intervention.emotion=desperate", "intervention.layers=[-3]"], ["-3"]),
    "layer not extracted": (["intervention.emotion=desperate", "intervention.layers=[12]", "directions.layers=[14]"],
                            ["intervention.layers", "layer 12", "[14]"]),
    "bad sweep op": (["task=sweep", "sweep.ops=[add,scale]"], ["sweep.ops", "'scale'"]),
    "nan sweep strength": (["task=sweep", "sweep.strengths=[0.1,nan]"], ["sweep.strengths", "nan"]),
    "bad shard": (["task=sweep", "sweep.n_shards=2", "sweep.shard=2"], ["sweep.shard=2"]),
    # evals
    "unknown suite": (["eval.suites=[coding,chess]"], ["'chess'"]),
    "unknown coding task": (["eval.coding.tasks=[no_such_task]"], ["'no_such_task'"]),
    "unknown scenario": (["eval.agentic.scenarios=[no_such_scenario]"], ["no_such_scenario"]),
    "zero attempts": (["eval.coding.attempts=0"], ["eval.coding.attempts=0"]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_steer_run_bad_setting(case, tmp_path):
    args, needles = CASES[case]
    assert_one_line(*cli(tmp_path, *args), *needles)


def test_steer_run_missing_files(tmp_path):
    missing = str(tmp_path / "missing")
    for args, needles in (
            ([f"directions.path={missing}/core"], ["directions.path", f"'{missing}/core'"]),
            ([f"directions.corpus={missing}.jsonl"], ["directions.corpus", "missing.jsonl"]),
            ([f"eval.coding.path={missing}.yaml"], ["eval.coding.path", "missing.yaml"]),
            ([f"eval.agentic.path={missing}.yaml"], ["eval.agentic.path", "missing.yaml"]),
            (["task=report", f"report.records={missing}"], ["report.records", "no records at", f"'{missing}'"])):
        assert_one_line(*cli(tmp_path, *args), *needles)


def test_steer_run_report_without_records_in_the_store(tmp_path):
    assert_one_line(*cli(tmp_path, "task=report", f"store.dir={tmp_path / 'empty'}"), "no records at", "empty")


def test_steer_run_malformed_directions_file(tmp_path):
    write(tmp_path / "core.safetensors", "")
    write(tmp_path / "core.json", '{"emotions": ["calm"')
    assert_one_line(*cli(tmp_path, f"directions.path={tmp_path / 'core'}"), "directions.path", "core.json")


def test_steer_run_malformed_corpus(tmp_path):
    bad = write(tmp_path / "my_corpus.jsonl", '{"emotion": "calm", "text": "The lake was still."}\n{"emotion": \n')
    assert_one_line(*cli(tmp_path, "task=extract", f"directions.corpus={bad}"), "directions.corpus",
                    "my_corpus.jsonl:2")


def test_steer_run_malformed_task_jsonl(tmp_path):
    good = {"id": "add1", "prompt": "Return a + b.", "entry_point": "add",
            "tests": "from solution import add\n\n\ndef test_add():\n    assert add(1, 2) == 4\n"}
    bad = write(tmp_path / "my_tasks.jsonl", json.dumps(good) + '\n{"prompt": "half a line"\n')
    assert_one_line(*cli(tmp_path, f"eval.coding.path={bad}"), "eval.coding.path", "my_tasks.jsonl:2")


def test_steer_run_malformed_task_yaml(tmp_path):
    bad = write(tmp_path / "my_tasks.yaml", "- id: lonely\n  kind: possible\n  prompt: Return 1.\n")
    assert_one_line(*cli(tmp_path, f"eval.coding.path={bad}"), "eval.coding.path", "my_tasks.yaml")


def test_steer_run_malformed_scenario_file(tmp_path):
    bad = write(tmp_path / "my_scenarios.yaml", "- id: odd\n  kind: blackmail\n  colour: green\n")
    assert_one_line(*cli(tmp_path, f"eval.agentic.path={bad}"), "eval.agentic.path", "my_scenarios.yaml")
    broken = write(tmp_path / "broken.yaml", "- id: odd\n  kind: [\n")
    assert_one_line(*cli(tmp_path, f"eval.agentic.path={broken}"), "eval.agentic.path", "broken.yaml")


def test_steer_run_multirun_names_the_failing_job(tmp_path):
    line = assert_one_line(*cli(tmp_path, "-m", "intervention.emotion=desprate,calmm"), "'desprate'")
    assert "job 0" in line and "intervention.emotion=desprate" in line
    assert_one_line(*cli(tmp_path, "-m", "eval.batch_size=many,2"), "eval.batch_size", "'many'")


def test_steer_run_unknown_model_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert_one_line(*cli(tmp_path, "model.spec=nobody/no-such-model"), "'nobody/no-such-model'", "HF_HUB_OFFLINE")


def test_steer_run_layer_out_of_range_stops_after_the_load(tmp_path):
    line = assert_one_line(*cli(tmp_path, "intervention.emotion=desperate", "intervention.layers=[99]"),
                           "intervention.layers", "layer 99", "0..29")
    assert "smollm2" in line
    assert_one_line(*cli(tmp_path, "task=monitor", "monitor.layers=[30]"), "monitor.layers", "layer 30")
    assert not (tmp_path / "run" / "records").exists()             # nothing ran


def test_steer_run_good_config_passes_the_checks(tmp_path):
    from hydra import compose, initialize_config_dir

    from steer.runs.checks import check_config
    from steer.runs.cli import CONF_DIR

    for overrides in ([], ["experiment=quickstart"], ["task=sweep", "experiment=blackmail"],
                      ["intervention.emotion=desperate", "intervention.op=ablate"], ["task=monitor"],
                      ["model.layer=null", "intervention.emotion=desperate"],     # half depth, set after the load
                      ["model.layer=null", "task=sweep", "directions.layers=all"]):
        with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
            check_config(compose(config_name="config", overrides=overrides))


# A real `steer-run` process: exit status, stderr and start-up as a user sees them.
def steer_run(tmp_path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop("HYDRA_FULL_ERROR", None)
    return subprocess.run([sys.executable, "-m", "steer.runs.cli", *args, f"hydra.run.dir={tmp_path / 'run'}",
                           f"hydra.sweep.dir={tmp_path / 'multi'}", "progress=false"],
                          capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)


@pytest.mark.parametrize("args,needles", [
    (["eval.nonsense=1"], ["'eval.nonsense'"]),                                  # Hydra's, before any job
    (["-m", "intervention.emotion=desprate,calmm"], ["job 0", "'desprate'"]),      # in a job of a multirun
], ids=["hydra", "multirun job"])
def test_steer_run_process(tmp_path, args, needles):
    res = steer_run(tmp_path, *args)
    assert_one_line(res.returncode, res.stdout, res.stderr, *needles)
