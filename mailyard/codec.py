"""Avro single-object encoding over fastavro.

Every record Mailyard writes to Kafka is ``C3 01`` + the writer schema's
8-byte CRC-64-AVRO fingerprint (little-endian) + the Avro binary body, as
the Avro specification's "single object encoding" defines. A reader looks
the fingerprint up among the schema versions it knows and resolves the
writer's schema against its own, so records written by an older release
stay readable after a schema gains fields with defaults.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import fastavro
from fastavro.schema import fingerprint, parse_schema, to_parsing_canonical_form

from mailyard.errors import CodecError
from schemas import SCHEMA_DIR

MAGIC = b"\xc3\x01"
_HEADER_LEN = 10


def _fingerprint(parsed: Any) -> bytes:
    hex_digits = fingerprint(to_parsing_canonical_form(parsed), "CRC-64-AVRO")
    # fastavro prints the fingerprint big-endian; the spec puts it little-endian.
    return bytes.fromhex(hex_digits)[::-1]


class Codec:
    """Encodes records with one reader schema and decodes any known writer's.

    ``writers`` holds older (or newer) versions of the same record that this
    process may meet on a topic; the reader schema is always among them.
    """

    def __init__(self, reader: dict[str, Any], *, writers: list[dict[str, Any]] = ()) -> None:  # type: ignore[assignment]
        # parse_schema marks its result as parsed, so fastavro does not parse
        # it again on every call (that re-parse was most of the encode cost).
        self.reader = parse_schema(reader)
        self.name: str = self.reader["name"]
        self._reader_fp = _fingerprint(parse_schema(reader, _write_hint=False))
        self._writers: dict[bytes, Any] = {self._reader_fp: self.reader}
        for schema in writers:
            self.add_writer(schema)

    def add_writer(self, schema: dict[str, Any]) -> None:
        fp = _fingerprint(parse_schema(schema, _write_hint=False))
        self._writers[fp] = parse_schema(schema)

    @property
    def fingerprint(self) -> bytes:
        return self._reader_fp

    def encode(self, record: dict[str, Any]) -> bytes:
        buf = io.BytesIO()
        buf.write(MAGIC)
        buf.write(self._reader_fp)
        fastavro.schemaless_writer(buf, self.reader, record)
        return buf.getvalue()

    def decode(self, data: bytes) -> dict[str, Any]:
        if len(data) < _HEADER_LEN or data[:2] != MAGIC:
            raise CodecError(
                f"{self.name}: value is not Avro single-object encoded "
                f"(starts with {data[:2].hex() or 'nothing'}, expected c301)."
            )
        writer = self._writers.get(bytes(data[2:_HEADER_LEN]))
        if writer is None:
            raise CodecError(
                f"{self.name}: unknown writer schema fingerprint "
                f"{bytes(data[2:_HEADER_LEN]).hex()}; add that schema version "
                "to this codec's writers."
            )
        try:
            body = io.BytesIO(data[_HEADER_LEN:])
            record: dict[str, Any] = fastavro.schemaless_reader(body, writer, self.reader)
        except Exception as exc:  # fastavro raises many types for bad bytes
            raise CodecError(f"{self.name}: cannot decode record: {exc}") from exc
        return record


def load_schema(name: str, directory: Path = SCHEMA_DIR) -> dict[str, Any]:
    """Read ``schemas/<name>.avsc`` as a JSON dict."""
    schema: dict[str, Any] = json.loads((directory / f"{name}.avsc").read_text())
    return schema


_CODECS: dict[str, Codec] = {}


def codec(name: str) -> Codec:
    """The process-wide codec for ``schemas/<name>.avsc`` (built once)."""
    if name not in _CODECS:
        _CODECS[name] = Codec(load_schema(name))
    return _CODECS[name]
