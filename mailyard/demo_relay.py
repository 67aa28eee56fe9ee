"""The relay half of ``mailyard demo``: sample messages through example rules.

There are no real ESP accounts on a laptop, so the demo starts the strict
local stand-ins of the SendGrid, Mailgun and Postmark APIs (the same ones
the tests use, from ``tests/standins``), publishes a rule set whose
destinations point at them (VIP separation, an 80/20 marketing split, a
transactional failover), submits sample messages through the gateway and
reports which provider received each one.
"""

from __future__ import annotations

import random
import sys
import time
from collections import Counter
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
PROVIDERS = ("sendgrid", "mailgun", "postmark")

RULES = """\
version: 1
author: mailyard demo
created_at: "2026-12-01T00:00:00Z"
reason: demo rule set
destinations:
  - {{name: vip-postmark, kind: esp_http, provider: postmark, base_url: "{postmark}",
     credentials: {{server_token: DEMO_POSTMARK_TOKEN}}}}
  - {{name: primary-sendgrid, kind: esp_http, provider: sendgrid, base_url: "{sendgrid}",
     credentials: {{api_key: DEMO_SENDGRID_KEY}}}}
  - {{name: bulk-mailgun, kind: esp_http, provider: mailgun, base_url: "{mailgun}",
     domain: "{mailgun_domain}", credentials: {{api_key: DEMO_MAILGUN_KEY}}}}
default: primary-sendgrid
rules:
  - name: vip
    condition: {{any: [{{subaccount: {{equals: vip}}}}, {{tags: {{equals: vip}}}}]}}
    action: {{route: vip-postmark}}
  - name: marketing-split
    condition: {{stream: {{equals: marketing}}}}
    action:
      split:
        - {{destination: primary-sendgrid, weight: 80}}
        - {{destination: bulk-mailgun, weight: 20}}
  - name: transactional-failover
    condition: {{stream: {{equals: transactional}}}}
    action:
      failover:
        destinations: [primary-sendgrid, vip-postmark]
        trip: {{error_rate: 0.3, deferral_rate: 0.3}}
        min_volume: 20
"""


def standin_module(provider: str):  # type: ignore[no-untyped-def]
    # The stand-ins live with the tests; the demo runs from the repository.
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    import importlib

    return importlib.import_module(f"tests.standins.{provider}")


def credentials_env() -> dict[str, str]:
    return {
        "DEMO_SENDGRID_KEY": standin_module("sendgrid").API_KEY,
        "DEMO_MAILGUN_KEY": standin_module("mailgun").API_KEY,
        "DEMO_POSTMARK_TOKEN": standin_module("postmark").SERVER_TOKEN,
    }


def rules_text(urls: dict[str, str]) -> str:
    return RULES.format(mailgun_domain=standin_module("mailgun").DOMAIN, **urls)


def sample_messages(n: int, seed: int) -> list[dict[str, object]]:
    rng = random.Random(seed)
    domains = ["gmail.com", "outlook.com", "yahoo.com", "icloud.com", "shop.example"]
    out: list[dict[str, object]] = []
    for i in range(n):
        kind = rng.choices(["vip", "marketing", "transactional"], [1, 6, 3])[0]
        message: dict[str, object] = {
            "from": "news@mailyard-demo.example",
            "to": [f"reader{seed}-{i}@{rng.choice(domains)}"],
            "subject": f"Demo message {i}", "text": "Hello from the Mailyard demo.",
            "stream": "marketing" if kind == "marketing" else "transactional",
            "subaccount": "vip" if kind == "vip" else "acme",
        }
        out.append(message)
    return out


def submit(
    gateway: str, messages: list[dict[str, object]], headers: dict[str, str]
) -> list[str]:
    """Submit in batches of 100; ``headers`` carry a key with the send scope."""
    ids: list[str] = []
    for start in range(0, len(messages), 100):
        batch = messages[start:start + 100]
        reply = httpx.post(f"{gateway}/v1/messages", json={"messages": batch},
                           headers=headers, timeout=30)
        reply.raise_for_status()
        ids += [m["message_id"] for m in reply.json()["messages"]]
    return ids


def delivered(urls: dict[str, str], ids: set[str]) -> Counter[str]:
    got: Counter[str] = Counter()
    for provider, url in urls.items():
        for sent in httpx.get(f"{url}/_sent", timeout=10).json()["messages"]:
            if sent["metadata"].get("mailyard_message_id") in ids:
                got[provider] += 1
    return got


def wait_delivered(urls: dict[str, str], ids: set[str], timeout: float) -> Counter[str]:
    deadline = time.monotonic() + timeout
    got: Counter[str] = Counter()
    while time.monotonic() < deadline:
        got = delivered(urls, ids)
        if sum(got.values()) >= len(ids):
            break
        time.sleep(0.5)
    return got
