"""The event archive: normalized events as Parquet files on disk.

Layout is Hive-style so DuckDB, pandas or Spark read it as one dataset::

    <root>/day=2026-12-03/esp=sendgrid/part-p2-000000001200-000000001399.parquet

A file holds the events of one source partition, one day and one ESP, in
offset order, and its name carries the first and last offset. Each file is
written under a temporary name and renamed into place, so a reader never
sees half a file.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from mailyard.model import EmailEvent

log = logging.getLogger(__name__)

SCHEMA = pa.schema(
    [
        ("event_id", pa.string()),
        ("type", pa.string()),
        ("esp_event", pa.string()),
        ("timestamp", pa.timestamp("us", tz="UTC")),
        ("recipient", pa.string()),
        ("recipient_domain", pa.string()),
        ("mailbox_provider", pa.string()),
        ("esp_message_id", pa.string()),
        ("message_id", pa.string()),
        ("subaccount", pa.string()),
        ("stream", pa.string()),
        ("tags", pa.list_(pa.string())),
        ("metadata", pa.map_(pa.string(), pa.string())),
        ("bounce_class", pa.string()),
        ("smtp_code", pa.int32()),
        ("enhanced_status", pa.string()),
        ("reason", pa.string()),
        ("url", pa.string()),
        ("user_agent", pa.string()),
        ("sending_ip", pa.string()),
        ("raw_topic", pa.string()),
        ("raw_partition", pa.int32()),
        ("raw_offset", pa.int64()),
    ]
)
_COLUMNS = SCHEMA.names

Located = tuple[int, int, EmailEvent]  # (events partition, offset, event)


def _row(event: EmailEvent) -> dict[str, object]:
    row = {name: getattr(event, name, None) for name in _COLUMNS[:20]}
    row["metadata"] = list(event.metadata.items())
    raw = event.raw
    row["raw_topic"] = raw.topic if raw else None
    row["raw_partition"] = raw.partition if raw else None
    row["raw_offset"] = raw.offset if raw else None
    return row


_SAFE = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")


def folder_name(esp: str) -> str:
    """``esp`` as one safe path component; anything else becomes ``invalid-<hash>``.

    The value comes from a record on Kafka, which anyone with write access
    can fill: ``../`` or a NUL byte must not choose where files go.
    """
    if _SAFE.fullmatch(esp) and ".." not in esp:
        return esp
    return "invalid-" + hashlib.sha256(esp.encode("utf-8", "replace")).hexdigest()[:12]


def _day(event: EmailEvent) -> str:
    ts = event.timestamp or datetime.now(timezone.utc)
    return ts.astimezone(timezone.utc).strftime("%Y-%m-%d")


class ParquetArchive:
    """Writes batches of located events into the archive under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.files_written = 0
        self.events_written = 0

    def write_batch(self, batch: Iterable[Located]) -> list[Path]:
        groups: dict[tuple[str, str, int], list[Located]] = defaultdict(list)
        for partition, offset, event in batch:
            groups[(_day(event), folder_name(event.esp or ""), partition)].append(
                (partition, offset, event)
            )

        paths = [self._write_group(key, rows) for key, rows in groups.items()]
        self.files_written += len(paths)
        return paths

    def _write_group(self, key: tuple[str, str, int], rows: list[Located]) -> Path:
        day, esp, partition = key
        rows.sort(key=lambda r: r[1])
        first, last = rows[0][1], rows[-1][1]
        folder = self.root / f"day={day}" / f"esp={esp}"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"part-p{partition}-{first:012d}-{last:012d}.parquet"

        table = pa.Table.from_pylist([_row(r[2]) for r in rows], schema=SCHEMA)
        tmp = path.with_name(f".{path.name}.tmp")
        pq.write_table(table, tmp, compression="zstd")
        # rename is atomic on POSIX: a reader sees the old state or the whole file
        os.replace(tmp, path)

        self.events_written += len(rows)
        log.debug("archived %s events to %s", len(rows), path)
        return path
