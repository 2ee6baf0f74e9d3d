"""``collect``: from a list of image URLs to a dataset folder of class (and split) folders.

1. the list is read (:mod:`sources`); URLs other than http/https are refused unfetched;
2. what is missing is downloaded concurrently (:mod:`fetch`), each outcome recorded at once
   (:mod:`store`), so an interrupted run (Ctrl-C, SIGTERM) resumes where it stopped;
3. every download is decoded (:mod:`check`); exact copies (same SHA-256) and near copies (the
   audit's pHash rule) are kept once; kept files are named ``<sha256><.ext of their format>``;
4. kept images are sorted: ``<split>/<class>/`` (labels with a split; missing splits cut stratified
   as ``train`` cuts them), ``<class>/`` (labels, no split wanted) or ``images/`` (no labels);
5. ``collect_report.csv`` lists every row: saved, duplicate, near duplicate, or failed with its reason.
"""

from __future__ import annotations

import asyncio
import signal
from collections import Counter
from pathlib import Path

import numpy as np

from keras_transfer.base import log
from keras_transfer.collect.check import check_image, near_copy
from keras_transfer.collect.fetch import SCHEMES, Fetched, Fetcher, client
from keras_transfer.collect.options import CollectOptions
from keras_transfer.collect.sources import Item, read_urls
from keras_transfer.collect.store import Store, safe_name
from keras_transfer.data.dataset import stratified_split

PERMANENT_DONE = ("saved", "duplicate", "near_duplicate")


def _record(url: str, fetched: Fetched, store: Store, options: CollectOptions) -> tuple[dict, bytes | None]:
    """The state record of one download (deduplicated against the kept images), and the bytes to keep."""
    record = {"url": url, "attempts": fetched.attempts, "http_status": fetched.status}
    if fetched.content is None:
        return record | {"status": "failed", "reason": fetched.reason, "detail": fetched.detail,
                         "transient": fetched.transient}, None
    checked = check_image(fetched.content, options.min_side, options.max_pixels)
    record |= {"sha256": checked.sha256}
    if checked.reason:
        return record | {"status": "failed", "reason": checked.reason, "detail": checked.detail, "transient": False}, None
    record |= {"extension": checked.extension, "width": checked.width, "height": checked.height,
               "phash": checked.phash, "mirror": checked.mirror}
    kept = _kept(store)
    if checked.sha256 in kept:
        return record | {"status": "duplicate", "duplicate_of": checked.sha256, "detail": "the same bytes"}, None
    if (near := near_copy(checked, kept)) is not None:
        return record | {"status": "near_duplicate", "duplicate_of": near[0],
                         "detail": f"pHash within {near[1]} bits of a kept image"}, None
    return record | {"status": "saved"}, fetched.content


def _kept(store: Store) -> dict[str, tuple[str, str]]:
    return {r["sha256"]: (r["phash"], r["mirror"]) for r in store.records.values() if r.get("status") == "saved"}


def _missing(items: list[Item], store: Store, options: CollectOptions) -> list[str]:
    """The distinct http(s) URLs to fetch: never fetched, failed for a passing reason (or any with
    ``retry_failed``), or saved but their file is gone."""
    todo = []
    for url in dict.fromkeys(item.url for item in items if item.scheme in SCHEMES):
        record = store.records.get(url)
        if record is None or record.get("status") == "failed" and (record.get("transient") or options.retry_failed):
            todo.append(url)
        elif record.get("status") == "saved" and store.where(record) is None:
            del store.records[url]
            todo.append(url)
    return todo


async def _download(urls: list[str], store: Store, options: CollectOptions) -> None:
    from keras_transfer import __version__

    loop, task = asyncio.get_running_loop(), asyncio.current_task()
    try:  # SIGTERM stops the run as Ctrl-C does: what is recorded stays
        loop.add_signal_handler(signal.SIGTERM, task.cancel)
    except (NotImplementedError, RuntimeError, ValueError):  # not the main thread, or no signals here
        pass
    pending = iter(urls)
    bar = log.progress(total=len(urls), desc="collect", unit="url")
    try:
        async with client(options, f"keras-transfer/{__version__} (collect)") as http:
            fetcher = Fetcher(http, options)

            async def worker() -> None:
                for url in pending:
                    fetched = await fetcher.fetch(url)
                    store.add(*_record(url, fetched, store, options))
                    bar.update()

            await asyncio.gather(*(worker() for _ in range(min(options.connections, len(urls)))))
    finally:
        bar.close()
        try:
            loop.remove_signal_handler(signal.SIGTERM)
        except (NotImplementedError, RuntimeError, ValueError):
            pass


