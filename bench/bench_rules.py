"""Throughput of the Rule Engine against the same rules written as plain Python.

``run()`` builds a 100-rule set in which most rules do not match a typical
message (other subaccounts, tags and headers) and the last ones do, and
times ``Engine.decide`` over a pool of messages. The baseline is the same
100 conditions as one straight if-chain of Python source (generated here,
as a person would write it by hand) that builds the same ``Decision``;
the two are checked to agree before timing. Run this file directly to
print ``name: value`` lines.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable
from typing import Any

from mailyard.providers import DOMAIN_TO_PROVIDER, recipient_domain
from streams.rules import (
    Decision,
    Engine,
    HealthSnapshot,
    Message,
    RuleSet,
    StaticHealth,
    sticky_fraction,
)

DESTS = ["esp-a", "esp-b", "esp-c", "esp-d"]
DECISIONS = 200_000
_NOW = 1_790_000_000.0
# (condition, action, plain-Python test, plain-Python body) per rule.
Spec = tuple[dict[str, Any], dict[str, Any], str, str]


def _route(dest: str | None, kind: str = "route") -> str:
    return f"return fin(m, r, RULE, {kind!r}, {dest!r}, added, thr, prov)"


def _many(count: int, make: Callable[[int], Spec]) -> list[Spec]:
    return [make(i) for i in range(count)]


def _specs() -> list[Spec]:
    half = [{"destination": d, "weight": 50} for d in ("esp-a", "esp-b")]
    gold = "(h := hdr.get('x-list-{0}')) is not None and GOLD(h) is not None"
    specs = _many(
        40,
        lambda i: (
            {"subaccount": {"equals": f"acct-{i}"}},
            {"route": DESTS[i % 4]},
            f"sub == 'acct-{i}'",
            _route(DESTS[i % 4]),
        ),
    )
    specs += _many(
        20,
        lambda i: (
            {
                "all": [
                    {"stream": {"equals": f"s-{i}"}},
                    {"provider": {"in": ["gmail", "yahoo"]}},
                ]
            },
            {"split": half},
            f"stream == 's-{i}' and prov in GY",
            (
                "return fin(m, r, RULE, 'split', "
                "'esp-a' if STICKY(sub, r) < 0.5 else 'esp-b', added, thr, prov)"
            ),
        ),
    )
    specs += _many(
        15,
        lambda i: (
            {"tags": {"equals": f"t-{i}"}},
            {"route": "esp-c"},
            f"'t-{i}' in tags",
            _route("esp-c"),
        ),
    )
    specs += _many(
        10,
        lambda i: (
            {f"metadata.campaign-{i}": {"exists": True}},
            {"hold": True},
            f"md.get('campaign-{i}') is not None",
            _route(None, "hold"),
        ),
    )
    specs += _many(
        10,
        lambda i: (
            {f"headers.x-list-{i}": {"regex": "^gold"}},
            {"route": "esp-d"},
            gold.format(i),
            _route("esp-d"),
        ),
    )
    return specs + _final_specs()


def _final_specs() -> list[Spec]:
    split = [{"destination": "esp-a", "weight": 80}]
    split.append({"destination": "esp-b", "weight": 20})
    failover = {"destinations": ["esp-a", "esp-b"], "trip": {"deferral_rate": 0.2}}
    throttle = {"rate": 50, "per": ["destination", "provider"]}
    return [
        (
            {"size_bytes": {"gt": 1_000_000}},
            {"annotate": {"tags": ["large"]}},
            "size > 1000000",
            "added = ['large']; tags = [*tags, 'large']",
        ),
        (
            {"provider": {"equals": "microsoft"}},
            {"throttle": throttle},
            "prov == 'microsoft' and thr is None",
            "thr = 50.0",
        ),
        (
            {"recipient_domain": {"in": ["example.com"]}},
            {"suppress": True},
            "dom == 'example.com'",
            _route(None, "suppress"),
        ),
        (
            {"stream": {"equals": "marketing"}},
            {"split": split},
            "stream == 'marketing'",
            (
                "return fin(m, r, RULE, 'split', "
                "'esp-a' if STICKY(sub, r) < 0.8 else 'esp-b', added, thr, prov)"
            ),
        ),
        (
            {"stream": {"equals": "transactional"}},
            {"failover": failover},
            "stream == 'transactional'",
            (
                "s = HEALTH.rates('esp-a'); return fin(m, r, RULE, 'failover', "
                "'esp-a' if s.deferral_rate <= 0.2 else 'esp-b', added, thr, prov)"
            ),
        ),
    ]


def build_ruleset() -> RuleSet:
    """The 100-rule set the benchmark decides with."""
    rules = [
        {"name": f"rule-{n}", "condition": cond, "action": action}
        for n, (cond, action, _, _) in enumerate(_specs())
    ]
    return RuleSet.from_dict(
        {
            "version": 1,
            "author": "bench",
            "created_at": "2026-01-01T00:00:00Z",
            "reason": "benchmark",
            "default": "esp-a",
            "destinations": [{"name": d, "kind": "smtp_direct"} for d in DESTS],
            "rules": rules,
        }
    )


def build_plain(health: StaticHealth) -> Callable[[Message, str], Decision]:
    """The same rules as one if-chain of plain Python, compiled once."""
    lines = [
        "def plain(m, r):",
        "    dom = DOMAIN(r)",
        "    prov = None if dom is None else PROVIDERS.get(dom, 'other')",
        "    sub, stream, tags = m.subaccount, m.stream, m.tags",
        "    md, hdr, size = m.metadata, m.headers_lower, m.size_bytes",
        "    added, thr = [], None",
    ]
    for n, (_, _, test, body) in enumerate(_specs()):
        lines += [f"    if {test}:", "        " + body.replace("RULE", f"'rule-{n}'")]
    lines.append("    return fin(m, r, None, 'default', 'esp-a', added, thr, prov)")
    scope: dict[str, Any] = {
        "DOMAIN": recipient_domain,
        "PROVIDERS": DOMAIN_TO_PROVIDER,
        "GY": frozenset({"gmail", "yahoo"}),
        "GOLD": re.compile("^gold").search,
        "STICKY": sticky_fraction,
        "HEALTH": health,
        "fin": _finish,
    }
    # The source is assembled above from this file's own fixed fragments.
    exec("\n".join(lines), scope)  # noqa: S102
    plain: Callable[[Message, str], Decision] = scope["plain"]
    return plain


def _finish(
    m: Message,
    r: str,
    rule: str | None,
    kind: Any,
    dest: str | None,
    added: list[str],
    thr: float | None,
    prov: str | None,
) -> Decision:
    key = None if thr is None or dest is None else f"{dest}/{prov or 'unknown'}"
    rate = None if key is None else thr
    return Decision(m.message_id, r, rule, 1, kind, dest, key, rate, added, {}, [],
                    subaccount=m.subaccount)


def sample_messages(count: int = 2_000, seed: int = 7) -> list[tuple[Message, str]]:
    """(message, recipient) pairs; about 5% match one of the first 40 rules."""
    rnd = random.Random(seed)
    domains = [
        "gmail.com",
        "outlook.com",
        "yahoo.com",
        "icloud.com",
        "corp.example.org",
    ]
    streams = ["marketing"] * 4 + ["transactional"] * 3 + ["newsletter"] * 2 + ["s-3"]
    pairs = []
    for n in range(count):
        recipient = f"user{n}@{rnd.choice([*domains, 'example.com'])}"
        subaccount = f"acct-{rnd.randrange(40)}" if rnd.random() < 0.05 else "shop"
        message = Message(
            message_id=f"<m{n}@bench.example>",
            from_addr="news@mail.shop.example",
            to=[recipient],
            subaccount=subaccount,
            stream=rnd.choice(streams),
            headers={"List-Unsubscribe": "<https://shop.example/u>"},
            tags=rnd.choice([[], ["spring"], ["t-7"]]),
            metadata={"campaign": "spring"},
            size_bytes=rnd.randrange(2_000_000),
        )
        pairs.append((message, recipient))
    return pairs


def _rate(decide: Callable[[Message, str], Decision], pairs: list[Any]) -> float:
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for message, recipient in pairs:
            decide(message, recipient)
        best = min(best, time.perf_counter() - start)
    return len(pairs) / best


def run() -> dict[str, float]:
    """Decisions per second for the engine, the plain baseline and their ratio."""
    health = StaticHealth({"esp-a": HealthSnapshot(volume=5000, deferral_rate=0.05)})
    engine = Engine(build_ruleset(), health, clock=lambda: _NOW)
    plain = build_plain(health)
    pool = sample_messages()
    for message, recipient in pool:
        if engine.decide(message, recipient) != plain(message, recipient):
            raise AssertionError(f"engine and baseline disagree on {recipient}")

    pairs = (pool * (DECISIONS // len(pool) + 1))[:DECISIONS]
    engine_rate = _rate(engine.decide, pairs)
    plain_rate = _rate(plain, pairs)
    return {
        "rules_decisions_per_s": engine_rate,
        "rules_baseline_per_s": plain_rate,
        "rules_ratio_vs_plain_python": engine_rate / plain_rate,
    }


if __name__ == "__main__":
    for name, value in run().items():
        print(f"{name}: {value:.3f}" if value < 100 else f"{name}: {value:.0f}")
