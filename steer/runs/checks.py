"""Check a composed `steer-run` config before any model loads, one line per problem naming its key.

`check_config(cfg)` runs first in every job (well under a second: no model, no torch unless a
layer or an intervention is checked); `check_layers(cfg, model)` runs right after the model
loads, when its layer count is known. Both raise ConfigError (a setting) or DataError (a file).

>>> check_config(compose(overrides=["intervention.emotion=desprate"]))
ConfigError: intervention.emotion: unknown emotion 'desprate'; see steer.emotions.concept_names()
"""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from ..errors import ConfigError, DataError, SteerError

STEERING_TASKS = ("generate", "eval")          # tasks that read `intervention`
EPISODE_TASKS = ("eval", "sweep")              # tasks that run the behaviour suites
SUITES = ("coding", "agentic")


@dataclass(frozen=True)
class Available:
    """What the run's direction set will hold: emotion names and layers ("all" = every layer)."""

    emotions: frozenset[str]
    layers: tuple[int, ...] | str
    catalogue: frozenset[str]


def check_config(cfg: DictConfig) -> None:
    """Raise ConfigError/DataError for the first bad setting of this task; return None if all is well."""
    if "layer" in cfg.get("model", {}) and cfg.model.layer is None:
        import copy                    # model.layer is resolved once the model loads (half depth);

        cfg = copy.deepcopy(cfg)       # check the rest with a stand-in; check_layers sees the real one
        cfg.model.layer = 0
    try:
        OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
        _check_keys(cfg, "")
        task = cfg.task
        from .tasks import TASKS

        if task not in TASKS:
            raise ConfigError(f"unknown task {task!r}; use one of {', '.join(TASKS)}")
        if task == "report":
            _check_report(cfg)
            return
        _check_model(cfg.model)
        avail = _check_directions(cfg.directions)
        if task in STEERING_TASKS:
            _check_intervention(cfg.intervention, avail)
        if task == "sweep":
            _check_sweep(cfg.sweep, avail)
        if task in EPISODE_TASKS + ("generate",):
            _check_monitor(cfg.eval.monitor, cfg.eval.monitor_layers, avail, "eval.monitor")
        if task == "monitor":
            _check_monitor(cfg.eval.monitor, cfg.monitor.layers, avail, "eval.monitor", layers_key="monitor.layers")
            if not any(n in avail.emotions for n in cfg.eval.monitor):
                raise ConfigError(f"eval.monitor: none of {list(cfg.eval.monitor)} is in the direction set")
        if task == "generate":
            _positive(cfg.generate.max_new_tokens, "generate.max_new_tokens")
            if not cfg.generate.prompts:
                raise ConfigError("generate.prompts is empty")
        if task in EPISODE_TASKS:
            _check_eval(cfg)
    except OmegaConfBaseException as exc:          # an interpolation, a ??? value, a deleted key
        key = getattr(exc, "full_key", None)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"{key}: {first}" if key else first) from None


def check_layers(cfg: DictConfig, n_layers: int, model_name: str = "the model") -> None:
    """Every layer the run will touch exists in a model with `n_layers` blocks."""
    task = cfg.task
    keys: list[tuple[str, Any]] = [("directions.layers", cfg.directions.layers)]
    if task in STEERING_TASKS and cfg.intervention.emotion:
        keys.append(("intervention.layers", cfg.intervention.layers))
    if task == "sweep":
        keys += [("sweep.layers", entry) for entry in cfg.sweep.layers]
    if task in EPISODE_TASKS + ("generate",) and cfg.eval.monitor:
        keys.append(("eval.monitor_layers", cfg.eval.monitor_layers))
    if task == "monitor":
        keys.append(("monitor.layers", cfg.monitor.layers))
    for key, spec in keys:
        layers = _layers(spec, key)
        bad = [L for L in ([] if layers == "all" else layers) if L >= n_layers]
        if bad:
            raise ConfigError(f"{key}: layer {bad[0]} out of range for {model_name} "
                              f"({n_layers} layers: 0..{n_layers - 1})")
    extracted = _layers(cfg.directions.layers, "directions.layers")
    if extracted != "all":                       # again now that `${model.layer}` has a value
        avail = Available(frozenset(), extracted, frozenset())
        for key, spec in keys[1:]:
            _within(_layers(spec, key), avail, key)


