"""Why a submitted message was refused, naming the field to change."""

from __future__ import annotations

from mailyard.errors import MailyardError


class SubmissionError(MailyardError, ValueError):
    """A submitted message is not valid.

    ``field`` is the path of the offending input (``to[2]``,
    ``messages[3].headers.X-Tag``); ``detail`` is a sentence saying what is
    wrong with it. ``str(error)`` is ``"<field>: <detail>"``.
    """

    def __init__(self, field: str, detail: str) -> None:
        super().__init__(f"{field}: {detail}")
        self.field = field
        self.detail = detail

    def within(self, prefix: str) -> SubmissionError:
        """The same error, its field placed under ``prefix`` (a batch index)."""
        return SubmissionError(_nest(prefix, self.field), self.detail)


class SubmissionTooLarge(SubmissionError):
    """The message is larger than ``MAILYARD_MAX_MESSAGE_BYTES`` allows."""

    def __init__(self, size: int, limit: int, *, field: str = "message") -> None:
        super().__init__(
            field,
            f"the message is {size} bytes, over the {limit}-byte limit "
            "(MAILYARD_MAX_MESSAGE_BYTES).",
        )
        self.size = size
        self.limit = limit

    def within(self, prefix: str) -> SubmissionTooLarge:
        return SubmissionTooLarge(
            self.size, self.limit, field=_nest(prefix, self.field)
        )


def _nest(prefix: str, field: str) -> str:
    # "message" names the whole item, so in a batch the index alone does.
    return prefix if field == "message" else f"{prefix}.{field}"


class RecordTooLarge(MailyardError, ValueError):
    """The broker refused a record as larger than its ``message.max.bytes``."""

    def __init__(self, message_id: str, size: int) -> None:
        super().__init__(
            f"Message {message_id} is {size} bytes encoded, more than the Kafka "
            "broker accepts in one record; lower MAILYARD_MAX_MESSAGE_BYTES or "
            "raise the broker's message.max.bytes and the topic's "
            "max.message.bytes."
        )
        self.message_id = message_id
        self.size = size
