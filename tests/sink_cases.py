"""One case per ESP relay sink, so shared tests hold every provider to the same bar.

A :class:`ProviderCase` knows how to make the provider's stand-in and a
sink pointed at it, with the right or a wrong key, and what the stand-in
says to a wrong key.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from mailyard.outbound import Delivery
from sinks.amazon_ses import AmazonSesCredentials, AmazonSesSink
from sinks.esp_http import EspHttpSink
from sinks.mailgun import MailgunCredentials, MailgunSink
from sinks.postmark import PostmarkCredentials, PostmarkSink
from sinks.sendgrid import SendGridCredentials, SendGridSink
from sinks.sparkpost import SparkPostCredentials, SparkPostSink
from tests.standins import amazon_ses, mailgun, postmark, sendgrid, sparkpost
from tests.standins.base import StandIn
from tests.standins.server import StandInServer

SinkMaker = Callable[..., EspHttpSink]


@dataclasses.dataclass(frozen=True)
class ProviderCase:
    name: str
    create_standin: Callable[[], StandIn]
    sink_class: type[EspHttpSink]
    credentials: Callable[[bool], Any]  # right key if True, a wrong one if not
    options: dict[str, Any]
    auth_status: int
    auth_error: str  # what the stand-in says to a wrong key, as the sink reports it
    supports_raw: bool
    body_builder: str  # module function that builds the request body

    def sink(
        self,
        base_url: str,
        *,
        right_key: bool = True,
        timeout_s: float = 5.0,
        max_concurrency: int = 4,
        **options: Any,
    ) -> EspHttpSink:
        return self.sink_class(  # type: ignore[call-arg]
            base_url=base_url,
            credentials=self.credentials(right_key),
            timeout_s=timeout_s,
            max_concurrency=max_concurrency,
            **{**self.options, **options},
        )


CASES = [
    ProviderCase(
        name="sendgrid",
        create_standin=sendgrid.create,
        sink_class=SendGridSink,
        credentials=lambda ok: SendGridCredentials(
            sendgrid.API_KEY if ok else "SG.wrong"
        ),
        options={},
        auth_status=401,
        auth_error=sendgrid.AUTH_ERROR,
        supports_raw=False,
        body_builder="mail_send_body",
    ),
    ProviderCase(
        name="mailgun",
        create_standin=mailgun.create,
        sink_class=MailgunSink,
        credentials=lambda ok: MailgunCredentials(mailgun.API_KEY if ok else "nope"),
        options={"domain": mailgun.DOMAIN},
        auth_status=401,
        auth_error=mailgun.AUTH_ERROR,
        supports_raw=True,
        body_builder="message_form",
    ),
    ProviderCase(
        name="sparkpost",
        create_standin=sparkpost.create,
        sink_class=SparkPostSink,
        credentials=lambda ok: SparkPostCredentials(
            sparkpost.API_KEY if ok else "wrong"
        ),
        options={},
        auth_status=401,
        auth_error=sparkpost.AUTH_ERROR,
        supports_raw=True,
        body_builder="transmission_body",
    ),
    ProviderCase(
        name="amazon_ses",
        create_standin=amazon_ses.create,
        sink_class=AmazonSesSink,
        credentials=lambda ok: AmazonSesCredentials(
            amazon_ses.ACCESS_KEY_ID,
            amazon_ses.SECRET_ACCESS_KEY if ok else "not-the-secret",
        ),
        options={"region": amazon_ses.REGION},
        auth_status=403,
        auth_error="SignatureDoesNotMatch: The request signature we calculated",
        supports_raw=True,
        body_builder="send_email_body",
    ),
    ProviderCase(
        name="postmark",
        create_standin=postmark.create,
        sink_class=PostmarkSink,
        credentials=lambda ok: PostmarkCredentials(
            postmark.SERVER_TOKEN if ok else "wrong-token"
        ),
        options={},
        auth_status=401,
        auth_error=f"{postmark.AUTH_ERROR} (ErrorCode 10)",
        supports_raw=False,
        body_builder="email_body",
    ),
]
CASES_BY_NAME = {case.name: case for case in CASES}


@dataclasses.dataclass
class Served:
    """A running stand-in and the case it belongs to."""

    case: ProviderCase
    standin: StandIn
    server: StandInServer

    @property
    def url(self) -> str:
        return self.server.url

    def sink(self, **kwargs: Any) -> EspHttpSink:
        return self.case.sink(self.url, **kwargs)


def serve(case: ProviderCase) -> Iterator[Served]:
    """Run the case's stand-in for the life of a fixture."""
    standin = case.create_standin()
    with StandInServer(standin.app) as server:
        yield Served(case, standin, server)


def make_delivery(**overrides: Any) -> Delivery:
    """A valid delivery from a verified sender; keywords replace fields."""
    fields: dict[str, Any] = {
        "message_id": uuid.uuid4().hex,
        "recipient": "reader@example.org",
        "from_addr": "sender@example.com",
        "subject": "Your receipt",
        "text": "Thanks for your order.",
        "html": "<p>Thanks for your order.</p>",
        "tags": ["receipts"],
        "metadata": {"order": "A-1001"},
    }
    fields.update(overrides)
    return Delivery(**fields)


RAW_MIME = (
    b"From: sender@example.com\r\n"
    b"To: reader@example.org\r\n"
    b"Subject: Raw receipt\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"\r\n"
    b"Thanks for your order.\r\n"
)
