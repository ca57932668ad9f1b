"""What each `steer-run task=...` does. Every task writes under the Hydra run directory."""
from __future__ import annotations

import json
import logging
import time
import traceback
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from ..errors import SteerError
from .grid import Cell, build_cells, shard
from .store import ResultsStore

log = logging.getLogger("steer")


# ---- shared pieces ------------------------------------------------------------------------
def run_dir() -> Path:
    from hydra.core.hydra_config import HydraConfig

    return Path(HydraConfig.get().runtime.output_dir)


def _multirun() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.get().mode == RunMode.MULTIRUN


def store_for(cfg: DictConfig) -> ResultsStore:
    from hydra.core.hydra_config import HydraConfig

    if cfg.store.dir:
        root = Path(cfg.store.dir)
    elif _multirun():
        root = Path(HydraConfig.get().sweep.dir) / "records"      # shared by the jobs of a multirun
    else:
        root = run_dir() / "records"
    if cfg.sweep.n_shards > 1:
        writer = f"shard{cfg.sweep.shard}of{cfg.sweep.n_shards}"
    elif _multirun():                                  # jobs of a multirun never share a file
        writer = f"job{HydraConfig.get().job.num}"
    else:
        writer = "main"
    return ResultsStore(root, writer)


def load(cfg: DictConfig) -> Any:
    import steer

    from .checks import check_layers

    if not cfg.progress:                               # progress=false: no bars at all, transformers' too
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    t0 = time.time()
    m = steer.load_model(cfg.model.spec, device=cfg.model.device, dtype=cfg.model.dtype)
    log.info("loaded %s (%s) in %.1f s", m, str(m.dtype).removeprefix("torch."), time.time() - t0)
    if cfg.model.layer is None:          # `${model.layer}` in the configs resolves to this from now on
        cfg.model.layer = m.n_layers // 2
        log.warning("model.layer is not set for %s: steering and monitoring at half depth, layer %d "
                    "(run `steer-run task=validate` and set model.layer to its recommended layer)",
                    m.name, cfg.model.layer)
    check_layers(cfg, m.n_layers, m.name)              # before any extraction or episode
    return m


def directions_for(cfg: DictConfig, model: Any) -> Any:
    """The run's DirectionSet: loaded from directions.path, or extracted (cached on disk)."""
    import steer

    d = cfg.directions
    if d.path:
        return steer.DirectionSet.load(d.path, model=model)
    t0 = time.time()
    ds = steer.extract_directions(model, emotions=list(d.emotions) or None, layers=OmegaConf.to_object(d.layers)
                                  if not isinstance(d.layers, (str, int)) else d.layers, method=d.method,
                                  corpus=d.corpus, neutral_variance=d.neutral_variance, skip=d.skip,
                                  chat=False, holdout=d.holdout, max_tokens=d.max_tokens, progress=cfg.progress)
    log.info("directions: %s (%.1f s)", ds, time.time() - t0)
    return ds


def coding_items(cfg: DictConfig) -> list[Any]:
    from .checks import read_tasks

    tasks = read_tasks(cfg.eval.coding.get("path"))
    sel = cfg.eval.coding.tasks
    if sel == "all":
        return tasks
    if isinstance(sel, int):
        bases = list(dict.fromkeys(t.id.rsplit("_", 1)[0] for t in tasks))[:sel]
        return [t for t in tasks if t.id.rsplit("_", 1)[0] in bases]
    wanted = set(sel)
    chosen = [t for t in tasks if t.id in wanted or t.id.rsplit("_", 1)[0] in wanted]
    unknown = wanted - {t.id for t in chosen} - {t.id.rsplit("_", 1)[0] for t in chosen}
    if unknown:
        raise SteerError(f"unknown coding task {sorted(unknown)[0]!r} in eval.coding.tasks")
    return chosen


def agentic_items(cfg: DictConfig) -> list[Any]:
    from .checks import read_scenarios

    scenarios = read_scenarios(cfg.eval.agentic.get("path"))
    sel = cfg.eval.agentic.scenarios
    if sel == "all":
        return scenarios
    if isinstance(sel, str):
        chosen = [s for s in scenarios if s.kind == sel or s.id == sel]
    else:
        chosen = [s for s in scenarios if s.id in set(sel)]
    if not chosen:
        raise SteerError(f"no agentic scenario matches eval.agentic.scenarios={sel!r}")
    return chosen


