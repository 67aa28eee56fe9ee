"""SMTP submission with a real aiosmtplib client, against the real broker.

The server listens on a free 127.0.0.1 port; accepted messages are read
back from ``mailyard.messages.submitted``. The 451 test points the server
at a port where no broker listens. Clients log in with an API key as the
password, as applications do.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from email.message import EmailMessage
from typing import Any

import aiosmtplib
import pytest

from connectors.gateway import RawProducer
from connectors.smtp_submission import SmtpSubmission, start_smtp_submission
from mailyard.codec import codec
from mailyard.errors import ConfigError
from mailyard.settings import Settings
from mailyard.tenancy import Subaccount, TenantDirectory, new_key, subaccount_record
from mailyard.topics import SUBMITTED
from tests.e2e import free_port, read_topic

LIMIT = 50_000
ADMIN = new_key(None, ["admin"])[1]
_acme_key, ACME_SEND = new_key("acme", ["send"])
_acme_reader, ACME_READ = new_key("acme", ["events:read"])


def directory() -> TenantDirectory:
    tenants = TenantDirectory(ADMIN)
    for key, value in [
        subaccount_record(Subaccount("acme")),
        (f"key/{_acme_key.key_id}".encode(), _acme_key.to_json()),
        (f"key/{_acme_reader.key_id}".encode(), _acme_reader.to_json()),
    ]:
        tenants.apply(key.decode(), value)
    return tenants


def compose(**extra: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = "Shop <shop@example.com>"
    message["To"] = "Alice <alice@example.org>"
    message["Subject"] = "Your order"
    for name, value in extra.items():
        message[name.replace("_", "-")] = value
    message.set_content("It ships today.")
    return message


def big_message() -> EmailMessage:
    message = compose()
    message.set_content("x" * (LIMIT + 1000))
    return message


_revocable, REVOCABLE_SEND = new_key("acme", ["send"])


def serve(bootstrap: str, timeout_s: float = 10.0) -> Iterator[SmtpSubmission]:
    settings = Settings(
        bootstrap=bootstrap,
        smtp_port=free_port(),
        max_message_bytes=LIMIT,
        produce_timeout_s=timeout_s,
    )
    producer = RawProducer(settings.bootstrap, settings.produce_timeout_s)
    tenants = directory()
    tenants.apply(f"key/{_revocable.key_id}", _revocable.to_json())
    server = start_smtp_submission(settings, producer, tenants)
    server.tenants = tenants  # type: ignore[attr-defined]  # for the revocation test
    yield server
    server.stop()
    producer.close()


@pytest.fixture
def server(kafka_bootstrap: str) -> Iterator[SmtpSubmission]:
    yield from serve(kafka_bootstrap)


@pytest.fixture
def offline() -> Iterator[SmtpSubmission]:
    yield from serve(f"127.0.0.1:{free_port()}", timeout_s=1.0)


async def send(server: SmtpSubmission, message: EmailMessage, **kw: object) -> str:
    options: dict[str, object] = {"username": "app", "password": ADMIN, **kw}
    _errors, reply = await aiosmtplib.send(
        message,
        hostname=server.host,
        port=server.port,
        **options,  # type: ignore[arg-type]
    )
    return reply


def on_topic(bootstrap: str, message_id: str) -> dict[str, Any]:
    records = dict(read_topic(bootstrap, SUBMITTED.name))
    return codec("submitted_message").decode(records[message_id.encode()])


async def test_a_message_is_queued_with_envelope_recipients_and_control_headers(
    server: SmtpSubmission, kafka_bootstrap: str
) -> None:
    message = compose(
        X_Mailyard_Subaccount="acme",
        X_Mailyard_Stream="marketing",
        X_Mailyard_Tags="spring, sale",
    )
    reply = await send(
        server,
        message,
        sender="bounces@example.com",
        recipients=["alice@example.org", "hidden@example.net"],
    )

    assert reply.startswith("2.0.0 Queued as ")
    record = on_topic(kafka_bootstrap, reply.removeprefix("2.0.0 Queued as "))
    assert record["from_addr"] == "bounces@example.com"
    assert record["to"] == ["alice@example.org", "hidden@example.net"]
    assert record["subaccount"] == "acme" and record["stream"] == "marketing"
    assert record["tags"] == ["spring", "sale"] and record["source"] == "smtp"
    assert record["headers"]["To"] == "Alice <alice@example.org>"
    assert b"X-Mailyard" not in record["raw_mime"]


async def test_the_reply_carries_the_enhanced_status_code(
    server: SmtpSubmission,
) -> None:
    async with aiosmtplib.SMTP(hostname=server.host, port=server.port) as client:
        await client.login("app", ADMIN)
        await client.mail("shop@example.com")
        await client.rcpt("alice@example.org")
        reply = await client.data(compose().as_bytes())

    assert reply.code == 250 and reply.message.startswith("2.0.0 Queued as ")


async def test_a_message_declared_too_large_is_refused_at_mail_with_552(
    server: SmtpSubmission,
) -> None:
    with pytest.raises(aiosmtplib.SMTPSenderRefused) as refused:
        await send(server, big_message())

    assert refused.value.code == 552 and refused.value.message.startswith("5.3.4")


async def test_data_over_the_limit_is_refused_with_552(server: SmtpSubmission) -> None:
    async with aiosmtplib.SMTP(hostname=server.host, port=server.port) as client:
        await client.login("app", ADMIN)
        await client.mail("shop@example.com")  # no SIZE= declared
        await client.rcpt("alice@example.org")
        with pytest.raises(aiosmtplib.SMTPDataError) as refused:
            await client.data(big_message().as_bytes())

    assert refused.value.code == 552
    assert "5.3.4" in refused.value.message and "MAILYARD_MAX_MESSAGE_BYTES" in (
        refused.value.message
    )


async def test_a_bad_recipient_address_is_refused_with_553_naming_it(
    server: SmtpSubmission,
) -> None:
    async with aiosmtplib.SMTP(hostname=server.host, port=server.port) as client:
        await client.login("app", ADMIN)
        await client.mail("shop@example.com")
        with pytest.raises(aiosmtplib.SMTPRecipientRefused) as refused:
            await client.rcpt("bob@localhost")

    assert refused.value.code == 553
    assert "5.1.3" in refused.value.message and "bob@localhost" in refused.value.message


async def test_a_null_sender_is_refused_with_553(server: SmtpSubmission) -> None:
    async with aiosmtplib.SMTP(hostname=server.host, port=server.port) as client:
        await client.login("app", ADMIN)
        with pytest.raises(aiosmtplib.SMTPSenderRefused) as refused:
            await client.mail("")

    assert refused.value.code == 553 and "5.1.7" in refused.value.message


async def test_a_bad_control_header_is_refused_naming_the_header(
    server: SmtpSubmission,
) -> None:
    with pytest.raises(aiosmtplib.SMTPDataError) as refused:
        await send(server, compose(X_Mailyard_Stream="Not A Stream"))

    assert refused.value.code == 554 and "X-Mailyard-Stream" in refused.value.message


async def test_without_a_broker_the_server_answers_451_so_the_client_retries(
    offline: SmtpSubmission,
) -> None:
    with pytest.raises(aiosmtplib.SMTPDataError) as refused:
        await send(offline, compose())

    assert refused.value.code == 451 and refused.value.message.startswith("4.3.0")


def test_a_port_in_use_is_a_config_error_naming_the_setting(
    offline: SmtpSubmission,
) -> None:
    taken = Settings(bootstrap="127.0.0.1:1", smtp_port=offline.port)
    producer = RawProducer(taken.bootstrap, 1.0)

    with pytest.raises(ConfigError, match="MAILYARD_SMTP_PORT"):
        start_smtp_submission(taken, producer, directory())
    producer.close()


async def test_mail_before_auth_is_refused_with_530(server: SmtpSubmission) -> None:
    async with aiosmtplib.SMTP(hostname=server.host, port=server.port) as client:
        with pytest.raises(aiosmtplib.SMTPSenderRefused) as refused:
            await client.mail("shop@example.com")

    assert refused.value.code == 530 and "5.7.0" in refused.value.message


@pytest.mark.parametrize("password", ["not-a-key", ADMIN[:-2] + "xx", ACME_READ])
async def test_auth_with_a_wrong_key_or_one_that_may_not_send_is_refused(
    server: SmtpSubmission, password: str
) -> None:
    async with aiosmtplib.SMTP(hostname=server.host, port=server.port) as client:
        with pytest.raises(aiosmtplib.SMTPAuthenticationError) as refused:
            await client.login("app", password)

    assert refused.value.code == 535


async def test_a_subaccount_key_sends_for_its_own_subaccount_only(
    server: SmtpSubmission, kafka_bootstrap: str
) -> None:
    reply = await send(server, compose(), password=ACME_SEND)
    record = on_topic(kafka_bootstrap, reply.removeprefix("2.0.0 Queued as "))
    assert record["subaccount"] == "acme"

    with pytest.raises(aiosmtplib.SMTPDataError) as refused:
        await send(server, compose(X_Mailyard_Subaccount="globex"), password=ACME_SEND)
    assert refused.value.code == 550 and "globex" in refused.value.message


async def test_a_key_revoked_mid_session_stops_sending_at_the_next_message(
    server: SmtpSubmission, kafka_bootstrap: str
) -> None:
    tenants: TenantDirectory = server.tenants  # type: ignore[attr-defined]
    async with aiosmtplib.SMTP(hostname=server.host, port=server.port) as client:
        await client.login("app", REVOCABLE_SEND)
        _errors, reply = await client.send_message(compose())
        assert reply.startswith("2.0.0 Queued as ")

        revoked = dataclasses.replace(_revocable, revoked_at=time.time() - 1)
        tenants.apply(f"key/{revoked.key_id}", revoked.to_json())
        with pytest.raises(aiosmtplib.SMTPDataError) as refused:
            await client.send_message(compose())
    assert refused.value.code == 535 and "revoked" in refused.value.message.lower()
