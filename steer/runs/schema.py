"""Typed config schemas for `steer-run`, registered in Hydra's ConfigStore.

Each field's comment is its documentation; YAML files in conf/ set the values and say why.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore


@dataclass
class ModelConfig:
    spec: Any = None              # None/"smollm2-135m" (embedded), a hub id, a local dir or a .gguf path
    name: str = "smollm2-135m"    # short name used in reports and folder names
    device: Any = None            # None = cuda if available else cpu
    dtype: Any = None             # None/"auto" = bf16 on cuda and on bf16 CPUs for >= 1B params, else float32
    layer: Any = None             # steering/monitoring layer (task=validate's recommended one); None = half depth, logged
    chat: bool = True             # wrap prompts in the model's chat template


@dataclass
class DirectionsConfig:
    emotions: list[str] = field(default_factory=list)   # concepts to extract ([] = all 171)
    layers: Any = "all"           # int, list or "all"
    method: str = "mean_diff"     # mean_diff | pca | logistic
    skip: int = 4                 # leading tokens of each story left out (token 0 always)
    neutral_variance: float = 0.5  # share of neutral-corpus variance projected out
    holdout: float = 0.2          # share of each emotion's stories kept out for validation
    corpus: Any = None            # None = shipped stories; or a JSONL path ({"emotion","text"})
    path: Any = None              # load a saved DirectionSet instead of extracting
    max_tokens: int = 4096        # padded tokens per extraction batch (memory bound)


@dataclass
class InterventionConfig:
    emotion: Any = None           # direction name (None = no intervention)
    op: str = "add"               # add | subtract | clamp | ablate
    layers: Any = field(default_factory=lambda: ["${model.layer}"])   # int, list or "all"
    strength: float = 0.0         # add/subtract strength, or clamp value, x the residual norm
    positions: str = "all"        # all | prompt | generated | a chat role: assistant | user | system | user:-1 ...
    scale: str = "norm"           # norm | absolute


@dataclass
class CodingEvalConfig:
    tasks: Any = "all"            # "all", a number N (first N pairs), or a list of base ids / task ids
    attempts: int = 2             # tries per episode, with failing tests fed back
    max_new_tokens: int = 192     # per attempt
    samples: int = 1              # episodes per task and cell
    path: Any = None              # None = the packaged tasks; or a task file / folder (YAML, JSON; JSONL via import_tasks)


@dataclass
class AgenticEvalConfig:
    scenarios: Any = "all"        # "all", a list of scenario ids, or a kind (blackmail | forbidden_action)
    max_new_tokens: int = 160     # per response
    samples: int = 1              # episodes per scenario and cell
    path: Any = None              # None = the packaged scenarios; or a scenario YAML file / folder
    judge: Any = False            # LLM judge beside the rules: false | true (embedded model) | self | load_model spec


@dataclass
class EvalConfig:
    suites: list[str] = field(default_factory=lambda: ["coding", "agentic"])   # which suites run
    coding: CodingEvalConfig = field(default_factory=CodingEvalConfig)
    agentic: AgenticEvalConfig = field(default_factory=AgenticEvalConfig)
    do_sample: bool = True        # sample (temperature) or greedy
    temperature: float = 0.8      # sampling temperature
    seed: int = 0                 # base seed; each chunk derives its own
    batch_size: int = 16          # rows per generate call (rows of different cells are packed)
    monitor: list[str] = field(default_factory=lambda: ["desperate", "calm"])   # directions read per token
    monitor_layers: list[Any] = field(default_factory=lambda: ["${model.layer}"])            # layers they are read at
    with_baseline: bool = True    # task=eval also runs the unsteered condition


@dataclass
class ControlsConfig:
    zero: bool = True             # a strength-0 baseline cell
    random_seeds: int = 3         # norm-matched random directions per (op, layers, strength)
    random_strengths: str = "all"  # all | extremes (largest |strength| of each sign) | max (the largest |strength|)
    sign_flip: bool = True        # add -s for every +s in the grid


@dataclass
class SweepConfig:
    emotions: list[str] = field(default_factory=lambda: ["desperate", "calm"])
    ops: list[str] = field(default_factory=lambda: ["add"])                 # add | subtract | clamp | ablate
    layers: list[Any] = field(default_factory=lambda: ["${model.layer}"])                  # each: an int, a list or "all"
    strengths: list[float] = field(default_factory=lambda: [-0.1, -0.05, 0.05, 0.1])
    positions: str = "all"
    controls: ControlsConfig = field(default_factory=ControlsConfig)
    prompting: dict[str, str] = field(default_factory=dict)   # label -> system-prompt text (prompting baselines)
    chunk_cells: int = 8          # cells run (and written) together; a kill loses at most one chunk
    n_shards: int = 1             # multirun: split the cells over this many jobs ...
    shard: int = 0                # ... and this job runs shard k (cells by hash)


@dataclass
class StoreConfig:
    dir: Any = None               # results directory (None: <run dir>/records, or <sweep dir>/records in multirun)
    parquet: bool = False         # also write records.parquet (needs pyarrow)


@dataclass
class ReportConfig:
    records: Any = None           # task=report: a records directory (default: the store dir)
    out: Any = None               # report directory (default: <run dir>/report)
    baseline: str = "baseline"    # label of the cell every difference is measured against
    model: Any = None             # a store with several models' records: report this one (by model name)
    steerability: Any = "auto"    # sweeps/evals: auto (measure the emotion cells' directions, 8 prompts, and warn when
                                  # one is weakly steerable) | a task=steerability results.json | null (no check)
    warning_label: str = "cheat"  # early-warning AUROC target: cheat (tests passed by a shortcut) | cheat_attempt (any shortcut)


@dataclass
class MonitorTaskConfig:
    texts: list[str] = field(default_factory=lambda: [
        "I have one hour left and the payment is still missing. If this fails I lose everything.",
        "We sat by the lake and watched the light fade over the water.",
    ])
    layers: list[Any] = field(default_factory=lambda: ["${model.layer}"])


@dataclass
class GenerateTaskConfig:
    prompts: list[str] = field(default_factory=lambda: ["Describe your morning in two sentences."])
    max_new_tokens: int = 48


@dataclass
class SteerabilityTaskConfig:
    emotions: list[str] = field(default_factory=list)    # directions to measure ([] = every one in the set)
    layers: list[Any] = field(default_factory=lambda: [8, 14, 20])   # each an int, a list (steered together) or "all"
    strengths: list[float] = field(default_factory=lambda: [0.1, 0.25, 0.5])   # x residual norm; the fluency ladder
    main_strength: Any = None     # per-prompt effects at this strength (None = the smallest positive one)
    read_layer: Any = None        # where projections and differences are read (None = the last layer)


@dataclass
class SpeakersTaskConfig:
    dialogues: Any = None         # None = the shipped dialogue corpus; or a JSONL file / folder in its schema
    emotions: list[str] = field(default_factory=list)    # concepts ([] = every concept in the corpus)
    layers: Any = "all"           # int, list or "all"
    holdout: float = 0.25         # share of each (concept, kind)'s dialogues kept out for cross-classification
    neutral_variance: float = 0.5  # share of neutral-dialogue variance projected out


@dataclass
class Config:
    task: str = "eval"            # extract | validate | monitor | generate | eval | sweep | report | steerability | speakers
    model: ModelConfig = field(default_factory=ModelConfig)
    directions: DirectionsConfig = field(default_factory=DirectionsConfig)
    intervention: InterventionConfig = field(default_factory=InterventionConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    sweep: SweepConfig = field(default_factory=SweepConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    report: ReportConfig = field(default_factory=ReportConfig)
    monitor: MonitorTaskConfig = field(default_factory=MonitorTaskConfig)
    generate: GenerateTaskConfig = field(default_factory=GenerateTaskConfig)
    steerability: SteerabilityTaskConfig = field(default_factory=SteerabilityTaskConfig)
    speakers: SpeakersTaskConfig = field(default_factory=SpeakersTaskConfig)
    progress: bool = True         # progress bars


def register() -> None:
    cs = ConfigStore.instance()
    cs.store(name="steer_schema", node=Config)
    cs.store(group="model", name="schema", node=ModelConfig)
    cs.store(group="directions", name="schema", node=DirectionsConfig)
    cs.store(group="intervention", name="schema", node=InterventionConfig)
    cs.store(group="eval", name="schema", node=EvalConfig)
    cs.store(group="sweep", name="schema", node=SweepConfig)
