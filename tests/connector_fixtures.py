"""Real-format webhook bodies under ``tests/fixtures/<esp>/`` for connector tests."""

from __future__ import annotations

from pathlib import Path

from connectors.registry import normalize
from mailyard.model import EmailEvent

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def body(esp: str, name: str) -> bytes:
    """The bytes of one fixture file, exactly as the ESP would post them."""
    return (FIXTURES / esp / name).read_bytes()


def events(
    esp: str, name: str, content_type: str = "application/json"
) -> list[EmailEvent]:
    """The events a fixture normalizes to."""
    return normalize(esp, body(esp, name), content_type)
