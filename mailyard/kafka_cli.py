"""Start, stop and inspect the local Kafka broker from settings or a shell.

``kafka_start``/``kafka_stop``/``kafka_status`` serve ``mailyard.cli``;
:func:`main` backs ``python -m mailyard.kafka_local
fetch|start|stop|status``, which CI and tests call before the package's
console script is wired.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from mailyard.admin import apply_catalog
from mailyard.errors import ConfigError, MailyardError
from mailyard.kafka_jars import DEFAULT_CACHE_DIR, ensure_jars
from mailyard.kafka_local import LocalKafka
from mailyard.settings import Settings

logger = logging.getLogger(__name__)

_LOOPBACK = ("127.0.0.1", "localhost")
EXIT_NOT_RUNNING = 3  # what LSB init scripts return from `status`


def local_kafka(
    settings: Settings, *, cache_dir: Path = DEFAULT_CACHE_DIR
) -> LocalKafka:
    """The broker that serves ``settings.bootstrap`` from ``data_dir/kafka``.

    The controller listens on the port after the broker's.
    """
    host, _, port = settings.bootstrap.rpartition(":")
    if host not in _LOOPBACK or not port.isdigit() or "," in host:
        raise ConfigError(
            "The local broker listens on 127.0.0.1 only, so "
            f"MAILYARD_KAFKA_BOOTSTRAP must be 127.0.0.1:<port>, got "
            f"{settings.bootstrap!r}."
        )
    data_dir = settings.data_dir / "kafka"
    return LocalKafka(data_dir, int(port), int(port) + 1, cache_dir=cache_dir)


def kafka_start(
    settings: Settings, *, cache_dir: Path = DEFAULT_CACHE_DIR
) -> LocalKafka:
    """Start (or reuse) the local broker and apply the topic catalog."""
    broker = local_kafka(settings, cache_dir=cache_dir).start()
    apply_catalog(broker.bootstrap)
    return broker


def kafka_stop(settings: Settings) -> bool:
    """Stop the local broker; return whether one was running."""
    broker = local_kafka(settings)
    was_running = broker.is_running
    broker.stop()
    return was_running


def kafka_status(settings: Settings) -> int | None:
    """The pid of the running local broker, or None."""
    return local_kafka(settings).pid


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m mailyard.kafka_local",
        description="Run a single-node Apache Kafka broker from Maven jars.",
    )
    parser.add_argument("command", choices=("fetch", "start", "stop", "status"))
    parser.add_argument("--data-dir", type=Path, default=Path("var/kafka"))
    parser.add_argument("--port", type=int, default=19092)
    parser.add_argument("--controller-port", type=int, default=None)
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE_DIR)
    parser.add_argument(
        "--no-catalog", action="store_true", help="start without creating topics"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    if args.command == "fetch":
        print(ensure_jars(args.cache_dir))
        return 0

    controller_port = args.controller_port or args.port + 1
    broker = LocalKafka(
        args.data_dir, args.port, controller_port, cache_dir=args.cache_dir
    )
    try:
        return _run(args.command, broker, catalog=not args.no_catalog)
    except MailyardError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def _run(command: str, broker: LocalKafka, *, catalog: bool) -> int:
    if command == "start":
        broker.start()
        if catalog:
            apply_catalog(broker.bootstrap)
        print(f"kafka running on {broker.bootstrap} (pid {broker.pid})")
        return 0
    if command == "stop":
        broker.stop()
        print("kafka stopped")
        return 0

    pid = broker.pid
    if pid is None:
        print(f"kafka not running (data dir {broker.data_dir})")
        return EXIT_NOT_RUNNING
    print(f"kafka running on {broker.bootstrap} (pid {pid})")
    return 0
