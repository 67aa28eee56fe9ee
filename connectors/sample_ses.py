"""Sample Amazon SES traffic: SNS HTTPS deliveries of SES notifications.

Facts of a multi-recipient message that happen together (both copies
delivered in one SMTP session) share one notification. Opens and clicks
name every ``mail.destination`` address, because SES cannot tell which
recipient opened, so one of them normalizes to an event per recipient.
The subscription handshake and the validation notice come first.
"""

from __future__ import annotations

import base64
import json
import random
from collections.abc import Callable, Sequence
from typing import Any

from connectors.sample_formats import (
    SENDER,
    SUBJECT,
    Fact,
    Sample,
    hexits,
    iso_z,
    seeded_uuid,
)

SNS = "text/plain; charset=UTF-8"
TOPIC = "arn:aws:sns:us-east-1:123456789012:mailyard-ses-events"
SNS_URL = "https://sns.us-east-1.amazonaws.com/"
CERT = SNS_URL + "SimpleNotificationService-{}.pem"
REPORTING_MTA = "dsn; a8-30.smtp-out.amazonses.com"

SES_EVENTS = {
    "delivered": "Delivery", "deferred": "DeliveryDelay", "bounced": "Bounce",
    "opened": "Open", "clicked": "Click", "complained": "Complaint",
    "unsubscribed": "Subscription",
}  # fmt: skip
# Only these exist as classic SES Notifications; the rest need Event Publishing.
CLASSIC = frozenset({"Delivery", "Bounce", "Complaint"})
PER_RECIPIENT = frozenset({"Delivery", "DeliveryDelay", "Bounce", "Complaint"})
BOUNCE_TYPES = {
    "hard": ("Permanent", "General"),
    "soft": ("Transient", "MailboxFull"),
    "block": ("Permanent", "General"),
}


def amazon_ses(rng: random.Random, facts: Sequence[Fact]) -> list[Sample]:
    """SNS messages: handshake, validation notice, then one per notification."""
    notice = "Successfully validated SNS topic for Amazon SES event publishing."
    samples = [_confirmation(rng), _sns(rng, notice, 0, 0.0)]

    groups: dict[tuple[str, str, float], list[Fact]] = {}
    for fact in facts:
        groups.setdefault((fact.msg, fact.kind, fact.ts), []).append(fact)

    for (_msg, kind, ts), grouped in groups.items():
        event_type = SES_EVENTS[kind]
        runs = [grouped] if event_type in PER_RECIPIENT else [[f] for f in grouped]
        for run in runs:
            content = _notification(rng, event_type, run)
            shared = len(run[0].recipients)
            count = len(run) if event_type in PER_RECIPIENT else shared
            samples.append(_sns(rng, json.dumps(content), count, ts))
    return samples


def _signature(rng: random.Random) -> dict[str, str]:
    raw = rng.getrandbits(2048).to_bytes(256, "big")
    return {
        "SignatureVersion": "1",
        "Signature": base64.b64encode(raw).decode(),
        "SigningCertURL": CERT.format(hexits(rng, 32)),
    }


def _sns(rng: random.Random, message: str, count: int, ts: float) -> Sample:
    envelope = {
        "Type": "Notification",
        "MessageId": seeded_uuid(rng),
        "TopicArn": TOPIC,
        "Message": message,
        "Timestamp": iso_z(ts + 0.35 if ts else 1_772_438_000.0),
        **_signature(rng),
        "UnsubscribeURL": f"{SNS_URL}?Action=Unsubscribe"
        f"&SubscriptionArn={TOPIC}:{seeded_uuid(rng)}",
    }
    return Sample("amazon_ses", SNS, json.dumps(envelope, indent=2).encode(), count)


def _confirmation(rng: random.Random) -> Sample:
    envelope = {
        "Type": "SubscriptionConfirmation",
        "MessageId": seeded_uuid(rng),
        "Token": hexits(rng, 256),
        "TopicArn": TOPIC,
        "Message": f"You have chosen to subscribe to the topic {TOPIC}.\n"
        "To confirm the subscription, visit the SubscribeURL included in this "
        "message.",
        "SubscribeURL": f"{SNS_URL}?Action=ConfirmSubscription",
        "Timestamp": iso_z(1_772_437_900.0),
        **_signature(rng),
    }
    return Sample("amazon_ses", SNS, json.dumps(envelope, indent=2).encode(), 0)


