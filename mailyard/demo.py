"""``mailyard demo``: the whole backbone on one machine, on sample traffic.

Starts a local Kafka broker (fetched from Maven Central on first use),
applies the topic catalog, starts the gateway and the worker as child
processes, replays generated ESP webhooks, waits until the worker has
counted every distinct event, and prints a summary. Without ``--once`` the
stack keeps running until Ctrl-C.

The demo calls the API with the installation's bootstrap admin key
(``MAILYARD_ADMIN_KEY``, or ``<data dir>/admin.key``). Its sample webhooks
carry no ESP signatures, so it sets the installation's webhook entry points
to ``{"none": true}``, and says so.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import Counter

import httpx

from connectors.registry import esp_names, normalize
from connectors.samples import generate, write_samples
from mailyard.errors import MailyardError
from mailyard.kafka_cli import kafka_start
from mailyard.replay import Capture, replay
from mailyard import demo_relay
from mailyard.settings import Settings
from mailyard.tenancy import bootstrap_admin_key, installation_record
from mailyard.tenant_ops import publish_sync


class DemoFailed(MailyardError, RuntimeError):
    pass


class Child:
    """A child process whose output goes to a log file under ``var/logs``."""

    def __init__(
        self, name: str, settings: Settings, argv: list[str] | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        logs = settings.data_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.log_path = logs / f"{name}.log"
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", *(argv or ["mailyard.cli", name])],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
            cwd=demo_relay.ROOT,
        )

    def stop(self, timeout: float = 20.0) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


def _wait_ready(url: str, child: Child, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if child.proc.poll() is not None:
            raise DemoFailed(f"{child.name} exited early; see {child.log_path}.")
        try:
            if httpx.get(url, timeout=2.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise DemoFailed(f"{child.name} was not ready within {timeout:.0f}s; see {child.log_path}.")


def _expected(captures: list[Capture]) -> tuple[int, int]:
    """(events in all bodies, distinct event ids) for the replayed captures."""
    total, ids = 0, set()
    for c in captures:
        for e in normalize(c.esp, c.body, c.content_type, subaccount=c.subaccount):
            total += 1
            ids.add(e.event_id)
    return total, len(ids)


def _wait_processed(
    api: str, want: int, timeout: float, admin: dict[str, str]
) -> dict[str, int]:
    """Wait until this worker process has seen ``want`` events (duplicates too)."""
    deadline = time.monotonic() + timeout
    stats: dict[str, int] = {}
    while time.monotonic() < deadline:
        stats = httpx.get(f"{api}/v1/stats", headers=admin, timeout=5.0).json()
        if stats["events_counted"] + stats["duplicates"] >= want:
            return stats
        time.sleep(0.5)
    raise DemoFailed(f"the worker processed {stats} events, expected {want}.")


def _summary(counts: dict[str, object], stats: dict[str, int], settings: Settings, api: str, gw: str) -> str:
    table: Counter[tuple[str, str]] = Counter()
    for row in counts["rows"]:  # type: ignore[union-attr]
        table[(row["esp"], row["type"])] += row["count"]
    lines = [f"{'ESP':<12} {'type':<14} {'events':>8}", "-" * 36]
    for (esp, etype), n in sorted(table.items()):
        lines.append(f"{esp:<12} {etype:<14} {n:>8}")
    lines += [
        "-" * 36,
        f"{'distinct events':<27} {counts['total']:>8}",
        f"{'duplicates ignored':<27} {stats.get('duplicates', 0):>8}",
        f"{'dead letters':<27} {stats.get('dead_letters', 0):>8}",
        "",
        f"archive:  {settings.archive_dir.resolve()}",
        f"webhooks: {gw}/webhooks/{{esp}}[/{{subaccount}}]",
        f"API:      {api}/v1/counts",
        f"API key:  {_admin_key_source(settings)}",
    ]
    return "\n".join(lines)


def _admin_key_source(settings: Settings) -> str:
    if settings.admin_key:
        return "MAILYARD_ADMIN_KEY (Authorization: Bearer ...)"
    path = (settings.data_dir / "admin.key").resolve()
    return f"{path} (Authorization: Bearer <its contents>)"


def _accept_unsigned_webhooks(bootstrap: str) -> None:
    """Let ``/webhooks/{esp}`` take the demo's unsigned sample bodies."""
    unsigned = {esp: {"none": True} for esp in esp_names()}
    publish_sync(bootstrap, [installation_record({"webhook_auth": unsigned})])
    print("webhook signature checks are off for this demo (its samples are "
          "unsigned); turn them on with: mailyard webhook-auth ESP '{...}'")


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _current_version(api: str, admin: dict[str, str]) -> object:
    return httpx.get(f"{api}/v1/rules", headers=admin, timeout=5).json().get("version")


