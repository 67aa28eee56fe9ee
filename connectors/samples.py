"""Realistic, seeded sample webhook traffic for the ten ESPs.

:func:`generate` tells message stories (delivered then opened and clicked,
deferred then delivered, bounced hard, soft or blocked, complaints,
unsubscribes) and renders them in each ESP's own wire format with
:mod:`connectors.sample_batches`, :mod:`connectors.sample_requests` and
the per-ESP ``sample_*`` modules.
The same seed always yields the same bytes. ``duplicate_rate`` re-sends
some bodies later, as ESPs retry.
"""

from __future__ import annotations

import dataclasses
import json
import random
from collections.abc import Sequence
from pathlib import Path

from connectors import (
    sample_batches,
    sample_mandrill,
    sample_requests,
    sample_socketlabs,
)
from connectors.sample_formats import Fact, Renderer, Sample, file_suffix

__all__ = ["Fact", "Sample", "generate", "write_samples", "SAMPLE_ESPS"]

RENDERERS: dict[str, Renderer] = {
    "sendgrid": sample_batches.sendgrid,
    "mailgun": sample_requests.mailgun,
    "sparkpost": sample_batches.sparkpost,
    "amazon_ses": sample_requests.amazon_ses,
    "postmark": sample_requests.postmark,
    "mailjet": sample_batches.mailjet,
    "brevo": sample_batches.brevo,
    "mandrill": sample_mandrill.mandrill,
    "resend": sample_requests.resend,
    "socketlabs": sample_socketlabs.socketlabs,
}
SAMPLE_ESPS: tuple[str, ...] = tuple(RENDERERS)

START = 1_772_438_400.0  # 2026-03-02T08:00:00Z

DOMAINS: tuple[tuple[str, int], ...] = (
    ("gmail.com", 34), ("outlook.com", 9), ("hotmail.com", 7), ("live.com", 2),
    ("yahoo.com", 11), ("aol.com", 3), ("icloud.com", 7), ("me.com", 2),
    ("gmx.de", 3), ("web.de", 2), ("orange.fr", 2), ("proton.me", 2),
    ("acme-industries.com", 5), ("northwind.example", 4), ("uni-heidelberg.de", 3),
    ("fastmail.com", 2), ("bücher.example", 1),
)  # fmt: skip
FIRST = ("Anna", "José", "Zoë", "Łukasz", "Søren", "Mei", "Olu", "Priya", "Liam",
         "Chloé", "Jürgen", "Aiko", "Noah", "Fatima", "Mateo", "Hana")  # fmt: skip
LAST = ("Smith", "García", "Müller", "Nguyễn", "O'Brien", "Kowalski", "Dubois",
        "Tanaka", "Okafor", "Rossi", "Andersen", "Patel")  # fmt: skip

# (code, enhanced status, text) replies as receiving MTAs word them.
HARD_REPLIES = (
    (550, "5.1.1", "The email account that you tried to reach does not exist. "
     "Please try double-checking the recipient's email address for typos or "
     "unnecessary spaces. https://support.google.com/mail/?p=NoSuchUser"),
    (550, "5.5.0", "Requested action not taken: mailbox unavailable (S2017062302)"),
    (554, "5.4.14", "Hop count exceeded - possible mail loop ATTR34"),
    (550, "5.1.1", "<{rcpt}>: Recipient address rejected: User unknown"),
)  # fmt: skip
SOFT_REPLIES = (
    (552, "5.2.2", "The email account that you tried to reach is over quota and "
     "inactive. https://support.google.com/mail/?p=OverQuotaPerm"),
    (452, "4.2.2", "Mailbox full: user is over quota"),
)  # fmt: skip
BLOCK_REPLIES = (
    (550, "5.7.1", "[192.0.2.17] Our system has detected that this message is "
     "likely unsolicited mail. To reduce the amount of spam sent to Gmail, this "
     "message has been blocked."),
    (554, "5.7.1", "Service unavailable; Client host [192.0.2.17] blocked using "
     "zen.spamhaus.org"),
)  # fmt: skip
DEFER_REPLIES = (
    (421, "4.7.28", "[192.0.2.17] Gmail has detected an unusual rate of unsolicited "
     "mail originating from your IP address. To protect our users from spam, mail "
     "sent from your IP address has been temporarily rate limited."),
    (451, "4.7.500", "Server busy. Please try again later from [192.0.2.17]. "
     "(S77714) [DB5EUR03FT012.eop-EUR03.prod.protection.outlook.com]"),
    (421, "4.7.0", "[TSS04] Messages from 192.0.2.17 temporarily deferred due to "
     "unexpected volume or user complaints - 4.16.55.1"),
    (450, "4.2.1", "The user you are trying to contact is receiving mail at a rate "
     "that prevents additional messages from being delivered."),
)  # fmt: skip
REPLIES = {"hard": HARD_REPLIES, "soft": SOFT_REPLIES, "block": BLOCK_REPLIES}

