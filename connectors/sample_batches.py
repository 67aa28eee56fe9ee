"""Sample bodies for the ESPs that batch events: SendGrid, SparkPost, Mailjet, Brevo."""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

from connectors.sample_formats import (
    JSON,
    SENDER,
    SENDING_IPS,
    SUBJECT,
    Fact,
    Sample,
    batches,
    hexits,
    iso_local,
    seeded_uuid,
    token,
)

SENDGRID_EVENTS = {
    "delivered": "delivered", "deferred": "deferred", "bounced": "bounce",
    "opened": "open", "clicked": "click", "complained": "spamreport",
    "unsubscribed": "unsubscribe",
}  # fmt: skip
SENDGRID_CLASSIFICATIONS = {"hard": "Invalid Address", "soft": "Mailbox Unavailable",
                            "block": "Reputation"}  # fmt: skip


def sendgrid(rng: random.Random, facts: Sequence[Fact]) -> list[Sample]:
    """JSON arrays of up to 40 events, ``\\r\\n`` after each event and the array."""
    samples = []
    for batch in batches(rng, facts, 40):
        lines = [json.dumps(_sendgrid_event(rng, fact)) for fact in batch]
        body = "[" + ",\r\n".join(lines) + "\r\n]\r\n"
        samples.append(Sample("sendgrid", JSON, body.encode(), len(batch)))
    return samples


def _sendgrid_event(rng: random.Random, fact: Fact) -> dict[str, Any]:
    xid = fact.msg[:11] + token(rng, 8)[:11]
    event: dict[str, Any] = {
        "email": fact.recipient,
        "timestamp": int(fact.ts),
        "event": SENDGRID_EVENTS[fact.kind],
        "sg_event_id": token(rng, 16),
        "sg_message_id": f"{xid}.recvd-7d5f6b9c4-x2lk9-1-65E2F1A0-3.0",
        "category": list(fact.tags) if len(fact.tags) != 1 else fact.tags[0],
    }
    if fact.kind not in ("opened", "clicked"):
        event["smtp-id"] = f"<{xid}@geopod-ismtpd-3>"
    if fact.kind in ("delivered", "deferred"):
        event.update(response=fact.reply, ip=rng.choice(SENDING_IPS), tls=1)
    if fact.kind == "deferred":
        event["attempt"] = str(rng.randint(1, 5))
    if fact.kind == "bounced":
        kind = "blocked" if fact.bounce == "block" else "bounce"
        classification = SENDGRID_CLASSIFICATIONS[fact.bounce or "hard"]
        event.update(reason=fact.reply, status=fact.status, type=kind,
                     bounce_classification=classification)  # fmt: skip
    if fact.kind in ("opened", "clicked"):
        event.update(useragent=fact.user_agent, ip=fact.client_ip)
        event["sg_machine_open"] = fact.user_agent == "Mozilla/5.0"
    if fact.kind == "clicked":
        event.update(url=fact.url, url_offset={"index": 0, "type": "html"})
    # Custom args arrive merged into the event as top-level keys.
    return {**fact.meta, **event}


SPARKPOST_EVENTS = {
    "delivered": ("message_event", "delivery"),
    "deferred": ("message_event", "delay"),
    "bounced": ("message_event", "bounce"),
    "opened": ("track_event", "open"),
    "clicked": ("track_event", "click"),
    "complained": ("message_event", "spam_complaint"),
    "unsubscribed": ("unsubscribe_event", "list_unsubscribe"),
}
# Two SparkPost bounce classes per kind of bounce, picked at random.
SPARKPOST_BOUNCE_CLASSES = {
    "hard": ("10", "30"),
    "soft": ("22", "20"),
    "block": ("50", "51"),
}


def sparkpost(rng: random.Random, facts: Sequence[Fact]) -> list[Sample]:
    """Batches of msys wrappers, plus the ping sent when the webhook is created."""
    samples = [Sample("sparkpost", JSON, b'[{"msys":{}}]', 0)]
    for batch in batches(rng, facts, 25):
        wrappers = []
        for fact in batch:
            event_class, event = _sparkpost_event(rng, fact)
            # initial_open fires next to open; it normalizes to "unknown".
            if event["type"] == "open" and rng.random() < 0.3:
                initial = {**event, "type": "initial_open", "event_id": hexits(rng, 17)}
                wrappers.append({"msys": {event_class: initial}})
            wrappers.append({"msys": {event_class: event}})
        body = json.dumps(wrappers).encode()
        samples.append(Sample("sparkpost", JSON, body, len(wrappers)))
    return samples


