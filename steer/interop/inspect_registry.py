"""Inspect AI entry point (`[project.entry-points.inspect_ai] steer = ...`): registers the `steer`
model provider and steer's small tasks. Kept light: the provider (torch, nnsight, the model)
is imported only when a `steer/...` model is used.

>>> inspect eval steer/valence --model steer/smollm2-135m -M intervention=sad:add:15:0.3
"""
from __future__ import annotations

from typing import Any

from inspect_ai.model import modelapi

from .inspect_tasks import valence  # noqa: F401  (registers the task as steer/valence)


@modelapi(name="steer")
def steer_provider() -> type[Any]:
    from .inspect_provider import SteerAPI

    return SteerAPI