def _splits(owners: dict[str, Item], options: CollectOptions) -> dict[str, str | None]:
    """sha256 -> split of each kept image: the list's, else cut stratified per class (None: no split folders)."""
    labelled = any(item.label for item in owners.values())
    if not labelled:
        return {sha: None for sha in owners}
    given = any(item.split for item in owners.values())
    if not given and options.val_fraction == 0 and options.test_fraction == 0:
        return {sha: None for sha in owners}
    splits = {sha: item.split for sha, item in owners.items()}
    free = sorted(sha for sha, split in splits.items() if split is None)
    labels = np.array([owners[sha].label for sha in free], dtype=object)
    codes = np.unique(labels, return_inverse=True)[1] if len(free) else np.zeros(0, np.int64)
    rest = np.arange(len(free))
    for name, fraction in (("test", options.test_fraction), ("val", options.val_fraction)):
        share = fraction / (1 - options.test_fraction) if name == "val" else fraction
        if share > 0 and len(rest):
            kept, taken = stratified_split(codes[rest], share, options.seed)
            for i in rest[taken]:
                splits[free[i]] = name
            rest = rest[kept]
    for i in rest:
        splits[free[i]] = "train"
    return splits


def _organize(items: list[Item], store: Store, options: CollectOptions) -> dict[str, str]:
    """Moves each kept image to its folder; returns sha256 -> its path relative to ``--out``."""
    owners: dict[str, Item] = {}
    for item in items:
        record = store.records.get(item.url, {})
        if record.get("status") == "saved" and record["sha256"] not in owners:
            owners[record["sha256"]] = item
    splits = _splits(owners, options)
    placed = {}
    for url, record in store.records.items():
        sha = record.get("sha256")
        if record.get("status") != "saved" or sha not in owners or sha in placed:
            continue
        source = store.where(record)
        if source is None:
            continue
        item = owners[sha]
        folder = "images" if item.label is None else safe_name(item.label)
        folder = folder if splits[sha] is None else f"{splits[sha]}/{folder}"
        store.move(sha, source, f"{folder}/{sha}{record['extension']}")
        placed[sha] = store.placed[sha]
    store.placed = placed
    store.save_placed()
    return placed


def _rows(items: list[Item], store: Store, placed: dict[str, str]) -> list[dict]:
    rows, first_row, owner = [], {}, {}
    labelled = any(item.label for item in items)
    for item in items:
        row = {"row": item.row, "url": log.printable(item.url), "label": item.label or "", "split": item.split or ""}
        record = store.records.get(item.url)
        if item.scheme not in SCHEMES:
            row |= {"status": "failed", "reason": "unsupported_scheme",
                    "detail": f"only http and https URLs are fetched, not {item.scheme or 'a relative URL'}"}
        elif labelled and not item.label:
            row |= {"status": "failed", "reason": "no_label", "detail": "the row gives no class: not kept"}
        elif record is None:
            row |= {"status": "pending", "detail": "not fetched yet: run collect again to resume"}
        else:
            row |= {k: record.get(k, "") for k in ("status", "reason", "http_status", "detail", "sha256",
                                                   "duplicate_of", "width", "height", "attempts")}
            sha = record.get("sha256")
            if record.get("status") == "saved" and (item.url in first_row or sha in owner):
                row |= {"status": "duplicate", "duplicate_of": sha,
                        "detail": f"the same {'URL' if item.url in first_row else 'bytes'} as row "
                                  f"{first_row.get(item.url) or owner[sha]}"}
            elif record.get("status") == "saved":
                owner[sha] = item.row
                row["file"] = placed.get(sha) or store.pool_name(sha, record["extension"])
            if record.get("status") == "failed" and record.get("transient"):
                row["detail"] = f"{row['detail']} (tried again on the next run)"
        first_row.setdefault(item.url, item.row)
        rows.append(row)
    return rows


def collect(urls: str | Path, out: str | Path, options: CollectOptions | None = None) -> dict:
    """Downloads the images a URL list names into a dataset folder; see the module docstring.

    Returns a summary: counts by status and failure reason, and the report's path. Ctrl-C and
    SIGTERM raise ``KeyboardInterrupt`` after writing the report (``pending`` rows resume next run).

    Example:
        >>> summary = collect("champions.csv", "data/champions")  # doctest: +SKIP
        >>> summary["saved"], summary["failed"]  # doctest: +SKIP
        (182, {'http_status': 3, 'not_an_image': 1})
    """
    options = options or CollectOptions()
    items = read_urls(urls)
    store = Store(out)
    todo = _missing(items, store, options)
    log.info(f"collect: {len(items)} rows, {len(todo)} URL(s) to fetch"
             + (f" ({len(set(i.url for i in items)) - len(todo)} done before)" if store.records else ""))
    try:
        asyncio.run(_download(todo, store, options))
    except (KeyboardInterrupt, asyncio.CancelledError):
        store.write_report(_rows(items, store, {}))
        raise KeyboardInterrupt from None
    placed = _organize(items, store, options)
    rows = _rows(items, store, placed)
    report = store.write_report(rows)
    counts = Counter(row["status"] for row in rows)
    return {"rows": len(rows), "fetched": len(todo), "saved": counts["saved"], "duplicate": counts["duplicate"],
            "near_duplicate": counts["near_duplicate"], "pending": counts["pending"],
            "failed": dict(Counter(row["reason"] for row in rows if row["status"] == "failed")),
            "report": str(report), "out": str(store.out)}
