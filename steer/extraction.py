"""Corpus -> streamed per-layer means -> one unit direction per emotion and layer.

One batched, padding-aware, no-grad pass over the corpus captures every requested layer at
once and reduces each batch to per-text sums inside the trace, so memory does not grow with the
corpus (methods "pca" and "logistic" keep one mean per text, which they need).

mean_diff (default): direction(e) = mean(e) - mean over emotions of mean(e'), with the neutral
corpus's top principal components (explaining `neutral_variance` of its variance) projected
out, normalised to unit length.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from tqdm.auto import tqdm

from . import emotions as emo
from .cache import cache_dir
from .directions import DirectionSet, provenance
from .errors import SteerError
from .interventions import normalize_layers, resolve_layers

METHODS: dict[str, Callable[..., torch.Tensor]] = {}
EXTRACTION_VERSION = 1        # bump when the math changes, so caches are not reused


def method(name: str) -> Callable:
    def register(fn: Callable) -> Callable:
        METHODS[name] = fn
        return fn
    return register


@dataclass
class Corpus:
    """Texts with integer labels (-1 = neutral) and the names behind the labels."""

    texts: list[str]
    labels: list[int]
    names: list[str]


def split_holdout(records: Sequence[Any], holdout: float) -> tuple[list[Any], list[Any]]:
    """Deterministic per-emotion split: every k-th text of each emotion is held out."""
    if not 0.0 <= holdout < 1.0:
        raise SteerError(f"holdout={holdout!r} must be in [0, 1)")
    if holdout == 0.0:
        return list(records), []
    every = max(2, round(1 / holdout))
    seen: dict[str, int] = {}
    train, test = [], []
    for r in records:
        i = seen.get(r.emotion, 0)
        seen[r.emotion] = i + 1
        (test if i % every == every - 1 else train).append(r)
    return train, test


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _batches(lengths: list[int], max_tokens: int, max_rows: int) -> list[list[int]]:
    """Length-sorted batches under a padded-token budget (little padding, bounded memory)."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    batches, cur, longest = [], [], 0
    for i in order:
        new_longest = max(longest, lengths[i])
        if cur and (new_longest * (len(cur) + 1) > max_tokens or len(cur) >= max_rows):
            batches.append(cur)
            cur, new_longest = [], lengths[i]
        cur.append(i)
        longest = new_longest
    if cur:
        batches.append(cur)
    return batches


def _format(model: Any, texts: list[str], chat: bool) -> tuple[list[str], list[int]]:
    """Texts as fed, and how many leading tokens are template (not content) in each."""
    if not chat:
        return texts, [0] * len(texts)
    formatted = model.format_prompts(texts, chat=True)
    prefixes = []
    for text, full in zip(texts, formatted):
        prefix = full[: full.index(text)] if text in full else ""
        prefixes.append(len(model.tokenizer(prefix, add_special_tokens=False)["input_ids"]))
    return formatted, prefixes


