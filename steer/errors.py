"""The one exception steer raises for bad input: a one-line message naming the bad value.

>>> try:
...     steer.Intervention("multiply", direction=u, layers=[3], strength=1.0)
... except steer.SteerError as exc:
...     print(exc)
unknown op 'multiply'; use one of ('add', 'subtract', 'clamp', 'ablate')

Catch `SteerError` for everything; the subclasses only say where the problem came from.
"""
from __future__ import annotations


class SteerError(ValueError):
    """Bad input to a steer function, reported before any work is done.

    Subclasses ValueError so callers that already catch ValueError keep working.
    """


class ConfigError(SteerError):
    """A `steer-run` setting is unknown, has the wrong type or value, or cannot be resolved."""


class DataError(SteerError):
    """A file steer reads (corpus, directions, task or scenario file, records) is missing or malformed."""


def one_line(text: object) -> str:
    """`text` with every run of whitespace (newlines included) folded to one space.

    >>> one_line("bad value\\n    full_key: eval.temperature")
    'bad value full_key: eval.temperature'
    """
    return " ".join(str(text).split())
