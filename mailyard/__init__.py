"""Mailyard: an email operations platform built as a Kafka stream pipeline.

This package is the ground floor every layer may import: the event model,
the Avro codec, the topic catalog, settings and errors. The layers live
beside it (``connectors/`` in, ``streams/`` decide, ``sinks/`` out), and
``mailyard.cli`` is the composition root that wires them together.
"""

__version__ = "0.1.0"
