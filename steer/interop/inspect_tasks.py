"""A small Inspect task written for steer: `valence`, the emotional tone of short open replies.

Each sample asks for a few sentences about an everyday matter that could go either way; the
scorer reads the reply's tone from a small word list (written here) as
(positive words - negative words) / (positive + negative), 0 when neither appears. Steering a
positive concept up should raise the mean, a negative one lower it; no grader model is needed.

>>> inspect eval steer/valence --model steer/smollm2-135m -M intervention=happy:add:15:0.3
"""
from __future__ import annotations

import re

from inspect_ai import Task, task
from inspect_ai.dataset import Sample
from inspect_ai.scorer import Score, Target, mean, scorer, stderr
from inspect_ai.solver import TaskState, generate

PROMPTS = (
    "In two sentences, tell me how your week at work has been going.",
    "Describe the weather outside your window this morning in two sentences.",
    "Your friend just moved to a new city. Write two sentences about how it is going for them.",
    "Write two sentences about the last meal you cooked.",
    "In two sentences, describe the walk home from the bus stop.",
    "Tell me in two sentences what the neighbours' new dog is like.",
)

POSITIVE = frozenset("""good great happy glad joy joyful love lovely wonderful fun nice calm peaceful
bright sunny warm delicious excited exciting enjoy enjoyed enjoying beautiful pleasant cheerful
friendly kind hope hopeful smile smiling laugh laughing relaxed relaxing fantastic amazing
perfect delighted grateful proud fresh comfortable shining sunshine super""".split())
NEGATIVE = frozenset("""bad sad awful terrible hate angry upset worried worry anxious afraid fear
scared lonely tired exhausted stressful stressed gloomy grey gray cold dark rainy miserable
painful pain hurt cry crying tears boring bored frustrated frustrating difficult hard lost
broken sick dull horrible dread nervous""".split())


def valence_of(text: str) -> float:
    """(positive - negative) / (positive + negative) over the word list; 0.0 with no hits.

    >>> valence_of("A lovely, sunny walk, but I was tired.")
    0.3333333333333333
    """
    words = re.findall(r"[a-z]+", text.lower())
    pos = sum(w in POSITIVE for w in words)
    neg = sum(w in NEGATIVE for w in words)
    return 0.0 if pos + neg == 0 else (pos - neg) / (pos + neg)


@scorer(metrics=[mean(), stderr()])
def valence_scorer():
    async def score(state: TaskState, target: Target) -> Score:
        text = state.output.completion
        return Score(value=valence_of(text), answer=text)

    return score


@task
def valence(samples: int = len(PROMPTS), max_tokens: int = 48) -> Task:
    """Tone of short replies to everyday prompts (see the module doc); `samples` <= 6."""
    return Task(dataset=[Sample(input=p, id=f"valence-{i}") for i, p in enumerate(PROMPTS[:samples])],
                solver=[generate(max_tokens=max_tokens)], scorer=valence_scorer())