def stream_means(model: Any, texts: list[str], labels: list[int], n_labels: int, layers: list[int], *,
                 skip: int = 4, chat: bool = False, max_tokens: int = 4096, max_rows: int = 64,
                 keep_text_means: bool = False, neutral_cap: int = 2048, progress: bool = True,
                 desc: str = "extracting") -> dict[str, Any]:
    """One pass: per-label token sums and counts at every layer (labels >= 0), sampled neutral
    token vectors for PCA (label -1), and optionally one mean per text.

    The first `skip` tokens of each text (and always token 0, the attention sink) are left out.
    """
    fed, prefix = _format(model, texts, chat)
    ids = model.tokenizer(fed, add_special_tokens=not chat)["input_ids"]     # tokenised once
    lengths = [len(x) for x in ids]
    # Row-relative index of each text's first counted token (token 0 never counts).
    first = [min(max(1, prefix[i] + skip), lengths[i] - 1) for i in range(len(texts))]
    n_neutral = sum(1 for y in labels if y < 0)
    per_neutral = max(1, neutral_cap // max(1, n_neutral))
    # Evenly spaced kept tokens per neutral text, as offsets from its first counted token;
    # known up front, so the samples go straight into one preallocated buffer per layer.
    offsets = {i: _spaced(lengths[i] - first[i], per_neutral) for i, y in enumerate(labels) if y < 0}
    L, D = len(layers), model.d_model
    sums = torch.zeros(n_labels, L, D, dtype=torch.float64)
    counts = torch.zeros(n_labels, dtype=torch.float64)
    n_samples = sum(len(o) for o in offsets.values())
    neutral = [torch.zeros(n_samples, D) for _ in layers]
    filled = 0
    text_means = torch.zeros(len(texts), L, D) if keep_text_means else None
    li = {layer: j for j, layer in enumerate(layers)}
    batches = _batches(lengths, max_tokens, max_rows)
    pad_id = model.tokenizer.pad_token_id
    bar = tqdm(total=sum(lengths), unit="tok", desc=desc, disable=not progress, leave=False)
    for batch in batches:
        enc = _left_padded([ids[i] for i in batch], pad_id, model.device)
        T = enc["input_ids"].shape[1]
        starts = torch.tensor([T - lengths[i] + first[i] for i in batch])
        keep = (torch.arange(T).unsqueeze(0) >= starts.unsqueeze(1)).float()
        keep_dev = keep.to(device=model.device, dtype=model.dtype)
        rows = torch.tensor([labels[i] for i in batch])
        pr = [torch.full((len(offsets[i]),), r, dtype=torch.long) for r, i in enumerate(batch) if i in offsets]
        pc = [int(starts[r]) + offsets[i] for r, i in enumerate(batch) if i in offsets]
        n_picks = sum(len(p) for p in pr)
        pick_r = (torch.cat(pr) if pr else torch.zeros(0, dtype=torch.long)).to(model.device)
        pick_c = (torch.cat(pc) if pc else torch.zeros(0, dtype=torch.long)).to(model.device)

        def reduce(layer: int, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            # Stays on the model's device: one transfer per batch below, not a sync per layer.
            return torch.einsum("btd,bt->bd", x, keep_dev).float(), x[pick_r, pick_c].float()

        saved = model._forward(enc, {}, T, capture=set(layers), reducer=reduce)
        n_kept = keep.sum(1, keepdim=True).clamp(min=1)
        labelled = rows >= 0
        for layer in layers:
            per_text, sampled = (t.cpu() for t in saved[("res", layer)])
            j = li[layer]
            if labelled.any():
                sums[:, j].index_add_(0, rows[labelled], per_text[labelled].double())
            if text_means is not None:
                text_means[torch.tensor(batch), j] = per_text / n_kept
            if n_picks:
                neutral[j][filled:filled + n_picks] = sampled
        del saved, per_text, sampled         # copied out: free them before the next batch runs
        filled += n_picks
        if labelled.any():
            counts.index_add_(0, rows[labelled], keep.sum(1)[labelled].double())
        bar.update(sum(lengths[i] for i in batch))
        if model.device.type == "cpu":
            _trim_heap()
    bar.close()
    return {"sums": sums, "counts": counts, "text_means": text_means, "neutral": neutral}


_MALLOC_TRIM: list = []


def _trim_heap() -> None:
    """Give freed heap memory back to the OS (glibc only; a no-op elsewhere).

    glibc keeps freed activation blocks in its heap once its mmap threshold has grown, and
    batches of new shapes cannot reuse them all, so without this the resident size of a long
    extraction creeps up with the corpus. Costs well under a millisecond per batch.
    """
    if not _MALLOC_TRIM:
        import ctypes
        import ctypes.util

        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            _MALLOC_TRIM.append(libc.malloc_trim)
        except (OSError, AttributeError):
            _MALLOC_TRIM.append(None)
    if _MALLOC_TRIM[0] is not None:
        _MALLOC_TRIM[0](0)


def _spaced(n: int, cap: int) -> torch.Tensor:
    """At most `cap` evenly spaced offsets in [0, n): every max(1, n // cap)-th one."""
    return torch.arange(0, n, max(1, n // cap))[:cap]


def _left_padded(rows: list[list[int]], pad_id: int, device: torch.device) -> dict[str, torch.Tensor]:
    """Token-id lists -> the left-padded batch `model.tokenize` would build (no re-tokenising)."""
    T = max(len(r) for r in rows)
    input_ids = torch.full((len(rows), T), pad_id, dtype=torch.long)
    mask = torch.zeros(len(rows), T, dtype=torch.long)
    for b, r in enumerate(rows):
        if r:
            input_ids[b, T - len(r):] = torch.tensor(r, dtype=torch.long)
            mask[b, T - len(r):] = 1
    return {"input_ids": input_ids.to(device), "attention_mask": mask.to(device)}


def neutral_basis(samples: torch.Tensor, share: float) -> torch.Tensor:
    """Orthonormal rows spanning the top neutral PCs that explain `share` of the variance."""
    if share <= 0 or samples.shape[0] < 2:
        return torch.zeros(0, samples.shape[1])
    x = samples.double() - samples.double().mean(0)
    _, s, vh = torch.linalg.svd(x, full_matrices=False)
    var = s**2 / (s**2).sum()
    k = int((var.cumsum(0) < share).sum()) + 1
    return vh[:k].float()


def _project_out(v: torch.Tensor, basis: torch.Tensor) -> torch.Tensor:
    return v - (v @ basis.T) @ basis if basis.numel() else v


@method("mean_diff")
def _mean_diff(means: torch.Tensor, **_: Any) -> torch.Tensor:
    """[E, D] class means -> class mean minus the mean over classes."""
    return means - means.mean(0, keepdim=True)


@method("pca")
def _pca(means: torch.Tensor, text_means: torch.Tensor, text_labels: torch.Tensor, **_: Any) -> torch.Tensor:
    """Top principal axis of each class's text means around the grand mean, signed like its mean."""
    grand = means.mean(0)
    out = torch.zeros_like(means)
    for e in range(means.shape[0]):
        x = text_means[text_labels == e] - grand
        _, _, vh = torch.linalg.svd(x.double(), full_matrices=False)
        axis = vh[0].float()
        out[e] = axis if float(axis @ x.mean(0)) >= 0 else -axis
    return out


@method("logistic")
def _logistic(means: torch.Tensor, text_means: torch.Tensor, text_labels: torch.Tensor, *,
              weight_decay: float = 1e-3, steps: int = 100, **_: Any) -> torch.Tensor:
    """Multinomial logistic-regression probe on text means; direction = class weight minus mean."""
    grand = means.mean(0)
    x = text_means - grand
    x = x / x.norm(dim=1).mean()                        # scale-free conditioning
    w = torch.zeros(x.shape[1], means.shape[0], requires_grad=True)
    b = torch.zeros(means.shape[0], requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=steps, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(x @ w + b, text_labels) + weight_decay * (w**2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    weights = w.detach().T
    return weights - weights.mean(0, keepdim=True)


def _texts_hash(records: Sequence[Any]) -> str:
    return _digest([(r.emotion, r.text) for r in records])


RECIPE_KEYS = ("method", "corpus_hash", "neutral_hash", "neutral_variance", "neutral_pcs", "skip", "chat",
               "holdout", "n_texts", "version")


def _self_describing(ds: DirectionSet, model: Any) -> DirectionSet:
    """Add the provenance fields (steer.directions.provenance) a saved set carries; a set cached
    before they existed gets them here too. Added after the cache key is taken, so existing
    caches stay valid."""
    recipe = {k: ds.meta[k] for k in RECIPE_KEYS if k in ds.meta}
    for key, value in provenance(model, ds.layers, recipe=recipe).items():
        ds.meta.setdefault(key, value)
    return ds


def extract_directions(model: Any, *, emotions: Sequence[str] | None = None, layers: Any = "all",
                       method: str = "mean_diff", corpus: Sequence[Any] | str | None = None,
                       neutral: Sequence[Any] | None = None, neutral_variance: float = 0.5,
                       skip: int = 4, chat: bool = False, holdout: float = 0.2,
                       max_tokens: int = 4096, cache: bool = True, progress: bool = True) -> DirectionSet:
    """Extract one unit direction per emotion and layer.

    emotions: names (default: every emotion in the corpus; the shipped corpus has 171);
    corpus: records with .emotion/.text, or a JSONL path (default: the shipped stories);
    neutral: emotionless records (default: the shipped neutral corpus);
    holdout: share of each emotion's texts kept out (every k-th) for `validate_directions`.

    >>> ds = extract_directions(m, emotions=["calm", "desperate"], layers=range(10, 20))
    >>> ds.vector("calm", 12).shape
    torch.Size([576])
    """
    if method not in METHODS:
        raise SteerError(f"unknown method {method!r}; use one of {sorted(METHODS)}")
    if not 0.0 <= neutral_variance < 1.0:
        raise SteerError(f"neutral_variance={neutral_variance!r} must be in [0, 1)")
    if isinstance(skip, bool) or not isinstance(skip, int) or skip < 0:
        raise SteerError(f"skip={skip!r} must be a non-negative int")
    layer_list = list(resolve_layers(normalize_layers(layers), model.n_layers))
    if corpus is None:
        records = emo.stories(emotions)
    elif isinstance(corpus, (str, os.PathLike)):
        records = emo.load_corpus(corpus)
    else:
        records = list(corpus)
    if emotions is not None:
        wanted = set(emotions)
        records = [r for r in records if r.emotion in wanted]
        missing = wanted - {r.emotion for r in records}
        if missing:
            raise SteerError(f"no texts for emotion {sorted(missing)[0]!r} in the corpus")
    if not records:
        raise SteerError("the corpus is empty")
    names = list(dict.fromkeys(r.emotion for r in records))
    if len(names) < 2:
        raise SteerError("need at least two emotions (a direction is relative to the others)")
    neutral_records = list(neutral) if neutral is not None else emo.neutral()
    train, test = split_holdout(records, holdout)

    meta = {"model": model.name, "model_fingerprint": model.fingerprint, "method": method,
            "layers": layer_list, "emotions": names, "skip": skip, "chat": chat,
            "neutral_variance": neutral_variance, "holdout": holdout,
            "corpus_hash": _texts_hash(records), "neutral_hash": _texts_hash(neutral_records),
            "version": EXTRACTION_VERSION}
    key = _digest(meta)
    path = cache_dir("directions") / key
    if cache and path.with_name(key + ".safetensors").exists():
        return _self_describing(DirectionSet.load(path, model=model), model)

    t0 = time.time()
    index = {n: i for i, n in enumerate(names)}
    texts = [r.text for r in train] + [r.text for r in neutral_records]
    labels = [index[r.emotion] for r in train] + [-1] * len(neutral_records)
    needs_texts = method in ("pca", "logistic")
    stats = stream_means(model, texts, labels, len(names), layer_list, skip=skip, chat=chat,
                         max_tokens=max_tokens, keep_text_means=needs_texts, progress=progress)
    if (stats["counts"] == 0).any():
        empty = names[int((stats["counts"] == 0).nonzero()[0])]
        raise SteerError(f"emotion {empty!r} has no tokens left after skip={skip}")
    means = (stats["sums"] / stats["counts"].view(-1, 1, 1)).float()      # [E, L, D]
    vectors = torch.zeros_like(means)
    n_train = len(train)
    text_labels = torch.tensor(labels[:n_train])
    pcs = []
    for j in range(len(layer_list)):
        basis = neutral_basis(stats["neutral"][j], neutral_variance)
        pcs.append(int(basis.shape[0]))
        kw = {}
        if needs_texts:
            kw = {"text_means": stats["text_means"][:n_train, j], "text_labels": text_labels}
        raw = METHODS[method](means[:, j], **kw)
        v = _project_out(raw, basis)
        vectors[:, j] = v / v.norm(dim=1, keepdim=True).clamp(min=1e-12)
    meta.update({"neutral_pcs": pcs, "residual_norms": [model.residual_norm(L) for L in layer_list],
                 "n_texts": len(train), "heldout": [[r.emotion, r.text] for r in test],
                 "seconds": round(time.time() - t0, 2)})
    ds = _self_describing(DirectionSet(vectors, names, layer_list, meta, center=means.mean(0)), model)
    if cache:
        ds.save(path)
    return ds