def _context(cfg: DictConfig, model: Any, ds: Any, suite: str) -> dict[str, Any]:
    """Everything besides the cell that changes an episode: part of every episode key."""
    ev = cfg.eval
    suite_cfg = {k: v for k, v in OmegaConf.to_container(ev[suite]).items()
                 if not (k == "path" and v is None)}     # the packaged items: keys as before `path` existed
    return {"model": model.fingerprint, "suite": suite, "suite_cfg": suite_cfg,
            "directions": {k: ds.meta.get(k) for k in ("method", "corpus_hash", "skip", "neutral_variance", "holdout")},
            "do_sample": ev.do_sample, "temperature": ev.temperature, "seed": ev.seed,
            "monitor": list(ev.monitor), "monitor_layers": list(ev.monitor_layers)}


def episode_key(cell_key: str, suite: str, item_id: str, sample: int) -> str:
    """Unique per episode: the cell's hash (cell + model + eval settings) and the episode index."""
    return f"{cell_key}-{suite}-{item_id}-s{sample}"


def _record_item(suite: str, rec: dict) -> str:
    return rec["task_id"] if suite == "coding" else rec["scenario_id"]


def _run_suite(cfg: DictConfig, model: Any, ds: Any, cells: list[Cell], suite: str, items: list[Any],
               store: ResultsStore, chunk_index: list[int]) -> None:
    from ..evals.agentic import resolve_judge, run_agentic_episodes
    from ..evals.loop import run_coding_episodes

    ev = cfg.eval
    scfg = ev[suite]
    samples = scfg.samples
    keys = {c.label: c.key(_context(cfg, model, ds, suite)) for c in cells}
    done = store.keys()

    def key(cell: Cell, item_id: str, sample: int) -> str:
        return episode_key(keys[cell.label], suite, item_id, sample)

    pending = {c.label: {(i.id, s) for i in items for s in range(samples) if key(c, i.id, s) not in done}
               for c in cells}
    full = [c for c in cells if len(pending[c.label]) == len(items) * samples]
    partial = [c for c in cells if 0 < len(pending[c.label]) < len(items) * samples]
    skipped = sum(1 for c in cells if not pending[c.label])
    if skipped:
        log.info("%s: %d cells already complete in the store", suite, skipped)
    monitor = {n: n for n in ev.monitor if n in ds}
    # the LLM judge (eval.agentic.judge: false | true/embedded | self | a load_model spec), loaded once
    judge = resolve_judge(scfg.judge, model) if suite == "agentic" and (partial or full) else None
    groups = [full[i:i + cfg.sweep.chunk_cells] for i in range(0, len(full), cfg.sweep.chunk_cells)]
    groups += [[c] for c in partial]

    def run(group: list[Cell]) -> None:
        want = set().union(*(pending[c.label] for c in group))
        sub_items = [i for i in items if any(i.id == x for x, _ in want)]
        n_samples = max(s for _, s in want) + 1
        conditions = [c.condition(ds, model.d_model, model.n_layers) for c in group]
        seed = ev.seed + 1000 * chunk_index[0]
        chunk_index[0] += 1
        common = dict(n_samples=n_samples, max_new_tokens=scfg.max_new_tokens, do_sample=ev.do_sample,
                      temperature=ev.temperature, seed=seed, monitor=monitor or None,
                      monitor_layers=list(ev.monitor_layers) if monitor else None, directions=ds,
                      batch_size=ev.batch_size, progress=cfg.progress)
        if suite == "coding":
            recs = run_coding_episodes(model, sub_items, conditions, attempts=scfg.attempts, **common)
        else:
            recs = run_agentic_episodes(model, sub_items, conditions, judge=judge, **common)
        by_label = {c.label: c for c in group}
        out = []
        for r in recs:
            cell = by_label[r["condition"]["label"]]
            item = _record_item(suite, r)
            if (item, r["sample"]) not in pending[cell.label]:
                continue
            r.update({"episode_key": key(cell, item, r["sample"]), "suite": suite, "cell": cell.describe(),
                      "cell_key": keys[cell.label], "model_name": model.name,
                      "dtype": str(model.dtype).removeprefix("torch.")})
            out.append(r)
        if suite == "agentic":
            _add_fluency(model, out)                   # only the episodes that are kept
        store.append(out)

    for group in groups:
        try:
            run(group)
        except Exception as exc:                       # one bad cell never kills the sweep
            if len(group) > 1:
                log.warning("%s: a chunk of %d cells failed (%s); retrying cell by cell", suite, len(group), exc)
                for c in group:
                    try:
                        run([c])
                    except Exception as inner:
                        _record_error(store, suite, c, inner)
            else:
                _record_error(store, suite, group[0], exc)