URLS = (
    "https://shop.example.com/spring?utm_source=newsletter&utm_medium=email#top",
    "https://example.com/search?q=caf%C3%A9+cr%C3%A8me&lang=fr",
    "https://app.example.io/invoice/INV-2026-0042?token=a%2Fb%3D&x=1",
    "https://example.org/unsubscribe?u=9f8e%7C7d6c",
)
USER_AGENTS = (
    "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com "
    "GoogleImageProxy)",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Mobile/15E148",
    "Mozilla/5.0",
    "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.17328; Pro)",
)
TAGS = ("newsletter", "welcome", "receipt", "spring")
# Outcomes of a message per recipient, weighted.
OUTCOMES = (("delivered", 80), ("deferred", 7), ("hard", 6), ("soft", 3),
            ("block", 3), ("deferred_hard", 1))  # fmt: skip


def generate(
    seed: int,
    n_events: int,
    esps: Sequence[str] = SAMPLE_ESPS,
    *,
    duplicate_rate: float = 0.0,
) -> list[Sample]:
    """Webhook bodies holding about ``n_events`` events, spread over ``esps``.

    Each sample's ``expected_events`` is how many events it normalizes to.
    A share ``duplicate_rate`` of bodies is sent again later, marked
    ``duplicate=True``.
    """
    rng = random.Random(seed)
    facts: dict[str, list[Fact]] = {esp: [] for esp in esps}
    total, seq = 0, 0
    while total < n_events:
        esp = esps[seq % len(esps)]
        story = _story(rng, seq, START + seq * 7.3)
        facts[esp].extend(story)
        total, seq = total + len(story), seq + 1

    streams = [RENDERERS[esp](rng, facts[esp])[::-1] for esp in esps]
    return _with_duplicates(rng, _interleave(rng, streams), duplicate_rate)


def _interleave(rng: random.Random, streams: list[list[Sample]]) -> list[Sample]:
    """One arrival order for all ESPs, keeping each ESP's own order.

    ``streams`` hold each ESP's samples last first, so popping is cheap.
    """
    out: list[Sample] = []
    while streams := [s for s in streams if s]:
        stream = rng.choices(streams, [len(s) for s in streams])[0]
        out.append(stream.pop())
    return out


def _with_duplicates(
    rng: random.Random, samples: list[Sample], rate: float
) -> list[Sample]:
    """``samples`` with some bodies re-sent a little later, as ESP retries are."""
    later: dict[int, list[Sample]] = {}
    for n, sample in enumerate(samples):
        if sample.expected_events and rng.random() < rate:
            again = dataclasses.replace(sample, duplicate=True)
            later.setdefault(rng.randint(n + 1, len(samples)), []).append(again)

    out: list[Sample] = []
    for n, sample in enumerate([*samples, None]):
        out.extend(later.get(n, []))
        if sample is not None:
            out.append(sample)
    return out


def _address(rng: random.Random) -> tuple[str, str]:
    first, last = rng.choice(FIRST), rng.choice(LAST)
    domain = rng.choices([d for d, _ in DOMAINS], [w for _, w in DOMAINS])[0]
    ascii_last = last.encode("ascii", "ignore").decode().replace("'", "").lower()
    ascii_first = first.lower().encode("ascii", "ignore").decode()
    number = rng.randint(1, 99)
    local = rng.choice((f"{ascii_first}.{ascii_last}", f"{ascii_last}{number}"))
    # Unquoted commas in display names trip naive address splitting.
    name = rng.choice((f"{first} {last}", f'"{last}, {first}"', f"{first}"))
    return f"{local}@{domain}", name