# ---- pieces ---------------------------------------------------------------------------------
def _check_keys(node: Any, where: str) -> None:
    """Keys added with `+key=value` pass Hydra's struct check; a typed schema has no room for them."""
    if not isinstance(node, DictConfig):
        return
    kind = OmegaConf.get_type(node)
    fields = {f.name for f in dataclasses.fields(kind)} if dataclasses.is_dataclass(kind) else None
    for key in node.keys():
        full = f"{where}{key}"
        if fields is not None and key not in fields:
            import difflib

            close = difflib.get_close_matches(str(key), sorted(fields), n=1)
            hint = f" (did you mean {where}{close[0]!r}?)" if close else ""
            raise ConfigError(f"unknown config key {full!r}{hint}")
        _check_keys(node._get_node(key), f"{full}.")


def _check_model(m: DictConfig) -> None:
    spec = m.spec
    if spec is not None and not isinstance(spec, str):
        raise ConfigError(f"model.spec={spec!r} must be a name, a hub id, a directory or a .gguf path")
    if isinstance(spec, str) and spec:
        p = Path(spec).expanduser()
        if spec.endswith(".gguf"):
            if not p.is_file():
                raise DataError(f"model.spec: no .gguf file at {spec!r}")
        elif spec.startswith((".", "/", "~")) or spec.count("/") > 1 or p.exists():
            if not p.is_dir():
                raise DataError(f"model.spec: no model directory at {spec!r}")
            if not (p / "config.json").is_file():
                raise DataError(f"model.spec: {spec!r} has no config.json (not a Hugging Face model directory)")
    if m.device is not None:
        import torch

        try:
            torch.device(m.device)
        except (RuntimeError, TypeError) as exc:
            raise ConfigError(f"model.device={m.device!r}: {str(exc).splitlines()[0]}") from None


def _directions_meta(path: str) -> dict[str, Any]:
    """The `.json` half of a saved DirectionSet (same file naming as DirectionSet._paths)."""
    p = Path(path)
    stem = p.with_suffix("") if p.suffix in (".safetensors", ".json") else p
    tensors, meta = stem.with_name(stem.name + ".safetensors"), stem.with_name(stem.name + ".json")
    if not tensors.is_file() or not meta.is_file():
        raise DataError(f"directions.path: no direction set at {path!r} (need {tensors.name} and {meta.name})")
    try:
        info = json.loads(meta.read_text())
        emotions, layers = list(info["emotions"]), [int(L) for L in info["layers"]]
    except (ValueError, KeyError, TypeError) as exc:
        raise DataError(f"directions.path: {meta} is not a direction set description ({type(exc).__name__}: "
                        f"{str(exc).splitlines()[0] if str(exc) else 'bad value'})") from None
    return {"emotions": emotions, "layers": layers}