def _record_error(store: ResultsStore, suite: str, cell: Cell, exc: BaseException) -> None:
    log.error("%s: cell %r failed: %s", suite, cell.label, exc)
    store.error({"suite": suite, "cell": cell.describe(), "error": f"{type(exc).__name__}: {exc}",
                 "traceback": traceback.format_exc(limit=6), "time": time.strftime("%Y-%m-%d %H:%M:%S")})


def _add_fluency(model: Any, records: list[dict]) -> None:
    from .fluency import response_perplexity

    prompts = [model.format_prompts([r["transcript"][:-1]], chat=True)[0] for r in records]
    ppl = response_perplexity(model, prompts, [r["response"] for r in records])
    for r, p in zip(records, ppl):
        r["perplexity"] = p


def run_cells(cfg: DictConfig, model: Any, ds: Any, cells: list[Cell], store: ResultsStore) -> None:
    chunk_index = [0]
    for suite in cfg.eval.suites:
        if suite not in ("coding", "agentic"):
            raise SteerError(f"unknown suite {suite!r} in eval.suites; use coding, agentic")
        items = coding_items(cfg) if suite == "coding" else agentic_items(cfg)
        log.info("%s: %d cells x %d items x %d samples", suite, len(cells), len(items), cfg.eval[suite].samples)
        _run_suite(cfg, model, ds, cells, suite, items, store, chunk_index)


def _finish(cfg: DictConfig, model: Any, ds: Any, store: ResultsStore, cells: list[Cell]) -> Path:
    from .heatmaps import record_heatmaps
    from .report import build_report

    if cfg.store.parquet:
        store.write_parquet()
    record_heatmaps(cfg, model, ds, store, cells)
    _steerability_check(cfg, model, ds, store, cells)
    out = Path(cfg.report.out) if cfg.report.out else run_dir() / "report"
    path = build_report(store.root, out, baseline=cfg.report.baseline, warning_label=cfg.report.warning_label)
    print(f"report: {path.resolve()}")
    return path


def _steerability_check(cfg: DictConfig, model: Any, ds: Any, store: ResultsStore, cells: list[Cell]) -> None:
    """Put steerability results beside the records (steerability-<writer>.json) for the report's warnings.

    report.steerability=auto measures each emotion cell's direction and layers at the cell's
    largest |strength| on the 8 shipped neutral episodes (two small passes per group); a path
    copies a task=steerability results.json; null skips the check.
    """
    import shutil

    from ..cache import write_json_atomic
    from ..steerability import steerability

    mode = cfg.report.steerability
    target = store.root / f"steerability-{store.writer}.json"
    if not mode:
        return
    if mode != "auto":
        if not Path(mode).is_file():
            raise SteerError(f"report.steerability={mode!r}: no such results file (auto, null or a results.json)")
        shutil.copyfile(mode, target)
        return
    groups: dict[tuple[Any, float], list[str]] = {}
    strongest: dict[tuple[str, Any], float] = {}
    for c in cells:
        if c.kind == "emotion" and c.op in ("add", "subtract") and c.strength:
            key = (c.emotion, c.layers)
            strongest[key] = max(strongest.get(key, 0.0), abs(float(c.strength)))
    for (emotion, layers), s in strongest.items():
        groups.setdefault((layers, s), []).append(emotion)
    if not groups:
        return
    t0 = time.time()
    results = [steerability(model, ds, emotions=emotions, layers=[layers if layers == "all" else list(layers)],
                            strengths=[s], progress=False) for (layers, s), emotions in groups.items()]
    merged = {**results[0], "entries": [e for r in results for e in r["entries"]]}
    write_json_atomic(target, merged)
    log.info("steerability check of %d direction(s) in %.1f s", len(merged["entries"]), time.time() - t0)


# ---- the tasks ----------------------------------------------------------------------------
def task_extract(cfg: DictConfig) -> Path:
    model = load(cfg)
    ds = directions_for(cfg, model)
    path = ds.save(run_dir() / "directions")
    print(f"directions: {path.resolve()}")
    return path


