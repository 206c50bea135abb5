"""The `redline` command. Each subcommand lives in its own module, which
exposes `register(subparsers)`; this file only lists them."""

from __future__ import annotations

import argparse
import importlib
import sys

# module -> one subcommand each; add a line to add a command.
COMMANDS: tuple[str, ...] = (
    "redline.pipeline.cli.demo",
    "redline.pipeline.cli.publish",
    "redline.pipeline.cli.record",
    "redline.pipeline.cli.generate",
    "redline.pipeline.cli.inspect_files",
    "redline.pipeline.cli.report",
    "redline.pipeline.cli.run",
    "redline.pipeline.cli.top",
    "redline.pipeline.cli.plan",
    "redline.pipeline.cli.keygen",
    "redline.pipeline.cli.sign",
    "redline.pipeline.cli.import_files",
    "redline.pipeline.cli.export_bag",
    "redline.pipeline.cli.book_check",
    "redline.pipeline.cli.backtest",
    "redline.pipeline.cli.train",
    "redline.pipeline.cli.scenarios",
    "redline.pipeline.cli.worker",
    "redline.pipeline.cli.keys",
    "redline.pipeline.cli.ctl",
)


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (what, where, the fix; `--help` for the rest),
    exit 2, like every other input error of the command."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="redline", description="Low-latency real-time decision pipeline.")
    sub = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=OneLineParser
    )
    for name in COMMANDS:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except KeyboardInterrupt:
        return 130
    except (ValueError, FileNotFoundError) as exc:  # bad input: say what, not a traceback
        print(f"redline {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
