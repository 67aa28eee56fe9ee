"""``mailyard openapi``: write the gateway's and the worker API's OpenAPI documents.

The documents come from the apps themselves, built as ``mailyard gateway``
and ``mailyard worker`` build them but never started: nothing is read from
or written to the broker, and the worker's state goes to a scratch folder
that is removed afterwards. ``docs/openapi/`` holds the committed copies;
``tests/test_openapi.py`` checks that they are current.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
from pathlib import Path
from typing import Any

from mailyard.settings import Settings
from mailyard.tenancy import TenantDirectory, new_key

DEFAULT_OUT = Path("docs/openapi")


def documents(settings: Settings) -> dict[str, dict[str, Any]]:
    """The two documents by file name, from apps built with ``settings``."""
    from connectors.gateway import create_gateway
    from streams.api import create_api
    from streams.app import Worker

    gateway = create_gateway(settings, tenants=TenantDirectory())
    # A throwaway admin key, so the worker writes no admin.key anywhere.
    _record, throwaway = new_key(None, ["admin"])
    with tempfile.TemporaryDirectory(prefix="mailyard-openapi-") as scratch:
        # Every stage, so the document has every route whatever the environment.
        scratch_settings = dataclasses.replace(
            settings,
            data_dir=Path(scratch),
            admin_key=throwaway,
            worker_stages=Settings().worker_stages,
        )
        worker = Worker(scratch_settings, web_enabled=False)
        worker_document = create_api(worker).openapi()
    return {
        "gateway.openapi.json": gateway.openapi(),
        "worker.openapi.json": worker_document,
    }


def write_documents(out: Path, settings: Settings) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, document in documents(settings).items():
        path = out / name
        path.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
        written.append(path)
    return written


def _openapi(args: argparse.Namespace, settings: Settings) -> int:
    for path in write_documents(Path(args.out), settings):
        print(f"wrote {path}")
    return 0


def add_parsers(sub: Any) -> None:
    openapi = sub.add_parser(
        "openapi", help="write the gateway's and the worker API's OpenAPI documents"
    )
    openapi.add_argument(
        "--out", default=str(DEFAULT_OUT), help=f"folder to write to ({DEFAULT_OUT})"
    )
    openapi.set_defaults(func=_openapi)
