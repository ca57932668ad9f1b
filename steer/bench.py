"""`steer-bench`: what steering, monitoring, extraction and packing cost next to plain transformers.

One run measures every variant side by side, interleaved (A B C, B C A, ... for several
repeats) so that load from other processes hits all variants alike, and reports medians:

  steer_overhead        steered `m.generate` (add at one layer, all positions) / plain HF generate
  monitor_overhead      the same plus per-token projections onto 4 directions / plain HF generate
  extract_ratio         `stream_means` (all layers, per-text sums in the trace) / one plain forward
  extract_memory_ratio  peak memory (the whole process, model included, as `time -v` reports
                        it) extracting from a 4x corpus / from a 1x corpus, a fresh subprocess
                        per variant; `extract_working_set_ratio` beside it counts only what the
                        extraction adds above the loaded model (the stricter figure)
  packed_speedup        episodes/s, 8 conditions packed as rows of one batch / one call each

Both generate variants run greedy for exactly the same number of new tokens (min_new_tokens).

    steer-bench                  # CPU, the embedded SmolLM2-135M; a readable table
    steer-bench --json           # one JSON object on stdout
    steer-bench --quick --json   # smoke run (seconds)
    steer-bench --device cuda    # a randomly initialised 1B-shape Llama in bfloat16
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

GOALS: dict[str, tuple[str, float]] = {
    "steer_overhead": ("<=", 1.05),
    "monitor_overhead": ("<=", 1.10),
    "extract_ratio": ("<=", 1.15),
    "extract_memory_ratio": ("<=", 1.10),
    "packed_speedup": (">=", 2.0),
}

# A 1B-shape Llama (Llama-3.2-1B / TinyLlama proportions), built from config: no download.
# The vocabulary is resized to the embedded SmolLM2 tokenizer's (49152) so every text fits.
RANDOM_1B = dict(hidden_size=2048, num_hidden_layers=16, num_attention_heads=32, num_key_value_heads=8,
                 intermediate_size=8192, vocab_size=32000, max_position_embeddings=4096)

PROMPTS = [
    "The weather today is",
    "Write one sentence about the sea.",
    "My favourite food is",
    "Once upon a time, in a small village at the edge of a forest,",
    "The best way to learn a new language is",
    "Yesterday I went to the market and",
    "Here is a short poem about autumn:",
    "Tell me about your morning.",
]
PACKED_PROMPT = "Write two sentences about the house you grew up in."


@dataclass
class Settings:
    prompts: int = 8
    new_tokens: int = 32
    repeats: int = 5                 # generate group: hf / steered / monitored (rotating order)
    packed_repeats: int = 2          # packed vs one call per condition (AB, BA)
    extract_repeats: int = 3         # stream_means / HF forward / HF decoder stack (each order once)
    extract_stories: int = 8         # + extract_neutral texts: one batch, all layers
    extract_neutral: int = 4
    memory_stories: int = 12         # the 1x corpus: the 12 longest of the 4x corpus' 48 stories
    memory_neutral: int = 16         # the neutral reference set (the same for 1x and 4x)
    memory_max_tokens: int = 2048    # batch budget: 1x already fills a batch, so 4x adds batches
    memory_repeats: int = 1          # fresh subprocesses per variant, interleaved
    memory_default_malloc: bool = False  # also measure with glibc's default malloc (--default-malloc)

    @classmethod
    def quick(cls) -> "Settings":
        return cls(new_tokens=4, repeats=1, packed_repeats=1, extract_repeats=1, extract_stories=4,
                   extract_neutral=4, memory_stories=4, memory_neutral=8, memory_max_tokens=256,
                   memory_default_malloc=False)


# ---- environment -----------------------------------------------------------------------------
def _cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _loadavg() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def pick_threads(requested: int) -> tuple[int, str]:
    """CPU threads for torch. 0 = auto: torch's default, or 1 when other processes already
    keep the cores busy (OpenMP threads spinning on an oversubscribed CPU run many times slower)."""
    import torch

    default = torch.get_num_threads()
    if requested > 0:
        return requested, "requested"
    load = _loadavg()
    ncpu = os.cpu_count() or default
    if load is None:
        return default, "torch default"
    free = ncpu - load[0]
    n = max(1, min(default, int(free + 0.5)))
    why = "torch default" if n == default else f"auto: load average {load[0]} on {ncpu} cores"
    return n, why


def _versions() -> dict[str, str]:
    import nnsight
    import torch
    import transformers

    import steer

    return {"python": platform.python_version(), "torch": torch.__version__,
            "transformers": transformers.__version__, "nnsight": getattr(nnsight, "__version__", "?"),
            "steer": steer.__version__}


# ---- the model -------------------------------------------------------------------------------
def _embedded_tokenizer() -> Any:
    from transformers import AutoTokenizer

    from .loading import dequantized_dir, embedded_gguf

    return AutoTokenizer.from_pretrained(dequantized_dir(embedded_gguf()))


def random_llama(tokenizer: Any, device: Any, dtype: Any, shape: dict | None = None, seed: int = 0) -> Any:
    """A randomly initialised Llama of `shape` (default: 1B) on `device`, vocabulary resized to
    the tokenizer's so that any text tokenises into range."""
    import torch
    import transformers

    cfg = dict(RANDOM_1B if shape is None else shape)
    cfg["vocab_size"] = max(cfg.get("vocab_size", 0), len(tokenizer))
    config = transformers.LlamaConfig(**cfg, bos_token_id=tokenizer.bos_token_id,
                                      eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(seed)
    with torch.device(device):
        hf = transformers.AutoModelForCausalLM.from_config(config, dtype=dtype)
    hf.generation_config.eos_token_id = tokenizer.eos_token_id
    hf.generation_config.pad_token_id = tokenizer.pad_token_id
    hf.config.name_or_path = "random-llama-1b-shape" if shape is None else "random-llama"
    return hf.eval()


def load_pair(model: str, device: str) -> tuple[Any, Any, Any]:
    """(plain HF model, SteeredModel sharing its weights, tokenizer). The plain module is never
    wrapped by nnsight (steer wraps a structural copy), so it is a clean baseline."""
    import torch
    from transformers import AutoModelForCausalLM

    import steer

    from .loading import dequantized_dir, embedded_gguf

    tok = _embedded_tokenizer()
    if model == "embedded":
        dtype = torch.float32 if device == "cpu" else torch.bfloat16
        hf = AutoModelForCausalLM.from_pretrained(dequantized_dir(embedded_gguf()), dtype=dtype).to(device).eval()
    elif model == "random-1b":
        hf = random_llama(tok, device, torch.bfloat16 if device != "cpu" else torch.float32)
    else:
        raise SystemExit(f"unknown --model {model!r}; use 'embedded' or 'random-1b'")
    m = steer.load_model(hf, tokenizer=tok)
    m.name = "smollm2-135m" if model == "embedded" else hf.config.name_or_path
    return hf, m, m.tokenizer


def _unit(d: int, seed: int) -> Any:
    import torch

    g = torch.Generator().manual_seed(seed)
    v = torch.randn(d, generator=g)
    return v / v.norm()


# ---- timing ----------------------------------------------------------------------------------
def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def interleaved(variants: dict[str, Callable[[], Any]], repeats: int, device: str) -> dict[str, list[float]]:
    """Run every variant once per repeat, rotating the order (ABC, BCA, CAB, ...)."""
    names = list(variants)
    times: dict[str, list[float]] = {n: [] for n in names}
    for r in range(repeats):
        k = r % len(names)
        for name in names[k:] + names[:k]:
            gc.collect()                       # every sample starts without garbage to collect
            _sync(device)
            t = time.perf_counter()
            variants[name]()
            _sync(device)
            times[name].append(time.perf_counter() - t)
    return times


def _med(xs: list[float]) -> float:
    return statistics.median(xs)


# ---- the measured workloads ------------------------------------------------------------------
def generation_variants(hf: Any, m: Any, tok: Any, s: Settings, device: str) -> tuple[dict, dict]:
    """hf / steered / monitored generate on 8 prompts; 8 conditions packed or one call each."""
    import torch

    from .interventions import Intervention

    prompts = PROMPTS[: s.prompts]
    N = s.new_tokens
    L = m.n_layers // 2
    iv = Intervention("add", direction=_unit(m.d_model, 1), layers=[L], strength=0.1)
    monitor = {f"d{k}": _unit(m.d_model, 10 + k) for k in range(4)}
    monitor_layers = sorted({L, (3 * m.n_layers) // 4})
    pad = tok.pad_token_id

    def hf_generate(n: int = N) -> None:
        enc = tok(prompts, return_tensors="pt", padding=True).to(device)
        with torch.no_grad():
            out = hf.generate(**enc, max_new_tokens=n, min_new_tokens=n, do_sample=False, pad_token_id=pad,
                              temperature=None, top_p=None, top_k=None)
        assert out.shape[1] == enc["input_ids"].shape[1] + n
        tok.batch_decode(out[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)

    def steered(n: int = N) -> None:
        out = m.generate(prompts, interventions=[iv], max_new_tokens=n, min_new_tokens=n)
        assert out.n_steps == n

    def monitored(n: int = N) -> None:
        out = m.generate(prompts, interventions=[iv], max_new_tokens=n, min_new_tokens=n,
                         monitor=monitor, monitor_layers=monitor_layers)
        assert out.n_steps == n and out.projections["d0"].shape[0] == len(prompts)

    a, b = _unit(m.d_model, 2), _unit(m.d_model, 3)
    conditions = [
        [],
        [Intervention("add", direction=a, layers=[L], strength=0.05)],
        [Intervention("add", direction=a, layers=[L], strength=0.1)],
        [Intervention("subtract", direction=a, layers=[L], strength=0.1)],
        [Intervention("add", direction=b, layers=[L], strength=0.1)],
        [Intervention("clamp", direction=b, layers=[L], value=0.0)],
        [Intervention("ablate", direction=a, layers=[L // 2, L])],
        [Intervention("add", direction=a, layers=[L], strength=0.1, positions="generated"),
         Intervention("subtract", direction=b, layers=[L], strength=0.05)],
    ]

    def packed(n: int = N) -> None:
        out = m.generate([PACKED_PROMPT] * len(conditions), interventions=conditions, max_new_tokens=n,
                         min_new_tokens=n)
        assert out.n_steps == n

    def one_per_condition(n: int = N) -> None:
        for c in conditions:
            m.generate([PACKED_PROMPT], interventions=c, max_new_tokens=n, min_new_tokens=n)

    info = {"prompts": len(prompts), "new_tokens": N, "steer_layer": L, "strength": 0.1,
            "monitor_directions": len(monitor), "monitor_layers": monitor_layers,
            "packed_conditions": len(conditions)}
    return (dict(hf_generate=hf_generate, steered_generate=steered, monitored_generate=monitored,
                 packed_generate=packed, one_call_per_condition=one_per_condition), info)


def _corpus(n_stories: int, n_neutral: int) -> tuple[list[str], list[int], int]:
    """The first n shipped stories (labelled by emotion) + the first n neutral texts (-1)."""
    from . import emotions as emo

    stories = emo.stories()[:n_stories]
    names = list(dict.fromkeys(r.emotion for r in stories))
    texts = [r.text for r in stories] + [r.text for r in emo.neutral()[:n_neutral]]
    labels = [names.index(r.emotion) for r in stories] + [-1] * n_neutral
    return texts, labels, len(names)


def memory_corpus(tokenizer: Any, s: Settings, scale: int) -> tuple[list[str], list[int], int]:
    """The 4x corpus is the first 4n stories; the 1x corpus is the n longest of them.

    Peak memory is set by the largest padded batch, i.e. by the longest texts; giving both
    corpora the same longest texts makes any difference growth with corpus size, which is
    what a streaming extraction must not show. The neutral set is the same for both (as in
    `extract_directions`, whose neutral corpus does not grow with the emotions asked for).
    """
    texts, labels, n_labels = _corpus(4 * s.memory_stories, s.memory_neutral)
    n = 4 * s.memory_stories
    if scale == 1:
        lengths = [len(x) for x in tokenizer(texts[:n])["input_ids"]]
        keep = sorted(sorted(range(n), key=lambda i: -lengths[i])[: s.memory_stories])
        texts = [texts[i] for i in keep] + texts[n:]
        labels = [labels[i] for i in keep] + labels[n:]
    return texts, labels, n_labels


def extraction_variants(hf: Any, m: Any, tok: Any, s: Settings, device: str) -> tuple[dict, dict]:
    """stream_means over one batch at every layer vs a plain forward (and the decoder stack alone)."""
    import torch

    from .extraction import stream_means

    texts, labels, n_labels = _corpus(s.extract_stories, s.extract_neutral)
    layers = list(range(m.n_layers))
    trunk = hf.get_submodule(m.block_path.rsplit(".", 1)[0])     # the decoder stack without lm_head

    def extract() -> None:
        stream_means(m, texts, labels, n_labels, layers, progress=False)

    def hf_forward() -> None:
        enc = tok(texts, return_tensors="pt", padding=True).to(device)
        with torch.no_grad():
            hf(**enc)

    def hf_trunk_forward() -> None:
        enc = tok(texts, return_tensors="pt", padding=True).to(device)
        with torch.no_grad():
            trunk(**enc)

    enc = tok(texts, return_tensors="pt", padding=True)
    info = {"texts": len(texts), "batch_shape": list(enc["input_ids"].shape),
            "real_tokens": int(enc["attention_mask"].sum()), "layers": len(layers)}
    return {"extract": extract, "hf_forward": hf_forward, "hf_trunk_forward": hf_trunk_forward}, info


# ---- memory: one fresh subprocess per variant -------------------------------------------------
def _rss_kb(field: str) -> int | None:
    try:
        for line in open("/proc/self/status"):
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def memory_child(args: argparse.Namespace) -> dict[str, Any]:
    """Runs in a fresh process: load, warm up, then peak memory of one extraction above baseline."""
    import resource

    import torch

    from .extraction import stream_means

    torch.set_num_threads(args.threads)
    hf, m, _ = load_pair(args.model, args.device)
    s = Settings(**json.loads(args.settings))
    texts, labels, n_labels = memory_corpus(m.tokenizer, s, args.scale)
    layers = list(range(m.n_layers))
    stream_means(m, texts[:2] + texts[-2:], labels[:2] + labels[-2:], n_labels, layers, progress=False)
    with torch.no_grad():        # weights may be file-backed mmap pages that only count once read
        for p in hf.parameters():  # (e.g. embedding rows of tokens not seen yet): read them all now
            p.sum()
    gc.collect()
    out: dict[str, Any] = {"texts": len(texts), "scale": args.scale}
    cuda = args.device.startswith("cuda")
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base_gpu = torch.cuda.memory_allocated()
    hwm_reset = False
    try:                                          # reset the kernel's peak-RSS mark to "now"
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        hwm_reset = True
    except OSError:
        pass
    base_kb = _rss_kb("VmRSS") if hwm_reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t = time.perf_counter()
    stats = stream_means(m, texts, labels, n_labels, layers, progress=False, max_tokens=s.memory_max_tokens)
    if cuda:
        torch.cuda.synchronize()
        out["gpu_peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
        out["gpu_working_set_mb"] = (torch.cuda.max_memory_allocated() - base_gpu) / 2**20
    out["seconds"] = time.perf_counter() - t
    peak_kb = _rss_kb("VmHWM") if hwm_reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    out["rss_peak_mb"] = peak_kb / 1024                      # the process, loaded model included
    out["rss_working_set_mb"] = (peak_kb - base_kb) / 1024   # above the loaded, warmed-up model
    out["rss_method"] = ("VmHWM after /proc/self/clear_refs=5 (working set: minus VmRSS before)" if hwm_reset
                         else "ru_maxrss (working set: minus ru_maxrss before)")
    out["tokens"] = int(stats["counts"].sum())
    out["peak_mb"] = out["gpu_peak_mb"] if cuda else out["rss_peak_mb"]
    out["working_set_mb"] = out["gpu_working_set_mb"] if cuda else out["rss_working_set_mb"]
    return out


# glibc raises its mmap threshold to the largest block it has freed, after which freed
# activation blocks stay in its heap, and batches of new shapes cannot reuse them all: the peak
# RSS of identical runs then wanders by ~100 MB or more (plain HF forwards alike). A fixed
# threshold returns every large block to the OS when it is freed, so a child's peak RSS is the
# memory that was live. The headline ratio uses it; the default allocator is reported beside.
PINNED_MALLOC = {"MALLOC_MMAP_THRESHOLD_": "131072"}


def _memory_child_run(s: Settings, model: str, device: str, threads: int, scale: int, env: dict) -> dict:
    cmd = [sys.executable, "-m", "steer.bench", "--memory-child", "--model", model, "--device", device,
           "--threads", str(threads), "--scale", str(scale), "--settings", json.dumps(asdict(s))]
    base = {k: v for k, v in os.environ.items() if k not in PINNED_MALLOC}
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**base, **env, "TQDM_DISABLE": "1"})
    if proc.returncode != 0:
        raise RuntimeError(f"memory subprocess failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run_memory(s: Settings, model: str, device: str, threads: int, log: Callable[[str], None]) -> dict[str, Any]:
    """Peak memory of extracting the 1x and the 4x corpus, each in a fresh process (1x, 4x, 4x, 1x, ...)."""
    modes = {"pinned": PINNED_MALLOC}
    if s.memory_default_malloc and device == "cpu":
        modes["glibc_default"] = {}
    out: dict[str, Any] = {}
    for mode, env in modes.items():
        runs: dict[str, list[dict]] = {"1x": [], "4x": []}
        for r in range(s.memory_repeats):
            for name in (["1x", "4x"] if r % 2 == 0 else ["4x", "1x"]):
                log(f"memory: extracting the {name} corpus in a fresh process ({mode} malloc)")
                runs[name].append(_memory_child_run(s, model, device, threads, int(name[0]), env))
        peak = {k: _med([x["peak_mb"] for x in v]) for k, v in runs.items()}
        work = {k: _med([x["working_set_mb"] for x in v]) for k, v in runs.items()}
        out[mode] = {"peak_mb_1x": peak["1x"], "peak_mb_4x": peak["4x"],
                     "ratio": peak["4x"] / peak["1x"] if peak["1x"] > 0 else float("inf"),
                     "working_set_mb_1x": work["1x"], "working_set_mb_4x": work["4x"],
                     "working_set_ratio": work["4x"] / work["1x"] if work["1x"] > 0 else float("inf"),
                     "runs": runs}
    head = out["pinned"]
    head["method"] = (f"peak RSS of a fresh process ({head['runs']['1x'][0]['rss_method']}); "
                      "children run with MALLOC_MMAP_THRESHOLD_=131072"
                      if device == "cpu" else "torch.cuda.max_memory_allocated (working set: minus memory_allocated before)")
    if "glibc_default" in out:
        head["glibc_default"] = out["glibc_default"]
    return head


# ---- the whole benchmark ---------------------------------------------------------------------
def run_bench(*, device: str = "cpu", quick: bool = False, model: str | None = None, threads: int = 0,
              repeats: int | None = None, default_malloc: bool = False,
              log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Measure everything and return the JSON-ready result."""
    import torch

    log = log or (lambda msg: None)
    t_start = time.perf_counter()
    load_start = _loadavg()
    warnings.filterwarnings("ignore")
    os.environ.setdefault("TQDM_DISABLE", "1")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("steer-bench: --device cuda but CUDA is not available")
    model = model or ("embedded" if device == "cpu" else "random-1b")
    n_threads, why = pick_threads(threads)
    torch.set_num_threads(n_threads)
    s = Settings.quick() if quick else Settings()
    if repeats:
        s.repeats = s.packed_repeats = s.extract_repeats = repeats
    s.memory_default_malloc = s.memory_default_malloc or default_malloc
    where = (f"cuda: {torch.cuda.get_device_name(torch.device(device))}" if device.startswith("cuda")
             else f"cpu: {_cpu_name()}, {os.cpu_count()} cores, torch threads {n_threads} ({why})")
    log(f"steer-bench running on {where}; load average {load_start}")

    hf, m, tok = load_pair(model, device)
    m.residual_norm(0)                              # norms: measured once and cached, never timed
    n_params = sum(p.numel() for p in hf.parameters())
    model_info = {"name": m.name, "source": "embedded SmolLM2-135M-Instruct" if model == "embedded"
                  else "randomly initialised from config (no download)", "architecture": type(hf).__name__,
                  "n_layers": m.n_layers, "d_model": m.d_model, "vocab_size": hf.config.vocab_size,
                  "params": n_params, "dtype": str(m.dtype).replace("torch.", "")}
    if model != "embedded":
        model_info["config"] = {k: getattr(hf.config, k) for k in RANDOM_1B}
    log(f"model {m.name}: {m.n_layers} layers, d_model {m.d_model}, {n_params / 1e6:.0f}M params, {m.dtype}")

    gen, gen_info = generation_variants(hf, m, tok, s, device)
    ext, ext_info = extraction_variants(hf, m, tok, s, device)
    log("warming up every variant")
    for fn in gen.values():
        fn(2)
    for fn in ext.values():
        fn()

    log(f"generate: hf / steered / monitored, {s.repeats} interleaved repeats")
    g = interleaved({k: gen[k] for k in ("hf_generate", "steered_generate", "monitored_generate")},
                    s.repeats, device)
    log(f"packed: 8 conditions in one batch / one call each, {s.packed_repeats} interleaved repeats")
    p = interleaved({k: gen[k] for k in ("packed_generate", "one_call_per_condition")}, s.packed_repeats, device)
    log(f"extraction: stream_means / plain forward, {s.extract_repeats} interleaved repeats")
    e = interleaved(ext, s.extract_repeats, device)
    del hf, m, gen, ext
    gc.collect()
    mem = run_memory(s, model, device, n_threads, log)

    times = {**g, **p, **e}
    med = {k: _med(v) for k, v in times.items()}
    tokens = gen_info["prompts"] * gen_info["new_tokens"]
    episodes = gen_info["packed_conditions"]
    result: dict[str, Any] = {
        "steer_overhead": med["steered_generate"] / med["hf_generate"],
        "monitor_overhead": med["monitored_generate"] / med["hf_generate"],
        "extract_ratio": med["extract"] / med["hf_forward"],
        "extract_memory_ratio": mem["ratio"],
        "packed_speedup": med["one_call_per_condition"] / med["packed_generate"],
    }
    result["goals_met"] = {k: (result[k] <= t if op == "<=" else result[k] >= t) for k, (op, t) in GOALS.items()}
    result["goals"] = {k: f"{op} {t}" for k, (op, t) in GOALS.items()}
    result.update({
        "extract_vs_trunk_forward": med["extract"] / med["hf_trunk_forward"],
        "seconds": {k: round(v, 4) for k, v in med.items()},
        "tokens_per_s": {"unsteered": tokens / med["hf_generate"], "steered": tokens / med["steered_generate"],
                         "monitored": tokens / med["monitored_generate"],
                         "packed": episodes * gen_info["new_tokens"] / med["packed_generate"],
                         "one_call_per_condition": episodes * gen_info["new_tokens"] / med["one_call_per_condition"]},
        "episodes_per_s": {"packed": episodes / med["packed_generate"],
                           "one_call_per_condition": episodes / med["one_call_per_condition"]},
        "extract_tokens_per_s": ext_info["real_tokens"] / med["extract"],
        "extract_working_set_ratio": mem["working_set_ratio"],
        "peak_memory_mb": {"extract_1x": mem["peak_mb_1x"], "extract_4x": mem["peak_mb_4x"],
                           "working_set_1x": mem["working_set_mb_1x"], "working_set_4x": mem["working_set_mb_4x"],
                           "method": mem["method"], "runs": mem["runs"]},
        "extract_memory_ratio_glibc_default": mem.get("glibc_default", {}).get("ratio"),
        "peak_memory_mb_glibc_default": ({k: v for k, v in mem["glibc_default"].items() if k != "ratio"}
                                         if "glibc_default" in mem else None),
        "samples_s": {k: [round(x, 4) for x in v] for k, v in times.items()},
        "device": device, "where": where, "threads": n_threads if device == "cpu" else None,
        "model": model_info,
        "versions": _versions(),
        "settings": {**asdict(s), "quick": quick}, "generation": gen_info, "extraction": ext_info,
        "load_average": {"start": load_start, "end": _loadavg()},
        "total_seconds": round(time.perf_counter() - t_start, 1),
    })
    return result


def _fmt(x: float) -> str:
    return f"{x:.3f}"


def table(r: dict[str, Any]) -> str:
    """The result as a readable table."""
    sec, g = r["seconds"], r["generation"]
    lines = [f"steer-bench on {r['where']}",
             f"model {r['model']['name']} ({r['model']['params'] / 1e6:.0f}M params, {r['model']['dtype']}); "
             f"torch {r['versions']['torch']}, transformers {r['versions']['transformers']}, "
             f"nnsight {r['versions']['nnsight']}, steer {r['versions']['steer']}",
             f"load average start {r['load_average']['start']} end {r['load_average']['end']}; "
             f"medians of interleaved repeats; total {r['total_seconds']} s", "",
             f"{'key':<22}{'value':>9}  {'goal':<8}{'met':<5}what",
             "-" * 100]
    what = {
        "steer_overhead": f"steered {sec['steered_generate']:.3f} s / HF {sec['hf_generate']:.3f} s "
                          f"({g['prompts']} prompts x {g['new_tokens']} tokens)",
        "monitor_overhead": f"steered + {g['monitor_directions']} monitored directions at layers "
                            f"{g['monitor_layers']} {sec['monitored_generate']:.3f} s / HF",
        "extract_ratio": f"stream_means {sec['extract']:.3f} s / plain forward {sec['hf_forward']:.3f} s "
                         f"(batch {r['extraction']['batch_shape']}, {r['extraction']['layers']} layers)",
        "extract_memory_ratio": f"peak {r['peak_memory_mb']['extract_4x']:.1f} MB (4x) / "
                                f"{r['peak_memory_mb']['extract_1x']:.1f} MB (1x)",
        "packed_speedup": f"{r['episodes_per_s']['packed']:.2f} vs "
                          f"{r['episodes_per_s']['one_call_per_condition']:.2f} episodes/s "
                          f"({g['packed_conditions']} conditions)",
    }
    for k in GOALS:
        lines.append(f"{k:<22}{_fmt(r[k]):>9}  {r['goals'][k]:<8}{'yes' if r['goals_met'][k] else 'NO':<5}{what[k]}")
    tps = r["tokens_per_s"]
    lines += ["", f"tokens/s: unsteered {tps['unsteered']:.1f}, steered {tps['steered']:.1f}, "
                  f"monitored {tps['monitored']:.1f}, packed {tps['packed']:.1f}, "
                  f"one call per condition {tps['one_call_per_condition']:.1f}",
              f"extraction: {r['extract_tokens_per_s']:.0f} tokens/s; vs the decoder stack alone "
              f"(no lm_head) {_fmt(r['extract_vs_trunk_forward'])}",
              f"extraction working set above the loaded model: {r['peak_memory_mb']['working_set_4x']:.1f} MB (4x) / "
              f"{r['peak_memory_mb']['working_set_1x']:.1f} MB (1x) = {_fmt(r['extract_working_set_ratio'])}"]
    if r.get("extract_memory_ratio_glibc_default") is not None:
        d = r["peak_memory_mb_glibc_default"]
        lines.append(f"extraction peak memory with glibc's default malloc: "
                     f"{d['peak_mb_4x']:.1f} MB (4x) / {d['peak_mb_1x']:.1f} MB (1x) = "
                     f"{_fmt(r['extract_memory_ratio_glibc_default'])}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="steer-bench", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", action="store_true", help="print one JSON object (progress goes to stderr)")
    ap.add_argument("--quick", action="store_true", help="a fast smoke run (few tokens, one repeat)")
    ap.add_argument("--device", default="cpu", help="cpu (default) or cuda[:N]")
    ap.add_argument("--model", choices=["embedded", "random-1b"], default=None,
                    help="default: embedded on cpu, random-1b on cuda")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = auto)")
    ap.add_argument("--repeats", type=int, default=None, help="override every group's repeat count")
    ap.add_argument("--default-malloc", action="store_true",
                    help="also measure extraction memory under glibc's default (dynamic) mmap threshold")
    ap.add_argument("--memory-child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--scale", type=int, default=1, help=argparse.SUPPRESS)
    ap.add_argument("--settings", default="{}", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.memory_child:
        warnings.filterwarnings("ignore")
        args.model = args.model or ("embedded" if args.device == "cpu" else "random-1b")
        print(json.dumps(memory_child(args)))
        return

    def log(msg: str) -> None:
        print(f"[steer-bench] {msg}", file=sys.stderr if args.json else sys.stdout, flush=True)

    result = run_bench(device=args.device, quick=args.quick, model=args.model, threads=args.threads,
                       repeats=args.repeats, default_malloc=args.default_malloc, log=log)
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        print(table(result))


if __name__ == "__main__":
    main()