def _story(rng: random.Random, seq: int, ts: float) -> list[Fact]:
    """Every event one message causes, for one or two recipients."""
    recipients = [_address(rng) for _ in range(1 if rng.random() < 0.9 else 2)]
    meta = {"mailyard_message_id": f"my-{rng.getrandbits(48):012x}"}
    if rng.random() < 0.4:
        meta["mailyard_stream"] = rng.choice(("marketing", "transactional"))
    if rng.random() < 0.3:
        meta["campaign"] = "spring-sale-2026"
    tags = rng.sample(TAGS, rng.randint(0, 2))
    base = Fact(
        kind="delivered", recipient="", name="",
        recipients=tuple(address for address, _ in recipients),
        ts=ts + rng.random(), sent=ts, msg=f"{rng.getrandbits(64):016x}", seq=seq * 100,
        meta=meta if rng.random() < 0.8 else {}, tags=tuple(tags),
    )  # fmt: skip
    outcome = rng.choices([o for o, _ in OUTCOMES], [w for _, w in OUTCOMES])[0]
    facts: list[Fact] = []
    for n, (recipient, name) in enumerate(recipients):
        mine = dataclasses.replace(
            base, recipient=recipient, name=name, seq=base.seq + n * 10
        )
        facts.extend(_recipient_facts(rng, mine, outcome))
    return facts


def _recipient_facts(rng: random.Random, base: Fact, outcome: str) -> list[Fact]:
    steps: list[tuple[str, str | None, float]] = []
    if outcome.startswith("deferred"):
        steps += [("deferred", None, 60.0 * k) for k in range(1, rng.randint(2, 3))]
    if outcome in ("hard", "soft", "block", "deferred_hard"):
        bounce = "hard" if outcome == "deferred_hard" else outcome
        steps.append(("bounced", bounce, 900.0))
    else:
        steps.append(("delivered", None, 1000.0))
        if rng.random() < 0.45:
            steps.append(("opened", None, 4000.0 + rng.random() * 9000))
            if rng.random() < 0.35:
                steps.append(("clicked", None, 14000.0))
        if rng.random() < 0.02:
            steps.append(("complained", None, 20000.0))
        elif rng.random() < 0.03:
            steps.append(("unsubscribed", None, 21000.0))
    return [
        _fact(rng, base, kind, bounce, base.ts + delay, n)
        for n, (kind, bounce, delay) in enumerate(steps)
    ]


def _fact(
    rng: random.Random, base: Fact, kind: str, bounce: str | None, ts: float, n: int
) -> Fact:
    reply = _reply(rng, kind, bounce, ts)
    engaged = kind in ("opened", "clicked", "unsubscribed")
    return dataclasses.replace(
        base, kind=kind, bounce=bounce, ts=ts, seq=base.seq + n,
        code=reply[0] if reply else None, status=reply[1] if reply else None,
        reply=reply[2].replace("{rcpt}", base.recipient) if reply else None,
        url=rng.choice(URLS) if kind == "clicked" else None,
        user_agent=rng.choice(USER_AGENTS) if engaged else None,
        client_ip=f"203.0.113.{rng.randint(1, 254)}" if engaged else None,
    )  # fmt: skip


def _reply(
    rng: random.Random, kind: str, bounce: str | None, ts: float
) -> tuple[int, str, str] | None:
    """(code, enhanced status, the whole reply line) for MTA-facing events."""
    if kind == "delivered":
        queue_id = f"{rng.getrandbits(40):010x}si{rng.randint(10**5, 10**6)}qtb"
        return 250, "2.0.0", f"250 2.0.0 OK  {int(ts)} {queue_id}.{rng.randint(1, 99)}"
    if kind == "deferred":
        code, status, text = rng.choice(DEFER_REPLIES)
    elif kind == "bounced" and bounce is not None:
        code, status, text = rng.choice(REPLIES[bounce])
    else:
        return None
    return code, status, f"{code} {status} {text}"


def write_samples(folder: Path, samples: Sequence[Sample]) -> Path:
    """One file per body plus ``manifest.json``, the layout ``mailyard replay`` reads.

    Returns the manifest's path.
    """
    folder.mkdir(parents=True, exist_ok=True)
    manifest = []
    for n, sample in enumerate(samples):
        name = f"{n:06d}-{sample.esp}{file_suffix(sample.content_type)}"
        (folder / name).write_bytes(sample.body)
        manifest.append({
            "file": name, "esp": sample.esp, "content_type": sample.content_type,
            "subaccount": sample.subaccount, "expected_events": sample.expected_events,
            "duplicate": sample.duplicate,
        })  # fmt: skip
    path = folder / "manifest.json"
    path.write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    return path
