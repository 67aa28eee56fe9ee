"""Amazon SES through SNS: signatures, topics, certificate URLs and the cache.

Certificates come from a real HTTP server on 127.0.0.1 serving a
self-signed X.509 certificate made here; the store under test is pointed
at it with its own host pattern and scheme. No request leaves this host.
"""

from __future__ import annotations

import base64
import datetime
import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from connectors.webhook_auth import CertificateStore, WebhookRequest, verify_webhook
from connectors.webhook_auth.certificates import SNS_HOST, CertificateError
from connectors.webhook_auth.sns import string_to_sign
from connectors.webhook_signing import sign_sns_message, signed_sns_message
from tests.test_webhook_auth_contract import NOW, refused, request_for

TOPIC = "arn:aws:sns:us-east-1:123456789012:ses-events"
OTHER_TOPIC = "arn:aws:sns:us-east-1:123456789012:someone-else"
SES_EVENT = json.dumps({"eventType": "Delivery", "mail": {"messageId": "m-1"}}) + "\n"


# --- a certificate server on 127.0.0.1 ---------------------------------------


class CertificateServer:
    """Serves documents by path and counts the requests for each."""

    def __init__(self) -> None:
        self.documents: dict[str, bytes] = {}
        self.hits: dict[str, int] = {}
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.hits[self.path] = server.hits.get(self.path, 0) + 1
                document = server.documents.get(self.path)
                self.send_response(200 if document is not None else 404)
                self.end_headers()
                self.wfile.write(document or b"")

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return self.base + path

    def total_hits(self) -> int:
        return sum(self.hits.values())


@pytest.fixture(scope="module")
def server() -> Iterator[CertificateServer]:
    running = CertificateServer()
    running.thread.start()
    yield running
    running.httpd.shutdown()
    running.httpd.server_close()


def self_signed(key: rsa.RSAPrivateKey, days: int = 365) -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.test")])
    start = datetime.datetime.fromtimestamp(NOW, datetime.UTC) - datetime.timedelta(
        days=1
    )
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=days))
        .sign(key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM)


def served(documents: dict[str, bytes]) -> Callable[[str], bytes]:
    """A fetch function over a dict; unknown URLs fail as a network error would."""

    def fetch(url: str) -> bytes:
        if url not in documents:
            raise OSError(f"nothing at {url}")
        return documents[url]

    return fetch


@pytest.fixture(scope="module")
def signing_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def cert_url(
    server: CertificateServer,
    signing_key: rsa.RSAPrivateKey,
    request: pytest.FixtureRequest,
) -> str:
    # A fresh path per test, so hit counts belong to one test.
    path = f"/SimpleNotificationService-{abs(hash(request.node.nodeid)):x}.pem"
    server.documents[path] = self_signed(signing_key)
    return server.url(path)


@pytest.fixture
def store() -> CertificateStore:
    return CertificateStore(host_pattern=r"127\.0\.0\.1:[0-9]+", schemes=("http",))


def _config(*topics: str, **extra: Any) -> dict[str, Any]:
    return {"topic_arns": list(topics or (TOPIC,)), **extra}


def _request(
    message: dict[str, str], headers: dict[str, str] | None = None
) -> WebhookRequest:
    body = json.dumps(message, indent=2).encode()
    return request_for("amazon_ses", headers or {}, body, "text/plain; charset=UTF-8")


def _notification(
    key: rsa.RSAPrivateKey, cert_url: str, **options: Any
) -> dict[str, str]:
    options.setdefault("topic_arn", TOPIC)
    options.setdefault("now", NOW)
    return signed_sns_message(
        "Notification", message=SES_EVENT, private_key=key, cert_url=cert_url, **options
    )


# --- signatures --------------------------------------------------------------


@pytest.mark.parametrize("version", ["1", "2"])
def test_signature_versions_1_and_2_both_pass(
    signing_key: rsa.RSAPrivateKey, cert_url: str, store: CertificateStore, version: str
) -> None:
    message = _notification(signing_key, cert_url, version=version, subject="SES event")

    verdict = verify_webhook(_request(message), _config(), now=NOW, certificates=store)

    assert verdict.identity == "topic_arns[0]"
    assert verdict.confirm_url is None


def test_a_second_allowed_topic_passes(
    signing_key: rsa.RSAPrivateKey, cert_url: str, store: CertificateStore
) -> None:
    message = _notification(signing_key, cert_url)

    verdict = verify_webhook(
        _request(message), _config(OTHER_TOPIC, TOPIC), now=NOW, certificates=store
    )

    assert verdict.identity == "topic_arns[1]"