def task_validate(cfg: DictConfig) -> Path:
    import steer

    model = load(cfg)
    ds = directions_for(cfg, model)
    res = steer.validate_directions(ds, model, out_dir=run_dir() / "validation", progress=cfg.progress)
    ds.meta["recommended_layer"] = int(res["recommended_layer"])     # travels with the saved set
    saved = ds.save(run_dir() / "directions")
    print(f"recommended layer {res['recommended_layer']} (set it as model.layer in the model config), "
          f"PC1~valence r={res['pc1_valence_r']:.2f}, PC2~arousal r={res['pc2_arousal_r']:.2f}")
    print(f"directions: {saved.resolve()}")
    print(f"report: {Path(res['report']).resolve()}")
    return Path(res["report"])


def _intervention_cell(cfg: DictConfig) -> Cell | None:
    iv = cfg.intervention
    if not iv.emotion:
        return None
    layers = "all" if iv.layers == "all" else tuple([iv.layers] if isinstance(iv.layers, int) else iv.layers)
    strength = None if iv.op == "ablate" else float(iv.strength)
    label = f"{iv.emotion} {iv.op} L{'all' if layers == 'all' else '-'.join(map(str, layers))}" + (
        "" if strength is None else f" {strength:+g}") + ("" if iv.scale == "norm" else f" ({iv.scale})")
    return Cell(label, "emotion", iv.emotion, iv.op, layers, strength, positions=iv.positions, scale=iv.scale)


