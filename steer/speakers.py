"""Speaker-specific emotion directions: the assistant's own state, the state it sees in the user,
and a state it holds but does not show, from two-speaker dialogues.

Three direction sets, each with extraction's recipe (class mean minus the mean over concepts,
the neutral dialogues' top principal components projected out, unit length):

    present     kind "present" dialogues (the assistant is in the state), read at the assistant's tokens
    other       kind "other" dialogues (the user is in the state), read at the user's tokens
    deflection  kind "deflection" dialogues (the assistant hides the state), read at the assistant's tokens

"Tokens of a speaker" are the content tokens of that role's messages in the chat template
(steer.positions role spans); each dialogue's mean over them counts once toward its concept.
`validate_speakers` (steer.speakers_report) measures how far apart the sets are.

>>> sets = extract_speaker_directions(m, emotions=["desperate", "calm"])
>>> sets["present"].vector("desperate", 14) @ sets["other"].vector("desperate", 14)
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from .cache import cache_dir
from .directions import DirectionSet
from .errors import SteerError
from .extraction import _batches, _project_out, neutral_basis
from .interventions import normalize_layers, resolve_layers

KINDS = ("present", "other", "deflection")
READ_ROLE = {"present": "assistant", "other": "user", "deflection": "assistant"}
SPEAKERS_VERSION = 1          # bump when the math changes, so caches are not reused


@dataclass(frozen=True)
class Exchange:
    """One dialogue as steer reads it: concept (None for neutral), kind and chat messages."""

    id: str
    emotion: str | None
    kind: str
    messages: tuple[tuple[str, str], ...]

    def chat(self) -> list[dict[str, str]]:
        return [{"role": r, "content": c} for r, c in self.messages]


def _exchange(row: Any, where: str) -> Exchange:
    """A loader Dialogue, a dict in the corpus schema or an Exchange -> Exchange."""
    if isinstance(row, Exchange):
        return row
    get = row.get if isinstance(row, dict) else lambda k, d=None: getattr(row, k, d)
    turns = get("turns") or ()
    msgs = []
    for t in turns:
        role, content = (t.get("role"), t.get("content")) if isinstance(t, dict) else tuple(t)
        msgs.append((str(role), str(content)))
    kind = get("kind")
    if kind not in KINDS + ("neutral",):
        raise SteerError(f"{where}: kind {kind!r} is not one of {KINDS + ('neutral',)}")
    if not msgs:
        raise SteerError(f"{where}: no turns")
    emotion = get("emotion")
    if kind != "neutral" and not emotion:
        raise SteerError(f"{where}: a {kind!r} dialogue needs an emotion")
    return Exchange(str(get("id") or where), emotion if kind != "neutral" else None, kind, tuple(msgs))


def load_exchanges(source: Any = None) -> list[Exchange]:
    """Dialogues from the shipped corpus (None), a JSONL file or folder in its schema, or records."""
    if source is None:
        from .emotions import dialogues as shipped

        return [_exchange(d, d.id) for d in list(shipped.dialogues()) + list(shipped.neutral_dialogues())]
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        files = sorted(path.glob("*.jsonl")) if path.is_dir() else [path]
        if not files or not all(f.is_file() for f in files):
            raise SteerError(f"no dialogue JSONL at {str(source)!r}")
        out = []
        for f in files:
            for i, line in enumerate(f.read_text().splitlines()):
                if line.strip():
                    try:
                        row = json.loads(line)
                    except json.JSONDecodeError as exc:
                        raise SteerError(f"{f}:{i + 1}: not JSON ({exc.msg})") from None
                    out.append(_exchange(row, f"{f.name}:{i + 1}"))
        return out
    return [_exchange(r, f"record {i}") for i, r in enumerate(source)]


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def speaker_means(model: Any, exchanges: Sequence[Exchange], layers: list[int], *, neutral_cap: int = 2048,
                  max_tokens: int = 4096, progress: bool = True, desc: str = "speakers") -> dict[str, Any]:
    """One batched no-grad pass: per dialogue and layer, the mean residual at the assistant's and at
    the user's content tokens ([N, L, D] each, NaN where a role has no tokens), and evenly spaced
    content-token samples of the neutral dialogues for the PCA ([n, D] per layer)."""
    chats = [x.chat() for x in exchanges]
    fed = model.format_prompts(chats, chat=True)
    ids = [model.tokenizer(t, add_special_tokens=False)["input_ids"] for t in fed]
    turns = model.chat_turns(chats)
    L, D, N = len(layers), model.d_model, len(exchanges)
    A = torch.full((N, L, D), float("nan"))
    U = torch.full((N, L, D), float("nan"))
    n_neutral = sum(x.kind == "neutral" for x in exchanges)
    per = max(1, neutral_cap // max(1, n_neutral))
    picks = {}
    for i, x in enumerate(exchanges):
        if x.kind == "neutral":
            pos = [p for t in turns[i] for p in range(t.start, t.end)]
            picks[i] = pos[::max(1, len(pos) // per)][:per]
    samples = [[] for _ in layers]
    pad = model.tokenizer.pad_token_id
    bar = tqdm(total=N, desc=desc, disable=not progress, leave=False)
    for batch in _batches([len(x) for x in ids], max_tokens, 64):
        T = max(len(ids[i]) for i in batch)
        input_ids = torch.full((len(batch), T), pad, dtype=torch.long)
        mask = torch.zeros(len(batch), T, dtype=torch.long)
        w = torch.zeros(2, len(batch), T)                             # 0: assistant, 1: user
        pr, pc = [], []
        for r, i in enumerate(batch):
            s = T - len(ids[i])
            input_ids[r, s:] = torch.tensor(ids[i])
            mask[r, s:] = 1
            for t in turns[i]:
                if t.role in ("assistant", "user"):
                    w[0 if t.role == "assistant" else 1, r, s + t.start:s + t.end] = 1.0
            for p in picks.get(i, []):
                pr.append(r)
                pc.append(s + p)
        counts = w.sum(-1)                                            # [2, B]
        wn = (w / counts.clamp(min=1).unsqueeze(-1)).to(device=model.device, dtype=model.dtype)
        pick_r = torch.tensor(pr, dtype=torch.long, device=model.device)
        pick_c = torch.tensor(pc, dtype=torch.long, device=model.device)

        def reduce(layer: int, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return torch.einsum("btd,sbt->sbd", x, wn).float(), x[pick_r, pick_c].float()

        enc = {"input_ids": input_ids.to(model.device), "attention_mask": mask.to(model.device)}
        saved = model._forward(enc, {}, T, capture=set(layers), reducer=reduce)
        rows = torch.tensor(batch)
        for j, layer in enumerate(layers):
            means, sampled = (t.cpu() for t in saved[("res", layer)])
            A[rows, j] = torch.where(counts[0].unsqueeze(-1) > 0, means[0], torch.tensor(float("nan")))
            U[rows, j] = torch.where(counts[1].unsqueeze(-1) > 0, means[1], torch.tensor(float("nan")))
            if len(pr):
                samples[j].append(sampled)
        bar.update(len(batch))
    bar.close()
    neutral = [torch.cat(s) if s else torch.zeros(0, D) for s in samples]
    return {"assistant": A, "user": U, "neutral": neutral}


def split(exchanges: Sequence[Exchange], holdout: float) -> tuple[list[Exchange], list[Exchange]]:
    """Every k-th dialogue of each (concept, kind) is held out (k = round(1 / holdout), at least 2)."""
    if not 0.0 <= holdout < 1.0:
        raise SteerError(f"holdout={holdout!r} must be in [0, 1)")
    every = max(2, round(1 / holdout)) if holdout else 0
    seen: dict[tuple, int] = {}
    train, test = [], []
    for x in exchanges:
        k = seen.get((x.emotion, x.kind), 0)
        seen[(x.emotion, x.kind)] = k + 1
        (test if every and x.kind != "neutral" and k % every == every - 1 else train).append(x)
    return train, test


def extract_speaker_directions(model: Any, *, dialogues: Any = None, emotions: Sequence[str] | None = None,
                               layers: Any = "all", holdout: float = 0.25, neutral_variance: float = 0.5,
                               cache: bool = True, progress: bool = True) -> dict[str, DirectionSet]:
    """{"present", "other", "deflection"} -> DirectionSet (same concepts and layers in each).

    dialogues: None (the shipped corpus), a JSONL file/folder in its schema, or records;
    emotions: concepts to keep (default: every concept that has all three kinds).
    Each set's meta holds its held-out dialogues for `validate_speakers`.

    >>> sets = extract_speaker_directions(m, dialogues="tests/data/dialogues_fixture.jsonl", holdout=0.5)
    """
    if not 0.0 <= neutral_variance < 1.0:
        raise SteerError(f"neutral_variance={neutral_variance!r} must be in [0, 1)")
    layer_list = list(resolve_layers(normalize_layers(layers), model.n_layers))
    every = load_exchanges(dialogues)
    neutral = [x for x in every if x.kind == "neutral"]
    if not neutral:
        raise SteerError("the dialogues have no neutral exchanges (kind 'neutral'), needed for the PCA")
    have = {k: {x.emotion for x in every if x.kind == k} for k in KINDS}
    names = list(emotions) if emotions is not None else \
        [e for e in dict.fromkeys(x.emotion for x in every if x.emotion) if all(e in have[k] for k in KINDS)]
    for e in names:
        for k in KINDS:
            if e not in have[k]:
                raise SteerError(f"no {k!r} dialogues for emotion {e!r}")
    if len(names) < 2:
        raise SteerError("need at least two concepts with present, other and deflection dialogues")
    chosen = [x for x in every if x.emotion in set(names)]
    train, test = split(chosen, holdout)
    meta = {"model": model.name, "model_fingerprint": model.fingerprint, "method": "mean_diff", "layers": layer_list,
            "emotions": names, "holdout": holdout, "neutral_variance": neutral_variance, "version": SPEAKERS_VERSION,
            "corpus_hash": _digest([(x.id, x.emotion, x.kind, x.messages) for x in chosen]),
            "neutral_hash": _digest([x.messages for x in neutral])}
    key = _digest(meta)
    base = cache_dir("speakers") / key
    if cache and all(base.with_name(f"{key}-{k}.safetensors").exists() for k in KINDS):
        return {k: DirectionSet.load(base.with_name(f"{key}-{k}"), model=model) for k in KINDS}
    t0 = time.time()
    stats = speaker_means(model, train + neutral, layer_list, progress=progress)
    index = {e: i for i, e in enumerate(names)}
    held = [{"id": x.id, "emotion": x.emotion, "kind": x.kind, "turns": [list(m) for m in x.messages]} for x in test]
    out = {}
    for kind in KINDS:
        reads = stats[READ_ROLE[kind]]
        means = torch.zeros(len(names), len(layer_list), model.d_model)
        for e, i in index.items():
            rows = [r for r, x in enumerate(train) if x.kind == kind and x.emotion == e]
            got = reads[rows]
            if torch.isnan(got).all(-1).any():
                bad = train[rows[int(torch.isnan(got).all(-1).any(-1).nonzero()[0])]].id
                raise SteerError(f"dialogue {bad!r} has no {READ_ROLE[kind]} tokens to read")
            means[i] = got.mean(0)
        center = means.mean(0)
        vectors = torch.zeros_like(means)
        for j in range(len(layer_list)):
            basis = neutral_basis(stats["neutral"][j], neutral_variance)
            v = _project_out(means[:, j] - center[j], basis)
            vectors[:, j] = v / v.norm(dim=1, keepdim=True).clamp(min=1e-12)
        info = {**meta, "speaker_set": kind, "read_role": READ_ROLE[kind], "heldout_dialogues": held,
                "n_train": {e: sum(x.kind == kind and x.emotion == e for x in train) for e in names},
                "seconds": round(time.time() - t0, 1)}
        ds = DirectionSet(vectors, names, layer_list, info, center)
        if cache:
            ds.save(base.with_name(f"{key}-{kind}"))
        out[kind] = ds
    return out


def validate_speakers(model: Any, sets: dict[str, DirectionSet], **kw: Any) -> dict[str, Any]:
    """Cosines between the sets and with story directions, cross-classification, report (see
    steer.speakers_report.validate_speakers)."""
    from .speakers_report import validate_speakers as run

    return run(model, sets, **kw)
