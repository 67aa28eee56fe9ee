"""Tenant isolation: every endpoint of both apps against every kind of caller.

The worker runs as a real process (without the dispatch stage), since its
counts, rules, suppressions and message index live in its running stages;
the gateway runs in process over httpx's ASGI transport, with a tenant
directory read from the broker's ``mailyard.tenants``. Two fresh
subaccounts, ``a`` and ``b``, get keys, rules, a suppression, a held
message and a counted webhook event, all named with this module's tag.

Each :data:`MATRIX` entry is one route and what every caller may do with
it. The callers that must be refused go first; after them no record
carrying the tag was written to a topic a request can write, no tenants
or rules record was written at all, and the state an admin reads is the
same. Then ``a``'s key with the scope and an admin key must get their
2xx. Routes are enumerated from both apps, so a new route without an
entry fails :func:`test_every_route_of_both_apps_has_a_matrix_entry`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import secrets
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest
from confluent_kafka import Consumer, TopicPartition
from fastapi import FastAPI

from connectors.gateway import RawProducer, create_gateway
from connectors.webhook_signing import sign_request
from mailyard import tenant_ops
from mailyard.settings import Settings
from mailyard.tenancy import (
    SUBACCOUNT_SCOPES,
    TenantDirectory,
    installation_record,
    new_key,
)
from mailyard.topics import (
    RAW_WEBHOOKS,
    RULES,
    SUBMITTED,
    SUPPRESSIONS,
    TENANTS,
    TopicSpec,
)
from streams.api import create_api
from streams.app import Worker
from tests.e2e import Stack, read_topic, wait_until

pytestmark = pytest.mark.kafka

FIXTURES = Path(__file__).parent / "fixtures"
STAGES = ("normalize", "ledger", "route", "status")
# The callers, refused ones first; "own" is a key of subaccount a.
ROLES = (
    "none",
    "malformed",
    "forged",
    "revoked",
    "expired",
    "own_unscoped",
    "foreign",
    "own",
    "admin",
)
UNAUTHENTICATED = ("none", "malformed", "forged", "revoked", "expired")
GUARDED = (TENANTS, RULES, SUPPRESSIONS, SUBMITTED, RAW_WEBHOOKS)
AUTHOR = "isolation tests"


# --- what was written: records on the topics a request can write ------------


@dataclasses.dataclass(frozen=True)
class Written:
    topic: str
    key: bytes
    value: bytes


class TopicWatch:
    """Reads the records written to some topics since a mark."""

    def __init__(self, bootstrap: str, specs: Iterable[TopicSpec] = GUARDED) -> None:
        config = {
            "bootstrap.servers": bootstrap,
            "group.id": f"isolation-watch-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "log_level": 0,
        }
        self._consumer = Consumer(config)
        self._parts = [
            TopicPartition(spec.name, p)
            for spec in specs
            for p in range(spec.partitions)
        ]

    def mark(self) -> dict[tuple[str, int], int]:
        ends = {}
        for tp in self._parts:
            _low, high = self._consumer.get_watermark_offsets(tp, timeout=5.0)
            ends[(tp.topic, tp.partition)] = int(high)
        return ends

    def since(self, mark: Mapping[tuple[str, int], int]) -> list[Written]:
        todo = {tp: end for tp, end in self.mark().items() if end > mark[tp]}
        if not todo:
            return []

        self._consumer.assign([TopicPartition(t, p, mark[(t, p)]) for t, p in todo])
        found: list[Written] = []
        deadline = time.monotonic() + 10.0
        while todo and time.monotonic() < deadline:
            for msg in self._consumer.consume(500, timeout=0.5):
                if msg.error():
                    continue
                tp = (str(msg.topic()), int(msg.partition() or 0))
                found.append(Written(tp[0], msg.key() or b"", msg.value() or b""))
                if tp in todo and int(msg.offset() or 0) + 1 >= todo[tp]:
                    del todo[tp]
        # Fetches in flight would hold up the next mark's offset queries.
        self._consumer.unassign()

        assert not todo, f"could not read back {sorted(todo)}"
        return found

    def close(self) -> None:
        self._consumer.close()


# --- the world: two subaccounts, their keys and data, both apps --------------


@dataclasses.dataclass(frozen=True)
class Call:
    method: str
    path: str
    params: dict[str, str] | None = None
    json: Any = None
    content: bytes | None = None
    headers: Mapping[str, str] = dataclasses.field(default_factory=dict)

    def shown(self) -> str:
        """Everything the caller itself sent, which a reply may echo."""
        return f"{self.path} {self.params} {json.dumps(self.json)} {self.content!r}"


def bearer(text: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {text}"}


def mailgun_event(tag: str, **user_variables: str) -> bytes:
    """Mailgun's delivered sample as a new, unsigned event of this module."""
    body = json.loads((FIXTURES / "mailgun" / "delivered.json").read_text())
    del body["signature"]
    data = body["event-data"]
    data["id"] = f"iso-{tag}-{uuid.uuid4().hex[:12]}"
    data["timestamp"] = time.time()
    data["recipient"] = f"webhook-{tag}@example.org"
    data["user-variables"] = dict(user_variables)
    return json.dumps(body).encode()


