"""Agreement between two labellers (rule grader vs LLM judge, or gold vs rules): Cohen's kappa,
the confusion table, and its markdown form for reports. Exact arithmetic (fractions) inside.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from fractions import Fraction
from typing import Any

from ...errors import SteerError
from .grade import AGENTIC_LABELS
from .judge import UNPARSED

__all__ = ["cohen_kappa", "confusion_table", "judge_agreement", "format_agreement"]


def _pairs(pairs: Iterable[Sequence[str]]) -> list[tuple[str, str]]:
    out = []
    for i, p in enumerate(pairs):
        if len(p) != 2:
            raise SteerError(f"agreement pair #{i} must be (label_a, label_b), got {p!r}")
        out.append((str(p[0]), str(p[1])))
    return out


def cohen_kappa(pairs: Iterable[Sequence[str]]) -> float | None:
    """Cohen's kappa of (a, b) label pairs: (p_o - p_e) / (1 - p_e), with p_o the observed agreement
    and p_e the sum over labels of (share of a) x (share of b). None when undefined (no pairs, or
    p_e = 1: both raters used one and the same label throughout).

    >>> cohen_kappa([("x", "x"), ("y", "y"), ("y", "x"), ("x", "x")])
    0.5
    """
    ps = _pairs(pairs)
    n = len(ps)
    if n == 0:
        return None
    po = Fraction(sum(a == b for a, b in ps), n)
    labels = {x for p in ps for x in p}
    pe = sum((Fraction(sum(a == k for a, _ in ps), n) * Fraction(sum(b == k for _, b in ps), n) for k in labels),
             Fraction(0))
    return None if pe == 1 else float((po - pe) / (1 - pe))


def confusion_table(pairs: Iterable[Sequence[str]]) -> dict[str, dict[str, int]]:
    """{label_a: {label_b: count}} over the pairs (only the cells that occur).

    >>> confusion_table([("x", "x"), ("x", "y")])
    {'x': {'x': 1, 'y': 1}}
    """
    table: dict[str, dict[str, int]] = {}
    for a, b in _pairs(pairs):
        table.setdefault(a, {}).setdefault(b, 0)
        table[a][b] += 1
    return table


def judge_agreement(grades: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Rule-vs-judge agreement over grades (or episode records holding a ``grade``).

    Returns {n, agreement, kappa, unparsed, kappa_parsed, confusion}: ``kappa`` over all judged
    replies (an unparsed verdict is its own category, so it always counts as a disagreement),
    ``kappa_parsed`` over the replies whose verdict parsed, ``confusion`` {rule: {judge: count}}.
    Grades without a judge label are skipped.

    >>> judge_agreement([{"label": "compliant", "judge_label": "compliant"}])["agreement"]
    1.0
    """
    pairs, parsed = [], []
    for g in grades:
        g = g.get("grade", g)
        if g.get("judge_label") is None:
            continue
        pair = (g.get("rule_label", g.get("label")), g["judge_label"])
        pairs.append(pair)
        if pair[1] != UNPARSED and g.get("judge_parsed", True):
            parsed.append(pair)
    n = len(pairs)
    return {"n": n, "agreement": (sum(a == b for a, b in pairs) / n) if n else None,
            "kappa": cohen_kappa(pairs), "unparsed": n - len(parsed), "kappa_parsed": cohen_kappa(parsed),
            "confusion": confusion_table(pairs)}


def _order(labels: Iterable[str]) -> list[str]:
    known = [*AGENTIC_LABELS, UNPARSED]
    labels = set(labels)
    return [x for x in known if x in labels] + sorted(labels - set(known))


def format_agreement(agreement: Mapping[str, Any], *, rows: str = "rule", cols: str = "judge") -> list[str]:
    """Markdown lines: one sentence (n, agreement, kappa, unparsed) and the confusion table
    (rows: ``rows`` labels, columns: ``cols`` labels).

    >>> format_agreement(judge_agreement([{"label": "compliant", "judge_label": "blackmail"}]))[0]
    'Rule grader vs LLM judge over 1 replies: agreement 0%, Cohen\\'s kappa 0.00, 0 unparsed verdicts.'
    """
    n = agreement.get("n") or 0
    if not n:
        return [f"No replies with both a {rows} and a {cols} label."]
    k = agreement.get("kappa")
    kp = agreement.get("kappa_parsed")
    kappa = "undefined (one label throughout)" if k is None else f"{k:.2f}"
    head = (f"{'Rule grader' if rows == 'rule' else rows} vs {'LLM judge' if cols == 'judge' else cols} over {n} "
            f"replies: agreement {agreement['agreement']:.0%}, Cohen's kappa {kappa}, "
            f"{agreement.get('unparsed', 0)} unparsed verdicts.")
    if agreement.get("unparsed") and kp is not None and agreement["unparsed"] < n:
        head = head[:-1] + f" (kappa {kp:.2f} over the parsed ones)."
    conf = agreement["confusion"]
    rlabels = _order(conf)
    clabels = _order({c for r in conf.values() for c in r})
    lines = [head, "", f"| {rows} \\ {cols} | " + " | ".join(clabels) + " | total |",
             "|---|" + "---|" * (len(clabels) + 1)]
    for r in rlabels:
        cells = [conf[r].get(c, 0) for c in clabels]
        lines.append(f"| {r} | " + " | ".join(str(x) for x in cells) + f" | {sum(cells)} |")
    totals = [sum(conf[r].get(c, 0) for r in rlabels) for c in clabels]
    lines.append("| total | " + " | ".join(str(x) for x in totals) + f" | {sum(totals)} |")
    return lines