def _sparkpost_event(rng: random.Random, fact: Fact) -> tuple[str, dict[str, Any]]:
    event_class, kind = SPARKPOST_EVENTS[fact.kind]
    # Most SparkPost samples stamp epoch seconds as text, some ISO with offset.
    iso = iso_local(fact.ts, -5)[:23] + "-05:00"
    stamp = iso if rng.random() < 0.15 else str(int(fact.ts))
    event: dict[str, Any] = {
        "type": kind,
        "event_id": str(rng.randint(10**17, 10**18)),
        "transmission_id": str(int(fact.msg[:13], 16)),
        "message_id": fact.msg + hexits(rng, 8),
        "timestamp": stamp,
        "rcpt_to": fact.recipient.lower(),
        "raw_rcpt_to": fact.recipient,
        "rcpt_meta": fact.meta,
        "rcpt_tags": list(fact.tags),
        "rcpt_type": "original",
        "customer_id": "123456",
        "campaign_id": "spring-sale",
        "friendly_from": SENDER.split("<")[1].rstrip(">"),
        "subject": SUBJECT,
        "ip_pool": "default",
        "sending_ip": SENDING_IPS[1],
        "delv_method": "esmtp",
    }
    if fact.kind in ("bounced", "deferred"):
        pick = SPARKPOST_BOUNCE_CLASSES[fact.bounce or "soft"]
        event.update(bounce_class=rng.choice(pick), error_code=str(fact.code),
                     raw_reason=fact.reply, reason=(fact.reply or "")[:40] + "...",
                     num_retries=str(rng.randint(0, 4)), queue_time="3620")  # fmt: skip
    if fact.kind in ("opened", "clicked", "unsubscribed"):
        event.update(user_agent=fact.user_agent, ip_address=fact.client_ip,
                     geo_ip={"country": "DE", "city": "Heidelberg"})  # fmt: skip
    if fact.kind == "clicked":
        event.update(target_link_url=fact.url, target_link_name="spring-cta")
    if fact.kind == "complained":
        event.update(fbtype="abuse", report_by="server.yahoo.com")
    return event_class, event


MAILJET_EVENTS = {
    "delivered": "sent", "deferred": "bounce", "bounced": "bounce", "opened": "open",
    "clicked": "click", "complained": "spam", "unsubscribed": "unsub",
}  # fmt: skip
MAILJET_ERRORS = {"hard": ("recipient", "user unknown"),
                  "soft": ("recipient", "quota exceeded"),
                  "block": ("spam", "content blocked")}  # fmt: skip


def mailjet(rng: random.Random, facts: Sequence[Fact]) -> list[Sample]:
    """Arrays of grouped events, or one bare object when grouping is off."""
    samples = []
    for batch in batches(rng, facts, 12):
        events = [_mailjet_event(rng, fact) for fact in batch]
        bare = len(events) == 1 and rng.random() < 0.5
        body = json.dumps(events[0] if bare else events).encode()
        samples.append(Sample("mailjet", JSON, body, len(events)))
    return samples


