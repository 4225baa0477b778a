"""`samdkif` command line: `router train|info`, `skills release|push`, `train skill|router`, `pipeline run`,
`data build|export`, `model prepare`, `hub serve`.

The entry point is the top-level module `samdkif_cli` (outside this package, so `samdkif --help` does not pay for
importing torch and peft); each area owns its sub-commands in its own module (`add_cli_parser(parser)`).
"""

from samdkif_cli import COMMANDS, build_parser, main


__all__ = ["COMMANDS", "build_parser", "main"]


if __name__ == "__main__":
    import sys

    sys.exit(main())
