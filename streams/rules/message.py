"""The message the Rule Engine decides on, as submitted by a sender.

A message with several recipients is decided once per recipient: the
engine's unit is ``(message, recipient)``, so a split or a failover can send
two recipients of one message through different destinations. The record
shape matches ``schemas/submitted_message.avsc``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from mailyard.providers import recipient_domain


@dataclasses.dataclass(slots=True, kw_only=True)
class Message:
    """One submitted message; ``from_domain`` is derived from ``from_addr``."""

    message_id: str
    from_addr: str
    to: list[str]
    subaccount: str | None = None
    stream: str | None = None
    cc: list[str] = dataclasses.field(default_factory=list)
    bcc: list[str] = dataclasses.field(default_factory=list)
    subject: str | None = None
    headers: dict[str, str] = dataclasses.field(default_factory=dict)
    tags: list[str] = dataclasses.field(default_factory=list)
    metadata: dict[str, str] = dataclasses.field(default_factory=dict)
    size_bytes: int = 0
    from_domain: str | None = dataclasses.field(init=False, repr=False)
    headers_lower: dict[str, str] = dataclasses.field(
        init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        self.from_domain = recipient_domain(self.from_addr)
        # Header names are case-insensitive (RFC 5322 section 1.2.2).
        self.headers_lower = {k.lower(): v for k, v in self.headers.items()}

    def recipients(self) -> list[str]:
        """Every envelope recipient: ``to``, then ``cc``, then ``bcc``."""
        return [*self.to, *self.cc, *self.bcc]

    def to_record(self) -> dict[str, Any]:
        """The message as the dict ``submitted_message.avsc`` describes."""
        return {
            "message_id": self.message_id,
            "subaccount": self.subaccount,
            "stream": self.stream,
            "from_addr": self.from_addr,
            "to": list(self.to),
            "cc": list(self.cc),
            "bcc": list(self.bcc),
            "subject": self.subject,
            "headers": dict(self.headers),
            "tags": list(self.tags),
            "metadata": dict(self.metadata),
            "size_bytes": self.size_bytes,
        }

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Message:
        """Build a message from a decoded record or a JSON sample file."""
        names = {f.name for f in dataclasses.fields(cls) if f.init}
        return cls(**{k: v for k, v in record.items() if k in names})
