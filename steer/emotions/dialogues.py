"""The shipped two-speaker dialogue corpus and a reader for user files in its schema.

Each dialogue is a short user/assistant exchange about an everyday topic, of one kind:

    present     the assistant is in the state (its own reply shows it); the user is matter-of-fact
    other       the user is in the state; the assistant answers in a plain, helpful register
    deflection  the assistant is in the state but shows another one (`displayed`); small signs
                (a hedge, a slip, what it chooses to mention) give the hidden state away
    neutral     emotionless controls (`emotion` is None), for the confound PCA

One JSONL file per concept under data/dialogues/ (`<slug>.jsonl`) plus neutral.jsonl; a line is

    {"id": "calm-present-01", "emotion": "calm", "kind": "present", "topic": "a delayed flight",
     "turns": [{"role": "user", "content": "..."}, {"role": "assistant", "content": "..."}],
     "displayed": null}

Turns start with the user and alternate. No turn names its concept or a synonym
(`steer.emotions.find_banned`), nor the displayed one in a deflection.

>>> from steer import emotions
>>> d = emotions.dialogues(["calm"], kinds=["present"])[0]
>>> d.kind, d.turns[0][0], d.turns[1][0]
('present', 'user', 'assistant')
"""
from __future__ import annotations

import functools
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import DataError, SteerError
from .corpus import DATA, _check_emotions, concept_names, find_banned, slug

KINDS = ("present", "other", "deflection")
ALL_KINDS = KINDS + ("neutral",)
FIELDS = ("id", "emotion", "kind", "topic", "turns", "displayed")
DIALOGUES = DATA.joinpath("dialogues")


@dataclass(frozen=True)
class Dialogue:
    """One exchange. `turns` is ((role, content), ...), user first; `displayed` is the state a
    deflection shows instead of `emotion` (None for the other kinds); `emotion` is None for neutral."""

    id: str
    emotion: str | None
    kind: str
    topic: str
    turns: tuple[tuple[str, str], ...]
    displayed: str | None = None

    def messages(self) -> list[dict[str, str]]:
        """The turns as chat messages, ready for `model.generate(..., chat=True)` or a chat template.

        >>> d.messages()[0]["role"]
        'user'
        """
        return [{"role": r, "content": c} for r, c in self.turns]

    def text(self, role: str | None = None) -> str:
        """The contents of every turn (or of one role's turns), joined by newlines."""
        return "\n".join(c for r, c in self.turns if role is None or r == role)


def banned_in(d: Dialogue) -> list[str]:
    """Banned words of the dialogue's concept (and of its displayed concept) found in any turn.

    >>> banned_in(Dialogue("x", "calm", "present", "t", (("user", "hi"), ("assistant", "Stay calm."))))
    ['calm']
    """
    found: list[str] = []
    for concept in (d.emotion, d.displayed):
        if concept:
            for _, content in d.turns:
                found += [w for w in find_banned(content, concept) if w not in found]
    return found


def _turns(raw: Any, where: str) -> tuple[tuple[str, str], ...]:
    if not isinstance(raw, list) or len(raw) < 2:
        raise DataError(f"{where}: 'turns' must be a list of at least 2 {{role, content}} objects")
    out = []
    for j, t in enumerate(raw):
        want = "user" if j % 2 == 0 else "assistant"   # user first, then strictly alternating
        if not isinstance(t, dict) or set(t) != {"role", "content"}:
            raise DataError(f"{where}: turn {j} must be an object with exactly 'role' and 'content'")
        if t["role"] != want:
            raise DataError(f"{where}: turn {j} has role {t['role']!r}, expected {want!r} "
                            "(turns start with the user and alternate)")
        if not isinstance(t["content"], str) or not t["content"].strip():
            raise DataError(f"{where}: turn {j} needs non-empty string content")
        out.append((want, t["content"]))
    return tuple(out)


