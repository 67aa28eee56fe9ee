"""Post captured webhook bodies to a gateway, with a progress bar.

A capture folder holds one file per request body and a ``manifest.json``
listing ``{"file", "esp", "content_type", "subaccount"}`` per request, as
``mailyard samples`` writes it. Bodies are posted byte for byte.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
from pathlib import Path

import httpx
from tqdm import tqdm

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True, slots=True)
class Capture:
    esp: str
    content_type: str
    body: bytes
    subaccount: str | None = None

    @property
    def path(self) -> str:
        tail = f"/{self.subaccount}" if self.subaccount else ""
        return f"/webhooks/{self.esp}{tail}"


@dataclasses.dataclass(slots=True)
class ReplayResult:
    sent: int = 0
    accepted: int = 0
    failed: list[tuple[str, int, str]] = dataclasses.field(default_factory=list)


def load_captures(folder: Path) -> list[Capture]:
    manifest = json.loads((folder / "manifest.json").read_text())
    return [
        Capture(
            esp=item["esp"],
            content_type=item["content_type"],
            body=(folder / item["file"]).read_bytes(),
            subaccount=item.get("subaccount"),
        )
        for item in manifest
    ]


async def replay(
    captures: list[Capture],
    base_url: str,
    *,
    concurrency: int = 8,
    progress: bool = True,
    retries: int = 3,
) -> ReplayResult:
    """Post every capture; a 503 is retried, other non-2xx replies are failures."""
    result = ReplayResult()
    queue: asyncio.Queue[Capture] = asyncio.Queue()
    for capture in captures:
        queue.put_nowait(capture)
    bar = tqdm(total=len(captures), unit="req", desc="replay", disable=not progress)

    async def post_all(client: httpx.AsyncClient) -> None:
        while not queue.empty():
            capture = queue.get_nowait()
            status, text = await _post(client, capture, retries)
            result.sent += 1
            if 200 <= status < 300:
                result.accepted += 1
            else:
                result.failed.append((capture.path, status, text[:200]))
            bar.update(1)

    async with httpx.AsyncClient(base_url=base_url, timeout=30.0) as client:
        await asyncio.gather(*(post_all(client) for _ in range(concurrency)))
    bar.close()
    return result


async def _post(
    client: httpx.AsyncClient, capture: Capture, retries: int
) -> tuple[int, str]:
    headers = {"content-type": capture.content_type}
    for attempt in range(retries + 1):
        try:
            reply = await client.post(capture.path, content=capture.body, headers=headers)
        except httpx.TransportError as exc:
            status, text = 0, f"{type(exc).__name__}: {exc}"
        else:
            status, text = reply.status_code, reply.text
            if status != 503:
                return status, text
        await asyncio.sleep(0.5 * 2**attempt)
    return status, text
