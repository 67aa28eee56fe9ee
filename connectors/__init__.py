"""ESP webhook connectors: what comes into Mailyard.

Each ESP is one module with the same shape: a module-level ``NAME``, data
tables that map the ESP's vocabulary to ours, and
``parse(body: bytes, content_type: str) -> list[EmailEvent]``. Parsers are
pure: they return events or raise :class:`mailyard.errors.WebhookError`,
and never log or touch Kafka. :func:`normalize` is the one entry point the
stream worker and ``mailyard normalize`` both use.
"""