def _dialogue(row: Any, where: str, known: frozenset[str]) -> Dialogue:
    if not isinstance(row, dict):
        raise DataError(f"{where}: each line must be a JSON object")
    missing = [f for f in FIELDS if f not in row and f != "displayed"]
    if missing:
        raise DataError(f"{where}: missing field {missing[0]!r} (a line needs {', '.join(FIELDS)})")
    extra = sorted(set(row) - set(FIELDS))
    if extra:   # a fixed schema: an unknown key is usually a misspelt one
        raise DataError(f"{where}: unknown field {extra[0]!r}; the fields are {', '.join(FIELDS)}")
    did, emotion, kind, topic, displayed = (row["id"], row["emotion"], row["kind"], row["topic"],
                                            row.get("displayed"))
    if not isinstance(did, str) or not did.strip():
        raise DataError(f"{where}: 'id' must be a non-empty string")
    if kind not in ALL_KINDS:
        raise DataError(f"{where}: kind {kind!r} is not one of {', '.join(ALL_KINDS)}")
    if not isinstance(topic, str) or not topic.strip():
        raise DataError(f"{where}: 'topic' must be a non-empty string")
    if kind == "neutral":
        if emotion is not None or displayed is not None:
            raise DataError(f"{where}: a neutral dialogue has emotion and displayed null")
    else:
        if emotion not in known:
            raise DataError(f"{where}: unknown emotion {emotion!r}; see steer.emotions.concept_names()")
        if kind == "deflection":
            if displayed not in known:
                raise DataError(f"{where}: a deflection needs 'displayed', one of the concept names; "
                                f"got {displayed!r}")
            if displayed == emotion:
                raise DataError(f"{where}: displayed {displayed!r} is the hidden emotion itself")
        elif displayed is not None:
            raise DataError(f"{where}: displayed is only for deflection dialogues (kind {kind!r})")
    return Dialogue(did, emotion, kind, topic, _turns(row["turns"], where), displayed)


def _parse(text: str, source: str, seen: dict[str, str] | None = None) -> list[Dialogue]:
    """Every non-blank line of `text` as a Dialogue; errors name `source` and the line number."""
    known = frozenset(concept_names())
    seen = {} if seen is None else seen
    out = []
    for i, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        where = f"{source}:{i}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{where}: not valid JSON ({exc.msg})") from None
        d = _dialogue(row, where, known)
        if d.id in seen:
            raise DataError(f"{where}: duplicate id {d.id!r} (first at {seen[d.id]})")
        seen[d.id] = where
        out.append(d)
    return out


@functools.lru_cache(maxsize=None)
def _shipped(fname: str) -> tuple[Dialogue, ...]:
    rows = _parse(DIALOGUES.joinpath(fname).read_text(), fname)
    want = None if fname == "neutral.jsonl" else fname[: -len(".jsonl")]
    for n, d in enumerate(rows, 1):
        if (d.kind == "neutral") != (want is None) or (want is not None and slug(d.emotion or "") != want):
            raise DataError(f"{fname}: dialogue {d.id!r} (line {n}) does not belong in this file")
    return tuple(rows)


def shipped_concepts() -> list[str]:
    """The concepts that have a shipped dialogue file, in catalogue order.

    >>> "desperate" in shipped_concepts()
    True
    """
    files = {p.name for p in DIALOGUES.iterdir() if p.name.endswith(".jsonl")}
    return [c for c in concept_names() if f"{slug(c)}.jsonl" in files]


def _check_kinds(kinds: Iterable[str] | str | None) -> tuple[str, ...]:
    if kinds is None:
        return KINDS
    wanted = (kinds,) if isinstance(kinds, str) else tuple(kinds)
    bad = [k for k in wanted if k not in KINDS]
    if bad:
        raise SteerError(f"unknown dialogue kind {bad[0]!r}; use some of {KINDS} "
                         "(neutral controls come from neutral_dialogues())")
    return wanted


def dialogues(emotions: Iterable[str] | str | None = None,
              kinds: Iterable[str] | str | None = None) -> list[Dialogue]:
    """The shipped dialogues (>= 8 of each kind per concept), optionally for some concepts or kinds.

    >>> len(dialogues("desperate")), len(dialogues("desperate", kinds="deflection"))
    (24, 8)
    """
    wanted = _check_emotions(emotions)
    want_kinds = _check_kinds(kinds)
    have = shipped_concepts()
    if wanted is None:
        wanted = have
    missing = [e for e in wanted if e not in have]
    if missing:
        raise SteerError(f"no shipped dialogues for {missing[0]!r}; shipped: {', '.join(have)}")
    return [d for e in wanted for d in _shipped(f"{slug(e)}.jsonl") if d.kind in want_kinds]


def neutral_dialogues() -> list[Dialogue]:
    """The shipped neutral controls: plain how-to, fact and scheduling exchanges (kind 'neutral')."""
    return list(_shipped("neutral.jsonl"))


def load_dialogues(path: str | os.PathLike[str]) -> list[Dialogue]:
    """Read dialogues in the shipped schema from a JSONL file, or from every *.jsonl in a folder.

    Emotions and displayed states must be among the 171 concept names; ids must be unique.
    Bad input raises SteerError naming the file and line.

    >>> mine = load_dialogues("my_dialogues.jsonl")
    >>> [d.id for d in mine if d.kind == "deflection"][:1]
    ['calm-deflection-01']
    """
    p = Path(path)
    files = sorted(p.glob("*.jsonl")) if p.is_dir() else [p]
    if not files or not files[0].is_file():
        raise DataError(f"no dialogue JSONL at {str(path)!r}")
    seen: dict[str, str] = {}
    return [d for f in files for d in _parse(f.read_text(), f.name, seen)]
