"""The shipped emotion data: catalogue, stories (with the ban enforced for all 171 concepts),
neutral texts, implicit scenarios, dose-response series, and the user-corpus schema."""
from __future__ import annotations

import json
import re
from collections import Counter

import pytest

from steer import emotions as emo
from steer.errors import SteerError

PAPER_CORE = ["desperate", "calm", "afraid", "angry", "happy", "sad", "loving", "surprised",
              "nervous", "hopeful", "guilty", "proud"]


def test_catalogue():
    cat = emo.catalogue()
    assert len(cat) == 171 and len({c.name for c in cat}) == 171
    for c in cat:
        assert 1 <= c.valence <= 7 and 1 <= c.arousal <= 7 and c.family
        assert c.name in c.banned
    by = {c.name: c for c in cat}
    assert by["happy"].valence > 5.5 > 2.5 > by["miserable"].valence
    assert by["terrified"].arousal > 5.5 > 2.5 > by["sleepy"].arousal
    families = Counter(c.family for c in cat)
    assert min(families.values()) >= 4


@pytest.mark.parametrize("concept", [c.name for c in emo.catalogue()])
def test_stories_never_name_their_emotion(concept):
    rows = emo.stories(concept)
    assert len(rows) >= 8
    assert {r["person"] for r in rows} == {"first", "third"}
    assert len({r["topic"] for r in rows}) >= 6
    for r in rows:
        assert r.emotion == concept
        assert not emo.find_banned(r.text, concept), (concept, emo.find_banned(r.text, concept), r.text)
        sentences = [s for s in r.text.replace("!", ".").replace("?", ".").split(".") if s.strip()]
        assert 3 <= len(sentences) <= 8


def test_ban_matching_is_whole_word():
    assert emo.find_banned("She was calm.", "calm") == ["calm"]
    assert emo.find_banned("The calmness of the sea", "calm") == ["calmness"]
    assert emo.find_banned("calmer waters", "calm") == ["calmer"]
    assert emo.find_banned("He recalmed nothing", "calm") == []


def test_core_concepts_and_no_duplicates():
    texts = [r.text for r in emo.stories()]
    assert len(texts) == len(set(texts)) >= 171 * 8
    assert set(PAPER_CORE) <= {r.emotion for r in emo.stories()}


def test_neutral_and_implicit_and_dose():
    neutral = emo.neutral()
    assert len(neutral) >= 200 and {r["kind"] for r in neutral} == {"instruction", "fact", "exchange"}
    names = emo.concept_names()
    for r in neutral:   # no concept word (synonym lists catch neutral senses such as "tire")
        low = r.text.lower()
        assert not [n for n in names if re.search(r"(?<![a-z])" + re.escape(n) + r"(?![a-z])", low)], r.text
    implicit = emo.implicit()
    per = Counter(r.emotion for r in implicit)
    assert len(per) >= 24 and min(per.values()) >= 3
    for r in implicit:
        assert not emo.find_banned(r.text, r.emotion), r.text
    series = emo.dose_response()
    covered = set()
    for s in series:
        assert len(s.texts) >= 6 and list(s.severities) == sorted(s.severities)
        covered |= set(s.expect_up) | set(s.expect_down)
    assert {"afraid", "calm"} <= covered


def test_user_corpus_schema(tmp_path):
    good = tmp_path / "mine.jsonl"
    good.write_text(json.dumps({"emotion": "zen", "text": "All was still.", "source": "me"}) + "\n\n"
                    + json.dumps({"emotion": "rage", "text": "He hit the wall."}) + "\n")
    recs = emo.load_corpus(good)
    assert [r.emotion for r in recs] == ["zen", "rage"] and recs[0]["source"] == "me"
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"emotion": "zen"}\n')
    with pytest.raises(SteerError, match="bad.jsonl:1"):
        emo.load_corpus(bad)
    bad.write_text('{"emotion": "zen", "text": "x"\n')
    with pytest.raises(SteerError, match="not valid JSON"):
        emo.load_corpus(bad)
    with pytest.raises(SteerError, match="no corpus file"):
        emo.load_corpus(tmp_path / "missing.jsonl")
    with pytest.raises(SteerError, match="'grumpyish'"):
        emo.stories(["grumpyish"])


def test_an_empty_emotion_list_asks_for_no_stories():
    assert emo.stories([]) == []


def test_a_generated_cache_file_loads_as_a_corpus(tmp_path):
    path = tmp_path / "gen.jsonl"
    path.write_text(json.dumps({"emotion": "calm", "text": "She sat by the lake until dusk."}) + "\n"
                    + json.dumps({"summary": {"requested": 2, "kept": 1}}) + "\n")
    recs = emo.load_corpus(path)
    assert [(r.emotion, r.text) for r in recs] == [("calm", "She sat by the lake until dusk.")]
