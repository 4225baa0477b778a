"""The `samdkif` command line. It lives outside the `samdkif_peft` package so that `samdkif --help` starts in well
under a second: importing `samdkif_peft` registers SKILL_ROUTER with peft, which loads torch, transformers and peft
(~4 s). Only the chosen command's module is imported, and it adds its sub-commands to the parser made here
(`add_cli_parser(parser)`).
"""

from __future__ import annotations

import argparse
import importlib
import sys


# command -> (module with `add_cli_parser(parser)`, one-line help); the one place each command is declared
COMMANDS: dict[str, tuple[str, str]] = {
    "router": ("samdkif_peft.tuner.cli", "train a router on your own task (router train); inspect, verify routers"),
    "skills": ("samdkif_peft.release.cli", "train, package and push the 12 released skills"),
    "train": ("samdkif_peft.training.cli", "train skill adapters and skill routers with the stock Trainer"),
    "pipeline": ("samdkif_peft.pipeline", "SA-MDKIF end to end: skills, routers, evaluation"),
    "data": ("samdkif_peft.data.cli", "build the medical skill and task datasets; export a task as JSONL"),
    "model": ("samdkif_peft.base_model", "the default base model (SmolLM2-135M-Instruct) offline"),
    "hub": ("samdkif_peft.hub.cli", "offline Hub-compatible server for air-gapped sites and tests"),
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; only `command`'s module is imported (all of them when None, e.g. for tests and docs)."""
    parser = argparse.ArgumentParser(prog="samdkif", description="SA-MDKIF skills and skill routers for peft.")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name, (module, help_line) in COMMANDS.items():
        sub = subparsers.add_parser(name, help=help_line, description=help_line)
        if command is None or name == command:
            importlib.import_module(module).add_cli_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(command if command in COMMANDS else "")
    args = parser.parse_args(argv)
    from samdkif_peft.loading import registration_hint

    with registration_hint():
        return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
