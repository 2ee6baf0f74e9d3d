"""Collecting a dataset from image URLs: ``keras-transfer collect URLS --out DATASET``."""

from __future__ import annotations

import sys

from keras_transfer.base.paths import strict_json
from keras_transfer.cli.options import add_common, command


def register(sub) -> None:
    from keras_transfer.collect.options import CollectOptions

    d = CollectOptions()
    p = command(sub, "collect", "download the images of a URL list into a dataset folder (resumable; "
                                "checked, deduplicated, sorted into class and split folders)",
                ["keras-transfer collect urls.txt --out data/birds",
                 "keras-transfer collect champions.csv --out data/champions --test-fraction 0.1",
                 "keras-transfer train data/champions"], _cmd_collect)
    p.add_argument("urls", help="a text file (one URL a line) or a CSV/TSV with a URL column and optional "
                                "label and split columns")
    p.add_argument("--out", "-o", required=True, help="dataset folder to fill (also holds the report and "
                                                      "the state that makes a second run resume)")
    p.add_argument("--per-host", type=int, default=d.per_host, help="connections at once to one host")
    p.add_argument("--connections", type=int, default=d.connections, help="connections at once in all")
    p.add_argument("--timeout", type=float, default=d.timeout,
                   help="seconds to connect and between reads (a download takes at most 6 times this)")
    p.add_argument("--retries", type=int, default=d.retries, help="tries again after a timeout, 408, 429 or 5xx")
    p.add_argument("--backoff", type=float, default=d.backoff, help="seconds before the first retry, doubled each time")
    p.add_argument("--max-wait", type=float, default=d.max_wait, help="longest Retry-After honoured (seconds)")
    p.add_argument("--max-bytes", type=int, default=d.max_bytes, help="larger files are not downloaded")
    p.add_argument("--max-redirects", type=int, default=d.max_redirects, help="redirects followed per URL")
    p.add_argument("--min-side", type=int, default=d.min_side, help="images with a shorter side are left out")
    p.add_argument("--val-fraction", type=float, default=d.val_fraction,
                   help="share of each class cut as val among labelled images the list gives no split "
                        "(with --test-fraction 0 and 0: plain class folders)")
    p.add_argument("--test-fraction", type=float, default=d.test_fraction, help="share cut as test likewise")
    p.add_argument("--seed", type=int, default=d.seed, help="seed of the split cut")
    p.add_argument("--retry-failed", action="store_true",
                   help="also fetch again URLs that failed for good last time (404, not an image ...)")
    add_common(p)


def _cmd_collect(args) -> int:
    from keras_transfer.collect import CollectOptions, collect

    options = CollectOptions(args.per_host, args.connections, args.timeout, args.retries, args.backoff,
                             args.max_wait, args.max_bytes, args.max_redirects, args.min_side,
                             val_fraction=args.val_fraction, test_fraction=args.test_fraction, seed=args.seed,
                             retry_failed=args.retry_failed)
    try:
        summary = collect(args.urls, args.out, options)
    except KeyboardInterrupt:
        print(f"interrupted: every finished download is kept in {args.out}; running the same command again "
              "fetches only what is missing", file=sys.stderr)
        return 130
    if args.json:
        print(strict_json(summary))
        return 0
    failed = ", ".join(f"{reason} {n}" for reason, n in sorted(summary["failed"].items())) or "none"
    print(f"{summary['saved']} images in {summary['out']} ({summary['duplicate']} exact and "
          f"{summary['near_duplicate']} near duplicates kept once); failed: {failed}; report: {summary['report']}")
    return 0 if summary["saved"] or not summary["rows"] else 1
