"""The contract every ESP's webhook authentication must keep.

Each case signs a request the way its ESP does (``sign_request``) with
keys generated here, and the same tests run for all of them: a good
request passes, a second configured key passes (rotation), a wrong key,
a changed signed byte, a missing credential and an old or future
timestamp are refused, and no refusal repeats a secret. Amazon SNS keeps
the same contract in ``test_webhook_auth_sns.py``.
"""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from connectors.webhook_auth import WebhookAuthError, WebhookRequest, verify_webhook
from connectors.webhook_signing import sign_request

NOW = 1_790_000_000.0
URL = "https://hooks.example.test/webhooks/{esp}/acme"
JSON = "application/json"
FORM = "application/x-www-form-urlencoded"

SENDGRID_BODY = (
    b'[{"email":"a@example.org","event":"delivered","timestamp":1790000000}]\r\n'
)
MANDRILL_EVENTS = '[{"event":"send","_id":"abc","ts":1790000000}]'


# --- helpers shared by the other webhook-auth test modules -------------------


def request_for(
    esp: str, headers: dict[str, str], body: bytes, content_type: str = JSON
) -> WebhookRequest:
    lowered = {name.lower(): value for name, value in headers.items()}
    return WebhookRequest(esp, URL.format(esp=esp), lowered, body, content_type)


def secret_strings(config: dict[str, Any] | None) -> list[str]:
    """Every secret in a config, to check that no message repeats one."""
    found: list[str] = []
    if config is None:
        return found
    for name in (
        "signing_keys",
        "webhook_keys",
        "secrets",
        "secret_keys",
        "bearer_tokens",
    ):
        found += config.get(name, [])
    for pair in config.get("basic_auth", []):
        found += [pair, pair.partition(":")[2]]
    if "header" in config:
        found += config["header"]["values"]
    return [secret for secret in found if secret]


def refused(
    request: WebhookRequest, config: dict[str, Any] | None, reason: str, **kwargs: Any
) -> WebhookAuthError:
    """The refusal of ``request``, checked for reason and for leaked secrets."""
    with pytest.raises(WebhookAuthError) as caught:
        verify_webhook(request, config, **kwargs)
    error = caught.value
    assert error.reason == reason, error.detail
    assert error.esp == request.esp
    for secret in secret_strings(config):
        assert secret not in str(error) and secret not in error.detail
    return error


# --- the cases ---------------------------------------------------------------


def _ec_pair() -> tuple[str, dict[str, str]]:
    key = ec.generate_private_key(ec.SECP256R1())
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return base64.b64encode(der).decode(), {"private_key": pem.decode()}


def _shared(
    signer_name: str, make: Callable[[], str]
) -> Callable[[], tuple[str, dict[str, str]]]:
    def pair() -> tuple[str, dict[str, str]]:
        value = make()
        return value, {signer_name: value}

    return pair


def _flip_each_byte(body: bytes) -> list[bytes]:
    return [body[:i] + bytes([body[i] ^ 1]) + body[i + 1 :] for i in range(len(body))]


def _flip_mandrill_events(body: bytes) -> list[bytes]:
    text = MANDRILL_EVENTS
    changed = [
        text[:i] + chr(ord(text[i]) ^ 1) + text[i + 1 :] for i in range(len(text))
    ]
    return [urlencode({"mandrill_events": t}).encode() for t in changed]


def _shift_mailgun_fields(body: bytes) -> list[bytes]:
    tampered = []
    for name, change in (("token", "0"), ("timestamp", "1")):
        payload = json.loads(body)
        value = payload["signature"][name]
        payload["signature"][name] = value[:-1] + (
            "1" if value[-1] == change else change
        )
        tampered.append(json.dumps(payload).encode())
    return tampered


def _change_secret_key(body: bytes) -> list[bytes]:
    payload = json.loads(body)
    payload["SecretKey"] = payload["SecretKey"][:-1] + "x"
    return [json.dumps(payload).encode()]


