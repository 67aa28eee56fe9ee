"""Submitted-message records onto Kafka, confirmed by the broker.

Both submission doors (HTTP and SMTP) accept a message only once this
module returned: every record of the request was written with ``acks=all``
by an idempotent producer. Kafka's errors are translated here, once, into
:class:`~mailyard.errors.BrokerUnavailable` (try again later) and
:class:`~connectors.submission_errors.RecordTooLarge` (never fits).
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

from confluent_kafka import KafkaError, KafkaException

from connectors.submission_errors import RecordTooLarge
from mailyard.codec import codec
from mailyard.errors import BrokerUnavailable
from mailyard.topics import SUBMITTED

# Spare time past the producer's own message.timeout.ms, so a stuck
# delivery callback cannot hold a request open for ever.
_GRACE_S = 5.0


class Sender(Protocol):
    """What :class:`connectors.gateway.RawProducer` offers: a confirmed send."""

    async def send(self, topic: str, key: bytes, value: bytes) -> None: ...


async def publish(
    sender: Sender, records: list[dict[str, Any]], *, timeout_s: float
) -> None:
    """Write every record to ``SUBMITTED``, keyed by message id; all confirmed.

    Records are produced together and awaited together. When one fails the
    others may still have been written: a retried request then submits
    those again under new message ids.
    """
    envelope = codec("submitted_message")
    values = [(r["message_id"], envelope.encode(r)) for r in records]
    sends = [sender.send(SUBMITTED.name, mid.encode(), value) for mid, value in values]

    try:
        results = await asyncio.wait_for(
            asyncio.gather(*sends, return_exceptions=True), timeout_s + _GRACE_S
        )
    except TimeoutError:
        raise BrokerUnavailable(
            f"The broker did not confirm {len(values)} record(s) to {SUBMITTED.name} "
            f"within {timeout_s + _GRACE_S:.0f} s."
        ) from None

    for (message_id, value), result in zip(values, results, strict=True):
        if isinstance(result, BaseException):
            raise _translate(result, message_id, len(value)) from result


def _translate(exc: BaseException, message_id: str, size: int) -> Exception:
    if not isinstance(exc, Exception):
        raise exc  # cancellation is not a broker failure
    error = exc.args[0] if isinstance(exc, KafkaException) and exc.args else None
    if isinstance(error, KafkaError) and error.code() == KafkaError.MSG_SIZE_TOO_LARGE:
        return RecordTooLarge(message_id, size)
    if isinstance(exc, KafkaException | BufferError):
        return BrokerUnavailable(
            f"The broker did not confirm message {message_id} on "
            f"{SUBMITTED.name}: {exc}."
        )
    return exc
