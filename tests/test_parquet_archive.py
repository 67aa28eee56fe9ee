"""The archive writes whole Parquet files that DuckDB reads as a dataset."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import duckdb

from mailyard.model import EmailEvent, RawRef
from sinks.parquet_archive import ParquetArchive


def _event(i: int, esp: str, day: int) -> EmailEvent:
    ts = datetime(2026, 12, day, 12, 0, i % 60, tzinfo=timezone.utc)
    return EmailEvent(
        f"id{i}", "clicked", esp, "click", ts,
        recipient=f"ü{i}@example.com", tags=["t1"], metadata={"k": "v"},
        url="https://x.test/a?b=%20c#f", raw=RawRef("raw", 0, i),
    )


def test_batches_are_split_by_day_and_esp_and_read_back(tmp_path: Path) -> None:
    archive = ParquetArchive(tmp_path)
    batch = [(0, i, _event(i, "sendgrid" if i % 2 else "mailgun", 3 + i % 3)) for i in range(30)]
    paths = archive.write_batch(batch)

    assert len(paths) == 6
    assert all(p.name.startswith("part-p0-") for p in paths)
    assert not list(tmp_path.rglob("*.tmp"))
    rows = duckdb.sql(
        f"select esp, day, count(*) n from read_parquet('{tmp_path}/**/*.parquet', "
        "hive_partitioning=true) group by all order by all"
    ).fetchall()
    assert sum(r[2] for r in rows) == 30
    assert {r[0] for r in rows} == {"sendgrid", "mailgun"}


def test_columns_keep_unicode_urls_and_raw_reference(tmp_path: Path) -> None:
    ParquetArchive(tmp_path).write_batch([(1, 5, _event(5, "sendgrid", 3))])
    row = duckdb.sql(
        f"select recipient, url, raw_offset, tags, metadata['k'] "
        f"from read_parquet('{tmp_path}/**/*.parquet')"
    ).fetchall()[0]
    assert row == ("ü5@example.com", "https://x.test/a?b=%20c#f", 5, ["t1"], "v")


def test_an_esp_name_cannot_choose_where_files_go(tmp_path: Path) -> None:
    root = tmp_path / "archive"
    hostile = ["../../../pwned", "a\x00b", "..", "Upper/Case", ""]
    batch = [(0, i, _event(i, esp, 3)) for i, esp in enumerate(hostile)]
    paths = ParquetArchive(root).write_batch(batch)

    assert len(paths) == len(hostile)
    for path in paths:
        assert path.resolve().is_relative_to(root.resolve())
        assert path.parent.name.startswith("esp=invalid-")
    assert [p for p in tmp_path.rglob("*.parquet") if root not in p.parents] == []
