"""`samdkif` command line: `pipeline run`, `router info`, `hub serve`, `data build`, `model prepare`,
`train skill|router`, `skills release|push`.

Each area owns its sub-commands in its own `cli.py` (`add_cli_parser(subparsers)` sets `func`), so this file only
wires them together and keeps start-up light: heavy imports happen inside the chosen command.
"""

from __future__ import annotations

import argparse
import importlib
import sys


# Modules that expose `add_cli_parser(subparsers)`.
_COMMAND_MODULES = (
    "samdkif_peft.tuner.cli",
    "samdkif_peft.hub.cli",
    "samdkif_peft.data.cli",
    "samdkif_peft.base_model",
    "samdkif_peft.pipeline",
    "samdkif_peft.training.cli",
    "samdkif_peft.release.cli",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="samdkif", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command", required=True)
    for module_name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as err:
            if err.name != module_name:
                raise
            continue
        module.add_cli_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from .loading import registration_hint

    with registration_hint():
        return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
