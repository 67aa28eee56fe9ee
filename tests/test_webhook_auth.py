"""Webhook authentication: configs, refusals, ESP quirks, and robustness.

The per-ESP contract (good, rotated, wrong, tampered, stale) lives in
``test_webhook_auth_contract.py`` and SNS in ``test_webhook_auth_sns.py``;
this module checks what is specific to one ESP or to the package.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any
from urllib.parse import urlencode

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.webhook_auth import (
    STATUS,
    VERIFIERS,
    CertificateStore,
    Reason,
    WebhookAuthError,
    WebhookConfigError,
    validate_config,
    verify_webhook,
)
from connectors.webhook_signing import sign_request, signed_sns_message
from mailyard.errors import MailyardError
from tests.test_webhook_auth_contract import FORM, NOW, URL, refused, request_for
from tests.test_webhook_auth_sns import self_signed, served

EC_KEY = ec.generate_private_key(ec.SECP256R1())
EC_PUBLIC = EC_KEY.public_key()
EC_DER_B64 = base64.b64encode(
    EC_PUBLIC.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
).decode()
EC_PEM = EC_PUBLIC.public_bytes(
    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
).decode()
RSA_DER_B64 = base64.b64encode(
    rsa.generate_private_key(public_exponent=65537, key_size=2048)
    .public_key()
    .public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
).decode()


# --- validate_config ---------------------------------------------------------


@pytest.mark.parametrize(
    ("esp", "config", "field"),
    [
        ("sendgrid", {}, "public_keys"),
        ("sendgrid", {"public_keys": []}, "public_keys"),
        ("sendgrid", {"public_keys": EC_DER_B64}, "public_keys"),
        ("sendgrid", {"public_keys": ["not a key"]}, "public_keys[0]"),
        ("sendgrid", {"public_keys": [EC_DER_B64, RSA_DER_B64]}, "public_keys[1]"),
        ("mailgun", {"signing_keys": ["good-key", " padded-key"]}, "signing_keys[1]"),
        ("mailgun", {"signing_keys": [""]}, "signing_keys[0]"),
        ("mailgun", {"signing_keys": [42]}, "signing_keys[0]"),
        ("mailgun", {"signing_key": ["singular-key"]}, "signing_key"),
        ("postmark", {"basic_auth": ["no-colon-secret"]}, "basic_auth[0]"),
        ("postmark", {"basic_auth": [":only-a-password"]}, "basic_auth[0]"),
        ("postmark", {"bearer_tokens": ["tok"]}, "bearer_tokens"),
        ("amazon_ses", {}, "topic_arns"),
        ("amazon_ses", {"basic_auth": ["a:b"]}, "topic_arns"),
        ("amazon_ses", {"topic_arns": ["arn:aws:s3:::a-bucket"]}, "topic_arns[0]"),
        ("resend", {"secrets": ["c2VjcmV0LXdpdGhvdXQtcHJlZml4"]}, "secrets[0]"),
        ("resend", {"secrets": ["whsec_!!not-base64!!"]}, "secrets[0]"),
        ("mandrill", {"webhook_keys": ["k"], "url": "/webhooks/mandrill"}, "url"),
        ("sparkpost", {"header": {"name": "X Token", "values": ["v"]}}, "header.name"),
        ("sparkpost", {"header": {"name": "X-Token"}}, "header"),
        ("sparkpost", {"header": {"name": "X-Token", "values": []}}, "header.values"),
        ("brevo", {"none": "yes"}, "none"),
        ("brevo", {"none": True, "bearer_tokens": ["tok"]}, "none"),
        ("brevo", {"bearer_tokens": ["tok"], "max_age_s": 0}, "max_age_s"),
        ("brevo", {"bearer_tokens": ["tok"], "max_age_s": True}, "max_age_s"),
        ("brevo", {"bearer_tokens": ["tok"], "max_age_s": float("nan")}, "max_age_s"),
        ("no-such-esp", {"none": True}, "esp"),
    ],
)
def test_validate_config_names_the_field_and_the_problem(
    esp: str, config: dict[str, Any], field: str
) -> None:
    with pytest.raises(ValueError, match="webhook auth config") as caught:
        validate_config(esp, config)

    assert isinstance(caught.value, WebhookConfigError)
    assert caught.value.field == field
    assert repr(field) in str(caught.value)
    for secret in ("padded-key", "no-colon-secret", "only-a-password", "not-base64"):
        assert secret not in str(caught.value)


config_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=30)
    | st.sampled_from(["a:b", "whsec_AAAA", EC_DER_B64, "http://[", "arn:aws:sns:x"]),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(
            st.sampled_from(["name", "values"]) | st.text(max_size=5), children
        )
    ),
    max_leaves=10,
)


@settings(max_examples=300, deadline=None)
@given(
    esp=st.sampled_from(sorted(VERIFIERS)),
    config=st.dictionaries(
        st.sampled_from(
            [
                "public_keys",
                "signing_keys",
                "basic_auth",
                "bearer_tokens",
                "header",
                "topic_arns",
                "webhook_keys",
                "url",
                "secrets",
                "secret_keys",
                "none",
                "max_age_s",
            ]
        ),
        config_values,
    ),
)
def test_random_configs_raise_nothing_but_webhook_config_error(
    esp: str, config: dict[str, Any]
) -> None:
    try:
        validate_config(esp, config)
    except WebhookConfigError as error:
        assert error.field and error.problem.endswith(".")


def test_validate_config_normalizes_a_copy() -> None:
    given_config = {"public_keys": [EC_PEM]}

    normalized = validate_config("sendgrid", given_config)

    assert normalized == {"public_keys": [EC_DER_B64], "max_age_s": 300.0}
    assert given_config == {"public_keys": [EC_PEM]}
    header = {"header": {"name": "X-Hook-Token", "values": ["v"]}}
    assert validate_config("sparkpost", header)["header"]["name"] == "x-hook-token"
    assert validate_config("postmark", {"none": True}) == {"none": True}


def test_every_esp_with_a_verifier_has_a_config_schema() -> None:
    for esp in VERIFIERS:
        assert validate_config(esp, {"none": True}) == {"none": True}


# --- verify_webhook around the verifiers -------------------------------------


def test_an_unconfigured_entry_point_gets_401_and_how_to_configure_it() -> None:
    error = refused(request_for("postmark", {}, b"{}"), None, "not_configured")

    assert error.status == 401
    assert "config" in error.detail and '"none": true' in error.detail


def test_an_unusable_stored_config_is_refused_as_not_configured() -> None:
    error = refused(
        request_for("postmark", {}, b"{}"),
        {"basic_auth": ["no-colon-here"]},
        "not_configured",
    )

    assert "basic_auth[0]" in error.detail


def test_an_esp_without_a_verifier_is_refused() -> None:
    refused(request_for("hotmail", {}, b"{}"), {"none": True}, "not_configured")


def test_none_true_accepts_anything() -> None:
    verdict = verify_webhook(request_for("sendgrid", {}, b"junk"), {"none": True})

    assert verdict.identity == "none"


def test_statuses_follow_the_esps_retry_rules() -> None:
    credential_reasons: tuple[Reason, ...] = (
        "missing_credentials",
        "not_configured",
        "bad_signature",
        "stale_timestamp",
    )

    # 401 keeps genuine ESPs retrying; Postmark would stop on 403, Mailgun on 406.
    assert all(STATUS[reason] == 401 for reason in credential_reasons)
    assert 406 not in STATUS.values()
    assert STATUS["certificate_unavailable"] == 503
    assert STATUS["wrong_topic"] == STATUS["bad_certificate_url"] == 403
    assert STATUS["malformed"] == 400


def test_the_error_is_a_permission_error_that_names_esp_and_reason() -> None:
    error = WebhookAuthError(
        "mailgun", "bad_signature", "The signature does not match."
    )

    assert isinstance(error, PermissionError) and isinstance(error, MailyardError)
    assert (
        str(error)
        == "mailgun webhook refused (bad_signature): The signature does not match."
    )


# --- known answers from the ESPs' own material -------------------------------


def test_sendgrids_published_test_vector_verifies() -> None:
    # The key, signature, timestamp and payload of SendGrid's SDK test suite.
    key = (
        "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEEDr2LjtURuePQzplybdC+u4"
        "CwrqDqBaWjcMMsTbhdbc"
        "wHBcepxo7yAQGhHPTnlvFYPAZFceEu/1FwCM/QmGUhA=="
    )
    headers = {
        "X-Twilio-Email-Event-Webhook-Signature": (
            "MEUCIQCtIHJeH93Y+qpYeWrySphQgpNGNr/U+UyUlBkU6n7RAwIgJTz2C+8a8x"
            "onZGi6BpSzoQsbVRam"
            "r2nlxFDWYNH2j/0="
        ),
        "X-Twilio-Email-Event-Webhook-Timestamp": "1588788367",
    }
    body = (
        b'{"category":"example_payload","event":"test_event","message_id":"message_id"}'
    )

    verdict = verify_webhook(
        request_for("sendgrid", headers, body), {"public_keys": [key]}, now=1588788367
    )

    assert verdict.identity == "public_keys[0]"


def test_svixs_documented_example_verifies() -> None:
    headers = {
        "svix-id": "msg_p5jXN8AQM9LWM0D4loKWxJek",
        "svix-timestamp": "1614265330",
        "svix-signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
    }
    config = {"secrets": ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]}

    verify_webhook(
        request_for("resend", headers, b'{"test": 2432232314}'), config, now=1614265330
    )


# --- SendGrid, Mailgun, Mandrill, Svix specifics -----------------------------


def test_a_sendgrid_key_given_as_pem_verifies() -> None:
    headers, body = sign_request(
        "sendgrid", {"private_key": EC_KEY}, b"[]\r\n", "", NOW
    )

    verify_webhook(
        request_for("sendgrid", headers, body), {"public_keys": [EC_PEM]}, now=NOW
    )


def test_a_sendgrid_signature_that_is_not_base64_is_refused() -> None:
    headers = {
        "x-twilio-email-event-webhook-signature": "%%%",
        "x-twilio-email-event-webhook-timestamp": str(int(NOW)),
    }

    refused(
        request_for("sendgrid", headers, b"[]"),
        {"public_keys": [EC_DER_B64]},
        "bad_signature",
        now=NOW,
    )


def _mailgun_signature(key: str, stamp: str, token: str) -> str:
    return hmac.new(key.encode(), (stamp + token).encode(), hashlib.sha256).hexdigest()


def test_a_mailgun_json_signature_computed_by_hand_verifies() -> None:
    stamp, token = str(int(NOW)), "a" * 50
    signature = {
        "timestamp": int(stamp),
        "token": token,
        "signature": _mailgun_signature("mg-key", stamp, token),
    }
    body = json.dumps(
        {"signature": signature, "event-data": {"event": "delivered"}}
    ).encode()

    verify_webhook(
        request_for("mailgun", {}, body), {"signing_keys": ["mg-key"]}, now=NOW
    )


def test_mailgun_legacy_forms_use_the_last_of_duplicated_signature_fields() -> None:
    # A user variable named like a signature field comes first (anymail#77).
    user_variables = b"event=delivered&timestamp=1&token=user-token&signature=user-sig"

    headers, body = sign_request(
        "mailgun", {"signing_key": "mg-key"}, user_variables, "", NOW
    )

    assert body.count(b"token=") == 2
    verify_webhook(
        request_for("mailgun", headers, body, FORM),
        {"signing_keys": ["mg-key"]},
        now=NOW,
    )


def test_a_mailgun_multipart_post_verifies() -> None:
    stamp, token = str(int(NOW)), "b" * 50
    fields = {
        "event": "bounced",
        "timestamp": stamp,
        "token": token,
        "signature": _mailgun_signature("mg-key", stamp, token),
    }
    parts = [
        f'--XyZ\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'
        for k, v in fields.items()
    ]
    body = ("".join(parts) + "--XyZ--\r\n").encode()
    request = request_for("mailgun", {}, body, "multipart/form-data; boundary=XyZ")

    verify_webhook(request, {"signing_keys": ["mg-key"]}, now=NOW)


def test_a_mailgun_parent_signature_made_with_the_configured_key_verifies() -> None:
    stamp, token = str(int(NOW)), "c" * 50
    signature = {
        "timestamp": stamp,
        "token": token,
        "signature": _mailgun_signature("subaccount-key", stamp, token),
        "parent-signature": _mailgun_signature("parent-key", stamp, token),
    }
    body = json.dumps({"signature": signature, "event-data": {}}).encode()

    verdict = verify_webhook(
        request_for("mailgun", {}, body), {"signing_keys": ["parent-key"]}, now=NOW
    )

    assert verdict.identity == "signing_keys[0]"


def test_mailguns_signature_does_not_cover_event_data() -> None:
    # A documented limit of Mailgun's scheme, kept visible: only timestamp
    # and token are signed, so edited event-data still verifies.
    headers, body = sign_request(
        "mailgun",
        {"signing_key": "mg-key"},
        b'{"event-data":{"event":"delivered"}}',
        "",
        NOW,
    )
    edited = body.replace(b"delivered", b"failed")

    verify_webhook(
        request_for("mailgun", headers, edited), {"signing_keys": ["mg-key"]}, now=NOW
    )


def test_a_mandrill_signature_computed_by_hand_verifies() -> None:
    events = '[{"event":"open","_id":"x"}]'
    url = "https://hooks.example.test/webhooks/mandrill/acme"
    digest = hmac.new(
        b"mandrill-key", (url + "mandrill_events" + events).encode(), hashlib.sha1
    ).digest()
    headers = {"X-Mandrill-Signature": base64.b64encode(digest).decode()}
    body = urlencode({"mandrill_events": events}).encode()

    verify_webhook(
        request_for("mandrill", headers, body, FORM), {"webhook_keys": ["mandrill-key"]}
    )


def test_mandrill_behind_a_proxy_needs_the_public_url_in_the_config() -> None:
    public = "https://user:url-password@hooks.example.test/mandrill?x=1"
    headers, body = sign_request(
        "mandrill",
        {"webhook_key": "mandrill-proxy-key"},
        b"mandrill_events=%5B%5D",
        public,
    )
    seen = request_for("mandrill", headers, body, FORM)  # the gateway saw another URL

    error = refused(seen, {"webhook_keys": ["mandrill-proxy-key"]}, "bad_signature")
    verify_webhook(seen, {"webhook_keys": ["mandrill-proxy-key"], "url": public})

    assert "'url'" in error.detail
    public_error = refused(
        seen, {"webhook_keys": ["other"], "url": public}, "bad_signature"
    )
    assert "url-password" not in public_error.detail


def test_svix_accepts_any_listed_v1_signature_and_the_webhook_header_prefix() -> None:
    secret = "whsec_" + base64.b64encode(b"0123456789abcdef0123").decode()
    headers, body = sign_request("resend", {"secret": secret}, b"{}", "", NOW)
    listed = {
        **headers,
        "svix-signature": "v2,AAAA v1,bm90LWl0 " + headers["svix-signature"],
    }
    prefixed = {
        name.replace("svix-", "webhook-"): value for name, value in headers.items()
    }

    verify_webhook(request_for("resend", listed, body), {"secrets": [secret]}, now=NOW)
    verify_webhook(
        request_for("resend", prefixed, body), {"secrets": [secret]}, now=NOW
    )


# --- shared credentials ------------------------------------------------------


def _basic(pair: str, scheme: str = "Basic") -> dict[str, str]:
    return {"Authorization": f"{scheme} {base64.b64encode(pair.encode()).decode()}"}


def test_a_wrong_basic_auth_password_is_refused_with_a_challenge_and_no_secret() -> (
    None
):
    config = {"basic_auth": ["mailyard:right-password"]}

    error = refused(
        request_for("postmark", _basic("mailyard:wrong-password"), b"{}"),
        config,
        "bad_signature",
    )

    assert error.challenge == 'Basic realm="mailyard webhooks"'
    assert "wrong-password" not in str(error)
    verify_webhook(
        request_for("postmark", _basic("mailyard:right-password", "basic"), b"{}"),
        config,
    )


def test_brevo_accepts_either_a_bearer_token_or_basic_auth() -> None:
    config = {"bearer_tokens": ["brevo-token"], "basic_auth": ["brevo:pw"]}

    by_token = verify_webhook(
        request_for("brevo", {"Authorization": "Bearer brevo-token"}, b"{}"), config
    )
    by_password = verify_webhook(
        request_for("brevo", _basic("brevo:pw"), b"{}"), config
    )

    assert (by_token.identity, by_password.identity) == (
        "bearer_tokens[0]",
        "basic_auth[0]",
    )


def test_sparkpost_accepts_a_custom_auth_header() -> None:
    config = {"header": {"name": "X-Hook-Token", "values": ["old-token", "new-token"]}}

    verdict = verify_webhook(
        request_for("sparkpost", {"x-hook-token": "new-token"}, b"[]"), config
    )

    assert verdict.identity == "header[1]"
    refused(
        request_for("sparkpost", {"x-hook-token": "guess"}, b"[]"),
        config,
        "bad_signature",
    )


@pytest.mark.parametrize(
    ("events", "reason"),
    [
        ([{"SecretKey": "sl-key"}, {"SecretKey": "sl-key"}], None),
        ([{"SecretKey": "sl-key"}, {"Type": "Open"}], "missing_credentials"),
        ([{"SecretKey": "sl-key"}, {"SecretKey": "other"}], "bad_signature"),
    ],
    ids=["all-signed", "one-unsigned", "mixed-keys"],
)
def test_socketlabs_batches_need_the_key_on_every_event(
    events: list[dict[str, str]], reason: str | None
) -> None:
    request = request_for("socketlabs", {}, json.dumps(events).encode())
    config = {"secret_keys": ["sl-key"]}

    if reason is None:
        verify_webhook(request, config)
    else:
        refused(request, config, reason)


# --- robustness --------------------------------------------------------------

ROBUSTNESS_CONFIGS: dict[str, dict[str, Any]] = {
    "sendgrid": {"public_keys": [EC_DER_B64]},
    "mailgun": {"signing_keys": ["mg-key"]},
    "sparkpost": {
        "basic_auth": ["a:b"],
        "header": {"name": "x-token", "values": ["t"]},
    },
    "amazon_ses": {
        "topic_arns": ["arn:aws:sns:us-east-1:123456789012:t"],
    },
    "postmark": {"basic_auth": ["a:b"]},
    "mailjet": {"basic_auth": ["a:b"]},
    "brevo": {"basic_auth": ["a:b"], "bearer_tokens": ["t"]},
    "mandrill": {"webhook_keys": ["k"]},
    "resend": {"secrets": ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]},
    "socketlabs": {"basic_auth": ["a:b"], "secret_keys": ["k"]},
}
HEADER_NAMES = [
    "authorization",
    "x-token",
    "x-mandrill-signature",
    "svix-id",
    "svix-timestamp",
    "svix-signature",
    "webhook-signature",
    "x-twilio-email-event-webhook-signature",
    "x-twilio-email-event-webhook-timestamp",
    "x-amz-sns-topic-arn",
]
BODY_KEYS = [
    "signature",
    "timestamp",
    "token",
    "parent-signature",
    "Type",
    "TopicArn",
    "Message",
    "MessageId",
    "Timestamp",
    "Signature",
    "SignatureVersion",
    "SigningCertURL",
    "SubscribeURL",
    "Token",
    "Subject",
    "SecretKey",
    "mandrill_events",
]
SNS_VALUES = [
    "Notification",
    "SubscriptionConfirmation",
    "arn:aws:sns:us-east-1:123456789012:t",
    "2026-09-21T19:33:20.000Z",
    "1",
    "2",
    "https://sns.us-east-1.amazonaws.com/c.pem",
    "https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription",
    str(int(NOW)),
]
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
    | st.sampled_from(SNS_VALUES),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(BODY_KEYS) | st.text(max_size=8), children, max_size=8
        )
    ),
    max_leaves=30,
)
bodies = st.one_of(
    st.binary(max_size=200),
    json_values.map(lambda value: json.dumps(value).encode()),
    st.dictionaries(st.sampled_from(BODY_KEYS), st.text(max_size=20)).map(
        lambda d: urlencode(d).encode()
    ),
)
content_types = st.sampled_from(
    [
        "application/json",
        "text/plain; charset=UTF-8",
        FORM,
        "multipart/form-data; boundary=b",
        "multipart/form-data",
        "",
        "text/html",
    ]
)


def _no_network(url: str) -> bytes:
    raise OSError(f"tests fetch nothing ({url})")


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    esp=st.sampled_from(sorted(ROBUSTNESS_CONFIGS)),
    headers=st.dictionaries(
        st.sampled_from(HEADER_NAMES),
        st.text(max_size=60) | st.sampled_from(SNS_VALUES),
    ),
    body=bodies,
    content_type=content_types,
)
def test_random_requests_raise_nothing_but_webhook_auth_error(
    esp: str, headers: dict[str, str], body: bytes, content_type: str
) -> None:
    request = request_for(esp, headers, body, content_type)
    store = CertificateStore(_no_network)

    try:
        verify_webhook(request, ROBUSTNESS_CONFIGS[esp], now=NOW, certificates=store)
    except WebhookAuthError as error:
        assert error.status == STATUS[error.reason]
        assert "mg-key" not in str(error) and "a:b" not in str(error)


# Valid signed requests, to mutate: random bytes rarely get past the first
# check, while a mutated good request reaches the signature checks.
SNS_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
SNS_CERT_URL = "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-0f.pem"
SNS_DOCUMENTS = {SNS_CERT_URL: self_signed(SNS_KEY)}
SIGNERS: dict[str, dict[str, Any]] = {
    "sendgrid": {"private_key": EC_KEY},
    "mailgun": {"signing_key": "mg-key"},
    "sparkpost": {"basic_auth": "a:b"},
    "postmark": {"basic_auth": "a:b"},
    "mailjet": {"basic_auth": "a:b"},
    "brevo": {"bearer_token": "t"},
    "mandrill": {"webhook_key": "k"},
    "resend": {"secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"},
    "socketlabs": {"secret_key": "k"},
}


def _template(esp: str) -> tuple[dict[str, str], bytes, str]:
    if esp == "amazon_ses":
        message = signed_sns_message(
            "SubscriptionConfirmation",
            topic_arn="arn:aws:sns:us-east-1:123456789012:t",
            message="confirm",
            private_key=SNS_KEY,
            cert_url=SNS_CERT_URL,
            now=NOW,
        )
        return {}, json.dumps(message).encode(), "text/plain"
    body, content_type = b'{"SecretKey":"k","event":"x"}', "application/json"
    if esp == "mandrill":
        body, content_type = b"mandrill_events=%5B%7B%22event%22%3A1%7D%5D", FORM
    url = URL.format(esp=esp)
    headers, signed = sign_request(esp, SIGNERS[esp], body, url, NOW)
    return headers, signed, content_type


@st.composite
def _mutated_body(draw: st.DrawFn, body: bytes) -> bytes:
    how = draw(st.sampled_from(["keep", "splice", "field"]))
    if how == "splice":
        start = draw(st.integers(0, len(body)))
        end = draw(st.integers(start, len(body)))
        return body[:start] + draw(st.binary(max_size=8)) + body[end:]
    if how == "field" and body.startswith(b"{"):
        payload = json.loads(body)
        payload[draw(st.sampled_from(BODY_KEYS))] = draw(json_values)
        return json.dumps(payload).encode()
    return body


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(esp=st.sampled_from(sorted(ROBUSTNESS_CONFIGS)), data=st.data())
def test_mutated_good_requests_raise_nothing_but_webhook_auth_error(
    esp: str, data: st.DataObject
) -> None:
    headers, body, content_type = _template(esp)
    for name in list(headers):
        headers[name] = data.draw(
            st.sampled_from([headers[name], headers[name][:-1] + "A"])
            | st.text(max_size=30)
        )
    request = request_for(esp, headers, data.draw(_mutated_body(body)), content_type)
    store = CertificateStore(served(SNS_DOCUMENTS))

    try:
        verify_webhook(request, ROBUSTNESS_CONFIGS[esp], now=NOW, certificates=store)
    except WebhookAuthError as error:
        assert error.status == STATUS[error.reason]
