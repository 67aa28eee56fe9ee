"""Webhook signatures checked by a running gateway, and SNS in process.

The gateway runs as a process (``mailyard gateway``) against the session's
broker. Its subaccounts are written to ``mailyard.tenants`` before it
starts, with credentials made here: Mailgun signing keys and a SendGrid
EC P-256 key pair. Accepted bodies are read back from
``mailyard.webhooks.raw``; a refused one must leave nothing there.

Amazon SNS names the certificate that verifies it, and the gateway
process fetches certificates from AWS hosts only, which tests never
contact. So SNS runs in process, with a certificate store over a dict
and a recorder in place of the subscription confirmation.
"""

from __future__ import annotations

import base64
import datetime
import json
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from connectors.gateway import RawProducer, create_gateway
from connectors.webhook_auth import CertificateStore, validate_config
from connectors.webhook_signing import sign_request, signed_sns_message
from mailyard.codec import codec
from mailyard.settings import Settings
from mailyard.tenancy import (
    SUBACCOUNT_SCOPES,
    Subaccount,
    TenantDirectory,
    key_record,
    new_key,
    subaccount_record,
)
from mailyard.tenant_ops import TenantRecord, publish_sync
from mailyard.topics import RAW_WEBHOOKS
from tests.e2e import Stack, wait_until
from tests.test_tenant_isolation import TopicWatch, mailgun_event

pytestmark = pytest.mark.kafka

FIXTURES = Path(__file__).parent / "fixtures"
JSON = {"content-type": "application/json"}
RAW = codec("raw_webhook")
POSTMARK_BODY = b'{"RecordType": "Delivery", "MessageID": "probe"}'

Mark = dict[tuple[str, int], int]


def subaccount(name: str, auth: dict[str, dict[str, Any]]) -> TenantRecord:
    checked = {esp: validate_config(esp, config) for esp, config in auth.items()}
    return subaccount_record(Subaccount(name, webhook_auth=checked))


