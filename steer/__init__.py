"""steer: causal experiments on the emotion directions of open-weight language models.

The heavy modules (torch, nnsight, transformers) load on first use of a name, so
`import steer.evals` stays light and the CLI starts fast.
"""
from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "load_model": "steer.loading",
    "SteeredModel": "steer.model",
    "Residuals": "steer.model",
    "Intervention": "steer.interventions",
    "GenerationOutput": "steer.monitor",
    "Projections": "steer.monitor",
    "SteerError": "steer.errors",
    "ConfigError": "steer.errors",
    "DataError": "steer.errors",
    "Direction": "steer.directions",
    "DirectionSet": "steer.directions",
    "extract_directions": "steer.extraction",
    "validate_directions": "steer.validation",
}

__all__ = sorted(_LAZY) + ["__version__"]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'steer' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