def _relay_demo(
    gw: str, api: str, urls: dict[str, str], seed: int, admin: dict[str, str]
) -> None:
    rules = demo_relay.rules_text(urls)
    reply = httpx.post(f"{api}/v1/rules", headers=admin, json={
        "rules": rules, "author": "mailyard demo", "reason": "demo rule set"},
        timeout=10)
    if reply.status_code != 201:
        raise DemoFailed(f"the demo rule set was refused: {reply.text}")
    version = reply.json()["version"]
    deadline = time.monotonic() + 30
    while _current_version(api, admin) != version:
        if time.monotonic() > deadline:
            raise DemoFailed(f"rule set version {version} never became current.")
        time.sleep(0.2)

    messages = demo_relay.sample_messages(300, seed)
    for name in sorted({str(m["subaccount"]) for m in messages}):
        made = httpx.post(f"{api}/v1/subaccounts", headers=admin, json={"name": name},
                          timeout=10)
        if made.status_code not in (201, 409):  # 409: made by an earlier run
            raise DemoFailed(f"cannot create subaccount {name!r}: {made.text}")
    ids = demo_relay.submit(gw, messages, admin)
    print(f"\nsubmitted {len(ids)} messages through rule set version {version} "
          "(VIP to Postmark, marketing split 80/20 SendGrid/Mailgun, "
          "transactional with failover)")
    got = demo_relay.wait_delivered(urls, set(ids), 120)
    print(f"{'provider (stand-in)':<22} {'messages':>8}")
    for provider in demo_relay.PROVIDERS:
        print(f"{provider:<22} {got[provider]:>8}")
    if sum(got.values()) != len(ids):
        raise DemoFailed(f"{sum(got.values())} of {len(ids)} messages were delivered.")
    print(f"message status: {api}/v1/messages/{ids[0]}")


def run_demo(settings: Settings, *, once: bool, events: int, seed: int) -> int:
    broker = kafka_start(settings)
    print(f"Kafka ready on {broker.bootstrap}")
    key = bootstrap_admin_key(settings.admin_key, settings.data_dir)
    admin = {"Authorization": f"Bearer {key}"}
    # Before the gateway reads mailyard.tenants, so its /readyz implies it.
    _accept_unsigned_webhooks(broker.bootstrap)
    gw = f"http://{settings.gateway_host}:{settings.gateway_port}"
    api = f"http://{settings.gateway_host}:{settings.api_port}"
    ports = {p: _free_port() for p in demo_relay.PROVIDERS}
    urls = {p: f"http://127.0.0.1:{port}" for p, port in ports.items()}
    # The children run from the repository: hand them the key itself, so a
    # relative MAILYARD_DATA_DIR cannot make them find another admin.key.
    keyed = {"MAILYARD_ADMIN_KEY": key}
    children = [
        Child("gateway", settings, env=keyed),
        Child("worker", settings, env={**keyed, **demo_relay.credentials_env()}),
        *(Child(f"standin-{p}", settings, ["tests.standins", p, "--port", str(port)])
          for p, port in ports.items()),
    ]
    try:
        _wait_ready(f"{gw}/readyz", children[0], 60)
        _wait_ready(f"{api}/readyz", children[1], 120)
        for child, url in zip(children[2:], urls.values()):
            _wait_ready(f"{url}/_control", child, 30)
        counted = httpx.get(f"{api}/v1/counts", headers=admin, timeout=5.0)
        before = counted.json()["total"]

        folder = settings.data_dir / "samples" / f"seed-{seed}"
        samples = generate(seed=seed, n_events=events, duplicate_rate=0.05)
        write_samples(folder, samples)
        captures = [Capture(s.esp, s.content_type, s.body) for s in samples]
        n_events, n_distinct = _expected(captures)
        print(f"replaying {len(captures)} webhooks ({n_events} events, "
              f"{n_distinct} distinct) from {folder}")
        result = asyncio.run(replay(captures, gw))
        if result.failed:
            raise DemoFailed(
                f"{len(result.failed)} webhooks were refused: {result.failed[:3]}"
            )

        stats = _wait_processed(api, n_events, 120, admin)
        counts = httpx.get(f"{api}/v1/counts", headers=admin, timeout=5.0).json()
        print(_summary(counts, stats, settings, api, gw))
        if before == 0 and counts["total"] != n_distinct:
            raise DemoFailed(
                f"counted {counts['total']} distinct events, expected {n_distinct}."
            )
        _relay_demo(gw, api, urls, seed, admin)
        if not once:
            print("\nThe stack is running; Ctrl-C stops it.")
            while all(c.proc.poll() is None for c in children):
                time.sleep(1)
            raise DemoFailed("a child process exited; see var/logs.")
    except KeyboardInterrupt:
        print("\nstopping")
    finally:
        for child in reversed(children):
            child.stop()
        broker.stop()
    return 0