def _notification(
    rng: random.Random, event_type: str, run: list[Fact]
) -> dict[str, Any]:
    classic = event_type in CLASSIC and rng.random() < 0.5
    kind = "notificationType" if classic else "eventType"
    key, build = EVENT_OBJECTS[event_type]
    return {
        kind: event_type,
        "mail": _mail(run[0], classic),
        key: build(rng, run, iso_z(run[0].ts)),
    }


def _delivery(rng: random.Random, run: list[Fact], when: str) -> dict[str, Any]:
    return {
        "timestamp": when,
        "processingTimeMillis": rng.randint(300, 3000),
        "recipients": [fact.recipient for fact in run],
        "smtpResponse": run[0].reply,
        "reportingMTA": REPORTING_MTA.removeprefix("dsn; "),
        "remoteMtaIp": "142.250.102.27",
    }


def _failed_recipients(run: list[Fact]) -> list[dict[str, str]]:
    return [
        {
            "emailAddress": fact.recipient,
            "status": fact.status or "",
            "diagnosticCode": f"smtp; {fact.reply}",
        }
        for fact in run
    ]


def _bounce(rng: random.Random, run: list[Fact], when: str) -> dict[str, Any]:
    bounce_type, subtype = BOUNCE_TYPES[run[0].bounce or "hard"]
    recipients = [{**entry, "action": "failed"} for entry in _failed_recipients(run)]
    return {
        "bounceType": bounce_type,
        "bounceSubType": subtype,
        "bouncedRecipients": recipients,
        "timestamp": when,
        "feedbackId": f"0100018e{hexits(rng, 24)}-000000",
        "reportingMTA": REPORTING_MTA,
    }


def _delay(rng: random.Random, run: list[Fact], when: str) -> dict[str, Any]:
    return {
        "timestamp": when,
        "delayType": "TransientCommunicationFailure",
        "expirationTime": iso_z(run[0].ts + 86400),
        "delayedRecipients": _failed_recipients(run),
    }


def _complaint(rng: random.Random, run: list[Fact], when: str) -> dict[str, Any]:
    return {
        "complainedRecipients": [{"emailAddress": fact.recipient} for fact in run],
        "timestamp": when,
        "feedbackId": f"0100018e{hexits(rng, 24)}-000000",
        "complaintSubType": None,
        "userAgent": "Yahoo!-Mail-Feedback/2.0",
        "complaintFeedbackType": "abuse",
        "arrivalDate": iso_z(run[0].ts - 2),
    }


def _engagement(rng: random.Random, run: list[Fact], when: str) -> dict[str, Any]:
    fact = run[0]
    detail = {"ipAddress": fact.client_ip, "timestamp": when}
    detail["userAgent"] = fact.user_agent
    if fact.url is not None:
        detail.update(link=fact.url, linkTags={"samplekey0": ["samplevalue0"]})
    return detail


def _subscription(rng: random.Random, run: list[Fact], when: str) -> dict[str, Any]:
    return {
        "contactList": "newsletter",
        "timestamp": when,
        "source": "UnsubscribeHeader",
        "newTopicPreferences": {"unsubscribeAll": True},
        "oldTopicPreferences": {},
    }


EventObject = Callable[[random.Random, list[Fact], str], dict[str, Any]]
EVENT_OBJECTS: dict[str, tuple[str, EventObject]] = {
    "Delivery": ("delivery", _delivery),
    "Bounce": ("bounce", _bounce),
    "DeliveryDelay": ("deliveryDelay", _delay),
    "Complaint": ("complaint", _complaint),
    "Open": ("open", _engagement),
    "Click": ("click", _engagement),
    "Subscription": ("subscription", _subscription),
}


def _mail(fact: Fact, classic: bool) -> dict[str, Any]:
    mail: dict[str, Any] = {
        "timestamp": iso_z(fact.sent),
        "source": SENDER,
        "sourceArn": "arn:aws:ses:us-east-1:123456789012:identity/northwind.example",
        "sendingAccountId": "123456789012",
        "messageId": f"0100018e{fact.msg}-9b2c4d1e-5f6a-4b7c-8d9e-0f1a2b3c4d5e-000000",
        "destination": list(fact.recipients),
        "headersTruncated": False,
        "commonHeaders": {"from": [SENDER], "to": [fact.to_header], "subject": SUBJECT},
    }
    # Only Event Publishing carries message tags; our metadata travels there.
    if not classic:
        tags = {"ses:configuration-set": ["mailyard"], "ses:source-ip": ["192.0.2.17"]}
        tags.update({key: [value] for key, value in fact.meta.items()})
        mail["tags"] = tags
    return mail
