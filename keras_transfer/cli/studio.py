"""``keras-transfer studio DATA``: the local page to see what a run gets wrong, fix the data, refit and ship."""

from __future__ import annotations

from pathlib import Path

from keras_transfer.cli.options import command


def register(sub) -> None:
    p = command(sub, "studio", "a local web page: see what the model gets wrong, fix labels, refit in seconds, "
                               "export and serve",
                ["keras-transfer studio photos/ --run runs/photos",
                 "keras-transfer studio photos/ --host 0.0.0.0 --token s3cret"], _cmd_studio)
    p.add_argument("data", help="data folder (a folder per class); never written to except by 'apply to folder'")
    p.add_argument("--run", help="run folder to open, or to train into from the page (default: runs/<DATA's name>)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on; any other than loopback needs --token")
    p.add_argument("--port", type=int, default=8765, help="TCP port")
    p.add_argument("--token", help="require 'Authorization: Bearer TOKEN' on every request (the page asks once); "
                                    "needed for any address other than 127.0.0.1")
    p.add_argument("--quiet", "-q", action="store_true", help="log warnings only (the page still shows progress)")


def _cmd_studio(args) -> int:
    import logging

    from keras_transfer.studio.app import run_studio

    if args.quiet:  # the terminal quiet, the page's job progress (log lines of the job thread) still fed
        package = logging.getLogger("keras_transfer")
        package.setLevel(logging.INFO)
        for handler in package.handlers:
            handler.setLevel(logging.WARNING)
    run = args.run or str(Path("runs") / Path(args.data).resolve().name)
    run_studio(args.data, run, args.host, args.port, args.token, args.quiet)
    return 0
