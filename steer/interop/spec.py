"""Interventions written as text or config: what `-M intervention=...` and config files say.

A spec is a dict {emotion, op, layers, strength | value, positions, scale}, or the compact string
`emotion:op:layers[:amount[:positions]]`, e.g. `desperate:add:14:0.1`, `calm:clamp:12-16:2.0`,
`sad:ablate:all`, `happy:add:10+12+14:0.2:generated`. Layers: an int, `a-b` (inclusive), `a+b+c`
or `all`. amount is the strength (add/subtract) or the target value (clamp).

>>> specs = intervention_specs("desperate:add:14:0.1")
>>> build_interventions(specs, ds)      # [Intervention('add', 'desperate', layers=(14,), ...)]
"""
from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import SteerError
from ..interventions import Intervention

FIELDS = ("emotion", "op", "layers", "strength", "value", "positions", "scale")


def parse_layers(spec: Any) -> Any:
    """14 | "14" | "12-16" | "12+14" | [12, "14"] | "all" -> int list or "all".

    >>> parse_layers("12-14"), parse_layers(["3", 5])
    ([12, 13, 14], [3, 5])
    """
    if isinstance(spec, bool):
        raise SteerError(f"layers={spec!r} is not a layer spec")
    if isinstance(spec, int):
        return [spec]
    if isinstance(spec, (list, tuple)):
        return [x for item in spec for x in parse_layers(item)]
    text = str(spec).strip()
    try:
        if text == "all":
            return "all"
        if "+" in text:
            return [int(x) for x in text.split("+")]
        span = re.fullmatch(r"(\d+)\s*-\s*(\d+)", text)
        if span:
            return list(range(int(span[1]), int(span[2]) + 1))
        return [int(text)]
    except ValueError:
        raise SteerError(f"cannot read layers {spec!r}: use 14, 12-16, 12+14 or all") from None


def _number(text: Any, what: str) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        raise SteerError(f"{what}={text!r} is not a number") from None


def parse_compact(text: str) -> dict[str, Any]:
    """`emotion:op:layers[:amount[:positions]]` -> a spec dict.

    >>> parse_compact("calm:clamp:12:2.5")
    {'emotion': 'calm', 'op': 'clamp', 'layers': [12], 'value': 2.5}
    """
    parts = [p.strip() for p in text.split(":")]
    if len(parts) < 3 or len(parts) > 5 or not all(parts):
        raise SteerError(f"intervention {text!r} must read emotion:op:layers[:amount[:positions]]")
    spec: dict[str, Any] = {"emotion": parts[0], "op": parts[1], "layers": parse_layers(parts[2])}
    if len(parts) >= 4:
        spec["value" if parts[1] == "clamp" else "strength"] = _number(parts[3], "amount")
    if len(parts) == 5:
        spec["positions"] = parts[4]
    return spec


def _one(spec: Any) -> dict[str, Any]:
    if isinstance(spec, str):
        return parse_compact(spec)
    if not isinstance(spec, Mapping):
        raise SteerError(f"an intervention must be a string or a mapping, got {type(spec).__name__}")
    unknown = set(spec) - set(FIELDS)
    if unknown:
        raise SteerError(f"unknown intervention field {sorted(unknown)[0]!r}; use {', '.join(FIELDS)}")
    if "emotion" not in spec:
        raise SteerError(f"intervention {dict(spec)!r} names no emotion")
    out = {k: spec[k] for k in FIELDS if spec.get(k) is not None}
    out.setdefault("op", "add")
    if "layers" not in out:
        raise SteerError(f"intervention on {out['emotion']!r} names no layers")
    out["layers"] = parse_layers(out["layers"])
    for key in ("strength", "value"):
        if key in out:
            out[key] = _number(out[key], key)
    return out


def read_config(path: str | Path) -> dict[str, Any]:
    """A YAML or JSON file: {interventions: [...], directions: path, ...} or one intervention."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise SteerError(f"no steer config file at {str(path)!r}")
    text = p.read_text()
    if text.lstrip().startswith(("{", "[")):
        data = json.loads(text)
    else:
        import yaml

        data = yaml.safe_load(text)
    if isinstance(data, list):
        data = {"interventions": data}
    if not isinstance(data, Mapping):
        raise SteerError(f"{p.name} must hold a mapping or a list of interventions")
    data = dict(data)
    if "emotion" in data:                              # the file is one intervention
        data = {"interventions": [{k: data.pop(k) for k in FIELDS if k in data}], **data}
    return data


def intervention_specs(intervention: Any = None, **fields: Any) -> list[dict[str, Any]]:
    """Spec dicts from an `intervention` value (string, dict or a list of them) and/or loose
    fields (emotion=, op=, layers=, strength=, ...) naming one more.

    >>> intervention_specs(emotion="calm", layers="12,14".split(","), strength=-0.1)
    [{'emotion': 'calm', 'layers': [12, 14], 'strength': -0.1, 'op': 'add'}]
    """
    specs: list[dict[str, Any]] = []
    if intervention is not None:
        items = intervention if isinstance(intervention, Sequence) and not isinstance(intervention, str) else [intervention]
        specs += [_one(s) for s in items]
    loose = {k: v for k, v in fields.items() if v is not None}
    if loose:
        specs.append(_one(loose))
    return specs


def build_interventions(specs: Sequence[Mapping[str, Any]], directions: Any) -> list[Intervention]:
    """steer Interventions from spec dicts, naming directions in `directions` (a DirectionSet)."""
    out = []
    for s in specs:
        kw = {k: s[k] for k in ("strength", "value", "positions", "scale") if k in s}
        out.append(Intervention(s["op"], direction=s["emotion"], layers=s["layers"], directions=directions, **kw))
    return out
