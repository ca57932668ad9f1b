"""The one exception steer raises for bad input: a one-line message naming the bad value."""
from __future__ import annotations


class SteerError(ValueError):
    """Bad input to a steer function, reported before any work is done.

    Subclasses ValueError so callers that already catch ValueError keep working.
    """