@pytest.mark.parametrize(
    "signed_field", ["Message", "MessageId", "Timestamp", "Subject", "Type"]
)
def test_a_changed_signed_field_is_refused(
    signing_key: rsa.RSAPrivateKey,
    cert_url: str,
    store: CertificateStore,
    signed_field: str,
) -> None:
    message = _notification(signing_key, cert_url, subject="SES event")
    stamp = message["Timestamp"]
    changed = {
        "Timestamp": stamp[:-2] + str((int(stamp[-2]) + 1) % 10) + "Z",
        "Type": "UnsubscribeConfirmation",
    }
    message[signed_field] = changed.get(signed_field, message[signed_field] + " ")

    expected = "malformed" if signed_field == "Type" else "bad_signature"
    refused(_request(message), _config(), expected, now=NOW, certificates=store)


def test_every_changed_message_byte_is_refused(
    signing_key: rsa.RSAPrivateKey, cert_url: str, store: CertificateStore
) -> None:
    message = _notification(signing_key, cert_url)
    text = message["Message"]

    for i in range(len(text)):
        changed = {
            **message,
            "Message": text[:i] + chr(ord(text[i]) ^ 1) + text[i + 1 :],
        }
        refused(
            _request(changed), _config(), "bad_signature", now=NOW, certificates=store
        )


def test_a_message_signed_by_another_key_is_refused(
    cert_url: str, store: CertificateStore
) -> None:
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    message = _notification(stranger, cert_url)

    refused(_request(message), _config(), "bad_signature", now=NOW, certificates=store)


def test_the_string_to_sign_follows_the_documented_key_order(
    signing_key: rsa.RSAPrivateKey,
) -> None:
    # Built by hand from AWS's description, independently of sns.string_to_sign.
    message = {
        "Type": "Notification",
        "MessageId": "id-1",
        "TopicArn": TOPIC,
        "Subject": "s",
        "Message": "line 1\nline 2",
        "Timestamp": "2026-01-01T00:00:00.000Z",
    }
    expected = (
        "Message\nline 1\nline 2\nMessageId\nid-1\nSubject\ns\n"
        "Timestamp\n2026-01-01T00:00:00.000Z\nTopicArn\n"
        + TOPIC
        + "\nType\nNotification\n"
    ).encode()

    assert string_to_sign(message) == expected
    signed = sign_sns_message(
        message, signing_key, "https://example.invalid/c.pem", version="1"
    )
    signing_key.public_key().verify(
        base64.b64decode(signed["Signature"]),
        expected,
        padding.PKCS1v15(),
        hashes.SHA1(),
    )


def test_an_unknown_signature_version_is_malformed(
    signing_key: rsa.RSAPrivateKey, cert_url: str, store: CertificateStore
) -> None:
    message = {**_notification(signing_key, cert_url), "SignatureVersion": "3"}

    error = refused(
        _request(message), _config(), "malformed", now=NOW, certificates=store
    )

    assert error.status == 400


# --- topics and timestamps ---------------------------------------------------


def test_a_notification_from_another_topic_is_refused_before_any_fetch(
    server: CertificateServer,
    signing_key: rsa.RSAPrivateKey,
    cert_url: str,
    store: CertificateStore,
) -> None:
    message = _notification(signing_key, cert_url, topic_arn=OTHER_TOPIC)

    error = refused(
        _request(message), _config(), "wrong_topic", now=NOW, certificates=store
    )

    assert error.status == 403
    assert OTHER_TOPIC in error.detail
    assert server.hits.get(cert_url.removeprefix(server.base), 0) == 0


def test_a_topic_header_that_differs_from_the_body_is_refused(
    signing_key: rsa.RSAPrivateKey, cert_url: str, store: CertificateStore
) -> None:
    message = _notification(signing_key, cert_url)
    request = _request(message, {"x-amz-sns-topic-arn": OTHER_TOPIC})

    refused(request, _config(), "wrong_topic", now=NOW, certificates=store)


@pytest.mark.parametrize("offset", [-301, 301])
def test_an_sns_timestamp_outside_max_age_is_refused(
    signing_key: rsa.RSAPrivateKey, cert_url: str, store: CertificateStore, offset: int
) -> None:
    message = _notification(signing_key, cert_url, now=NOW + offset)

    refused(
        _request(message), _config(), "stale_timestamp", now=NOW, certificates=store
    )


def test_max_age_s_covers_a_longer_sns_retry_policy(
    signing_key: rsa.RSAPrivateKey, cert_url: str, store: CertificateStore
) -> None:
    message = _notification(signing_key, cert_url, now=NOW - 3000)

    verify_webhook(
        _request(message), _config(max_age_s=3600), now=NOW, certificates=store
    )


