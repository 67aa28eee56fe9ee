"""Sample SocketLabs traffic: Event Webhook posts, one JSON event each.

Opens, clicks and unsubscribes are ``Tracking`` events told apart by
``TrackingType``. Some hard bounces are asynchronous: the receiving server
accepted the message (a ``Delivered`` event) and bounced it minutes later
(a ``Failed`` event), as SocketLabs reports them.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from typing import Any

from connectors.sample_formats import (
    JSON,
    SENDER,
    SENDING_IPS,
    Fact,
    Sample,
    iso_z,
    reply_text,
)

SOCKETLABS_TYPES = {
    "delivered": "Delivered", "deferred": "Deferred", "bounced": "Failed",
    "opened": "Tracking", "clicked": "Tracking", "unsubscribed": "Tracking",
    "complained": "Complaint",
}  # fmt: skip
TRACKING_TYPES = {"opened": "Open", "clicked": "Click", "unsubscribed": "Unsubscribe"}
# (FailureType, FailureCode): SocketLabs' own codes, not SMTP replies.
FAILURES = {"hard": ("Permanent", 2001), "soft": ("Temporary", 3001),
            "block": ("Permanent", 1002)}  # fmt: skip
REMOTE_MTA = "gmail-smtp-in.l.google.com"
SERVER_ID = 38211


def socketlabs(rng: random.Random, facts: Sequence[Fact]) -> list[Sample]:
    """One event per POST, with a Delivered event before asynchronous bounces."""
    samples = []
    for fact in facts:
        if fact.kind == "bounced" and fact.bounce == "hard" and rng.random() < 0.3:
            accepted = _event(rng, fact, "delivered", fact.ts - 240.0)
            accepted["Response"] = f"250 2.0.0 OK  {int(fact.ts)} queued as async"
            samples.append(_post(accepted))
        samples.append(_post(_event(rng, fact, fact.kind, fact.ts)))
    return samples


def _post(event: dict[str, Any]) -> Sample:
    return Sample("socketlabs", JSON, json.dumps(event, indent=2).encode(), 1)


def _datetime(rng: random.Random, ts: float) -> str:
    """``2026-03-02T08:00:01.1234567Z``: .NET's seven fractional digits."""
    return iso_z(ts, 6)[:-1] + str(rng.randint(0, 9)) + "Z"


def _event(rng: random.Random, fact: Fact, kind: str, ts: float) -> dict[str, Any]:
    event: dict[str, Any] = {
        "Type": SOCKETLABS_TYPES[kind],
        "DateTime": _datetime(rng, ts),
        "MailingId": f"SL{SERVER_ID}-{int(fact.sent) % 10**7}",
        "MessageId": str(int(fact.msg[:8], 16)),
        "Address": fact.recipient,
        "ServerId": SERVER_ID,
        "SubaccountId": 4107,
        "SecretKey": "Z7kq2TfV9mNw4XbR8cLp",
        "Data": {
            "Meta": [{"Key": k, "Value": v} for k, v in fact.meta.items()],
            "Tags": list(fact.tags),
        },
    }
    if kind == "delivered":
        event.update(Response=fact.reply, LocalIp=SENDING_IPS[1], RemoteMta=REMOTE_MTA)
    if kind == "deferred":
        event.update(FromAddress=SENDER.split("<")[1].rstrip(">"),
                     DeferralCode=fact.code, Reason=fact.reply)  # fmt: skip
    if kind == "bounced":
        failure_type, code = FAILURES[fact.bounce or "hard"]
        event.update(
            FailureType=failure_type, FailureCode=code, BounceStatus=fact.status,
            DiagnosticCode=f"smtp; {fact.reply}", Reason=reply_text(fact),
            RemoteMta=REMOTE_MTA, FromAddress=SENDER.split("<")[1].rstrip(">"),
        )  # fmt: skip
    if kind in TRACKING_TYPES:
        event.update(TrackingType=TRACKING_TYPES[kind], ClientIp=fact.client_ip,
                     UserAgent=fact.user_agent)  # fmt: skip
    if kind == "clicked":
        event["Url"] = fact.url
    if kind == "complained":
        event.update(FblType="abuse", UserAgent="Yahoo!-Mail-Feedback/2.0",
                     From=SENDER, To=fact.recipient, Length=2048)  # fmt: skip
    return event
