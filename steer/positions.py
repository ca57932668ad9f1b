"""Which token positions an intervention touches: "all", "prompt", "generated", indices or a mask.

Positions are counted per row on that row's own tokens (padding never counts): index 0 is the
row's first real token. Negative indices count back from the end of the prompt (-1 = the last
prompt token, the one whose residual predicts the first generated token). "generated" means
the positions of generated tokens as they are fed back; the first generated token itself is
predicted from the last prompt position, so "generated" leaves it unsteered ("all" does not).

Role positions (chat prompts only): "system", "user", "assistant" pick the tokens of every
message of that role; "user:-1", "assistant:0", ... pick one turn of that role, counted among
that role's messages (0 = its first, -1 = its last). A turn is the *content* of a message as the
chat template renders it; template markers (role headers, end-of-turn tokens, a default system
prompt the template inserts by itself) belong to no turn. In `generate`, the reply being written
is one more assistant turn (the last): "assistant" covers every generated token, and so does
"assistant:-1"; like "generated", it leaves the first generated token unsteered (it is predicted
from the template's header, which is no turn).

Inside steer every spec becomes one boolean matrix over the *padded timeline* of a batch: the
left-padded prompt (T columns) followed by the decode steps (N columns). A forward pass reads
columns [0, T); decode step s (s >= 1) reads column T + s - 1.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Union

import torch

from .errors import SteerError

NAMED = ("all", "prompt", "generated")
ROLES = ("system", "user", "assistant")
PositionSpec = Union[str, Sequence[int], range, torch.Tensor]


@dataclass(frozen=True)
class Turn:
    """One message's content in a row: `role` and the row-relative token span [start, end)."""

    role: str
    start: int
    end: int


def parse_role(spec: str) -> tuple[str, int | None] | None:
    """"user" -> ("user", None); "assistant:-1" -> ("assistant", -1); anything else -> None."""
    role, sep, turn = spec.partition(":")
    if role not in ROLES:
        return None
    if not sep:
        return role, None
    try:
        return role, int(turn)
    except ValueError:
        raise SteerError(f"positions {spec!r}: the turn after ':' must be an int, e.g. {role}:-1") from None


def is_role_spec(spec: Any) -> bool:
    return isinstance(spec, str) and parse_role(spec) is not None


def turn_spans(text: str, messages: Sequence[Mapping[str, Any]], offsets: Sequence[tuple[int, int]],
               row: int = 0) -> list[Turn]:
    """Each message's content located in the rendered chat `text`, as token spans.

    offsets: the (start, end) character span of every token of `text` (a fast tokenizer's
    offset mapping). A token belongs to a turn when its characters overlap the content.

    >>> turn_spans("<u>hi</u>", [{"role": "user", "content": "hi"}], [(0, 3), (3, 5), (5, 9)])
    [Turn(role='user', start=1, end=2)]
    """
    turns, cursor = [], 0
    for k, msg in enumerate(messages):
        content = str(msg.get("content") or "")
        role = msg.get("role")
        if role not in ROLES:
            raise SteerError(f"row {row}, message {k}: role {role!r} is not one of {ROLES}")
        a = text.find(content, cursor) if content else -1
        if a < 0 and content.strip():
            content = content.strip()                       # templates that trim whitespace
            a = text.find(content, cursor)
        if a < 0 and content:
            raise SteerError(f"row {row}, message {k} ({role}): its content is not in the rendered chat "
                             f"prompt, so its tokens cannot be found")
        if not content:                                     # an empty message: an empty span
            a = cursor
        b = a + len(content)
        inside = [i for i, (s, e) in enumerate(offsets) if e > s and s < b and e > a]
        first = inside[0] if inside else next((i for i, (s, _) in enumerate(offsets) if s >= a), len(offsets))
        turns.append(Turn(role, first, inside[-1] + 1 if inside else first))
        cursor = b
    return turns


def _role_columns(role: str, turn: int | None, spec: str, turns: list[list[Turn]], row_pos: torch.Tensor,
                  prompt_lens: torch.Tensor, N: int) -> torch.Tensor:
    """Bool [B, T + N]: the columns of the chosen role's turns, row by row."""
    out = torch.zeros(row_pos.shape, dtype=torch.bool)
    for b, row_turns in enumerate(turns):
        chosen = [t for t in row_turns if t.role == role]
        if role == "assistant" and N > 0:                   # the reply being generated
            n = int(prompt_lens[b])
            chosen.append(Turn("assistant", n, n + N))
        if turn is not None:
            if not -len(chosen) <= turn < len(chosen):
                raise SteerError(f"positions {spec!r}: row {b} has {len(chosen)} {role} turn(s)")
            chosen = [chosen[turn]]
        for t in chosen:
            out[b] |= (row_pos[b] >= t.start) & (row_pos[b] < t.end)
    return out


