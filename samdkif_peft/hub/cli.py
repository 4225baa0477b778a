"""`samdkif hub serve`: run the offline Hub in the foreground until Ctrl-C.

Imports stay light here: the server module is only loaded when the command runs.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os


def add_cli_parser(parser: argparse.ArgumentParser) -> None:
    """Fill in the `samdkif hub` parser (created by `samdkif_cli`, which holds its help line)."""
    hub = parser
    hub_sub = hub.add_subparsers(dest="hub_command", required=True)
    serve = hub_sub.add_parser("serve", help="serve a Hub at --host:--port from --root (Ctrl-C stops)")
    serve.add_argument("--root", required=True, help="storage directory (created if missing)")
    serve.add_argument("--port", type=int, default=8080, help="TCP port, 0 for a free one (default 8080)")
    serve.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1; 0.0.0.0 for all)")
    serve.add_argument(
        "--token",
        default=os.environ.get("SAMDKIF_HUB_TOKEN"),
        help="require this bearer token for writes (default: $SAMDKIF_HUB_TOKEN; unset = any token accepted)",
    )
    serve.set_defaults(func=_serve)


def _serve(args: argparse.Namespace) -> int:
    import sys

    from samdkif_peft.hub.server import HubServer

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        server = HubServer(args.root, host=args.host, port=args.port, token=args.token)  # binds: the endpoint is known
    except OSError as err:  # port in use, no permission for a low port, unknown host, unwritable root
        import errno

        in_use = err.errno == errno.EADDRINUSE
        hint = "pick another --port (0: any free one) or stop what uses it" if in_use else "check --host/--port/--root"
        where = f"{args.host}:{args.port} from {args.root}"
        print(f"samdkif hub serve: error: cannot serve at {where} ({err.strerror or err}); {hint}", file=sys.stderr)
        return 1
    print(
        f"Offline Hub at {server.endpoint} serving {os.path.abspath(args.root)}. Clients need, before importing "
        f"huggingface_hub:\n  export HF_ENDPOINT={server.endpoint} HF_HUB_DISABLE_XET=1 HF_TOKEN=<any, or --token>\n"
        "Ctrl-C stops.",
        flush=True,
    )
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    server.stop()
    return 0
