"""Helpers for end-to-end tests: the gateway and worker as real processes.

A :class:`Stack` runs with its own admin key (``stack.admin_headers``) and
takes unsigned webhooks at ``/webhooks/{esp}`` and at the entry points of
the subaccounts it was given (``stack.add_subaccounts``): it writes those
settings to ``mailyard.tenants`` before its processes read the topic.
"""

from __future__ import annotations

import functools
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from confluent_kafka import Consumer, TopicPartition

from mailyard.tenant_ops import publish_sync
from mailyard.topics import CATALOG
from tests.tenant_fixtures import (
    admin_key,
    bearer,
    installation_unsigned,
    subaccount_unsigned,
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Stack:
    """A gateway and a worker process against one broker, with their own ports."""

    def __init__(self, bootstrap: str, data_dir: Path) -> None:
        self.bootstrap = bootstrap
        self.data_dir = data_dir
        self.gateway_port = free_port()
        self.api_port = free_port()
        self.admin_key = admin_key()
        self.env = {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "MAILYARD_KAFKA_BOOTSTRAP": bootstrap,
            "MAILYARD_DATA_DIR": str(data_dir),
            "MAILYARD_GATEWAY_PORT": str(self.gateway_port),
            "MAILYARD_API_PORT": str(self.api_port),
            "MAILYARD_SMTP_PORT": str(free_port()),
            "MAILYARD_ADMIN_KEY": self.admin_key,
        }
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self._installation_written = False

    @property
    def gateway(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def admin_headers(self) -> dict[str, str]:
        """``Authorization`` for the gateway's and the worker's APIs."""
        return bearer(self.admin_key)

    def add_subaccounts(self, *names: str) -> None:
        """Subaccounts whose webhook entry points take unsigned bodies.

        Once the gateway runs, this waits until it knows every one of them.
        """
        publish_sync(self.bootstrap, [subaccount_unsigned(n) for n in names])
        if "gateway" in self.procs:
            for name in names:
                known = functools.partial(self._gateway_knows, name)
                assert wait_until(known, 15), f"the gateway never saw {name!r}"

    def _gateway_knows(self, subaccount: str) -> bool:
        # The gateway answers 404 for an unknown subaccount before it looks
        # at the body, and 400 for an empty body after: a probe that
        # produces nothing.
        reply = httpx.post(
            f"{self.gateway}/webhooks/sendgrid/{subaccount}",
            content=b"",
            headers={"content-type": "application/json"},
            timeout=5.0,
        )
        return reply.status_code == 400

    def start(self, name: str) -> None:
        if not self._installation_written:
            # Before any process reads mailyard.tenants, so /readyz implies it.
            publish_sync(self.bootstrap, [installation_unsigned()])
            self._installation_written = True
        log = (self.data_dir / f"{name}.log").open("ab")
        self.procs[name] = subprocess.Popen(
            [sys.executable, "-m", "mailyard.cli", name],
            stdout=log, stderr=subprocess.STDOUT, env=self.env,
        )
        url = self.gateway if name == "gateway" else self.api
        self.wait_ready(name, f"{url}/readyz")

    def wait_ready(self, name: str, url: str, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.procs[name].poll() is not None:
                raise AssertionError(f"{name} exited:\n{self.log_tail(name)}")
            try:
                if httpx.get(url, timeout=2.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.3)
        raise AssertionError(f"{name} not ready:\n{self.log_tail(name)}")

    def log_tail(self, name: str) -> str:
        return (self.data_dir / f"{name}.log").read_text(errors="replace")[-4000:]

    def kill(self, name: str) -> None:
        proc = self.procs.pop(name)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)

    def stop(self) -> None:
        for name in list(self.procs):
            proc = self.procs.pop(name)
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def make_current(self, rules: object, reason: str) -> int:
        """Publish ``rules`` (a mapping or YAML text) and wait until it is current.

        The broker is shared by the whole session: another module's rule
        set may be current, and ``MAILYARD_RULES`` only seeds an empty topic.
        """
        url, headers = f"{self.api}/v1/rules", self.admin_headers
        body = {"rules": rules, "author": "tests", "reason": reason}
        reply = httpx.post(url, headers=headers, json=body)
        assert reply.status_code == 201, reply.text
        version: int = reply.json()["version"]

        def current() -> bool:
            return bool(httpx.get(url, headers=headers).json()["version"] == version)

        assert wait_until(current, 15), f"rule set {version} never became current"
        return version

    def stats(self) -> dict[str, object]:
        """The worker's counters and each stage's partitions, for failure messages."""
        stats = httpx.get(f"{self.api}/v1/stats", headers=self.admin_headers, timeout=10.0)
        ready = httpx.get(f"{self.api}/readyz", timeout=10.0)
        return {"stats": stats.json(), "readyz": ready.json()}

    def counts(self, **params: str) -> dict[str, object]:
        reply = httpx.get(
            f"{self.api}/v1/counts",
            params=params,
            headers=self.admin_headers,
            timeout=10.0,
        )
        reply.raise_for_status()
        body: dict[str, object] = reply.json()
        return body


def wait_until(predicate, timeout: float = 60.0, every: float = 0.5) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(every)
    return False


def read_topic(bootstrap: str, topic: str, *, timeout: float = 5.0) -> list[tuple[bytes | None, bytes]]:
    """Every record currently on ``topic``, read from the start."""
    spec = next(s for s in CATALOG if s.name == topic)
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "e2e-reader",
                         "enable.auto.commit": False})
    ends = {}
    for p in range(spec.partitions):
        _, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=5)
        ends[p] = high
    consumer.assign([TopicPartition(topic, p, 0) for p in range(spec.partitions)])
    out: list[tuple[bytes | None, bytes]] = []
    done = {p for p, high in ends.items() if high == 0}
    deadline = time.monotonic() + timeout
    while len(done) < len(ends) and time.monotonic() < deadline:
        for msg in consumer.consume(10000, timeout=0.5):
            if msg.error():
                continue
            out.append((msg.key(), msg.value()))
            if msg.offset() + 1 >= ends[msg.partition()]:
                done.add(msg.partition())
    consumer.close()
    return out