def check_positions(spec: PositionSpec) -> PositionSpec:
    """Validate a spec on construction (shape checks that need the batch wait for `timeline_mask`)."""
    if isinstance(spec, str):
        if spec not in NAMED and parse_role(spec) is None:
            raise SteerError(f"unknown positions {spec!r}; use one of {NAMED}, a role {ROLES} "
                             f"(optionally with a turn, e.g. 'user:-1'), indices or a mask")
        return spec
    if isinstance(spec, torch.Tensor):
        if spec.dim() not in (1, 2):
            raise SteerError(f"a positions mask must be 1-D or 2-D, got shape {tuple(spec.shape)}")
        if spec.dtype != torch.bool and not torch.all((spec == 0) | (spec == 1)):
            raise SteerError("a positions mask must hold only 0/1 or booleans")
        return spec.bool()
    if isinstance(spec, (range, Sequence)) and not isinstance(spec, (bytes, bytearray)):
        items = list(spec)
        if any(isinstance(i, bool) for i in items):
            if not all(isinstance(i, bool) for i in items):
                raise SteerError(f"positions mixes booleans and indices: {items!r}")
            return torch.tensor(items, dtype=torch.bool)
        if not all(isinstance(i, int) for i in items):
            raise SteerError(f"positions must be ints, got {items!r}")
        return tuple(items)
    raise SteerError(f"unknown positions {spec!r}; use one of {NAMED}, indices or a mask")


def timeline_mask(
    spec: PositionSpec, prompt_lens: torch.Tensor, T: int, N: int, turns: list[list[Turn]] | None = None
) -> torch.Tensor:
    """Bool [B, T + N]: which padded-timeline columns of each row the spec touches.

    prompt_lens: [B] real prompt tokens per row (left padding: row b starts at T - len_b).
    turns: per row, the message spans of its chat prompt (needed by role specs only).
    """
    B = prompt_lens.shape[0]
    col = torch.arange(T + N).unsqueeze(0)                  # [1, T+N]
    start = (T - prompt_lens).unsqueeze(1)                  # [B, 1] first real column
    real = col >= start                                     # padding never counts
    is_prompt = col < T
    if isinstance(spec, str) and spec not in NAMED:          # a role
        if turns is None:
            raise SteerError(f"positions {spec!r} needs chat=True: roles come from the chat template")
        if len(turns) != B:
            raise SteerError(f"positions {spec!r}: turns for {len(turns)} rows, batch has {B}")
        role, turn = parse_role(spec)                       # type: ignore[misc]
        return _role_columns(role, turn, spec, turns, col - start, prompt_lens, N) & real
    if isinstance(spec, str):
        if spec == "all":
            return real.expand(B, -1).clone()
        if spec == "prompt":
            return real & is_prompt
        return (~is_prompt).expand(B, -1).clone()           # generated
    row_pos = col - start                                   # row-relative index of each column
    if isinstance(spec, torch.Tensor) and spec.dim() == 2:
        if spec.shape != (B, T):
            raise SteerError(
                f"a 2-D positions mask must be [batch, prompt tokens] = {(B, T)}, "
                f"got {tuple(spec.shape)}"
            )
        out = torch.zeros(B, T + N, dtype=torch.bool)
        out[:, :T] = spec & real[:, :T]
        return out
    if isinstance(spec, torch.Tensor):                      # 1-D mask over row positions
        idx = torch.nonzero(spec).flatten().tolist()
    else:
        idx = list(spec)
    out = torch.zeros(B, T + N, dtype=torch.bool)
    for b in range(B):
        for i in idx:
            pos = i if i >= 0 else int(prompt_lens[b]) + i
            if pos < 0:
                raise SteerError(
                    f"position {i} is before the start of row {b} ({int(prompt_lens[b])} prompt tokens)"
                )
            column = int(start[b, 0]) + pos
            if column < T + N:
                out[b, column] = True
    return out & real


def row_relative(mask: torch.Tensor, prompt_lens: torch.Tensor, T: int, width: int) -> torch.Tensor:
    """Timeline mask [B, T + N] -> row-relative [B, width] (row b's token j is column T - len_b + j)."""
    B, C = mask.shape
    out = torch.zeros(B, width, dtype=torch.bool)
    for b in range(B):
        start = T - int(prompt_lens[b])
        n = min(width, C - start)
        if n > 0:
            out[b, :n] = mask[b, start:start + n]
    return out