@dataclass(frozen=True)
class Case:
    esp: str
    config_field: str
    make_pair: Callable[[], tuple[str, dict[str, str]]]
    body: bytes = b'{"event":"delivered","email":"a@example.org"}'
    content_type: str = JSON
    tamper: Callable[[bytes], list[bytes]] | None = None
    timestamped: bool = False
    pairs: list[tuple[str, dict[str, str]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        # Two credentials per case, made once: the first is "the other key".
        self.pairs.extend([self.make_pair(), self.make_pair()])

    def config(self, *indexes: int, **extra: Any) -> dict[str, Any]:
        return {self.config_field: [self.pairs[i][0] for i in indexes], **extra}

    def signed(
        self, index: int, now: float = NOW, body: bytes | None = None
    ) -> WebhookRequest:
        signer = self.pairs[index][1]
        headers, sent = sign_request(
            self.esp,
            signer,
            self.body if body is None else body,
            URL.format(esp=self.esp),
            now,
        )
        return request_for(self.esp, headers, sent, self.content_type)

    def __str__(self) -> str:
        return self.esp


def _hex_key() -> str:
    return "key-" + secrets.token_hex(16)


def _whsec() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def _user_pass() -> str:
    return f"mailyard:{secrets.token_urlsafe(12)}"


CASES = [
    Case(
        "sendgrid",
        "public_keys",
        _ec_pair,
        SENDGRID_BODY,
        tamper=_flip_each_byte,
        timestamped=True,
    ),
    Case(
        "mailgun",
        "signing_keys",
        _shared("signing_key", _hex_key),
        b'{"event-data":{"event":"delivered"}}',
        tamper=_shift_mailgun_fields,
        timestamped=True,
    ),
    Case(
        "mandrill",
        "webhook_keys",
        _shared("webhook_key", _hex_key),
        urlencode({"mandrill_events": MANDRILL_EVENTS}).encode(),
        FORM,
        tamper=_flip_mandrill_events,
    ),
    Case(
        "resend",
        "secrets",
        _shared("secret", _whsec),
        tamper=_flip_each_byte,
        timestamped=True,
    ),
    Case("postmark", "basic_auth", _shared("basic_auth", _user_pass)),
    Case("mailjet", "basic_auth", _shared("basic_auth", _user_pass), b"[]"),
    Case(
        "sparkpost", "basic_auth", _shared("basic_auth", _user_pass), b'[{"msys":{}}]'
    ),
    Case(
        "brevo",
        "bearer_tokens",
        _shared("bearer_token", lambda: secrets.token_urlsafe(24)),
    ),
    Case(
        "socketlabs",
        "secret_keys",
        _shared("secret_key", lambda: secrets.token_hex(12)),
        tamper=_change_secret_key,
    ),
]
TIMESTAMPED = [case for case in CASES if case.timestamped]
TAMPERABLE = [case for case in CASES if case.tamper is not None]


@pytest.mark.parametrize("case", CASES, ids=str)
def test_a_request_signed_with_the_configured_key_passes(case: Case) -> None:
    verdict = verify_webhook(case.signed(1), case.config(1), now=NOW)

    assert verdict.identity == f"{case.config_field}[0]"
    assert verdict.confirm_url is None


@pytest.mark.parametrize("case", CASES, ids=str)
def test_the_second_key_in_the_list_passes_during_rotation(case: Case) -> None:
    verdict = verify_webhook(case.signed(1), case.config(0, 1), now=NOW)

    assert verdict.identity == f"{case.config_field}[1]"


@pytest.mark.parametrize("case", CASES, ids=str)
def test_a_request_signed_with_another_key_is_refused_with_401(case: Case) -> None:
    error = refused(case.signed(0), case.config(1), "bad_signature", now=NOW)

    assert error.status == 401


@pytest.mark.parametrize("case", TAMPERABLE, ids=str)
def test_any_changed_signed_byte_is_refused(case: Case) -> None:
    good = case.signed(1)
    assert case.tamper is not None

    for body in case.tamper(good.body):
        changed = request_for(case.esp, dict(good.headers), body, case.content_type)
        refused(changed, case.config(1), "bad_signature", now=NOW)


@pytest.mark.parametrize("case", CASES, ids=str)
def test_a_request_without_credentials_is_refused_with_401(case: Case) -> None:
    bare = request_for(case.esp, {}, case.body, case.content_type)

    error = refused(bare, case.config(1), "missing_credentials", now=NOW)

    assert error.status == 401
    basic = case.config_field == "basic_auth"
    assert (error.challenge is not None) == basic


@pytest.mark.parametrize("case", TIMESTAMPED, ids=str)
@pytest.mark.parametrize("offset", [-301, 301, -3600, 86_400])
def test_a_timestamp_outside_max_age_either_way_is_refused(
    case: Case, offset: int
) -> None:
    request = case.signed(1, now=NOW + offset)

    error = refused(request, case.config(1), "stale_timestamp", now=NOW)

    assert error.status == 401


@pytest.mark.parametrize("case", TIMESTAMPED, ids=str)
@pytest.mark.parametrize("offset", [-299, 0, 299])
def test_a_timestamp_inside_max_age_passes(case: Case, offset: int) -> None:
    verify_webhook(case.signed(1, now=NOW + offset), case.config(1), now=NOW)


@pytest.mark.parametrize("case", TIMESTAMPED, ids=str)
def test_max_age_s_widens_the_window(case: Case) -> None:
    request = case.signed(1, now=NOW - 3000)

    verify_webhook(request, case.config(1, max_age_s=3600), now=NOW)