class Gateway:
    """The gateway process, two subaccounts and every secret they use.

    ``main`` checks Mailgun and SendGrid signatures; ``rotating`` lists
    two Mailgun signing keys, old and new.
    """

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.tag = uuid.uuid4().hex[:8]
        self.main, self.rotating = f"wh-{self.tag}", f"wh-rot-{self.tag}"
        self.mailgun, self.wrong = secrets.token_hex(32), secrets.token_hex(32)
        self.old, self.new = secrets.token_hex(32), secrets.token_hex(32)
        self.postmark = f"hooks:{secrets.token_urlsafe(24)}"
        self.sendgrid = ec.generate_private_key(ec.SECP256R1())
        der = self.sendgrid.public_key().public_bytes(
            serialization.Encoding.DER,
            serialization.PublicFormat.SubjectPublicKeyInfo,
        )
        self.sendgrid_public = base64.b64encode(der).decode()
        self.key_record, self.subaccount_key = new_key(self.main, SUBACCOUNT_SCOPES)
        self.watch = TopicWatch(stack.bootstrap, [RAW_WEBHOOKS])

    def records(self) -> list[TenantRecord]:
        main = {
            "mailgun": {"signing_keys": [self.mailgun]},
            "sendgrid": {"public_keys": [self.sendgrid_public]},
        }
        rotating = {"mailgun": {"signing_keys": [self.old, self.new]}}
        return [
            subaccount(self.main, main),
            subaccount(self.rotating, rotating),
            key_record(self.key_record),
        ]

    def secrets(self) -> list[str]:
        """What must never be written to a log or a reply."""
        pem = self.sendgrid.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        # Each base64 line of the private key, so a partial dump shows too.
        pem_lines = [line for line in pem.splitlines() if "-----" not in line]
        key_secrets = [self.subaccount_key, self.stack.admin_key]
        return [
            self.mailgun,
            self.wrong,
            self.old,
            self.new,
            self.postmark,
            self.postmark.partition(":")[2],
            *pem_lines,
            *(text.split("_", 2)[2] for text in key_secrets),
        ]

    # --- requests ------------------------------------------------------------

    def post(
        self, esp: str, entry: str, body: bytes, headers: dict[str, str] | None = None
    ) -> httpx.Response:
        return httpx.post(
            f"{self.stack.gateway}/webhooks/{esp}/{entry}",
            content=body,
            headers={**JSON, **(headers or {})},
            timeout=10.0,
        )

    def mailgun_post(
        self, key: str, entry: str, now: float | None = None
    ) -> httpx.Response:
        headers, body = signed_mailgun(key, mailgun_event(self.tag), now)
        return self.post("mailgun", entry, body, headers)

    def sendgrid_signed(self, body: bytes) -> dict[str, str]:
        secret = {"private_key": self.sendgrid}
        headers, _same = sign_request("sendgrid", secret, body, "http://gateway")
        return headers

    def kept(self, mark: Mark) -> list[dict[str, Any]]:
        """This module's records on the raw topic since ``mark``."""
        found = [RAW.decode(w.value) for w in self.watch.since(mark)]
        return [r for r in found if self.tag in (r["subaccount"] or "")]

    def stats(self, headers: dict[str, str] | None = None) -> httpx.Response:
        url = f"{self.stack.gateway}/v1/gateway/stats"
        return httpx.get(url, headers=headers, timeout=10.0)

    def refusals(self) -> dict[tuple[str, str], int]:
        reply = self.stats(self.stack.admin_headers)
        assert reply.status_code == 200, reply.text
        rows = reply.json()["webhook_auth_refused"]
        return {(r["esp"], r["reason"]): r["count"] for r in rows}

    def postmark_reason(self, entry: str) -> str:
        """Why an unsigned Postmark post is refused: a probe that keeps nothing."""
        reply = self.post("postmark", entry, POSTMARK_BODY)
        assert reply.status_code == 401, reply.text
        return str(reply.json()["reason"])


def signed_mailgun(
    key: str, body: bytes, now: float | None = None
) -> tuple[dict[str, str], bytes]:
    return sign_request("mailgun", {"signing_key": key}, body, "http://gw", now=now)


def one_byte_changed(body: bytes, within: bytes) -> bytes:
    """``body`` with the first byte of ``within`` changed (its lowest bit)."""
    at = body.index(within)
    return body[:at] + bytes([body[at] ^ 1]) + body[at + 1 :]


