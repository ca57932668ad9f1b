"""Hydra configs compose (models, launchers, experiments), sweep cells carry their controls,
the store is append-only and resumable, and `steer-run` works end to end: a sweep, a report
rebuilt from records alone, a SIGKILLed run resumed, and a 2-worker joblib multirun."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from steer.errors import SteerError
from steer.runs.cli import CONF_DIR
from steer.runs.grid import build_cells, shard
from steer.runs.schema import register
from steer.runs.store import ResultsStore

register()

TINY = ["task=sweep", "directions.emotions=[desperate,calm]", "directions.layers=[14]",
        "sweep.emotions=[desperate]", "sweep.layers=[14]", "sweep.strengths=[0.1]",
        "sweep.controls.random_seeds=1", "sweep.controls.random_strengths=extremes", "sweep.chunk_cells=1",
        "eval.coding.tasks=[is_even]", "eval.coding.attempts=1", "eval.coding.max_new_tokens=24",
        "eval.agentic.scenarios=[blackmail_replacement_conflict]", "eval.agentic.max_new_tokens=24",
        "eval.monitor_layers=[14]", "eval.batch_size=8", "progress=false"]
N_CELLS, N_EPISODES = 5, 5 * (2 + 1)    # baseline, desperate +-0.1, random#0 +-0.1; 2 tasks + 1 scenario


def cfg_of(*overrides: str, hydra: bool = False):
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides), return_hydra_config=hydra)


def steer_run(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "HYDRA_FULL_ERROR": "1"}
    return subprocess.run([sys.executable, "-m", "steer.runs.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env=env)


# ---- configs -------------------------------------------------------------------------------
@pytest.mark.parametrize("model", ["smollm2", "qwen2_5_7b", "llama3_1_8b", "gemma2_2b", "mistral_7b", "qwen2_5_1_5b"])
def test_model_configs_compose(model):
    cfg = cfg_of(f"model={model}")
    assert cfg.model.name and cfg.model.chat is True
    assert (cfg.model.spec is None) == (model == "smollm2")


@pytest.mark.parametrize("launcher,target", [
    ("joblib2", "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"),
    ("slurm", "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"),
    ("ray", "hydra_plugins.hydra_ray_launcher.ray_launcher.RayLauncher")])
def test_launcher_configs_compose(launcher, target):
    cfg = cfg_of(f"hydra/launcher={launcher}", hydra=True)
    assert cfg.hydra.launcher._target_ == target
    if launcher == "slurm":
        assert cfg.hydra.launcher.gpus_per_node == 1 and cfg.hydra.launcher.timeout_min > 0
    if launcher == "joblib2":
        assert cfg.hydra.launcher.n_jobs == 2


@pytest.mark.parametrize("experiment", sorted(p.stem for p in (Path(CONF_DIR) / "experiment").glob("*.yaml")))
def test_experiments_compose_and_build_cells(experiment):
    cfg = cfg_of(f"experiment={experiment}")
    cells = build_cells(cfg.sweep)
    assert cells and cells[0].label == "baseline"
    assert set(cfg.sweep.emotions) <= set(cfg.directions.emotions) or not cfg.directions.emotions


def test_typed_schema_rejects_bad_values():
    with pytest.raises(Exception, match="eval.batch_size|batch_size"):
        cfg_of("eval.batch_size=many")
    with pytest.raises(Exception, match="nonsense"):
        cfg_of("eval.nonsense=1")


def test_the_documented_eval_command_composes():
    cfg = cfg_of("task=eval", "model=qwen2_5_7b", "intervention.emotion=desperate", "intervention.layers=[14]",
                 "intervention.strength=0.05")
    assert cfg.model.spec == "Qwen/Qwen2.5-7B-Instruct" and cfg.intervention.strength == 0.05


# ---- cells and controls --------------------------------------------------------------------
def test_cells_get_every_control():
    cfg = cfg_of("sweep.emotions=[desperate,calm]", "sweep.layers=[10,[12,14],all]", "sweep.strengths=[0.05,0.1]",
                 "sweep.controls.random_seeds=3", "+sweep.prompting={calm: 'Stay calm.'}")
    cells = build_cells(cfg.sweep)
    labels = [c.label for c in cells]
    assert len(labels) == len(set(labels))
    assert labels[0] == "baseline" and cells[0].control == "zero"
    emo = [c for c in cells if c.kind == "emotion"]
    assert len(emo) == 2 * 3 * 4                                  # 2 emotions x 3 layer sets x (+-0.05, +-0.1)
    assert {c.strength for c in emo} == {-0.1, -0.05, 0.05, 0.1}
    assert all(c.control == "sign_flip" for c in emo if c.strength < 0)
    rnd = [c for c in cells if c.kind == "random"]
    assert len(rnd) == 3 * 3 * 4 and {c.seed for c in rnd} == {0, 1, 2}
    assert [c.label for c in cells if c.kind == "prompting"] == ["prompt:calm"]
    assert ("L12-14" in " ".join(labels)) and any("Lall" in x for x in labels)


def test_random_controls_are_norm_matched_unit_directions():
    from steer.runs.grid import Cell

    cell = Cell("random#1 add L3-5 +0.1", "random", "random#1", "add", (3, 5), 0.1, seed=1)
    cond = cell.condition(None, d_model=32, n_layers=8)
    iv = cond.interventions[0]
    assert iv.strength == 0.1 and iv.scale == "norm"
    v3, v5 = iv.vector(3, 32), iv.vector(5, 32)
    assert abs(float(v3.norm()) - 1) < 1e-6 and float(v3 @ v5) < 0.9
    again = Cell("random#1 add L3-5 +0.1", "random", "random#1", "add", (3, 5), 0.1, seed=1).condition(None, 32, 8)
    assert (again.interventions[0].vector(3, 32) == v3).all()


def test_shards_partition_the_cells():
    cells = build_cells(cfg_of("sweep.strengths=[0.05,0.1]").sweep)
    parts = [shard(cells, {"m": 1}, 3, k) for k in range(3)]
    assert sorted(c.label for p in parts for c in p) == sorted(c.label for c in cells)
    with pytest.raises(SteerError):
        shard(cells, {}, 2, 2)


# ---- the store -----------------------------------------------------------------------------
def test_store_is_append_only_and_survives_a_torn_line(tmp_path):
    s = ResultsStore(tmp_path, "a")
    assert s.append([{"episode_key": "k1", "x": 1}, {"episode_key": "k2"}, {"episode_key": "k1"}]) == 2
    assert s.append([{"episode_key": "k2"}]) == 0
    with open(s.path, "a") as f:
        f.write('{"episode_key": "k3", "x": ')      # a kill in the middle of a write
    assert ResultsStore(tmp_path, "b").keys() == {"k1", "k2"}
    assert ResultsStore(tmp_path, "a").append([{"episode_key": "k3"}]) == 1
    lines = s.path.read_text().splitlines()
    assert [json.loads(x)["episode_key"] for x in lines if x.endswith("}") and x.count("{") == 1] == ["k1", "k2", "k3"]
    with pytest.raises(ValueError):
        s.append([{"x": 1}])


# ---- end to end ----------------------------------------------------------------------------
def _records(path: Path) -> list[dict]:
    out = []
    for f in sorted(path.glob("records-*.jsonl")):
        for line in f.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                pass
    return out


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep")
    res = steer_run(*TINY, f"hydra.run.dir={out}")
    assert res.returncode == 0, res.stderr[-3000:]
    return out, res


def test_sweep_end_to_end(tiny_run):
    out, res = tiny_run
    recs = _records(out / "records")
    assert len(recs) == N_EPISODES and len({r["episode_key"] for r in recs}) == N_EPISODES
    assert {r["cell"]["label"] for r in recs} == {"baseline", "desperate add L14 +0.1", "desperate add L14 -0.1",
                                                 "random#0 add L14 +0.1", "random#0 add L14 -0.1"}
    for r in recs:
        assert r["suite"] in ("coding", "agentic") and r["label"]
        if r["suite"] == "coding":
            assert r["attempts"][0]["projections"]["desperate"]["14"]["prompt_last"] is not None
        else:
            assert r["perplexity"] is None or r["perplexity"] > 0
    report = out / "report" / "report.md"
    text = report.read_text()
    assert "Impossible coding tasks" in text and "Agentic scenarios" in text and "capability" in text
    summary = json.loads((out / "report" / "summary.json").read_text())
    n_attempts = sum(len(r["attempts"]) for r in recs if r["suite"] == "coding")
    assert sum(summary["attempt_labels"].values()) == n_attempts and f"Attempts: {n_attempts} (" in text
    assert summary["agentic_counts"]["replies"] == sum(r["suite"] == "agentic" for r in recs)
    assert set(summary["agentic_readings"]) == {r["cell"]["label"] for r in recs if r["suite"] == "agentic"}
    assert (out / "report" / "token_heatmaps.html").exists()
    assert str(report.resolve()) in res.stdout


def test_report_rebuilds_from_records_alone(tiny_run, tmp_path):
    out, _ = tiny_run
    res = steer_run("task=report", f"report.records={out / 'records'}", f"report.out={tmp_path}",
                    f"hydra.run.dir={tmp_path / 'run'}")
    assert res.returncode == 0, res.stderr[-2000:]
    assert (tmp_path / "report.md").read_text() == (out / "report" / "report.md").read_text()
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["n_records"] == N_EPISODES


def test_killed_sweep_resumes_without_duplicates(tiny_run, tmp_path):
    out, _ = tiny_run
    want = {r["episode_key"] for r in _records(out / "records")}
    env = {**os.environ, "HYDRA_FULL_ERROR": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "steer.runs.cli", *TINY, f"hydra.run.dir={tmp_path}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, start_new_session=True)
    records = tmp_path / "records"
    deadline = time.time() + 500
    while time.time() < deadline and len(_records(records)) < 3 and proc.poll() is None:
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)                    # midway: some chunks written, most not
    proc.wait()
    partial = {r["episode_key"] for r in _records(records)}
    assert 0 < len(partial) < N_EPISODES
    res = steer_run(*TINY, f"hydra.run.dir={tmp_path}")
    assert res.returncode == 0, res.stderr[-2000:]
    keys = [r["episode_key"] for r in _records(records)]
    assert len(keys) == len(set(keys)) == N_EPISODES
    assert set(keys) == want


def test_joblib_multirun_with_two_workers(tiny_run, tmp_path):
    out, _ = tiny_run
    want = {r["episode_key"] for r in _records(out / "records")}
    res = steer_run("-m", *TINY, "sweep.n_shards=2", "sweep.shard=0,1", "hydra/launcher=joblib2",
                    f"hydra.sweep.dir={tmp_path}", timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    files = sorted(p.name for p in (tmp_path / "records").glob("records-*.jsonl"))
    assert files == ["records-shard0of2.jsonl", "records-shard1of2.jsonl"]
    keys = [r["episode_key"] for r in _records(tmp_path / "records")]
    assert len(keys) == len(set(keys)) and set(keys) == want


def test_report_keeps_models_apart_and_drops_recovered_errors(tiny_run, tmp_path):
    from steer import SteerError
    from steer.runs.report import build_report

    out, _ = tiny_run
    store = tmp_path / "records"
    store.mkdir()
    mine = (out / "records" / "records-main.jsonl").read_text().splitlines()
    (store / "records-main.jsonl").write_text("\n".join(mine) + "\n")
    other = [json.loads(x) for x in mine if x.strip()]
    for r in other:
        r["model"], r["episode_key"] = "other-model", "x" + r["episode_key"]
    (store / "records-job1.jsonl").write_text("".join(json.dumps(r) + "\n" for r in other))
    cell = other[0]["cell"]
    (store / "errors-main.jsonl").write_text(
        json.dumps({"suite": other[0]["suite"], "cell": cell, "error": "RuntimeError: recovered later"}) + "\n"
        + json.dumps({"suite": "coding", "cell": {**cell, "label": "never ran"}, "error": "RuntimeError: boom"}) + "\n")
    with pytest.raises(SteerError, match="several models"):
        build_report(store, tmp_path / "r0")
    model = json.loads(mine[0])["model"]
    path = build_report(store, tmp_path / "r1", model=model)
    summary = json.loads((tmp_path / "r1" / "summary.json").read_text())
    assert summary["n_records"] == N_EPISODES and summary["model"] == model
    assert [e["cell"]["label"] for e in summary["errors"]] == ["never ran"]
    assert summary["errors_since_recovered"] == 1
    assert "recovered later" not in path.read_text() and "boom" in path.read_text()


def test_report_task_refuses_a_folder_without_records(tmp_path):
    res = steer_run("task=report", f"report.records={tmp_path}", f"hydra.run.dir={tmp_path / 'run'}")
    assert res.returncode != 0 and "no records at" in res.stderr


def test_report_shows_judge_agreement_when_the_judge_ran(tiny_run, tmp_path):
    from steer.runs.report import build_report

    out, _ = tiny_run
    recs = [json.loads(x) for x in (out / "records" / "records-main.jsonl").read_text().splitlines() if x.strip()]
    agentic = [r for r in recs if r["suite"] == "agentic"]
    assert len(agentic) >= 2
    for i, r in enumerate(agentic):        # the judge agrees on every other reply
        r["grade"]["judge_label"] = r["label"] if i % 2 == 0 else "judge-says-otherwise"
    store = tmp_path / "records"
    store.mkdir()
    (store / "records-main.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    text = build_report(store, tmp_path / "report").read_text()
    summary = json.loads((tmp_path / "report" / "summary.json").read_text())
    n, agree = len(agentic), (len(agentic) + 1) // 2
    assert summary["judge_agreement"]["n"] == n
    assert summary["judge_agreement"]["agreement"] == pytest.approx(agree / n)
    assert f"over {n} replies" in text


def test_ablation_and_prompting_cells_get_a_per_cell_plot(tiny_run, tmp_path):
    from steer.runs.report import build_report

    out, _ = tiny_run
    recs = [json.loads(x) for x in (out / "records" / "records-main.jsonl").read_text().splitlines() if x.strip()]
    for r in recs:                         # relabel the steered cells as ablations (no strength axis)
        if r["cell"]["kind"] != "baseline":
            r["cell"] = {**r["cell"], "op": "ablate", "strength": None,
                         "label": r["cell"]["label"].rsplit(" ", 1)[0].replace(" add ", " ablate ")}
    store = tmp_path / "records"
    store.mkdir()
    (store / "records-main.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    text = build_report(store, tmp_path / "report").read_text()
    assert "![coding cells](coding_cells.png)" in text and (tmp_path / "report" / "coding_cells.png").stat().st_size
    assert "coding_dose_response.png" not in text


def test_a_sweep_over_layers_gets_layer_by_strength_heatmaps(tiny_run, tmp_path):
    from steer.runs.report import build_report

    out, _ = tiny_run
    recs = [json.loads(x) for x in (out / "records" / "records-main.jsonl").read_text().splitlines() if x.strip()]
    extra = []
    for r in recs:                         # the same desperate cells again, as if swept at layer 10 too
        if r["cell"]["emotion"] == "desperate":
            c = {**r["cell"], "layers": [10], "label": r["cell"]["label"].replace("L14", "L10")}
            extra.append({**r, "cell": c, "episode_key": "L10-" + r["episode_key"]})
    assert extra
    store = tmp_path / "records"
    store.mkdir()
    (store / "records-main.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs + extra))
    text = build_report(store, tmp_path / "report").read_text()
    for suite in ("coding", "agentic"):
        assert f"![{suite} heatmap]({suite}_heatmap.png)" in text
        assert (tmp_path / "report" / f"{suite}_heatmap.png").stat().st_size > 0