def _check_directions(d: DictConfig) -> Available:
    from ..emotions import concept_names, load_corpus

    catalogue = frozenset(concept_names())
    if d.path:
        info = _directions_meta(str(d.path))
        return Available(frozenset(info["emotions"]), tuple(info["layers"]), catalogue)
    if d.corpus:
        try:
            base = frozenset(r.emotion for r in load_corpus(str(d.corpus)))
        except SteerError as exc:
            raise DataError(f"directions.corpus: {exc}") from None
    else:
        base = catalogue
    for e in d.emotions:
        if e not in base:
            raise ConfigError(f"directions.emotions: unknown emotion {e!r}; see steer.emotions.concept_names()"
                              if not d.corpus else f"directions.emotions: no texts for {e!r} in {d.corpus}")
    names = frozenset(d.emotions) if d.emotions else base
    if len(names) < 2:
        raise ConfigError(f"directions.emotions={sorted(names)}: need at least two emotions "
                          "(a direction is relative to the others)")
    for key, lo in (("holdout", 0.0), ("neutral_variance", 0.0)):
        value = d[key]
        if not lo <= value < 1.0:
            raise ConfigError(f"directions.{key}={value!r} must be in [0, 1)")
    if d.skip < 0:
        raise ConfigError(f"directions.skip={d.skip!r} must be a non-negative int")
    _positive(d.max_tokens, "directions.max_tokens")
    from ..extraction import METHODS

    if d.method not in METHODS:
        raise ConfigError(f"directions.method: unknown method {d.method!r}; use one of {sorted(METHODS)}")
    layers = "all" if _pending(d.layers) else _layers(d.layers, "directions.layers")   # pending: after the load
    return Available(names, layers, catalogue)


def _pending(spec: Any) -> bool:
    """A layer spec still waiting for `model.layer` (null until the model loads: half depth)."""
    if isinstance(spec, ListConfig):
        spec = OmegaConf.to_object(spec)
    if isinstance(spec, (list, tuple)):
        return any(_pending(x) for x in spec)
    return spec is None


def _layers(spec: Any, key: str) -> tuple[int, ...] | str:
    from ..interventions import normalize_layers

    if isinstance(spec, ListConfig):
        spec = OmegaConf.to_object(spec)
    try:
        return normalize_layers(spec)
    except SteerError as exc:
        raise ConfigError(f"{key}: {exc}") from None


def _emotion(name: Any, avail: Available, key: str) -> None:
    if name in avail.emotions:
        return
    if name not in avail.catalogue:
        raise ConfigError(f"{key}: unknown emotion {name!r}; see steer.emotions.concept_names()")
    raise ConfigError(f"{key}: {name!r} is not in the direction set (add it to directions.emotions)")


def _within(layers: tuple[int, ...] | str, avail: Available, key: str) -> None:
    if avail.layers == "all":
        return                                   # checked against the model once it loads
    missing = [L for L in (avail.layers if layers == "all" else layers) if L not in avail.layers]
    if layers == "all" or missing:
        what = "'all'" if layers == "all" else f"layer {missing[0]}"
        raise ConfigError(f"{key}: {what} is not among the direction layers {list(avail.layers)} (directions.layers)")


def _check_intervention(iv: DictConfig, avail: Available) -> None:
    if not iv.emotion:
        return
    _emotion(iv.emotion, avail, "intervention.emotion")
    if _pending(iv.layers):
        layers: Any = (0,)                       # a stand-in: the real layers are checked after the load
    else:
        layers = _layers(iv.layers, "intervention.layers")
        _within(layers, avail, "intervention.layers")
    from .grid import Cell

    strength = None if iv.op == "ablate" else iv.strength
    cell = Cell("intervention", "emotion", iv.emotion, iv.op, layers, strength, positions=iv.positions,
                scale=iv.scale)
    try:
        cell.condition(None, 0, 0)               # builds the Intervention: op, strength, positions, scale
    except SteerError as exc:
        raise ConfigError(f"intervention: {exc}") from None