# --- subscription confirmations ----------------------------------------------


def _confirmation(
    key: rsa.RSAPrivateKey, cert_url: str, topic: str, subscribe_url: str
) -> dict[str, str]:
    return signed_sns_message(
        "SubscriptionConfirmation",
        topic_arn=topic,
        message="You have chosen to subscribe.",
        private_key=key,
        cert_url=cert_url,
        now=NOW,
        subscribe_url=subscribe_url,
    )


def test_a_confirmation_from_an_allowed_topic_returns_the_subscribe_url(
    server: CertificateServer,
    signing_key: rsa.RSAPrivateKey,
    cert_url: str,
    store: CertificateStore,
) -> None:
    subscribe = server.url("/?Action=ConfirmSubscription&Token=abc")
    message = _confirmation(signing_key, cert_url, TOPIC, subscribe)

    verdict = verify_webhook(_request(message), _config(), now=NOW, certificates=store)

    assert verdict.confirm_url == subscribe


def test_a_confirmation_from_another_topic_is_refused(
    server: CertificateServer,
    signing_key: rsa.RSAPrivateKey,
    cert_url: str,
    store: CertificateStore,
) -> None:
    message = _confirmation(
        signing_key, cert_url, OTHER_TOPIC, server.url("/?Action=x")
    )

    refused(_request(message), _config(), "wrong_topic", now=NOW, certificates=store)


def test_an_unsubscribe_confirmation_passes_without_a_confirm_url(
    server: CertificateServer,
    signing_key: rsa.RSAPrivateKey,
    cert_url: str,
    store: CertificateStore,
) -> None:
    message = signed_sns_message(
        "UnsubscribeConfirmation",
        topic_arn=TOPIC,
        message="unsubscribed",
        private_key=signing_key,
        cert_url=cert_url,
        now=NOW,
        subscribe_url=server.url("/?x"),
    )

    verdict = verify_webhook(_request(message), _config(), now=NOW, certificates=store)

    assert verdict.confirm_url is None


@pytest.mark.parametrize(
    "subscribe_url",
    [
        "https://evil.example/confirm",
        "http://127.0.0.1.evil.example:80/",
        "file:///etc/passwd",
    ],
)
def test_a_subscribe_url_off_the_allowed_hosts_is_refused(
    signing_key: rsa.RSAPrivateKey,
    cert_url: str,
    store: CertificateStore,
    subscribe_url: str,
) -> None:
    message = _confirmation(signing_key, cert_url, TOPIC, subscribe_url)

    refused(
        _request(message), _config(), "bad_certificate_url", now=NOW, certificates=store
    )


def test_a_subscribe_url_in_another_region_than_the_topic_is_refused(
    signing_key: rsa.RSAPrivateKey,
) -> None:
    # Real SNS host names, served from a dict: nothing is fetched over the network.
    cert_url = "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-0a1b.pem"
    documents = {cert_url: self_signed(signing_key)}
    store = CertificateStore(served(documents))
    elsewhere = "https://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription"
    at_home = "https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription"

    refused(
        _request(_confirmation(signing_key, cert_url, TOPIC, elsewhere)),
        _config(),
        "bad_certificate_url",
        now=NOW,
        certificates=store,
    )
    verdict = verify_webhook(
        _request(_confirmation(signing_key, cert_url, TOPIC, at_home)),
        _config(),
        now=NOW,
        certificates=store,
    )
    assert verdict.confirm_url == at_home


# --- certificate URLs and the cache ------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://s3.amazonaws.com/bucket/SimpleNotificationService-1.pem",
        "https://sns.s3.amazonaws.com/SimpleNotificationService-1.pem",
        "https://sns.s3-us-west-2.amazonaws.com/SimpleNotificationService-1.pem",
        "https://sns.us-east-1.amazonaws.com.evil.example/cert-1.pem",
        "https://user@sns.us-east-1.amazonaws.com/SimpleNotificationService-1.pem",
        "https://sns.us-east-1.amazonaws.com:8443/SimpleNotificationService-1.pem",
        "http://sns.us-east-1.amazonaws.com/SimpleNotificationService-1.pem",
        "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-1.txt",
        "https://sns.us-east-1.amazonaws.com/cert.pem?x=1",
        "https://sns.us-east-1.amazonaws.com/cert.pem#x",
        "https://sns.us-east-1.amazonaws.com/a\n.pem",
        "ftp://sns.us-east-1.amazonaws.com/SimpleNotificationService-1.pem",
    ],
)
def test_the_default_store_refuses_certificate_urls_off_sns_hosts(url: str) -> None:
    fetched: list[str] = []

    def fetch(url: str) -> bytes:
        fetched.append(url)
        return b""

    store = CertificateStore(fetch)

    with pytest.raises(CertificateError) as caught:
        store.certificate(url)

    assert caught.value.reason == "bad_certificate_url"
    assert fetched == []


