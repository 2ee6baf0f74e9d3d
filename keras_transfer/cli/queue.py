"""``keras-transfer queue``: which unlabelled images to label next (``run.queue``)."""

from __future__ import annotations

from keras_transfer.cli.options import add_common, add_executor, command
from keras_transfer.base.paths import strict_json

SHOWN = 20  # rows printed on the terminal without --out


def register(sub) -> None:
    p = command(sub, "queue", "order a folder of unlabelled images for labelling (what to label next)",
                ["keras-transfer queue runs/photos new_photos/ --out queue.csv",
                 "keras-transfer queue runs/photos new_photos/ --strategy uncertainty --limit 50 --json"], _cmd_queue)
    p.add_argument("run", help="run folder")
    p.add_argument("folder", help="folder of unlabelled images (searched recursively)")
    p.add_argument("--strategy", default="mixed",
                   help="mixed (uncertain and unlike each other) | uncertainty (smallest margin first) | "
                        "diversity (k-center greedy on the features) | random")
    p.add_argument("--out", "-o", help="write the queue to this .csv or .json file")
    p.add_argument("--limit", type=int, default=None, help="at most N images in the queue (None: all)")
    p.add_argument("--seed", type=int, default=0, help="seed of --strategy random")
    add_executor(p)
    add_common(p)


def _cmd_queue(args) -> int:
    from keras_transfer.base import log
    from keras_transfer.features.executor import check_executor, make_executor
    from keras_transfer.run.queue import build_queue, check_out

    check_executor(args.executor)
    if args.out:
        check_out(args.out)  # before any work
    queue = build_queue(args.run, args.folder, args.strategy, args.limit, args.seed,
                        make_executor(args.executor, args.ray_address))
    if args.out:
        queue.save(args.out)
        log.info(f"wrote {len(queue.rows)} rows to {args.out}")
    if args.json:
        print(strict_json(queue.as_dict()))
    else:
        shown = queue.rows if args.out is None and len(queue.rows) <= SHOWN else queue.rows[:0 if args.out else SHOWN]
        for row in shown:
            print(f"{row['rank']:>5}  {row['path']}  {row['suggested']} {row['probability']:.3f}  "
                  f"(uncertainty {row['uncertainty']:.3f})  {row['reason']}")
        if len(shown) < len(queue.rows) and not args.out:
            print(f"  ... {len(queue.rows) - len(shown)} more (--out FILE.csv writes them all)")
        print(f"{len(queue.rows)} image(s) queued by {queue.strategy}; {len(queue.skipped)} skipped")
    for item in queue.skipped:
        log.warn(f"skipped {item['path']}: {item['reason']}")
    return 0
