"""Strict local stand-ins for the ESP send APIs the relay sinks talk to.

Each module builds a FastAPI app for one provider that accepts only
requests in the provider's documented format, signed or keyed with the
module's test credentials, and answers everything else in the
provider's own error format. :mod:`tests.standins.base` describes the
control routes; :class:`~tests.standins.server.StandInServer` serves an
app on 127.0.0.1; ``python -m tests.standins <provider> --port N`` runs
one standalone.
"""

from __future__ import annotations

from collections.abc import Callable

from tests.standins import amazon_ses, mailgun, postmark, sendgrid, sparkpost
from tests.standins.base import SentMessage, StandIn
from tests.standins.server import StandInServer

STANDINS: dict[str, Callable[[], StandIn]] = {
    "sendgrid": sendgrid.create,
    "mailgun": mailgun.create,
    "sparkpost": sparkpost.create,
    "amazon_ses": amazon_ses.create,
    "postmark": postmark.create,
}

__all__ = ["STANDINS", "SentMessage", "StandIn", "StandInServer"]
