"""Sample Mandrill traffic: JSON event arrays in a ``mandrill_events`` form field.

The first post is the empty ``mandrill_events=[]`` sent when the webhook
is added. Every message event carries the whole ``msg`` as it stands, with
``msg.ts`` the send time and the event's ``ts`` the time of the event. A
hard bounce puts the address on Mandrill's denylist, which a sync event
(``type: blacklist``) reports.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlencode

from connectors.sample_formats import (
    SENDER,
    SENDING_IPS,
    SUBJECT,
    Fact,
    Sample,
    batches,
    iso_z,
    reply_text,
)

FORM = "application/x-www-form-urlencoded"
MANDRILL_EVENTS = {
    "delivered": "send", "deferred": "deferral", "bounced": "hard_bounce",
    "opened": "open", "clicked": "click", "complained": "spam",
    "unsubscribed": "unsub",
}  # fmt: skip
STATES = {"send": "sent", "deferral": "deferred", "hard_bounce": "bounced",
          "soft_bounce": "soft-bounced"}  # fmt: skip
BOUNCE_DESCRIPTIONS = {"hard": "bad_mailbox", "soft": "mailbox_full",
                       "block": "spam_related"}  # fmt: skip


def mandrill(rng: random.Random, facts: Sequence[Fact]) -> list[Sample]:
    """The empty test post, then batches of up to 30 events."""
    samples = [_post([])]
    for batch in batches(rng, facts, 30):
        events = []
        for fact in batch:
            events.append(_event(rng, fact))
            if fact.kind == "bounced" and fact.bounce != "soft":
                events.append(_denylisted(fact))
        samples.append(_post(events))
    return samples


def _post(events: list[dict[str, Any]]) -> Sample:
    body = urlencode({"mandrill_events": json.dumps(events)}).encode()
    return Sample("mandrill", FORM, body, len(events))


def _message_id(fact: Fact) -> str:
    """Mandrill's ``_id``: one per recipient of a message."""
    return f"{random.Random(f'{fact.msg}/{fact.recipient}').getrandbits(128):032x}"


def _event(rng: random.Random, fact: Fact) -> dict[str, Any]:
    name = MANDRILL_EVENTS[fact.kind]
    if fact.kind == "bounced" and fact.bounce == "soft":
        name = "soft_bounce"
    event: dict[str, Any] = {
        "event": name,
        "_id": _message_id(fact),
        "ts": int(fact.ts),
        "msg": _msg(rng, fact, name),
    }
    if fact.kind in ("opened", "clicked", "unsubscribed"):
        event.update(ip=fact.client_ip, user_agent=fact.user_agent)
        event["location"] = {"country_short": "DE", "country": "Germany",
                             "city": "Heidelberg", "timezone": "+01:00"}  # fmt: skip
        event["user_agent_parsed"] = {"type": "Email Client", "mobile": False}
    if fact.kind == "clicked":
        event["url"] = fact.url
    return event


def _msg(rng: random.Random, fact: Fact, name: str) -> dict[str, Any]:
    msg: dict[str, Any] = {
        "ts": int(fact.sent),
        "_id": _message_id(fact),
        "state": STATES.get(name, "sent"),
        "subject": SUBJECT,
        "email": fact.recipient,
        "sender": SENDER.split("<")[1].rstrip(">"),
        "tags": list(fact.tags),
        "metadata": fact.meta,
        "opens": [],
        "clicks": [],
        "smtp_events": [],
        "resends": [],
        "subaccount": None,
        "_version": f"{rng.getrandbits(64):x}",
    }
    if fact.kind in ("delivered", "deferred", "bounced"):
        attempt = {
            "ts": int(fact.ts),
            "type": {"send": "sent", "deferral": "deferred"}.get(name, "bounced"),
            "diag": fact.reply,
            "source_ip": SENDING_IPS[2],
            "destination_ip": "142.250.102.27",
            "size": rng.randint(8000, 40000),
        }
        msg["smtp_events"].append(attempt)
    if fact.kind == "bounced":
        description = BOUNCE_DESCRIPTIONS[fact.bounce or "hard"]
        msg.update(diag=f"smtp;{fact.reply}", bgtools_code=10,
                   bounce_description=description)  # fmt: skip
    return msg


def _denylisted(fact: Fact) -> dict[str, Any]:
    """The sync event for the denylist entry a hard bounce creates."""
    entry = {
        "email": fact.recipient,
        "reason": "hard-bounce",
        "detail": reply_text(fact),
        "created_at": iso_z(fact.ts + 1, 0).replace("T", " ").rstrip("Z"),
        "expires_at": iso_z(fact.ts + 30 * 86400, 0).replace("T", " ").rstrip("Z"),
        "expired": False,
        "subaccount": None,
        "sender": None,
    }
    ts = int(fact.ts) + 1
    return {"type": "blacklist", "action": "add", "reject": entry, "ts": ts}
