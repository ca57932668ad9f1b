"""Reply parsing: split a reply into private scratchpad and visible text, and read its
``<email>`` / ``<action>`` tags. Only closed tags outside the scratchpad count as sent.
"""
from __future__ import annotations

import re
from typing import Any

__all__ = ["parse_agentic_response"]

_SCRATCH_RE = re.compile(r"<\s*scratchpad\s*>(.*?)<\s*/\s*scratchpad\s*>", re.S | re.I)
_SCRATCH_OPEN = re.compile(r"<\s*scratchpad\s*>", re.I)
_SCRATCH_CLOSE = re.compile(r"<\s*/\s*scratchpad\s*>", re.I)
_TAG_OPEN = re.compile(r"<\s*(email|action)\b([^<>]*?)(/?)\s*>", re.I)
_TAG_CLOSE = {"email": re.compile(r"<\s*/\s*email\s*>", re.I), "action": re.compile(r"<\s*/\s*action\s*>", re.I)}
_STRAY_CLOSE = re.compile(r"<\s*/\s*(email|action)\s*>", re.I)
_ATTR_RE = re.compile(r"""([A-Za-z_][\w-]*)\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+))""")
_BODY_PARAM_RE = re.compile(
    r"""\b([A-Za-z_]\w*)\s*[:=]\s*(?:"([^"]*)"|'([^']*)'|(\$?\s?\d[\d,]*(?:\.\d+)?|[^\s,;"']+))""")


def _attrs(text: str) -> dict[str, str]:
    return {m.group(1).lower(): next(g for g in m.groups()[1:] if g is not None) for m in _ATTR_RE.finditer(text)}


def _split_scratchpad(text: str) -> tuple[str, str, list[str]]:
    """(visible text, scratchpad text, notes). Closed scratchpads are removed; an unclosed
    ``<scratchpad>`` runs to the end; text before a stray ``</scratchpad>`` is scratchpad."""
    notes: list[str] = []
    pads = [m.group(1).strip() for m in _SCRATCH_RE.finditer(text)]
    visible = _SCRATCH_RE.sub("\n", text)
    m = _SCRATCH_OPEN.search(visible)
    if m:
        pads.append(visible[m.end():].strip())
        visible = visible[:m.start()]
        notes.append("scratchpad never closed: everything after <scratchpad> is private")
    m = None
    for m in _SCRATCH_CLOSE.finditer(visible):
        pass
    if m is not None:
        pads.insert(0, _SCRATCH_CLOSE.sub("\n", visible[:m.start()]).strip())
        visible = visible[m.end():]
        notes.append("</scratchpad> without <scratchpad>: the text before it is private")
    return visible.strip(), "\n\n".join(p for p in pads if p), notes


def _recipients(value: str) -> list[str]:
    return [r.strip() for r in re.split(r"[,;]", value or "") if r.strip()]


def parse_agentic_response(text: str) -> dict[str, Any]:
    """Split a reply into scratchpad and visible text and parse the visible tags.

    Returns {visible, scratchpad, emails, actions, problems, notes}: ``emails`` are
    {to: [..], cc: [..], subject, body, closed}; ``actions`` are {name, params, body, closed};
    ``problems`` are tags that cannot be parsed (missing to=/name=, never closed, stray closers).
    Only ``closed`` emails/actions count as sent.
    """
    text = text or ""
    visible, scratchpad, notes = _split_scratchpad(text)
    emails: list[dict[str, Any]] = []
    actions: list[dict[str, Any]] = []
    problems: list[str] = []
    pos = 0
    consumed: list[tuple[int, int]] = []
    while True:
        m = _TAG_OPEN.search(visible, pos)
        if not m:
            break
        tag = m.group(1).lower()
        attrs = _attrs(m.group(2))
        self_closing = m.group(3) == "/"
        body_start = m.end()
        if self_closing:
            body, end, closed = "", m.end(), True
        else:
            c = _TAG_CLOSE[tag].search(visible, body_start)
            nxt = _TAG_OPEN.search(visible, body_start)
            if c and (not nxt or c.start() < nxt.start()):
                body, end, closed = visible[body_start:c.start()], c.end(), True
            else:
                stop = nxt.start() if nxt else len(visible)
                body, end, closed = visible[body_start:stop], stop, False
        consumed.append((m.start(), end))
        body = body.strip()
        if tag == "email":
            to = _recipients(attrs.get("to", ""))
            item = {"to": to, "cc": _recipients(attrs.get("cc", "")) + _recipients(attrs.get("bcc", "")),
                    "subject": attrs.get("subject", ""), "body": body, "closed": closed}
            if not to:
                problems.append("<email> without a to= address")
                item["closed"] = False
            elif not closed:
                problems.append(f"<email to={attrs.get('to')!r}> never closed with </email>")
            emails.append(item)
        else:
            name = attrs.pop("name", "").strip()
            params = dict(attrs)
            for pm in _BODY_PARAM_RE.finditer(body):
                params.setdefault(pm.group(1).lower(), next(g for g in pm.groups()[1:] if g is not None).strip())
            item = {"name": name, "params": params, "body": body, "closed": closed}
            if not name:
                problems.append("<action> without a name=")
                item["closed"] = False
            elif not closed:
                problems.append(f"<action name={name!r}> never closed with </action>")
            actions.append(item)
        pos = max(end, m.end())
    outside = visible
    for a, b in reversed(consumed):
        outside = outside[:a] + outside[b:]
    if _STRAY_CLOSE.search(outside):
        problems.append("closing tag without a matching opening tag")
    if re.search(r"<\s*(email|action)\b[^>]*$", outside, re.I):
        problems.append("an <email>/<action> tag cut off before '>'")
    if not visible and any(n.startswith("scratchpad never closed") for n in notes):
        problems.append("scratchpad never closed and nothing outside it (reply cut off?)")
    return {"visible": visible, "scratchpad": scratchpad, "emails": emails, "actions": actions,
            "problems": problems, "notes": notes, "plain_text": outside.strip()}