class World:
    """Both apps, two subaccounts and their data; ``root`` is the bootstrap admin."""

    def __init__(self, stack: Stack, producer: RawProducer) -> None:
        self.stack = stack
        self.producer = producer
        self.tag = uuid.uuid4().hex[:8]
        self.a, self.b = f"iso-a-{self.tag}", f"iso-b-{self.tag}"
        self.signing = {self.a: secrets.token_hex(32), self.b: secrets.token_hex(32)}
        self.installation_key = secrets.token_hex(32)
        self.kept = f"kept-{self.tag}@example.org"
        self.recipient = f"secret-{self.tag}@example.org"
        self.rule_name = f"iso-hold-{self.tag}"
        self.root = httpx.Client(
            base_url=stack.api, headers=stack.admin_headers, timeout=10.0
        )
        self.worker = httpx.Client(base_url=stack.api, timeout=10.0)
        self.watch = TopicWatch(stack.bootstrap)
        self.made = 0

    # --- setup, through the worker's API as an operator would ---------------

    def setup(self) -> None:
        for name in (self.a, self.b):
            auth = {"mailgun": {"signing_keys": [self.signing[name]]}}
            self.admin("POST", "/v1/subaccounts", {"name": name, "webhook_auth": auth})
        self.make_keys()
        self.ensure_installation_rules()
        rules = f"/v1/subaccounts/{self.a}/rules"
        self.admin("POST", rules, self.own_rules("setup"))
        assert wait_until(lambda: self.root.get(rules).status_code == 200, 20)

        self.gateway = self.make_gateway()
        self.message_id = self.submit_message()
        self.post_counted_webhook()
        self.suppress(self.kept)

    def make_keys(self) -> None:
        everything: list[str] = list(SUBACCOUNT_SCOPES)
        self.only = {s: self.new_key(self.a, [s]) for s in everything}
        self.all_but = {
            s: self.new_key(self.a, [o for o in everything if o != s])
            for s in everything
        }
        self.a_all = self.new_key(self.a, everything)
        self.b_all = self.new_key(self.b, everything)

        revoked = self.new_key(self.a, everything)
        self.admin("DELETE", f"/v1/keys/{revoked['key_id']}")
        # Rotated with no overlap: the old key is past its overlap at once.
        expired = self.new_key(self.a, everything)
        self.admin("POST", f"/v1/keys/{expired['key_id']}/rotate", {"overlap_s": 0})
        self.texts = {
            "malformed": "not-a-mailyard-key",
            "forged": f"myk_{self.a_all['key_id']}_{secrets.token_urlsafe(32)}",
            "revoked": revoked["key"],
            "expired": expired["key"],
            "admin": self.new_key(None, ["admin"])["key"],
        }

    def ensure_installation_rules(self) -> None:
        """Use the session's rule set; publish one only on a fresh broker."""
        records = read_topic(self.stack.bootstrap, RULES.name)
        if not any(key and b"/" not in key for key, _value in records):
            reason = "a rule set for subaccount rules to name"
            body = {"rules": BASELINE_RULES, "author": AUTHOR, "reason": reason}
            self.admin("POST", "/v1/rules", body)
        assert wait_until(lambda: self.root.get("/v1/rules").status_code == 200, 20)

    def own_rules(self, reason: str) -> dict[str, Any]:
        # Held mail is decided and indexed, and never dispatched.
        hold = {"hold": {"reason": "tenant isolation test"}}
        rules = {"rules": [{"name": self.rule_name, "action": hold}]}
        return {"rules": rules, "author": AUTHOR, "reason": reason}

    def make_gateway(self) -> FastAPI:
        directory = tenant_ops.load_directory(self.stack.bootstrap)
        # In process only: the installation's Mailgun entry point checks a
        # signature, whatever the session's other modules configured.
        config = {"mailgun": {"signing_keys": [self.installation_key]}}
        key, value = installation_record({"webhook_auth": config})
        directory.apply(key.decode(), value)
        settings = Settings(bootstrap=self.stack.bootstrap)
        return create_gateway(settings, self.producer, tenants=directory)

    def submit_message(self) -> str:
        body = {
            "from": f"app@{self.a}.example",
            "to": [self.recipient],
            "subject": f"private {self.tag}",
            "text": "For a only.",
        }
        call = Call("POST", "/v1/messages", json=body)
        reply = self.send("gateway", call, bearer(self.only["send"]["key"]))
        assert reply.status_code == 202, reply.text

        message_id: str = reply.json()["message_id"]
        status = f"/v1/messages/{message_id}"
        indexed = wait_until(lambda: self.root.get(status).status_code == 200, 30)
        assert indexed, self.stack.log_tail("worker")
        return message_id

    def post_counted_webhook(self) -> None:
        body = mailgun_event(self.tag, mailyard_message_id=self.message_id)
        reply = self.signed_webhook(self.a, body, self.a)
        assert reply.status_code == 200, reply.text
        counted = wait_until(lambda: self.count(self.a) >= 1, 30)
        assert counted, self.stack.log_tail("worker")

    # --- helpers -------------------------------------------------------------

    def admin(self, method: str, path: str, body: Any = None) -> Any:
        """A call as the bootstrap admin, which must succeed."""
        reply = self.root.request(method, path, json=body)
        assert reply.status_code < 300, f"{method} {path}: {reply.text}"
        return reply.json() if reply.content else None

    def new_key(self, sub: str | None, scopes: Iterable[str], **opts: Any) -> Any:
        body = {"subaccount": sub, "scopes": list(scopes), **opts}
        return self.admin("POST", "/v1/keys", body)

    def new_subaccount(self) -> str:
        self.made += 1
        name = f"iso-tmp-{self.tag}-{self.made}"
        self.admin("POST", "/v1/subaccounts", {"name": name})
        return name

    def suppressed(self) -> list[str]:
        entries = self.admin("GET", f"/v1/suppressions/{self.a}")
        return [entry["address"] for entry in entries]

    def suppress(self, address: str) -> None:
        self.admin("PUT", f"/v1/suppressions/{self.a}/{address}", {})
        assert wait_until(lambda: address in self.suppressed(), 15)

    def count(self, sub: str) -> int:
        reply = self.root.get("/v1/counts", params={"subaccount": sub})
        return int(reply.json()["total"])

    def signed_webhook(self, signer: str, body: bytes, entry: str) -> httpx.Response:
        path = f"/webhooks/mailgun/{entry}"
        secret = {"signing_key": self.signing[signer]}
        headers, signed = sign_request("mailgun", secret, body, f"http://gw{path}")
        headers["content-type"] = "application/json"
        return self.send("gateway", Call("POST", path, content=signed, headers=headers))

    def send(
        self, app: str, call: Call, auth: Mapping[str, str] | None = None
    ) -> httpx.Response:
        options: dict[str, Any] = {
            "params": call.params,
            "json": call.json,
            "content": call.content,
            "headers": {**call.headers, **(auth or {})},
        }
        if app == "gateway":
            return asyncio.run(self._asgi(call.method, call.path, options))
        return self.worker.request(call.method, call.path, **options)

    async def _asgi(
        self, method: str, path: str, options: dict[str, Any]
    ) -> httpx.Response:
        transport = httpx.ASGITransport(app=self.gateway)
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as c:
            return await c.request(method, path, **options)

    def key_for(self, role: str, access: str) -> dict[str, str]:
        """The Authorization header ``role`` sends to a route needing ``access``."""
        if role == "none":
            return {}
        scoped = access in SUBACCOUNT_SCOPES
        if role == "own":
            key = self.only[access] if scoped else self.a_all
        elif role == "own_unscoped":
            key = self.all_but[access] if scoped else self.only["send"]
        elif role == "foreign":
            key = self.b_all
        else:
            return bearer(self.texts[role])
        return bearer(key["key"])

    def markers(self) -> list[str]:
        """What only ``a`` and admins may read."""
        keys = [k["key_id"] for k in (*self.only.values(), *self.all_but.values())]
        return [self.kept, self.recipient, self.rule_name, *keys]

    def state(self) -> dict[str, Any]:
        """``a``'s and ``b``'s state as an admin reads it, and the installation's."""
        paths = [
            f"/v1/subaccounts/{self.a}",
            f"/v1/subaccounts/{self.b}",
            f"/v1/suppressions/{self.a}",
            f"/v1/subaccounts/{self.a}/rules/versions",
            "/v1/rules/versions",
            "/v1/webhook-auth",
        ]
        found = {path: self.admin("GET", path) for path in paths}
        keys = self.root.get("/v1/keys", params={"subaccount": self.a}).json()
        states = [(k["key_id"], k["revoked_at"], k["expires_at"]) for k in keys]
        found["keys"] = sorted(states)
        return found

    def close(self) -> None:
        self.root.close()
        self.worker.close()
        self.watch.close()