def _check_sweep(sweep: DictConfig, avail: Available) -> None:
    from .grid import build_cells

    for s in sweep.strengths:
        if not math.isfinite(s):
            raise ConfigError(f"sweep.strengths: {s!r} is not a finite number")
    asked = [e for e in sweep.layers if not _pending(e)]
    if _pending(sweep.layers):                   # layers wait for model.layer: check the rest with a stand-in
        sweep = OmegaConf.merge(sweep, {"layers": [0 if _pending(e) else e for e in sweep.layers]})
    try:
        cells = build_cells(sweep)
    except SteerError as exc:
        raise ConfigError(str(exc) if "sweep." in str(exc) else f"sweep: {exc}") from None
    for e in sweep.emotions:
        _emotion(e, avail, "sweep.emotions")
    for entry in asked:
        _within(_layers(entry, "sweep.layers"), avail, "sweep.layers")
    for c in cells:
        if c.kind == "emotion":
            try:
                c.condition(None, 0, 0)
            except SteerError as exc:
                raise ConfigError(f"sweep cell {c.label!r}: {exc}") from None
    _positive(sweep.chunk_cells, "sweep.chunk_cells")
    if sweep.n_shards < 1 or not 0 <= sweep.shard < sweep.n_shards:
        raise ConfigError(f"sweep.shard={sweep.shard} must be in [0, sweep.n_shards={sweep.n_shards})")


def _check_monitor(names: Any, layers: Any, avail: Available, key: str, layers_key: str = "eval.monitor_layers") -> None:
    for n in names:
        if n not in avail.emotions and n not in avail.catalogue:
            raise ConfigError(f"{key}: unknown emotion {n!r}; see steer.emotions.concept_names()")
    if any(n in avail.emotions for n in names) and not _pending(layers):
        spec = _layers(layers, layers_key)
        _within(spec, avail, layers_key)


def _check_eval(cfg: DictConfig) -> None:
    ev = cfg.eval
    if not ev.suites:
        raise ConfigError(f"eval.suites is empty; use some of {list(SUITES)}")
    for suite in ev.suites:
        if suite not in SUITES:
            raise ConfigError(f"eval.suites: unknown suite {suite!r}; use {', '.join(SUITES)}")
    _positive(ev.batch_size, "eval.batch_size")
    if ev.do_sample and not ev.temperature > 0:
        raise ConfigError(f"eval.temperature={ev.temperature!r} must be > 0 when eval.do_sample=true")
    from .tasks import agentic_items, coding_items

    for suite in ev.suites:
        _positive(ev[suite].samples, f"eval.{suite}.samples")
        _positive(ev[suite].max_new_tokens, f"eval.{suite}.max_new_tokens")
        if suite == "coding":
            _positive(ev.coding.attempts, "eval.coding.attempts")
            coding_items(cfg)
        else:
            agentic_items(cfg)


def read_tasks(path: Any) -> list[Any]:
    """The coding tasks of `eval.coding.path`: None = packaged; a YAML/JSON file or folder; a JSONL
    file through `steer.evals.import_tasks`, where any unusable line fails the run (naming it)."""
    from ..evals import import_tasks, load_tasks

    if not path:
        return load_tasks()
    try:
        if str(path).endswith(".jsonl"):
            tasks, report = import_tasks(str(path))
            if report.skipped:
                s = report.skipped[0]
                raise DataError(f"{path}:{s['line']}: {s['reason']} ({len(report.skipped)} of "
                                f"{report.n_lines} lines unusable)")
            if not tasks:
                raise DataError(f"{path}: holds no tasks")
            return tasks
        return load_tasks(str(path))
    except SteerError as exc:
        raise DataError(f"eval.coding.path: {exc}") from None


def read_scenarios(path: Any) -> list[Any]:
    """The agentic scenarios of `eval.agentic.path` (None = packaged; a YAML file or folder)."""
    from ..evals import load_scenarios

    if not path:
        return load_scenarios()
    try:
        return load_scenarios(str(path))
    except SteerError as exc:
        raise DataError(f"eval.agentic.path: {exc}") from None


def _check_report(cfg: DictConfig) -> None:
    records = cfg.report.records
    if records and not (Path(records).is_dir() and any(Path(records).glob("records-*.jsonl"))):
        raise DataError(f"report.records: no records at {str(records)!r} (a folder with records-*.jsonl)")


def _positive(value: Any, key: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{key}={value!r} must be a positive int")
