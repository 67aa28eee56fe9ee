"""Run one stand-in in the foreground.

``python -m tests.standins sendgrid --port 8025`` serves it on 127.0.0.1.
"""

from __future__ import annotations

import argparse

from tests.standins import STANDINS
from tests.standins.server import serve_forever


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m tests.standins",
        description="Serve a strict ESP stand-in on 127.0.0.1.",
    )
    parser.add_argument("provider", choices=sorted(STANDINS))
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)

    serve_forever(STANDINS[args.provider]().app, args.port)


if __name__ == "__main__":
    main()