@pytest.mark.parametrize(
    "host",
    [
        "sns.us-east-1.amazonaws.com",
        "sns.eu-central-2.amazonaws.com",
        "sns.us-gov-west-1.amazonaws.com",
        "sns.cn-north-1.amazonaws.com.cn",
    ],
)
def test_the_default_host_pattern_accepts_sns_regions(host: str) -> None:
    assert SNS_HOST.fullmatch(host)


@pytest.mark.parametrize(
    "cert_url_for",
    [
        lambda server: "https://" + server.base.removeprefix("http://") + "/c.pem",
        lambda server: server.base.replace("127.0.0.1", "localhost") + "/c.pem",
        lambda server: server.url("/c.txt"),
    ],
    ids=["other-scheme", "other-host", "not-pem"],
)
def test_a_message_naming_an_untrusted_certificate_url_is_refused_before_any_fetch(
    server: CertificateServer,
    signing_key: rsa.RSAPrivateKey,
    store: CertificateStore,
    cert_url_for: Any,
) -> None:
    before = server.total_hits()
    message = _notification(signing_key, cert_url_for(server))

    error = refused(
        _request(message), _config(), "bad_certificate_url", now=NOW, certificates=store
    )

    assert error.status == 403
    assert server.total_hits() == before


def test_a_certificate_is_fetched_once_and_then_served_from_the_cache(
    server: CertificateServer,
    signing_key: rsa.RSAPrivateKey,
    cert_url: str,
    store: CertificateStore,
) -> None:
    for _ in range(5):
        message = _notification(signing_key, cert_url)
        verify_webhook(_request(message), _config(), now=NOW, certificates=store)

    assert server.hits[cert_url.removeprefix(server.base)] == 1


def test_a_certificate_that_cannot_be_fetched_answers_503_so_sns_retries(
    server: CertificateServer, signing_key: rsa.RSAPrivateKey, store: CertificateStore
) -> None:
    message = _notification(signing_key, server.url("/missing.pem"))

    error = refused(
        _request(message),
        _config(),
        "certificate_unavailable",
        now=NOW,
        certificates=store,
    )

    assert error.status == 503


def test_a_document_that_is_not_a_certificate_answers_503(
    server: CertificateServer, signing_key: rsa.RSAPrivateKey, store: CertificateStore
) -> None:
    server.documents["/garbage.pem"] = b"<html>not a certificate</html>"
    message = _notification(signing_key, server.url("/garbage.pem"))

    refused(
        _request(message),
        _config(),
        "certificate_unavailable",
        now=NOW,
        certificates=store,
    )


def test_an_expired_certificate_is_refused(
    server: CertificateServer, signing_key: rsa.RSAPrivateKey, store: CertificateStore
) -> None:
    server.documents["/expired.pem"] = self_signed(signing_key, days=0)
    message = _notification(signing_key, server.url("/expired.pem"))

    refused(_request(message), _config(), "bad_signature", now=NOW, certificates=store)


# --- the rest of the envelope ------------------------------------------------


def test_optional_basic_auth_is_checked_before_the_signature(
    signing_key: rsa.RSAPrivateKey, cert_url: str, store: CertificateStore
) -> None:
    config = _config(basic_auth=["sns:s3cret-pass"])
    message = _notification(signing_key, cert_url)
    auth = {"authorization": "Basic " + base64.b64encode(b"sns:s3cret-pass").decode()}

    challenged = refused(
        _request(message), config, "missing_credentials", now=NOW, certificates=store
    )
    verdict = verify_webhook(
        _request(message, auth), config, now=NOW, certificates=store
    )

    assert challenged.challenge is not None and challenged.challenge.startswith(
        "Basic "
    )
    assert verdict.identity == "topic_arns[0]"


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"not json", "malformed"),
        (b'{"eventType": "Delivery"}', "malformed"),
        (
            b'{"Type": "Notification", "TopicArn": "' + TOPIC.encode() + b'"}',
            "missing_credentials",
        ),
    ],
    ids=["not-json", "raw-delivery", "unsigned"],
)
def test_bodies_that_are_not_signed_sns_envelopes_are_refused(
    body: bytes, reason: str
) -> None:
    request = request_for("amazon_ses", {}, body, "text/plain")

    refused(
        request,
        _config(),
        reason,
        now=NOW,
        certificates=CertificateStore(lambda u: b""),
    )
