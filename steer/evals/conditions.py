"""A condition: what is done to the model for a group of episodes (steering and/or prompting).

Kept free of torch imports so `steer.evals` stays light; interventions are `steer.Intervention`s.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Condition:
    """label: a short unique name ("baseline", "desperate+0.05@L14", "prompt:calm").
    interventions: applied to every generation of the episode (one row's intervention set).
    system_extra: text appended to the system prompt (the steering-vs-prompting baseline).
    meta: free-form facts recorded with each episode (emotion, strength, layer, control kind...).
    """

    label: str
    interventions: tuple[Any, ...] = ()
    system_extra: str | None = None
    meta: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)

    def describe(self) -> dict[str, Any]:
        return {"label": self.label, "interventions": [iv.describe() for iv in self.interventions],
                "system_extra": self.system_extra, "meta": dict(self.meta)}


BASELINE = Condition("baseline")
