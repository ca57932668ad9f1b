"""The 171 emotion concepts and the corpora steer ships for them.

>>> from steer import emotions
>>> len(emotions.catalogue()), emotions.catalogue()[0].name
(171, 'afraid')
>>> sum(1 for s in emotions.stories() if s.emotion == "calm")
10
"""
from .corpus import (
    Concept,
    DoseSeries,
    Record,
    banned_words,
    catalogue,
    concept_names,
    dose_response,
    find_banned,
    implicit,
    load_corpus,
    neutral,
    slug,
    stories,
)

from .generate import TOPICS, generate_stories

__all__ = ["TOPICS", "generate_stories", "Concept", "DoseSeries", "Record", "banned_words", "catalogue", "concept_names",
           "dose_response", "find_banned", "implicit", "load_corpus", "neutral", "slug", "stories"]
