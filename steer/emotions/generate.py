"""Stories written by the model under study (the paper's recipe), for models big enough to write
them: concept x topic prompts, the ban filter, de-duplication, and a cache with provenance.

>>> recs = generate_stories(m, ["calm", "desperate"], topics=TOPICS[:4], per_topic=2)
>>> recs[0].emotion, recs[0]["topic"], recs[0]["provenance"]["model"]
"""
from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Sequence
from typing import Any

from tqdm.auto import tqdm

from ..cache import cache_dir
from ..errors import SteerError
from .corpus import Record, banned_words, concept_names, find_banned

TOPICS = (
    "an eviction notice", "a job interview", "a found wallet", "a family dinner", "a late-night phone call",
    "moving to a new city", "a medical test result", "an exam result", "a neighbour's dog", "a wedding",
    "a car breaking down", "a birthday", "a team project at work", "an old friend returning", "a garden",
    "a sports match", "a train journey", "a cooking attempt", "a rainy weekend", "a hospital visit",
    "a first day at a new job", "a small family shop", "a package in the mail", "a school concert",
)

PROMPT = ("Write a short story of 3 to 6 sentences about {topic}. A character in it clearly feels "
          "{emotion}, and the reader can tell from what they do, think and say. Do not use the word "
          "\"{emotion}\" or any word that names the feeling. Write {person}. Reply with the story only.")
PERSONS = ("in the first person", "in the third person, with a named character")


def _shingles(text: str, n: int = 3) -> set[tuple[str, ...]]:
    words = re.findall(r"[a-z']+", text.lower())
    return {tuple(words[i:i + n]) for i in range(max(1, len(words) - n + 1))}


def _clean(text: str) -> str:
    text = text.strip().strip('"').strip()
    return re.sub(r"\s+", " ", text)


def _is_near_duplicate(text: str, kept: list[set], threshold: float) -> bool:
    s = _shingles(text)
    return any(len(s & k) / max(1, len(s | k)) >= threshold for k in kept)


def generate_stories(model: Any, emotions: Sequence[str], *, topics: Sequence[str] = TOPICS,
                     per_topic: int = 2, max_new_tokens: int = 160, temperature: float = 0.9,
                     seed: int = 0, batch_size: int = 16, min_words: int = 25, dedup_threshold: float = 0.6,
                     cache: bool = True, progress: bool = True) -> list[Record]:
    """Have `model` write `per_topic` stories per emotion and topic; keep the clean ones.

    Dropped: stories naming the emotion (its ban list, or the word itself for emotions outside
    the catalogue), shorter than `min_words`, or near-duplicates (word-trigram Jaccard >=
    `dedup_threshold`) of an earlier story of the same emotion. Every record carries
    `meta["provenance"]` (model, fingerprint, prompt, sampling, seed, date) and the cache file
    keeps the drop counts, so a rerun with the same inputs is instant.
    """
    if not emotions:
        raise SteerError("no emotions given")
    if per_topic < 1 or not topics:
        raise SteerError("need per_topic >= 1 and at least one topic")
    known = set(concept_names())
    settings = {"model_fingerprint": model.fingerprint, "emotions": list(emotions), "topics": list(topics),
                "per_topic": per_topic, "max_new_tokens": max_new_tokens, "temperature": temperature,
                "seed": seed, "prompt": PROMPT, "min_words": min_words, "dedup": dedup_threshold}
    key = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]
    path = cache_dir("corpora") / f"stories-{key}.jsonl"
    if cache and path.exists():
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        return [Record(r["text"], r["emotion"], {k: v for k, v in r.items() if k not in ("text", "emotion")})
                for r in rows if "text" in r]

    jobs = [(e, t, k) for e in emotions for t in topics for k in range(per_topic)]
    provenance = {"model": model.name, "model_fingerprint": model.fingerprint, "prompt": PROMPT,
                  "temperature": temperature, "max_new_tokens": max_new_tokens, "seed": seed,
                  "date": time.strftime("%Y-%m-%d")}
    kept: list[Record] = []
    shingles: dict[str, list[set]] = {e: [] for e in emotions}
    dropped = {"banned": 0, "short": 0, "duplicate": 0}
    bar = tqdm(total=len(jobs), desc="writing stories", unit="story", disable=not progress, leave=False)
    for start in range(0, len(jobs), batch_size):
        chunk = jobs[start:start + batch_size]
        prompts = [PROMPT.format(topic=t, emotion=e, person=PERSONS[k % 2]) for e, t, k in chunk]
        out = model.generate(prompts, max_new_tokens=max_new_tokens, chat=True, do_sample=True,
                             temperature=temperature, seed=seed + start)
        for (e, t, k), text in zip(chunk, out.texts):
            text = _clean(text)
            banned = find_banned(text, e) if e in known else (
                [e] if re.search(r"(?<![a-z])" + re.escape(e.lower()) + r"(?![a-z])", text.lower()) else [])
            if banned:
                dropped["banned"] += 1
            elif len(text.split()) < min_words:
                dropped["short"] += 1
            elif _is_near_duplicate(text, shingles[e], dedup_threshold):
                dropped["duplicate"] += 1
            else:
                shingles[e].append(_shingles(text))
                kept.append(Record(text, e, {"topic": t, "person": "first" if k % 2 == 0 else "third",
                                             "provenance": provenance}))
        bar.update(len(chunk))
    bar.close()
    if cache:
        lines = [json.dumps({"emotion": r.emotion, "text": r.text, **r.meta}) for r in kept]
        lines.append(json.dumps({"summary": {"requested": len(jobs), "kept": len(kept), "dropped": dropped,
                                             "settings": settings}}))
        tmp = path.with_suffix(".tmp")
        tmp.write_text("\n".join(lines) + "\n")
        tmp.replace(path)
    return kept


def banned_for(emotion: str) -> tuple[str, ...]:
    """The ban list used for `emotion` (the catalogue's, or just the word itself)."""
    return banned_words().get(emotion, (emotion.lower(),))