def task_generate(cfg: DictConfig) -> Path:
    model = load(cfg)
    ds = directions_for(cfg, model)
    cell = _intervention_cell(cfg)
    cells = [Cell("baseline", "baseline")] + ([cell] if cell else [])
    prompts = list(cfg.generate.prompts)
    rows, sets = [], []
    for c in cells:
        cond = c.condition(ds, model.d_model, model.n_layers)
        rows += prompts
        sets += [list(cond.interventions)] * len(prompts)
    monitor = {n: n for n in cfg.eval.monitor if n in ds}
    out = model.generate(rows, interventions=sets, max_new_tokens=cfg.generate.max_new_tokens, chat=cfg.model.chat,
                         monitor=monitor or None, monitor_layers=list(cfg.eval.monitor_layers) if monitor else None,
                         directions=ds)
    result = []
    norm = model.residual_norm(cfg.eval.monitor_layers[0]) if monitor else 1.0
    for b, text in enumerate(out.texts):
        c = cells[b // len(prompts)]
        P, n = out.prompt_lengths[b], out.generated_lengths[b]
        proj = {name: [None if v != v else v
                       for v in (out.projections[name][b, 0, P:P + n] / norm).tolist()] for name in monitor}
        result.append({"condition": c.label, "prompt": prompts[b % len(prompts)], "text": text,
                       "tokens": out.tokens[b][P:P + n], "projections": proj})
        print(f"[{c.label}] {prompts[b % len(prompts)]}\n  {text.strip()}\n")
    path = run_dir() / "generations.json"
    path.write_text(json.dumps(result, indent=1))
    print(f"generations: {path.resolve()}")
    return path


def task_monitor(cfg: DictConfig) -> Path:
    from .heatmaps import write_token_html

    model = load(cfg)
    ds = directions_for(cfg, model)
    names = [n for n in cfg.eval.monitor if n in ds]
    if not names:
        raise SteerError(f"none of eval.monitor={list(cfg.eval.monitor)} is in the direction set")
    layers = list(cfg.monitor.layers)
    proj = model.monitor(list(cfg.monitor.texts), {n: n for n in names}, layers, direction_set=ds)
    items = []
    for b, text in enumerate(cfg.monitor.texts):
        n = len(proj.tokens[b])
        items.append({"title": text[:60], "tokens": proj.tokens[b], "layer": layers[0],
                      "values": {k: (proj[k][b, 0, :n] / model.residual_norm(layers[0])).tolist() for k in names}})
    out = run_dir() / "monitor.html"
    write_token_html(items, out, title=f"{model.name}: per-token projections")
    (run_dir() / "monitor.json").write_text(json.dumps(items, indent=1))
    print(f"monitor: {out.resolve()}")
    return out


def task_eval(cfg: DictConfig) -> Path:
    model = load(cfg)
    ds = directions_for(cfg, model)
    cell = _intervention_cell(cfg)
    cells = ([Cell("baseline", "baseline")] if cfg.eval.with_baseline or cell is None else []) + ([cell] if cell else [])
    store = store_for(cfg)
    run_cells(cfg, model, ds, cells, store)
    return _finish(cfg, model, ds, store, cells)


def task_sweep(cfg: DictConfig) -> Path:
    model = load(cfg)
    ds = directions_for(cfg, model)
    cells = build_cells(cfg.sweep)
    missing = sorted({c.emotion for c in cells if c.kind == "emotion"} - set(ds.emotions))
    if missing:
        raise SteerError(f"sweep emotion {missing[0]!r} is not in the direction set (directions.emotions)")
    if cfg.sweep.n_shards > 1:
        context = {"model": model.fingerprint}
        cells = shard(cells, context, cfg.sweep.n_shards, cfg.sweep.shard)
    log.info("sweep: %d cells (%s)", len(cells), ", ".join(c.label for c in cells[:6]) + (" ..." if len(cells) > 6 else ""))
    store = store_for(cfg)
    run_cells(cfg, model, ds, cells, store)
    return _finish(cfg, model, ds, store, cells)


def task_report(cfg: DictConfig) -> Path:
    from .report import build_report

    records = Path(cfg.report.records) if cfg.report.records else store_for(cfg).root
    if not records.is_dir() or not any(records.glob("records-*.jsonl")):
        raise SteerError(f"no records at {str(records)!r} (set report.records=DIR)")
    out = Path(cfg.report.out) if cfg.report.out else run_dir() / "report"
    path = build_report(records, out, baseline=cfg.report.baseline, model=cfg.report.model,
                        warning_label=cfg.report.warning_label)
    print(f"report: {path.resolve()}")
    return path


def task_steerability(cfg: DictConfig) -> Path:
    from ..steerability import steerability
    from ..steerability_report import write_steerability_report

    t0 = time.time()
    model = load(cfg)
    ds = directions_for(cfg, model)
    st = cfg.steerability
    layers = [x if isinstance(x, (int, str)) else list(x) for x in OmegaConf.to_object(st.layers)]
    res = steerability(model, ds, emotions=list(st.emotions) or None, layers=layers, strengths=list(st.strengths),
                       main_strength=st.main_strength, read_layer=st.read_layer, progress=cfg.progress)
    weak = [f"{e['emotion']}@L{e['layers']}" for e in res["entries"] if e["weak"]]
    path = write_steerability_report(res, run_dir() / "steerability", seconds=time.time() - t0,
                                     command="steer-run " + " ".join(_overrides()))
    print(f"{len(weak)} of {len(res['entries'])} (direction, layer) pairs weakly steerable"
          + (f": {', '.join(weak[:8])}" + (" ..." if len(weak) > 8 else "") if weak else ""))
    print(f"report: {path.resolve()}")
    return path


def task_speakers(cfg: DictConfig) -> Path:
    from ..speakers import extract_speaker_directions, validate_speakers

    t0 = time.time()
    model = load(cfg)
    sp = cfg.speakers
    sets = extract_speaker_directions(model, dialogues=sp.dialogues, emotions=list(sp.emotions) or None,
                                      layers=OmegaConf.to_object(sp.layers) if not isinstance(sp.layers, (str, int))
                                      else sp.layers, holdout=sp.holdout, neutral_variance=sp.neutral_variance,
                                      progress=cfg.progress)
    for kind, d in sets.items():
        d.save(run_dir() / "directions" / kind)
    stories = steer_directions(cfg, model, list(sets["present"].emotions))
    res = validate_speakers(model, sets, stories=stories, out_dir=run_dir() / "speakers",
                            command="steer-run " + " ".join(_overrides()), started=t0,
                            progress=cfg.progress)
    print(res["headline"])
    print(f"report: {Path(res['report']).resolve()}")
    return Path(res["report"])


def steer_directions(cfg: DictConfig, model: Any, emotions: list[str]) -> Any:
    """The story directions of the speakers' concepts (cached extraction; directions.* settings)."""
    import steer

    d = cfg.directions
    if d.path:
        return steer.DirectionSet.load(d.path, model=model)
    return steer.extract_directions(model, emotions=emotions, layers="all", method=d.method, corpus=d.corpus,
                                    neutral_variance=d.neutral_variance, skip=d.skip, holdout=d.holdout,
                                    max_tokens=d.max_tokens, progress=cfg.progress)


def _overrides() -> list[str]:
    from hydra.core.hydra_config import HydraConfig

    return list(HydraConfig.get().overrides.task)


TASKS = {"extract": task_extract, "validate": task_validate, "monitor": task_monitor, "generate": task_generate,
         "eval": task_eval, "sweep": task_sweep, "report": task_report, "steerability": task_steerability,
         "speakers": task_speakers}