def _mailjet_event(rng: random.Random, fact: Fact) -> dict[str, Any]:
    # Message ids are 64-bit integers above 2**53.
    message_id = 288230376151711744 + int(fact.msg[:12], 16)
    event: dict[str, Any] = {
        "event": MAILJET_EVENTS[fact.kind],
        "time": int(fact.ts),
        "MessageID": message_id,
        "Message_GUID": seeded_uuid(rng),
        "email": fact.recipient,
        "mj_campaign_id": 7257,
        "mj_contact_id": rng.randint(10**8, 10**9),
        "customcampaign": fact.tags[0] if fact.tags else "",
        "CustomID": "",
        "Payload": json.dumps(fact.meta) if fact.meta else "",
    }
    if fact.kind == "delivered":
        event.update(mj_message_id=str(message_id), smtp_reply=f"sent ({fact.reply})")
    if fact.kind == "deferred":
        event.update(blocked=False, hard_bounce=False, error_related_to="domain",
                     error="greylisted", comment=fact.reply)  # fmt: skip
    if fact.kind == "bounced":
        related, error = MAILJET_ERRORS[fact.bounce or "hard"]
        event.update(blocked=False, hard_bounce=fact.bounce != "soft")
        event.update(error_related_to=related, error=error, comment=fact.reply)
    if fact.kind in ("opened", "clicked", "unsubscribed"):
        event.update(ip=fact.client_ip, geo="DE", agent=fact.user_agent)
    if fact.kind == "clicked":
        event["url"] = fact.url
    if fact.kind == "complained":
        event["source"] = "JMRPP"
    if fact.kind == "unsubscribed":
        event["mj_list_id"] = 1804
    return event


BREVO_EVENTS = {
    "delivered": "delivered", "deferred": "deferred", "bounced": "hard_bounce",
    "opened": "opened", "clicked": "click", "complained": "spam",
    "unsubscribed": "unsubscribed",
}  # fmt: skip
# Brevo's ``date`` and ``ts`` are in the account's zone, here Paris in winter.
BREVO_ZONE = timezone(timedelta(hours=1))


def brevo(rng: random.Random, facts: Sequence[Fact]) -> list[Sample]:
    """One object per POST; runs of events as arrays where batching is on."""
    samples = []
    for batch in batches(rng, facts, 10):
        events = [e for fact in batch for e in _brevo_events(rng, fact)]
        if rng.random() < 0.4:
            body = json.dumps(events).encode()
            samples.append(Sample("brevo", JSON, body, len(events)))
            continue
        for event in events:
            samples.append(Sample("brevo", JSON, json.dumps(event).encode(), 1))
    return samples


def _brevo_events(rng: random.Random, fact: Fact) -> list[dict[str, Any]]:
    event = _brevo_event(rng, fact)
    if fact.kind != "opened":
        return [event]
    # Apple Mail Privacy Protection loads the pixel itself: a proxy open.
    if rng.random() < 0.25:
        return [{**event, "event": "proxy_open"}]
    # A first open comes twice, as unique_opened and as opened.
    if rng.random() < 0.3:
        return [{**event, "event": "unique_opened"}, event]
    return [event]


def _brevo_event(rng: random.Random, fact: Fact) -> dict[str, Any]:
    local = datetime.fromtimestamp(fact.ts, BREVO_ZONE)
    # ts_epoch is documented in ms, but Brevo's own examples carry seconds.
    epoch = int(fact.ts) if rng.random() < 0.15 else int(fact.ts * 1000)
    event: dict[str, Any] = {
        "event": BREVO_EVENTS[fact.kind],
        "email": fact.recipient,
        "id": 845012,
        "date": local.strftime("%Y-%m-%d %H:%M:%S"),
        "ts": int(fact.ts) + 3600,
        "message-id": f"<202603020800.{fact.msg}@smtp-relay.mailin.fr>",
        "ts_event": int(fact.ts),
        "subject": SUBJECT,
        "sending_ip": SENDING_IPS[0],
        "ts_epoch": epoch,
        "template_id": 22,
        "contact_id": rng.randint(1, 99999),
    }
    if fact.meta:
        event["X-Mailin-custom"] = json.dumps(fact.meta)
    if fact.tags and rng.random() < 0.5:
        event["tags"] = list(fact.tags)
    elif fact.tags:
        event["tag"] = json.dumps(list(fact.tags))
    if fact.kind == "bounced":
        soft = fact.bounce == "soft"
        event["event"] = "soft_bounce" if soft else "hard_bounce"
    if fact.kind in ("bounced", "deferred"):
        # Brevo often puts a space before the reason.
        event["reason"] = rng.choice(("", " ")) + (fact.reply or "")
    if fact.kind in ("opened", "clicked", "unsubscribed"):
        event.update(user_agent=fact.user_agent, device_used="DESKTOP")
    if fact.kind == "clicked":
        event["link"] = fact.url
    return event
