"""One exception root for Mailyard; errors carry the data that explains them."""

from __future__ import annotations


class MailyardError(Exception):
    """Root of every error Mailyard raises on purpose."""


class ConfigError(MailyardError, ValueError):
    """A setting is missing or has a value Mailyard cannot use."""


class WebhookError(MailyardError, ValueError):
    """A webhook body cannot be turned into events.

    ``esp`` names the connector; ``detail`` says what was wrong with the
    body, in a sentence a sender's engineer can act on.
    """

    def __init__(self, esp: str, detail: str) -> None:
        super().__init__(f"{esp} webhook: {detail}")
        self.esp = esp
        self.detail = detail


class UnknownEspError(MailyardError, LookupError):
    """No connector is registered under the given ESP name."""

    def __init__(self, esp: str, known: list[str]) -> None:
        super().__init__(
            f"Unknown ESP {esp!r}; known ESPs are: {', '.join(sorted(known))}."
        )
        self.esp = esp


class CodecError(MailyardError, ValueError):
    """A Kafka record is not valid Avro single-object encoding we can read."""


class BrokerUnavailable(MailyardError, ConnectionError):
    """The Kafka broker did not confirm a write in time."""


class KafkaSetupError(MailyardError, RuntimeError):
    """The local Kafka broker could not be fetched, formatted or started."""
