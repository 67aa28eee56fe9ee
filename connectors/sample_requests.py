"""Sample bodies for the ESPs that post one notification per request.

Mailgun posts JSON, and some accounts still use legacy form posts (url-
encoded, or multipart when the original message is attached). Postmark
posts one record. Amazon SES goes through SNS: one SNS message per SES
notification, each notification possibly covering several recipients.
Resend posts one event per email, which names all its ``to`` addresses
but not the recipient the event concerns.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlencode

from connectors.sample_formats import (
    JSON,
    SENDER,
    SENDING_IPS,
    SUBJECT,
    Fact,
    Sample,
    hexits,
    iso_local,
    iso_z,
    reply_text,
    seeded_uuid,
    token,
)
from connectors.sample_ses import amazon_ses

__all__ = ["amazon_ses", "mailgun", "postmark", "resend"]

MAILGUN_EVENTS = {
    "delivered": "delivered", "deferred": "failed", "bounced": "failed",
    "opened": "opened", "clicked": "clicked", "complained": "complained",
    "unsubscribed": "unsubscribed",
}  # fmt: skip
LEGACY_EVENTS = {**MAILGUN_EVENTS, "bounced": "bounced"}
LEGACY_KINDS = frozenset(LEGACY_EVENTS) - {"deferred"}
FORM = "application/x-www-form-urlencoded"


def mailgun(rng: random.Random, facts: Sequence[Fact]) -> list[Sample]:
    """One POST per event; about one in six as a legacy form post."""
    samples = []
    for fact in facts:
        if fact.kind in LEGACY_KINDS and rng.random() < 0.17:
            samples.append(_mailgun_legacy(rng, fact))
            continue
        signature, data = _signature(rng, fact), _event_data(rng, fact)
        body = {"signature": signature, "event-data": data}
        samples.append(Sample("mailgun", JSON, json.dumps(body).encode(), 1))
    return samples


def _message_id(fact: Fact) -> str:
    return f"20260302080001.{fact.msg}@mg.northwind.example"


def _signature(rng: random.Random, fact: Fact) -> dict[str, str]:
    stamp = str(int(fact.ts) + rng.randint(1, 30))
    return {"timestamp": stamp, "token": hexits(rng, 50), "signature": hexits(rng, 64)}


def _event_data(rng: random.Random, fact: Fact) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": token(rng, 16)[:22],
        "timestamp": round(fact.ts, 6),
        "log-level": "info" if fact.kind != "bounced" else "error",
        "event": MAILGUN_EVENTS[fact.kind],
        "recipient": fact.recipient,
        "recipient-domain": fact.recipient.rsplit("@", 1)[1],
        "tags": list(fact.tags),
        "user-variables": fact.meta,
        "message": {"headers": {"message-id": _message_id(fact)}},
    }
    if fact.kind in ("delivered", "deferred", "bounced"):
        headers = data["message"]["headers"]
        headers.update({"to": fact.to_header, "from": SENDER, "subject": SUBJECT})
        data["envelope"] = {
            "transport": "smtp",
            "sender": "bounce@mg.northwind.example",
            "sending-ip": SENDING_IPS[2],
            "targets": fact.recipient,
        }
        data["delivery-status"] = {
            "tls": True, "mx-host": "gmail-smtp-in.l.google.com", "code": fact.code,
            "description": "", "session-seconds": 0.71, "utf8": True,
            "attempt-no": 1, "message": reply_text(fact), "certificate-verified": True,
        }  # fmt: skip
    if fact.kind in ("deferred", "bounced"):
        temporary = fact.kind == "deferred"
        data["severity"] = "temporary" if temporary else "permanent"
        data["reason"] = "generic" if temporary else "bounce"
        if temporary:
            data["delivery-status"]["retry-seconds"] = 600
    if fact.kind in ("opened", "clicked", "unsubscribed"):
        data["ip"] = fact.client_ip
        data["client-info"] = {
            "client-type": "browser",
            "client-os": "iOS",
            "device-type": "mobile",
            "user-agent": fact.user_agent,
        }
        data["geolocation"] = {"country": "US", "region": "CA", "city": "San Francisco"}
    if fact.kind == "clicked":
        data["url"] = fact.url
    return data


def _mailgun_legacy(rng: random.Random, fact: Fact) -> Sample:
    sig = _signature(rng, fact)
    message_id = _message_id(fact)
    fields: list[tuple[str, str]] = [("event", LEGACY_EVENTS[fact.kind]),
                                     ("recipient", fact.recipient),
                                     ("domain", "mg.northwind.example")]  # fmt: skip
    if fact.kind in ("opened", "clicked", "unsubscribed"):
        fields += [("message-id", message_id), ("ip", fact.client_ip or ""),
                   ("user-agent", fact.user_agent or ""), ("device-type", "desktop"),
                   ("client-type", "browser"), ("h", hexits(rng, 32))]  # fmt: skip
        fields += [("tag", tag) for tag in fact.tags]
    else:
        fields += [("Message-Id", f"<{message_id}>"), ("X-Mailgun-Sid", token(rng, 30))]
        fields += [("X-Mailgun-Tag", tag) for tag in fact.tags]
    if fact.kind == "bounced":
        fields += [("code", str(fact.code)), ("error", fact.reply or ""),
                   ("notification", "")]  # fmt: skip
    if fact.kind == "clicked":
        fields.append(("url", fact.url or ""))
    # User variables are merged into the form as ordinary fields.
    fields += list(fact.meta.items())
    fields += [("timestamp", sig["timestamp"]), ("token", sig["token"]),
               ("signature", sig["signature"])]  # fmt: skip
    if fact.kind == "bounced" and rng.random() < 0.5:
        return _multipart(rng, fields)
    return Sample("mailgun", FORM, urlencode(fields).encode(), 1)


def _multipart(rng: random.Random, fields: list[tuple[str, str]]) -> Sample:
    """The form as multipart/form-data, with the bounced message attached."""
    boundary = f"----------MailgunBoundary{hexits(rng, 16)}"
    head = f"--{boundary}\r\nContent-Disposition: form-data; "
    parts = [
        f'{head}name="{name}"\r\n\r\n{value}\r\n'
        for name, value in fields + [("attachment-count", "1")]
    ]
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="attachment-1"; '
        f'filename="message.eml"\r\nContent-Type: message/rfc822\r\n\r\n'
        f"From: {SENDER}\r\nSubject: {SUBJECT}\r\n\r\nHello!\r\n\r\n"
    )
    body = "".join(parts) + f"--{boundary}--\r\n"
    content_type = f"multipart/form-data; boundary={boundary}"
    return Sample("mailgun", content_type, body.encode(), 1)


POSTMARK_BOUNCES = {
    "hard": ("HardBounce", 1, "Hard bounce"),
    "block": ("HardBounce", 1, "Hard bounce"),
    "soft": ("SoftBounce", 4096, "Soft bounce/Undeliverable"),
    None: ("Transient", 2, "Message delayed/Undeliverable"),
}


def postmark(rng: random.Random, facts: Sequence[Fact]) -> list[Sample]:
    """One record per POST, timestamps in US Eastern time with 7 digits."""
    return [
        Sample("postmark", JSON, json.dumps(_postmark_record(rng, f)).encode(), 1)
        for f in facts
    ]


def _postmark_record(rng: random.Random, fact: Fact) -> dict[str, Any]:
    when = iso_local(fact.ts, -5, rng.randint(0, 9))
    record: dict[str, Any] = {
        "MessageID": str(seeded_uuid(random.Random(fact.msg))),
        "ServerID": 23, "MessageStream": "outbound",
        "Tag": fact.tags[0] if fact.tags else "", "Metadata": fact.meta,
    }  # fmt: skip
    if fact.kind == "delivered":
        record.update(RecordType="Delivery", Recipient=fact.recipient, DeliveredAt=when,
                      Details=f"smtp;{fact.reply}")  # fmt: skip
    elif fact.kind in ("bounced", "deferred", "complained"):
        kind, code, name = POSTMARK_BOUNCES[fact.bounce]
        if fact.kind == "complained":
            kind, code, name = "SpamComplaint", 100001, "Spam complaint"
        record.update(
            RecordType="SpamComplaint" if fact.kind == "complained" else "Bounce",
            ID=rng.randint(10**9, 10**10), Type=kind, TypeCode=code, Name=name,
            Description="The server was unable to deliver your message.",
            Details=f"smtp;{fact.reply}" if fact.reply else "", Email=fact.recipient,
            From=SENDER, BouncedAt=when, DumpAvailable=True, Inactive=code == 1,
            CanActivate=True, Subject=SUBJECT,
        )  # fmt: skip
    elif fact.kind in ("opened", "clicked"):
        record_type = "Open" if fact.kind == "opened" else "Click"
        record.update(RecordType=record_type, Recipient=fact.recipient, ReceivedAt=when)
        record.update(UserAgent=fact.user_agent, Geo={"CountryISOCode": "RS"})
        record["Client"] = {"Name": "Chrome 35.0.1916.153", "Family": "Chrome"}
        if fact.kind == "opened":
            record.update(FirstOpen=True, ReadSeconds=5, Platform="WebMail")
        else:
            record.update(ClickLocation="HTML", OriginalLink=fact.url)
    else:
        record.update(RecordType="SubscriptionChange", Recipient=fact.recipient,
                      ChangedAt=when, Origin="Recipient", SuppressSending=True,
                      SuppressionReason="ManualSuppression")  # fmt: skip
    return record



RESEND_EVENTS = {
    "delivered": "email.delivered", "deferred": "email.delivery_delayed",
    "bounced": "email.bounced", "opened": "email.opened", "clicked": "email.clicked",
    "complained": "email.complained",
}  # fmt: skip
RESEND_BOUNCES = {
    "hard": ("Permanent", "General"),
    "soft": ("Transient", "MailboxFull"),
    "block": ("Permanent", "Suppressed"),
}


def resend(rng: random.Random, facts: Sequence[Fact]) -> list[Sample]:
    """One event per POST and email; ``email.sent`` comes before delivery.

    Copies of one email that share a fate at one moment share one event.
    Resend has no unsubscribe event, so those facts send nothing.
    """
    groups: dict[tuple[str, str, float], list[Fact]] = {}
    for fact in facts:
        if fact.kind in RESEND_EVENTS:
            groups.setdefault((fact.msg, fact.kind, fact.ts), []).append(fact)

    samples = []
    for (_msg, kind, _ts), grouped in groups.items():
        fact = grouped[0]
        names = {f.recipient: f.to_header for f in grouped}
        to = [names.get(address, address) for address in fact.recipients]
        if kind == "delivered":
            samples.append(_resend_event(fact, to, "email.sent", fact.sent + 0.4))
        samples.append(_resend_event(fact, to, RESEND_EVENTS[kind], fact.ts))
    return samples


def _resend_event(fact: Fact, to: list[str], kind: str, ts: float) -> Sample:
    tags = dict(fact.meta)
    if fact.tags:
        tags["category"] = fact.tags[0]
    data: dict[str, Any] = {
        "created_at": iso_z(fact.sent, 6).replace("Z", "+00:00"),
        "email_id": str(seeded_uuid(random.Random(fact.msg))),
        "from": SENDER,
        "to": to,
        "subject": SUBJECT,
        "tags": tags,
    }
    if kind == "email.bounced":
        bounce_type, sub_type = RESEND_BOUNCES[fact.bounce or "hard"]
        data["bounce"] = {"message": reply_text(fact), "subType": sub_type,
                          "type": bounce_type}  # fmt: skip
    if kind == "email.clicked":
        data["click"] = {
            "ipAddress": fact.client_ip,
            "link": fact.url,
            "timestamp": iso_z(ts),
            "userAgent": fact.user_agent,
        }
    event = {"type": kind, "created_at": iso_z(ts), "data": data}
    return Sample("resend", JSON, json.dumps(event).encode(), 1)
