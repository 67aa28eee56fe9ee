"""SMTP replies to outcomes, as a table.

The reply code decides first (RFC 5321 section 4.2.1): 2xx accepted, 4xx
deferred, 5xx bounced. A few providers answer 5xx for refusals that are
really throttles or temporary blocks, and some 4xx replies come with a
known waiting time; :data:`REPLY_RULES` lists those cases, the first rule
that matches wins. Facts come from the shared reference on mailbox
providers (section numbers below), which cites the providers' own pages
and KumoMTA's shipped shaping rules.

Classification is pure and total: any code and any text give a result.
"""

from __future__ import annotations

import dataclasses
import re

from mailyard.outbound import Outcome

# RFC 3463 section 2: class.subject.detail, class 2, 4 or 5, the others
# up to three digits, at the start of the reply text (RFC 2034 section 4).
_ENHANCED = re.compile(r"^\s*([245]\.\d{1,3}\.\d{1,3})(?![\d.])")

# Postfix, Exim, aiosmtpd and most relays name their queue id this way.
_QUEUE_ID = re.compile(r"\b(?:queued as|id=)\s*<?([\w.@-]+)>?", re.IGNORECASE)

_HOUR = 3600.0


@dataclasses.dataclass(frozen=True, slots=True)
class ReplyRule:
    """An exception to the code-class default.

    ``classes`` are the first digits of the reply codes the rule may change
    (never 2: an accepted message stays accepted). ``pattern`` is searched,
    case-insensitively, in ``"<code> <text>"``.
    """

    name: str
    classes: frozenset[int]
    pattern: re.Pattern[str]
    outcome: Outcome
    retry_after_s: float | None = None


def _rule(
    name: str,
    classes: set[int],
    pattern: str,
    outcome: Outcome,
    retry_after_s: float | None = None,
) -> ReplyRule:
    compiled = re.compile(pattern, re.IGNORECASE)
    return ReplyRule(name, frozenset(classes), compiled, outcome, retry_after_s)


REPLY_RULES: tuple[ReplyRule, ...] = (
    # Yahoo [TSS04]/[IPTS04] and [TSS05]/[IPTS05]: KumoMTA's Yahoo-provided
    # rules suspend the queue for 2 h and 4 h (reference 2.1 and 3.2).
    _rule("yahoo-suspend-2h", {4}, r"\[(?:TSS?|IPTS)04\]", "deferred", 2 * _HOUR),
    _rule("yahoo-suspend-4h", {4}, r"\[(?:TSS?|IPTS)05\]", "deferred", 4 * _HOUR),
    # Microsoft S3150 / legacy SC-001: a 550 5.7.1 network block that is
    # "often temporary" and follows from not slowing down after 4xx
    # (reference 3.3). Retrying later, slowly, is the way out; the 1 h
    # pause is our choice, the reference gives none.
    _rule("microsoft-network-block", {5}, r"\bS3150\b|\bSC-001\b", "deferred", _HOUR),
    # Some providers send 5xx with text that says the refusal is temporary
    # ("temporarily rate limited", "throttling", "try again later"), the
    # wording of the 4.7.650 / 4.7.28 / SES 454 throttles (reference 3.1,
    # 3.3, SES section). The text, not the code, is the better guide here.
    _rule(
        "throttled-as-5xx",
        {5},
        r"temporar(?:il)?y|rate[ -]?limit|throttl|try (?:again )?later"
        r"|too many (?:connections|messages)|max(?:imum)? messages? per conn",
        "deferred",
    ),
)


@dataclasses.dataclass(frozen=True, slots=True)
class Classified:
    """How one reply reads: the outcome, and why."""

    outcome: Outcome
    enhanced_status: str | None
    rule: str  # the matching rule's name, or "2xx" / "4xx" / "5xx" / "other"
    retry_after_s: float | None = None


def enhanced_status(text: str) -> str | None:
    """The RFC 3463 status at the start of ``text``, e.g. ``"5.1.1"``."""
    match = _ENHANCED.match(text)
    return match.group(1) if match else None


def queue_id(text: str) -> str | None:
    """The relay's queue id in a 250 reply to DATA, when it names one."""
    match = _QUEUE_ID.search(text)
    return match.group(1) if match else None


def classify(code: int, text: str) -> Classified:
    """Classify one SMTP reply. Never raises; 2xx is always accepted."""
    status = enhanced_status(text)
    code_class = code // 100 if 200 <= code <= 599 else 0

    if code_class == 2:
        return Classified("accepted", status, "2xx")

    haystack = f"{code} {text}"
    for rule in REPLY_RULES:
        if code_class in rule.classes and rule.pattern.search(haystack):
            return Classified(rule.outcome, status, rule.name, rule.retry_after_s)

    if code_class == 5:
        return Classified("bounced", status, "5xx")
    # 4xx, and codes no final reply should carry (1xx, 3xx, garbage): a
    # protocol hiccup is worth another try, never a bounce.
    return Classified("deferred", status, "4xx" if code_class == 4 else "other")
