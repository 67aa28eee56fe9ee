"""Sinks: where Mailyard's events and messages go out."""