@pytest.fixture(scope="module")
def gateway(
    kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    stack = Stack(kafka_bootstrap, tmp_path_factory.mktemp("webhook-auth"))
    gw = Gateway(stack)
    # Before the gateway starts, so its readiness means it knows them.
    publish_sync(kafka_bootstrap, gw.records())
    try:
        stack.start("gateway")
        yield gw
    finally:
        stack.stop()
        gw.watch.close()


# --- Mailgun -------------------------------------------------------------------


def test_a_signed_mailgun_webhook_is_accepted_and_kept_byte_for_byte(
    gateway: Gateway,
) -> None:
    headers, body = signed_mailgun(gateway.mailgun, mailgun_event(gateway.tag))
    mark = gateway.watch.mark()

    reply = gateway.post("mailgun", gateway.main, body, headers)

    assert reply.status_code == 200, reply.text
    [kept] = gateway.kept(mark)
    assert kept["request_id"] == reply.json()["request_id"]
    assert (kept["esp"], kept["subaccount"]) == ("mailgun", gateway.main)
    assert kept["body"] == body


def test_a_mailgun_webhook_with_one_signed_byte_changed_is_refused_and_not_kept(
    gateway: Gateway,
) -> None:
    headers, body = signed_mailgun(gateway.mailgun, mailgun_event(gateway.tag))
    # Mailgun signs the timestamp and the token, not the event: the byte
    # changed is the token's first.
    token = json.loads(body)["signature"]["token"]
    changed = one_byte_changed(body, token.encode())
    mark = gateway.watch.mark()

    reply = gateway.post("mailgun", gateway.main, changed, headers)

    assert reply.status_code == 401
    assert reply.json()["reason"] == "bad_signature"
    assert gateway.kept(mark) == []


def test_a_mailgun_signature_reused_on_another_body_is_refused_but_a_retry_is_kept(
    gateway: Gateway,
) -> None:
    headers, body = signed_mailgun(gateway.mailgun, mailgun_event(gateway.tag))
    payload = json.loads(body)
    mark = gateway.watch.mark()
    assert gateway.post("mailgun", gateway.main, body, headers).status_code == 200
    # Mailgun retries with the very same body: kept again (the ledger dedups).
    assert gateway.post("mailgun", gateway.main, body, headers).status_code == 200

    payload["event-data"]["recipient"] = "forged@example.com"
    forged = json.dumps(payload).encode()
    reply = gateway.post("mailgun", gateway.main, forged, headers)

    assert reply.status_code == 401
    assert reply.json()["reason"] == "replayed"
    assert [k["body"] for k in gateway.kept(mark)] == [body, body]


@pytest.mark.parametrize(
    ("signer", "age_s", "reason"),
    [("wrong", 0, "bad_signature"), ("mailgun", 3600, "stale_timestamp")],
    ids=["signed-with-another-key", "signed-an-hour-ago"],
)
def test_a_mailgun_webhook_with_a_wrong_key_or_stale_timestamp_is_refused(
    gateway: Gateway, signer: str, age_s: float, reason: str
) -> None:
    mark = gateway.watch.mark()

    reply = gateway.mailgun_post(
        getattr(gateway, signer), gateway.main, now=time.time() - age_s
    )

    assert reply.status_code == 401
    assert reply.json()["reason"] == reason
    assert gateway.kept(mark) == []


def test_both_listed_mailgun_keys_pass_until_the_old_one_is_removed(
    gateway: Gateway,
) -> None:
    both = [
        gateway.mailgun_post(k, gateway.rotating) for k in (gateway.old, gateway.new)
    ]
    new_only = {
        "mailgun": {"signing_keys": [gateway.new]},
        # Changed in the same record: the probe below shows when it is read.
        "postmark": {"basic_auth": [gateway.postmark]},
    }
    assert gateway.postmark_reason(gateway.rotating) == "not_configured"

    publish_sync(gateway.stack.bootstrap, [subaccount(gateway.rotating, new_only)])
    assert wait_until(
        lambda: gateway.postmark_reason(gateway.rotating) == "missing_credentials", 15
    )
    old = gateway.mailgun_post(gateway.old, gateway.rotating)
    new = gateway.mailgun_post(gateway.new, gateway.rotating)

    assert [r.status_code for r in both] == [200, 200]
    assert old.status_code == 401 and old.json()["reason"] == "bad_signature"
    assert new.status_code == 200, new.text


# --- SendGrid ------------------------------------------------------------------


def test_a_signed_sendgrid_batch_is_accepted_and_one_changed_byte_is_refused(
    gateway: Gateway,
) -> None:
    body = (FIXTURES / "sendgrid" / "batch.json").read_bytes()
    headers = gateway.sendgrid_signed(body)
    changed = one_byte_changed(body, b"processed")
    mark = gateway.watch.mark()

    refused = gateway.post("sendgrid", gateway.main, changed, headers)
    after_refusal = gateway.kept(mark)
    accepted = gateway.post("sendgrid", gateway.main, body, headers)

    assert refused.status_code == 401
    assert refused.json()["reason"] == "bad_signature"
    assert after_refusal == []
    assert accepted.status_code == 200, accepted.text
    assert [r["body"] for r in gateway.kept(mark)] == [body]


# --- entry points --------------------------------------------------------------


def test_an_entry_point_without_credentials_for_the_esp_refuses_as_not_configured(
    gateway: Gateway,
) -> None:
    mark = gateway.watch.mark()

    reply = gateway.post("postmark", gateway.main, POSTMARK_BODY)

    assert reply.status_code == 401
    assert reply.json()["reason"] == "not_configured"
    assert gateway.kept(mark) == []


def test_a_webhook_for_an_unknown_subaccount_is_404(gateway: Gateway) -> None:
    reply = gateway.mailgun_post(gateway.mailgun, f"nobody-{gateway.tag}")

    assert reply.status_code == 404


# --- what the operator sees ----------------------------------------------------


def test_refusals_are_counted_by_esp_and_reason_for_admin_keys_only(
    gateway: Gateway,
) -> None:
    sub_key = {"Authorization": f"Bearer {gateway.subaccount_key}"}
    before = gateway.refusals()

    for _ in range(2):
        gateway.mailgun_post(gateway.wrong, gateway.main)
    gateway.mailgun_post(gateway.mailgun, gateway.main, now=time.time() - 3600)
    gateway.post("sendgrid", gateway.main, b"[]")  # no signature headers
    gateway.post("postmark", gateway.main, POSTMARK_BODY)
    gateway.mailgun_post(gateway.mailgun, f"nobody-{gateway.tag}")  # 404
    after = gateway.refusals()

    grown = {k: n - before.get(k, 0) for k, n in after.items() if n != before.get(k)}
    assert grown == {
        ("mailgun", "bad_signature"): 2,
        ("mailgun", "stale_timestamp"): 1,
        ("sendgrid", "missing_credentials"): 1,
        ("postmark", "not_configured"): 1,
    }
    assert gateway.stats().status_code == 401
    assert gateway.stats(sub_key).status_code == 403


def test_no_secret_reaches_the_gateway_log_or_a_refusal(gateway: Gateway) -> None:
    refusals = [
        gateway.mailgun_post(gateway.wrong, gateway.main),
        gateway.post("sendgrid", gateway.main, b"[]", gateway.sendgrid_signed(b"[ ]")),
        gateway.post(
            "postmark",
            gateway.rotating,
            POSTMARK_BODY,
            {"authorization": "Basic " + base64.b64encode(b"hooks:guess").decode()},
        ),
    ]
    log = (gateway.stack.data_dir / "gateway.log").read_text(errors="replace")

    assert [r.status_code for r in refusals] == [401, 401, 401]
    assert "refused mailgun webhook" in log and "refused sendgrid webhook" in log
    for secret in gateway.secrets():
        assert secret not in log
        assert not any(secret in r.text for r in refusals)


# --- Amazon SNS, in process ----------------------------------------------------

TOPIC = "arn:aws:sns:us-east-1:123456789012:ses-events"
OTHER_TOPIC = "arn:aws:sns:us-east-1:123456789012:someone-else"
CERT_URL = "http://sns.us-east-1.test/SimpleNotificationService-test.pem"
# Test hosts stand in for sns.<region>.amazonaws.com; nothing is fetched.
TEST_HOSTS = r"sns\.(?P<region>[a-z]{2}-[a-z]+-[0-9])\.test"


def self_signed(key: rsa.RSAPrivateKey) -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.test")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM)


class Sns:
    """An in-process gateway whose SNS subaccount allows ``TOPIC`` only."""

    def __init__(self, bootstrap: str, producer: RawProducer) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        documents = {CERT_URL: self_signed(self.key)}
        self.fetched: list[str] = []
        self.confirmed: list[str] = []

        def fetch(url: str) -> bytes:
            self.fetched.append(url)
            if url not in documents:
                raise OSError(f"nothing at {url}")
            return documents[url]

        async def confirm(url: str) -> None:
            self.confirmed.append(url)

        self.subaccount = f"sns-{uuid.uuid4().hex[:8]}"
        directory = TenantDirectory()
        key, value = subaccount(
            self.subaccount, {"amazon_ses": {"topic_arns": [TOPIC]}}
        )
        directory.apply(key.decode(), value)
        store = CertificateStore(fetch, host_pattern=TEST_HOSTS, schemes=("http",))
        self.app = create_gateway(
            Settings(bootstrap=bootstrap),
            producer,
            tenants=directory,
            certificates=store,
            confirm=confirm,
        )

    def message(self, kind: Any, topic: str = TOPIC) -> dict[str, str]:
        token = secrets.token_hex(16)
        subscribe = (
            "http://sns.us-east-1.test/?Action=ConfirmSubscription"
            f"&TopicArn={quote(topic, safe='')}&Token={token}"
        )
        return signed_sns_message(
            kind,
            topic_arn=topic,
            message=json.dumps({"eventType": "Delivery"}),
            private_key=self.key,
            cert_url=CERT_URL,
            subscribe_url=subscribe,
        )


@pytest.fixture(scope="module")
def producer(kafka_bootstrap: str) -> Iterator[RawProducer]:
    made = RawProducer(kafka_bootstrap, timeout_s=10.0)
    yield made
    made.close()


@pytest.fixture(scope="module")
def raw_watch(kafka_bootstrap: str) -> Iterator[TopicWatch]:
    watch = TopicWatch(kafka_bootstrap, [RAW_WEBHOOKS])
    yield watch
    watch.close()


@pytest.fixture
def sns(kafka_bootstrap: str, producer: RawProducer) -> Sns:
    return Sns(kafka_bootstrap, producer)


@pytest.fixture
async def sns_client(sns: Sns) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=sns.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as c:
        yield c


async def post_sns(
    client: httpx.AsyncClient, sns: Sns, message: dict[str, str]
) -> httpx.Response:
    headers = {
        "content-type": "text/plain; charset=UTF-8",
        "x-amz-sns-message-type": message["Type"],
        "x-amz-sns-topic-arn": message["TopicArn"],
    }
    return await client.post(
        f"/webhooks/amazon_ses/{sns.subaccount}",
        content=json.dumps(message).encode(),
        headers=headers,
    )


async def test_an_sns_subscription_for_an_allowed_topic_is_confirmed(
    sns: Sns, sns_client: httpx.AsyncClient
) -> None:
    message = sns.message("SubscriptionConfirmation")

    reply = await post_sns(sns_client, sns, message)

    assert reply.status_code == 200, reply.text
    assert sns.confirmed == [message["SubscribeURL"]]
    assert sns.fetched == [CERT_URL]


async def test_an_sns_subscription_for_another_topic_is_403_and_not_confirmed(
    sns: Sns, sns_client: httpx.AsyncClient
) -> None:
    message = sns.message("SubscriptionConfirmation", topic=OTHER_TOPIC)

    reply = await post_sns(sns_client, sns, message)

    assert reply.status_code == 403
    assert reply.json()["reason"] == "wrong_topic"
    assert sns.confirmed == [] and sns.fetched == []


async def test_a_signed_sns_notification_is_kept_and_a_changed_one_refused(
    sns: Sns, sns_client: httpx.AsyncClient, raw_watch: TopicWatch
) -> None:
    message = sns.message("Notification")
    changed = {**message, "Message": message["Message"].replace("Delivery", "Bounce")}
    mark = raw_watch.mark()

    refused = await post_sns(sns_client, sns, changed)
    accepted = await post_sns(sns_client, sns, message)
    kept = [RAW.decode(w.value) for w in raw_watch.since(mark)]

    assert refused.status_code == 401
    assert refused.json()["reason"] == "bad_signature"
    assert accepted.status_code == 200, accepted.text
    mine = [json.loads(r["body"]) for r in kept if r["subaccount"] == sns.subaccount]
    assert mine == [message]
    assert sns.confirmed == []
