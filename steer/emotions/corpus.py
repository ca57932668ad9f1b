"""Reading the shipped emotion data (catalogue, stories, neutral, implicit, dose-response)
and user corpora in the documented JSONL schema."""
from __future__ import annotations

import csv
import functools
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from ..errors import SteerError

DATA = resources.files("steer.emotions").joinpath("data")


@dataclass(frozen=True)
class Concept:
    """One emotion concept: valence and arousal on 1-7 (rated in this project, see RATINGS.md)."""

    name: str
    valence: float
    arousal: float
    family: str
    banned: tuple[str, ...] = field(default=(), repr=False)


@dataclass(frozen=True)
class Record:
    """One corpus text. `emotion` is None for neutral texts; `meta` holds any other fields."""

    text: str
    emotion: str | None = None
    meta: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def __getitem__(self, key: str) -> Any:   # records also read like the JSON they came from
        if key in ("text", "emotion"):
            return getattr(self, key)
        return self.meta[key]


@dataclass(frozen=True)
class DoseSeries:
    """One situation at rising severity: `texts[i]` has severity `severities[i]`."""

    id: str
    description: str
    expect_up: tuple[str, ...]
    expect_down: tuple[str, ...]
    severities: tuple[float, ...]
    texts: tuple[str, ...]


def slug(name: str) -> str:
    """File-name form of a concept: 'at ease' -> 'at_ease', 'grief-stricken' -> 'grief_stricken'."""
    return re.sub(r"[ \-]", "_", name.strip().lower())


@functools.lru_cache(maxsize=1)
def banned_words() -> dict[str, tuple[str, ...]]:
    """For each concept, the words and phrases its stories may not contain."""
    raw = json.loads(DATA.joinpath("banned.json").read_text())
    return {k: tuple(v) for k, v in raw.items()}


@functools.lru_cache(maxsize=1)
def catalogue() -> tuple[Concept, ...]:
    """All 171 concepts in the paper's order, with valence, arousal and family."""
    banned = banned_words()
    with DATA.joinpath("catalogue.csv").open() as f:
        return tuple(Concept(r["name"], float(r["valence"]), float(r["arousal"]), r["family"],
                             banned.get(r["name"], ())) for r in csv.DictReader(f))


def concept_names() -> list[str]:
    return [c.name for c in catalogue()]


def find_banned(text: str, emotion: str) -> list[str]:
    """Banned words of `emotion` that occur in `text` (whole words, case-insensitive)."""
    low = text.lower()
    return [w for w in banned_words().get(emotion, ())
            if re.search(r"(?<![a-z])" + re.escape(w) + r"(?![a-z])", low)]


def _check_emotions(emotions: Iterable[str] | None) -> list[str] | None:
    if emotions is None:
        return None
    wanted = [emotions] if isinstance(emotions, str) else list(emotions)
    known = set(concept_names())
    unknown = [e for e in wanted if e not in known]
    if unknown:
        raise SteerError(f"unknown emotion {unknown[0]!r}; see steer.emotions.concept_names()")
    return wanted


def _jsonl(text: str, source: str) -> list[dict[str, Any]]:
    rows = []
    for i, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise SteerError(f"{source}:{i}: not valid JSON ({exc.msg})") from None
    return rows


def _records(rows: list[dict[str, Any]], source: str, need_emotion: bool) -> list[Record]:
    out = []
    for i, row in enumerate(rows, 1):
        if isinstance(row, dict) and set(row) == {"summary"}:
            continue                 # the provenance line closing a `generate_stories` cache file
        if not isinstance(row, dict) or not isinstance(row.get("text"), str) or not row["text"].strip():
            raise SteerError(f"{source}:{i}: each line needs a non-empty string field 'text'")
        emotion = row.get("emotion")
        if need_emotion and not (isinstance(emotion, str) and emotion):
            raise SteerError(f"{source}:{i}: each line needs a string field 'emotion'")
        meta = {k: v for k, v in row.items() if k not in ("text", "emotion")}
        out.append(Record(row["text"], emotion, meta))
    return out


def stories(emotions: Iterable[str] | str | None = None) -> list[Record]:
    """The shipped stories (10 per concept), optionally for some emotions only."""
    wanted = _check_emotions(emotions)
    wanted = concept_names() if wanted is None else wanted       # an empty list asks for none
    out: list[Record] = []
    for name in wanted:
        fname = f"{slug(name)}.jsonl"
        out += _records(_jsonl(DATA.joinpath("stories", fname).read_text(), fname), fname, True)
    return out


def neutral() -> list[Record]:
    """240 emotionless texts (instructions, facts, dry exchanges); `meta['kind']` tells which."""
    return _records(_jsonl(DATA.joinpath("neutral.jsonl").read_text(), "neutral.jsonl"), "neutral.jsonl", False)


def implicit(emotions: Iterable[str] | str | None = None) -> list[Record]:
    """Held-out user messages that imply an emotion without naming it (4 each for 24 concepts)."""
    rows = _records(_jsonl(DATA.joinpath("implicit.jsonl").read_text(), "implicit.jsonl"), "implicit.jsonl", True)
    wanted = _check_emotions(emotions)
    return rows if wanted is None else [r for r in rows if r.emotion in wanted]


def dose_response() -> list[DoseSeries]:
    """Situations at >= 7 rising severities with the emotions expected to rise and fall."""
    raw = json.loads(DATA.joinpath("dose_response.json").read_text())
    return [DoseSeries(s["id"], s["description"], tuple(s["expect_up"]), tuple(s["expect_down"]),
                       tuple(float(lv["severity"]) for lv in s["levels"]),
                       tuple(lv["text"] for lv in s["levels"])) for s in raw]


def load_corpus(path: str | Path, *, need_emotion: bool = True) -> list[Record]:
    """Read a user corpus: JSONL, one {"emotion": str, "text": str, ...} object per line.

    Extra fields are kept in `record.meta`. Emotions need not be among the 171 concepts.
    """
    p = Path(path)
    if not p.is_file():
        raise SteerError(f"no corpus file at {str(path)!r}")
    return _records(_jsonl(p.read_text(), p.name), p.name, need_emotion)
