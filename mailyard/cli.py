"""The ``mailyard`` command: the composition root that wires the layers.

Each subcommand builds settings from the environment and calls into the
layers; nothing imports this module.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from mailyard.errors import MailyardError
from mailyard.settings import Settings
from mailyard.openapi_cli import add_parsers as add_openapi_parsers
from mailyard.tenant_cli import add_parsers as add_tenant_parsers

log = logging.getLogger("mailyard")


def _cmd_normalize(args: argparse.Namespace, settings: Settings) -> int:
    from connectors.registry import normalize

    body = Path(args.file).read_bytes() if args.file != "-" else sys.stdin.buffer.read()
    content_type = args.content_type or "application/json"
    events = normalize(args.esp, body, content_type, subaccount=args.subaccount)
    for event in events:
        print(json.dumps(event.to_json_dict(), ensure_ascii=False, sort_keys=False))
    return 0


def _cmd_samples(args: argparse.Namespace, settings: Settings) -> int:
    from connectors.samples import generate, write_samples

    samples = generate(seed=args.seed, n_events=args.events)
    write_samples(Path(args.out), samples)
    print(f"wrote {len(samples)} webhook bodies to {args.out}")
    return 0


def _cmd_replay(args: argparse.Namespace, settings: Settings) -> int:
    from mailyard.replay import load_captures, replay

    captures = load_captures(Path(args.folder))
    result = asyncio.run(replay(captures, args.url, concurrency=args.concurrency))
    print(f"posted {result.sent}, accepted {result.accepted}, failed {len(result.failed)}")
    for path, status, text in result.failed[:10]:
        print(f"  {status} {path}: {text}", file=sys.stderr)
    return 0 if not result.failed else 1


def _cmd_kafka(args: argparse.Namespace, settings: Settings) -> int:
    from mailyard.kafka_cli import kafka_start, kafka_status, kafka_stop

    if args.action == "start":
        broker = kafka_start(settings)
        print(f"Kafka ready on {broker.bootstrap} (data in {broker.data_dir})")
    elif args.action == "stop":
        print("stopped" if kafka_stop(settings) else "no broker was running")
    else:
        pid = kafka_status(settings)
        print(f"running, pid {pid}" if pid else "not running")
        return 0 if pid else 3
    return 0


def _cmd_gateway(args: argparse.Namespace, settings: Settings) -> int:
    from mailyard.services import run_gateway

    run_gateway(settings)
    return 0


def _cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    from mailyard.services import run_worker

    run_worker(settings)
    return 0


def _cmd_rules(args: argparse.Namespace, settings: Settings) -> int:
    from streams.rules import Message, RuleValidationError, StaticHealth, load_rules
    from streams.rules import simulate, summarize

    try:
        ruleset = load_rules(Path(args.file))
    except RuleValidationError as exc:
        print(f"{args.file}: {exc}", file=sys.stderr)
        return 1
    if args.action == "validate":
        print(f"{args.file}: valid: version {ruleset.version}, {len(ruleset.rules)} "
              f"rules, {len(ruleset.destinations)} destinations")
        return 0

    records = [json.loads(Path(m).read_text()) for m in args.message or []]
    if args.start and args.end:
        from datetime import datetime

        from streams.recorded import recorded_messages

        records += recorded_messages(settings.bootstrap, datetime.fromisoformat(
            args.start), datetime.fromisoformat(args.end))
    if not records:
        print("simulate needs --message FILE or --start and --end", file=sys.stderr)
        return 2
    decisions = simulate(ruleset, [Message.from_record(r) for r in records],
                         StaticHealth({}))
    out = {"decisions": [d.to_dict() for d in decisions], "summary": summarize(decisions)}
    print(json.dumps(out, indent=2))
    return 0


def _cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    from mailyard.demo import run_demo

    return run_demo(settings, once=args.once, events=args.events, seed=args.seed)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mailyard", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="run the whole stack locally on sample traffic")
    demo.add_argument("--once", action="store_true", help="exit after the replay")
    demo.add_argument("--events", type=int, default=5000)
    demo.add_argument("--seed", type=int, default=7)
    demo.set_defaults(func=_cmd_demo)

    norm = sub.add_parser("normalize", help="print the events a webhook body yields")
    norm.add_argument("--esp", required=True)
    norm.add_argument("--content-type", default=None)
    norm.add_argument("--subaccount", default=None)
    norm.add_argument("file", help="a saved webhook body, or - for stdin")
    norm.set_defaults(func=_cmd_normalize)

    samples = sub.add_parser("samples", help="write sample webhook bodies")
    samples.add_argument("--out", required=True)
    samples.add_argument("--seed", type=int, default=7)
    samples.add_argument("--events", type=int, default=5000)
    samples.set_defaults(func=_cmd_samples)

    rep = sub.add_parser("replay", help="post captured bodies to a gateway")
    rep.add_argument("folder")
    rep.add_argument("--url", default=None)
    rep.add_argument("--concurrency", type=int, default=8)
    rep.set_defaults(func=_cmd_replay)

    rules = sub.add_parser("rules", help="validate or simulate a rule file")
    rules.add_argument("action", choices=["validate", "simulate"])
    rules.add_argument("file")
    rules.add_argument("--message", action="append", help="a message JSON file")
    rules.add_argument("--start", help="simulate recorded messages from (ISO 8601)")
    rules.add_argument("--end", help="... to (ISO 8601)")
    rules.set_defaults(func=_cmd_rules)

    kafka = sub.add_parser("kafka", help="the local Kafka broker")
    kafka.add_argument("action", choices=["start", "stop", "status"])
    kafka.set_defaults(func=_cmd_kafka)

    sub.add_parser("gateway", help="run the ingest gateway").set_defaults(
        func=_cmd_gateway
    )
    sub.add_parser("worker", help="run the stream worker and its API").set_defaults(
        func=_cmd_worker
    )
    add_tenant_parsers(sub)
    add_openapi_parsers(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not args.verbose:
        # One line per HTTP request drowns what the commands print.
        logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        settings = Settings.from_env()
        if getattr(args, "url", "unset") is None:
            args.url = f"http://{settings.gateway_host}:{settings.gateway_port}"
        code: int = args.func(args, settings)
    except MailyardError as exc:
        print(f"mailyard: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
