"""The pieces sample renderers share: a story's facts, samples, id makers.

A :class:`Fact` is one thing that happened to one recipient's copy of a
message, in ESP-neutral terms. Renderers in :mod:`connectors.sample_batches`
and :mod:`connectors.sample_requests` turn facts into :class:`Sample`
bodies, each in one ESP's wire format.
"""

from __future__ import annotations

import base64
import dataclasses
import random
import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timedelta, timezone


@dataclasses.dataclass(frozen=True, slots=True)
class Fact:
    """One event of one recipient's copy of a message."""

    kind: str  # delivered, deferred, bounced, opened, clicked, complained, ...
    recipient: str
    name: str  # the display name in the To header
    recipients: tuple[str, ...]  # every recipient of the message
    ts: float  # when it happened, epoch seconds
    sent: float  # when the message was sent
    msg: str  # 16 hex digits naming the message
    seq: int  # unique per fact within one generate() call
    meta: dict[str, str] = dataclasses.field(default_factory=dict)
    tags: tuple[str, ...] = ()
    bounce: str | None = None  # hard, soft or block on bounced facts
    code: int | None = None
    status: str | None = None
    reply: str | None = None  # the whole SMTP reply line
    url: str | None = None
    user_agent: str | None = None
    client_ip: str | None = None

    @property
    def to_header(self) -> str:
        return f"{self.name} <{self.recipient}>"


@dataclasses.dataclass(frozen=True, slots=True)
class Sample:
    """One webhook request body as the ESP would post it."""

    esp: str
    content_type: str
    body: bytes
    expected_events: int
    duplicate: bool = False
    subaccount: str | None = None


Renderer = Callable[[random.Random, Sequence[Fact]], list[Sample]]

JSON = "application/json"
SENDER = "Northwind News <news@mail.northwind.example>"
SUBJECT = "Spring sale: 20% off — this week only"
SENDING_IPS = ("167.89.101.12", "149.72.34.201", "198.2.180.14")

SUFFIXES = {
    "application/json": ".json",
    "text/plain": ".json",
    "application/x-www-form-urlencoded": ".form",
    "multipart/form-data": ".multipart",
}


def file_suffix(content_type: str) -> str:
    """A file name suffix that says what a body's format is."""
    media = content_type.split(";", 1)[0].strip().lower()
    return SUFFIXES.get(media, ".bin")


def batches(
    rng: random.Random, facts: Sequence[Fact], most: int
) -> Iterator[list[Fact]]:
    """Consecutive runs of 1 to ``most`` facts, as ESPs batch by time and size."""
    start = 0
    while start < len(facts):
        size = rng.randint(1, most)
        yield list(facts[start : start + size])
        start += size


def iso_z(ts: float, digits: int = 3) -> str:
    """``2026-03-02T08:00:01.123Z``: UTC with ``digits`` fractional digits."""
    moment = datetime.fromtimestamp(ts, timezone.utc)
    fraction = f"{moment.microsecond:06d}"[:digits]
    suffix = f".{fraction}Z" if digits else "Z"
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + suffix


def iso_local(ts: float, offset_hours: int, extra_digit: int = 0) -> str:
    """ISO 8601 in a local zone, e.g. ``-05:00``, with a 7th fractional digit."""
    zone = timezone(timedelta(hours=offset_hours))
    moment = datetime.fromtimestamp(ts, timezone.utc).astimezone(zone)
    text = moment.isoformat(timespec="microseconds")
    return f"{text[:26]}{extra_digit}{text[26:]}"


def token(rng: random.Random, n_bytes: int) -> str:
    """Random URL-safe base64 without padding, like SendGrid's ids."""
    raw = rng.getrandbits(n_bytes * 8).to_bytes(n_bytes, "big")
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def hexits(rng: random.Random, n: int) -> str:
    return f"{rng.getrandbits(n * 4):0{n}x}"


def seeded_uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def reply_text(fact: Fact) -> str:
    """The reply without its leading code: ``5.1.1 The email account ...``."""
    return (fact.reply or "").split(" ", 1)[-1]