BASELINE_RULES = {
    "destinations": [
        {
            "name": "isolation-nowhere",
            "kind": "esp_http",
            "provider": "sendgrid",
            # The discard port: nothing this module decides is dispatched.
            "base_url": "http://127.0.0.1:9",
            "credentials": {"api_key": "ISOLATION_UNUSED_KEY"},
        }
    ],
    "default": "isolation-nowhere",
    "rules": [{"name": "isolation-all", "action": {"route": "isolation-nowhere"}}],
}


@pytest.fixture(scope="module")
def world(
    kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    stack = Stack(kafka_bootstrap, tmp_path_factory.mktemp("isolation"))
    stack.env["MAILYARD_WORKER_STAGES"] = ",".join(STAGES)
    producer = RawProducer(kafka_bootstrap, timeout_s=10.0)
    built: World | None = None
    try:
        stack.start("worker")
        built = World(stack, producer)
        built.setup()
        yield built
    finally:
        if built is not None:
            built.close()
        stack.stop()
        producer.close()


# --- the matrix --------------------------------------------------------------

Build = Callable[[World], Call]
BuildFor = Callable[[World, str], Call]
Check = Callable[[World, str, httpx.Response], None]


@dataclasses.dataclass(frozen=True)
class Case:
    """One route (``"METHOD /path"``): who may use it, and what callers try.

    ``access`` is "public", "webhook" (ESP signatures, never API keys),
    "admin" or the subaccount scope the route needs. Callers that must be
    refused send ``attack``, aimed at subaccount ``a``; the two that may
    succeed send ``allowed(world, role)`` when given, a target of their
    own, and ``check`` looks at their replies.
    """

    app: str
    route: str
    access: str
    ok: int
    attack: Build
    allowed: BuildFor | None = None
    foreign: int = 403
    check: Check | None = None

    @property
    def id(self) -> str:
        return f"{self.app} {self.route}"

    @property
    def key(self) -> tuple[str, str, str]:
        method, path = self.route.split(" ", 1)
        return self.app, method, path

    def expected(self, role: str) -> int:
        if self.access == "public":
            return self.ok
        if self.access == "webhook" or role in UNAUTHENTICATED:
            return 401
        if role == "admin":
            return self.ok
        if self.access == "admin" or role == "own_unscoped":
            return 403
        return self.ok if role == "own" else self.foreign

    def request_for(self, world: World, role: str) -> Call:
        may = role in ("own", "admin") and self.expected(role) < 300
        if may and self.allowed is not None:
            return self.allowed(world, role)
        return self.attack(world)


def get(path: str, **params: str) -> Build:
    def build(w: World) -> Call:
        filled = {name: value.format(w=w) for name, value in params.items()}
        return Call("GET", path.format(w=w), filled or None)

    return build


def public(app: str, path: str, sent: str = "", both: bool = False) -> list[Case]:
    """200 for every caller, key or no key; ``sent`` fills the path's blanks."""
    methods = ("GET", "HEAD") if both else ("GET",)
    target = sent or path

    def call(method: str) -> Build:
        return lambda w: Call(method, target.format(w=w))

    return [Case(app, f"{m} {path}", "public", 200, call(m)) for m in methods]


def unsigned(path: str) -> Build:
    def build(w: World) -> Call:
        content = mailgun_event(w.tag)
        headers = {"content-type": "application/json"}
        return Call("POST", path.format(w=w), content=content, headers=headers)

    return build


def submit_for_a(w: World) -> Call:
    body = {
        "from": f"app@{w.a}.example",
        "to": [f"held-{w.tag}@example.org"],
        "subject": "isolation",
        "text": "Held by a's rules.",
        "subaccount": w.a,
    }
    return Call("POST", "/v1/messages", json=body)


def sim_message(w: World) -> dict[str, Any]:
    message = {
        "message_id": f"sim-{w.tag}",
        "from_addr": f"app@{w.a}.test",
        "to": [f"sim-{w.tag}@example.org"],
        "subaccount": w.a,
    }
    return {"message": message}


# Installation rules: the same content published and restored again.


def republish_rules(w: World) -> Call:
    current = w.admin("GET", "/v1/rules")
    body = {"rules": current, "author": AUTHOR, "reason": "the same again"}
    return Call("POST", "/v1/rules", json=body)


def restore_current_rules(w: World) -> Call:
    version = w.admin("GET", "/v1/rules")["version"]
    return Call(
        "POST", "/v1/rules/restore", json={"version": version, "author": AUTHOR}
    )


def simulate_rules(w: World) -> Call:
    return Call("POST", "/v1/rules/simulate", json=sim_message(w))


# Subaccount a's own rules.

A_RULES = "/v1/subaccounts/{w.a}/rules"


def publish_own_rules(w: World) -> Call:
    return Call("POST", A_RULES.format(w=w), json=w.own_rules("matrix"))


def restore_own_rules(w: World) -> Call:
    body = {"version": 1, "author": AUTHOR}
    return Call("POST", A_RULES.format(w=w) + "/restore", json=body)


def simulate_own_rules(w: World) -> Call:
    return Call("POST", A_RULES.format(w=w) + "/simulate", json=sim_message(w))


# Subaccount a's suppressions: refused callers add and remove, allowed ones
# add their own and remove one made for them.


def suppress_for_a(w: World) -> Call:
    path = f"/v1/suppressions/{w.a}/foreign-{w.tag}@example.org"
    return Call("PUT", path, json={"reason": "not yours"})


def suppress_own(w: World, role: str) -> Call:
    address = f"added-{role}-{w.tag}@example.org"
    return Call("PUT", f"/v1/suppressions/{w.a}/{address}", json={})


def unsuppress_kept(w: World) -> Call:
    return Call("DELETE", f"/v1/suppressions/{w.a}/{w.kept}")


def unsuppress_own(w: World, role: str) -> Call:
    address = f"drop-{role}-{w.tag}@example.org"
    w.suppress(address)
    return Call("DELETE", f"/v1/suppressions/{w.a}/{address}")


# Subaccounts and keys: refused callers aim at a and its keys, the admin at
# subaccounts and keys made for the purpose.


def create_subaccount(w: World) -> Call:
    return Call("POST", "/v1/subaccounts", json={"name": f"iso-evil-{w.tag}"})


def create_subaccount_as_admin(w: World, role: str) -> Call:
    return Call("POST", "/v1/subaccounts", json={"name": f"iso-made-{w.tag}"})


def open_up_a(w: World) -> Call:
    body = {"status": "suspended", "webhook_auth": {"mailgun": {"none": True}}}
    return Call("PATCH", f"/v1/subaccounts/{w.a}", json=body)


def suspend_another(w: World, role: str) -> Call:
    path = f"/v1/subaccounts/{w.new_subaccount()}"
    return Call("PATCH", path, json={"status": "suspended"})


def delete_a(w: World) -> Call:
    return Call("DELETE", f"/v1/subaccounts/{w.a}")


def delete_another(w: World, role: str) -> Call:
    return Call("DELETE", f"/v1/subaccounts/{w.new_subaccount()}")


def key_for_a(w: World) -> Call:
    body = {"subaccount": w.a, "scopes": list(SUBACCOUNT_SCOPES)}
    return Call("POST", "/v1/keys", json=body)


def reader_key_for_a(w: World, role: str) -> Call:
    return Call("POST", "/v1/keys", json={"subaccount": w.a, "scopes": ["events:read"]})


def rotate_a_key(w: World) -> Call:
    return Call("POST", f"/v1/keys/{w.a_all['key_id']}/rotate", json={})


def rotate_another_key(w: World, role: str) -> Call:
    key_id = w.new_key(w.a, ["send"])["key_id"]
    return Call("POST", f"/v1/keys/{key_id}/rotate", json={})


def revoke_a_key(w: World) -> Call:
    return Call("DELETE", f"/v1/keys/{w.a_all['key_id']}")


def revoke_another_key(w: World, role: str) -> Call:
    return Call("DELETE", f"/v1/keys/{w.new_key(w.a, ['send'])['key_id']}")


def open_installation_mailgun(w: World) -> Call:
    return Call("PUT", "/v1/webhook-auth/mailgun", json={"none": True})


def put_back_installation_mailgun(w: World, role: str) -> Call:
    directory = tenant_ops.load_directory(w.stack.bootstrap)
    current = directory.webhook_auth("mailgun", None)
    config = current or {"signing_keys": [secrets.token_hex(32)]}
    return Call("PUT", "/v1/webhook-auth/mailgun", json=config)


# Checks of the replies the allowed callers get. The worker reads rules and
# suppressions back from their topics, so some wait until it has: the next
# entry then starts from settled state.


def counts_of_a_only(w: World, role: str, reply: httpx.Response) -> None:
    rows = reply.json()["rows"]
    assert reply.json()["total"] >= 1 and {r["subaccount"] for r in rows} == {w.a}


def message_of_a(w: World, role: str, reply: httpx.Response) -> None:
    decisions = reply.json()["decisions"]
    assert decisions and {d["subaccount"] for d in decisions} == {w.a}


def listed_subaccounts(w: World, role: str, reply: httpx.Response) -> None:
    names = {s["name"] for s in reply.json()}
    assert names == {w.a} if role == "own" else {w.a, w.b} <= names


def lists_kept(w: World, role: str, reply: httpx.Response) -> None:
    assert w.kept in {entry["address"] for entry in reply.json()}


def accepted_message(w: World, role: str, reply: httpx.Response) -> None:
    assert reply.json()["message_id"]


def suspended(w: World, role: str, reply: httpx.Response) -> None:
    assert reply.json()["status"] == "suspended"


def rules_version_current(w: World, role: str, reply: httpx.Response) -> None:
    version = reply.json()["version"]
    assert wait_until(lambda: w.admin("GET", "/v1/rules")["version"] == version, 15)


def own_version_listed(w: World, role: str, reply: httpx.Response) -> None:
    version = reply.json()["version"]
    path = f"/v1/subaccounts/{w.a}/rules/versions"
    assert wait_until(
        lambda: version in {v["version"] for v in w.admin("GET", path)}, 15
    )


def suppression_listed(w: World, role: str, reply: httpx.Response) -> None:
    address = reply.json()["address"]
    assert wait_until(lambda: address in w.suppressed(), 15)


def suppression_gone(w: World, role: str, reply: httpx.Response) -> None:
    address = reply.request.url.path.rsplit("/", 1)[1]
    assert wait_until(lambda: address not in w.suppressed(), 15)


G, W = "gateway", "worker"
READ, RULES_MANAGE, SUPPRESS = "events:read", "rules:manage", "suppressions:manage"
DOCS = ("/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc")

# A table reads best one route a row: the formatter leaves it as written.
# fmt: off
MATRIX: list[Case] = [
    # --- the gateway ----------------------------------------------------------
    *public(G, "/healthz"),
    *public(G, "/readyz"),
    *(case for path in DOCS for case in public(G, path, both=True)),
    *public(G, "/webhooks/{esp}", "/webhooks/mailgun", both=True),
    *public(G, "/webhooks/{esp}/{subaccount}", "/webhooks/mailgun/{w.a}", both=True),
    Case(G, "GET /v1/gateway/stats", "admin", 200, get("/v1/gateway/stats")),
    # Unsigned bodies: an API key, even an admin's, is no webhook credential.
    Case(G, "POST /webhooks/{esp}", "webhook", 200, unsigned("/webhooks/mailgun")),
    Case(
        G, "POST /webhooks/{esp}/{subaccount}", "webhook", 200,
        unsigned("/webhooks/mailgun/{w.a}"),
    ),
    Case(G, "POST /v1/messages", "send", 202, submit_for_a, check=accepted_message),
    # --- the worker -----------------------------------------------------------
    *public(W, "/healthz"),
    *public(W, "/readyz"),
    *(case for path in DOCS for case in public(W, path, both=True)),
    Case(W, "GET /v1/stats", "admin", 200, get("/v1/stats")),
    Case(W, "GET /v1/relay/stats", "admin", 200, get("/v1/relay/stats")),
    Case(
        W, "GET /v1/counts", READ, 200, get("/v1/counts", subaccount="{w.a}"),
        check=counts_of_a_only,
    ),
    Case(
        W, "GET /v1/messages/{message_id}", READ, 200,
        get("/v1/messages/{w.message_id}"), foreign=404, check=message_of_a,
    ),
    Case(W, "GET /v1/rules", "admin", 200, get("/v1/rules")),
    Case(W, "GET /v1/rules/versions", "admin", 200, get("/v1/rules/versions")),
    Case(
        W, "POST /v1/rules", "admin", 201, republish_rules,
        check=rules_version_current,
    ),
    Case(
        W, "POST /v1/rules/restore", "admin", 201, restore_current_rules,
        check=rules_version_current,
    ),
    Case(W, "POST /v1/rules/simulate", "admin", 200, simulate_rules),
    Case(W, "GET /v1/subaccounts/{name}/rules", RULES_MANAGE, 200, get(A_RULES)),
    Case(
        W, "GET /v1/subaccounts/{name}/rules/versions", RULES_MANAGE, 200,
        get(A_RULES + "/versions"),
    ),
    Case(
        W, "POST /v1/subaccounts/{name}/rules", RULES_MANAGE, 201, publish_own_rules,
        check=own_version_listed,
    ),
    Case(
        W, "POST /v1/subaccounts/{name}/rules/restore", RULES_MANAGE, 201,
        restore_own_rules, check=own_version_listed,
    ),
    Case(
        W, "POST /v1/subaccounts/{name}/rules/simulate", RULES_MANAGE, 200,
        simulate_own_rules,
    ),
    Case(
        W, "GET /v1/suppressions/{subaccount}", SUPPRESS, 200,
        get("/v1/suppressions/{w.a}"), check=lists_kept,
    ),
    Case(
        W, "PUT /v1/suppressions/{subaccount}/{address}", SUPPRESS, 201,
        suppress_for_a, suppress_own, check=suppression_listed,
    ),
    Case(
        W, "DELETE /v1/suppressions/{subaccount}/{address}", SUPPRESS, 204,
        unsuppress_kept, unsuppress_own, check=suppression_gone,
    ),
    # b's key lists subaccounts too, and sees b alone.
    Case(
        W, "GET /v1/subaccounts", READ, 200, get("/v1/subaccounts"), foreign=200,
        check=listed_subaccounts,
    ),
    Case(W, "GET /v1/subaccounts/{name}", READ, 200, get("/v1/subaccounts/{w.a}")),
    Case(
        W, "POST /v1/subaccounts", "admin", 201, create_subaccount,
        create_subaccount_as_admin,
    ),
    Case(
        W, "PATCH /v1/subaccounts/{name}", "admin", 200, open_up_a, suspend_another,
        check=suspended,
    ),
    Case(W, "DELETE /v1/subaccounts/{name}", "admin", 204, delete_a, delete_another),
    Case(W, "POST /v1/keys", "admin", 201, key_for_a, reader_key_for_a),
    Case(W, "GET /v1/keys", "admin", 200, get("/v1/keys", subaccount="{w.a}")),
    Case(
        W, "POST /v1/keys/{key_id}/rotate", "admin", 201, rotate_a_key,
        rotate_another_key,
    ),
    Case(W, "DELETE /v1/keys/{key_id}", "admin", 200, revoke_a_key, revoke_another_key),
    Case(W, "GET /v1/webhook-auth", "admin", 200, get("/v1/webhook-auth")),
    Case(
        W, "PUT /v1/webhook-auth/{esp}", "admin", 200, open_installation_mailgun,
        put_back_installation_mailgun,
    ),
]
# fmt: on


# --- enumeration --------------------------------------------------------------


def routes_of(app: FastAPI) -> set[tuple[str, str]]:
    """(method, path) of every route, hidden or in the OpenAPI schema."""
    found: set[tuple[str, str]] = set()

    def walk(routes: Iterable[Any]) -> None:
        for route in routes:
            # Newer FastAPI keeps an included router whole in app.routes.
            inner = getattr(route, "original_router", None)
            if inner is not None:
                walk(inner.routes)
                continue
            for method in getattr(route, "methods", None) or ():
                found.add((method, route.path))

    walk(app.routes)
    for path, operations in app.openapi()["paths"].items():
        found |= {(method.upper(), path) for method in operations}
    return found


@pytest.fixture(scope="module")
def enumerated(
    kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> set[tuple[str, str, str]]:
    """(app, method, path) of every route of both apps as this module runs them."""
    settings = Settings(
        bootstrap=kafka_bootstrap,
        data_dir=tmp_path_factory.mktemp("isolation-routes"),
        admin_key=new_key(None, ["admin"])[1],
        worker_stages=STAGES,
    )
    gateway = create_gateway(settings, tenants=TenantDirectory())
    worker = create_api(Worker(settings))
    apps = {G: routes_of(gateway), W: routes_of(worker)}
    return {(app, m, p) for app, found in apps.items() for m, p in found}


def test_every_route_of_both_apps_has_a_matrix_entry(
    enumerated: set[tuple[str, str, str]], world: World
) -> None:
    entries = [case.key for case in MATRIX]
    schema = world.worker.get("/openapi.json").json()["paths"]
    served = {(W, m.upper(), p) for p, operations in schema.items() for m in operations}

    assert enumerated - set(entries) == set(), "add these routes to MATRIX"
    assert set(entries) - enumerated == set(), "these MATRIX entries match no route"
    assert len(set(entries)) == len(entries), "a route has two MATRIX entries"
    assert served <= enumerated, "the running worker serves routes not enumerated"


# --- the matrix test ----------------------------------------------------------


def assert_no_leak(
    w: World, case: Case, role: str, call: Call, reply: httpx.Response
) -> None:
    markers = w.markers() + ([w.a] if role == "foreign" else [])
    # A reply may name what the caller sent, its own key id among it.
    sent = call.shown() + json.dumps(w.key_for(role, case.access))
    leaked = [m for m in markers if m in reply.text and m not in sent]
    assert not leaked, f"{case.id} as {role} shows {leaked}: {reply.text[:300]}"


@pytest.mark.parametrize("case", MATRIX, ids=lambda case: case.id)
def test_every_caller_gets_only_what_it_may(world: World, case: Case) -> None:
    may = [r for r in ("own", "admin") if case.expected(r) < 300]
    refused = [r for r in ROLES if r not in may]
    before, mark = world.state(), world.watch.mark()

    for role in refused:
        call = case.request_for(world, role)
        reply = world.send(case.app, call, world.key_for(role, case.access))
        assert reply.status_code == case.expected(role), (
            f"{case.id} as {role}: {reply.text[:300]}"
        )
        assert_no_leak(world, case, role, call, reply)

    written = world.watch.since(mark)
    assert [w for w in written if w.topic in (TENANTS.name, RULES.name)] == []
    tagged = [w for w in written if world.tag.encode() in w.key + w.value]
    assert tagged == [], f"{case.id}: refused callers wrote {tagged}"
    assert world.state() == before

    for role in may:
        call = case.request_for(world, role)
        reply = world.send(case.app, call, world.key_for(role, case.access))
        assert reply.status_code == case.ok, f"{case.id} as {role}: {reply.text}"
        if case.check is not None:
            case.check(world, role, reply)


# --- what a subaccount key sees when it names no subaccount --------------------


def test_a_subaccount_key_counts_and_lists_its_own_subaccount_only(
    world: World,
) -> None:
    mine = bearer(world.only["events:read"]["key"])
    theirs = bearer(world.b_all["key"])

    own_counts = world.worker.get("/v1/counts", headers=mine).json()
    foreign_counts = world.worker.get("/v1/counts", headers=theirs).json()
    foreign_list = world.worker.get("/v1/subaccounts", headers=theirs).json()

    assert own_counts["total"] >= 1
    assert {row["subaccount"] for row in own_counts["rows"]} == {world.a}
    assert world.a not in {row["subaccount"] for row in foreign_counts["rows"]}
    assert [s["name"] for s in foreign_list] == [world.b]


# --- webhooks: a subaccount's signature opens its own entry point only ---------


def test_a_webhook_signed_for_one_subaccount_is_refused_at_anothers(
    world: World,
) -> None:
    mark = world.watch.mark()
    body = mailgun_event(world.tag)

    crossed = world.signed_webhook(world.a, body, world.b)
    written = world.watch.since(mark)
    own = world.signed_webhook(world.a, body, world.a)

    assert crossed.status_code == 401 and crossed.json()["reason"] == "bad_signature"
    assert [w for w in written if world.tag.encode() in w.value] == []
    assert own.status_code == 200, own.text


def test_the_installation_entry_point_takes_its_own_signature_only(
    world: World,
) -> None:
    body = mailgun_event(world.tag)
    keys = {"installation": world.installation_key, "a": world.signing[world.a]}
    replies = {}
    for name, key in keys.items():
        secret = {"signing_key": key}
        headers, signed = sign_request("mailgun", secret, body, "http://gw/webhooks")
        headers["content-type"] = "application/json"
        call = Call("POST", "/webhooks/mailgun", content=signed, headers=headers)
        replies[name] = world.send("gateway", call)

    assert replies["installation"].status_code == 200
    assert replies["a"].status_code == 401


def test_a_subaccounts_webhooks_do_not_reach_another_subaccounts_message(
    world: World,
) -> None:
    injected = mailgun_event(world.tag, mailyard_message_id=world.message_id)
    mine = bearer(world.only["events:read"]["key"])
    status = f"/v1/messages/{world.message_id}"

    def subaccounts_seen() -> set[str]:
        events = world.worker.get(status, headers=mine).json()["events"]
        return {event["subaccount"] for event in events}

    reply = world.signed_webhook(world.b, injected, world.b)
    assert reply.status_code == 200, reply.text
    assert wait_until(lambda: world.count(world.b) >= 1, 30)
    # The index reads events apart from the ledger: give it a moment.
    wait_until(lambda: world.b in subaccounts_seen(), 3)

    assert subaccounts_seen() == {world.a}


# --- per-key rate limits --------------------------------------------------------


def test_a_key_over_its_rate_gets_429_with_retry_after_and_others_do_not(
    world: World,
) -> None:
    slow = bearer(world.new_key(world.a, ["events:read"], rate_per_s=2)["key"])
    other = bearer(world.new_key(world.a, ["events:read"], rate_per_s=2)["key"])
    path = f"/v1/subaccounts/{world.a}"

    # The bucket holds twice the rate: four at once, then the fifth waits.
    replies = [world.worker.get(path, headers=slow) for _ in range(5)]
    unaffected = world.worker.get(path, headers=other)

    assert [r.status_code for r in replies] == [200, 200, 200, 200, 429]
    assert int(replies[-1].headers["retry-after"]) >= 1
    assert "2 requests/s" in replies[-1].json()["error"]
    assert unaffected.status_code == 200
