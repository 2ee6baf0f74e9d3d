"""``--max-per-class`` on CIFAR-10 class folders, measured: ``python -m benchmarks.max_per_class``.

CIFAR-10 unpacked from ``../shared/datasets/cifar10-jpeg.tar.gz`` (50,000 train + 10,000 test
JPEGs in class folders), 100 images per class kept in each split (2,000 in all):
- ``check all, then pick``: what ``load_dataset(max_per_class=100)`` did before (every file
  opened and verified, then 100 per class drawn) = ``load_dataset`` without the cap, then
  ``cap_per_class`` on each split;
- ``pick, then check``: ``load_dataset(max_per_class=100)`` now: files listed unopened, 100 per
  class drawn in the same seeded order, only those checked.
Alternated ``--rounds`` times (best of each kept; the page cache is warm after the first
listing), the chosen files compared (the same when no file is unreadable, as here).
Writes ``benchmarks/results/max_per_class.json``.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from benchmarks.data import cifar_root, cpu
from benchmarks.default_path import write_results


def _picked_before(root: Path, limit: int, seed: int) -> dict[str, list[str]]:
    """The old path: every file of every split checked (``load_folder_tree``), then capped."""
    from keras_transfer.data.dataset import cap_per_class
    from keras_transfer.data.folders import load_folder_tree

    dataset = load_folder_tree(root, {})
    return {name: sorted(str(split.items[i]) for i in cap_per_class(split.labels, limit, seed))
            for name, split in dataset.splits.items()}


def _picked_now(root: Path, limit: int, seed: int) -> dict[str, list[str]]:
    from keras_transfer.data.load import load_dataset

    dataset = load_dataset(root, seed=seed, max_per_class=limit)
    train = [*dataset.train.items, *dataset.val.items]  # val is cut from the capped train split
    return {"train": sorted(map(str, train)), "test": sorted(map(str, dataset.splits["test"].items))}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.max_per_class", description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path.home() / ".cache" / "keras-transfer-bench")
    parser.add_argument("--per-class", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)
    print(f"CPU: {cpu()}; load average {os.getloadavg()[0]:.2f}")
    root = cifar_root(args.work)
    times: dict[str, list[float]] = {"before": [], "now": []}
    chosen = {}
    for _ in range(args.rounds):
        for name, pick in (("before", _picked_before), ("now", _picked_now)):
            start = time.perf_counter()
            chosen[name] = pick(root, args.per_class, 0)
            times[name].append(time.perf_counter() - start)
    same = chosen["before"] == chosen["now"]
    kept = sum(len(files) for files in chosen["now"].values())
    ratio = min(times["before"]) / min(times["now"])
    rows = [{"case": f"check all 60,000 files, then pick {args.per_class}/class", "seconds": min(times["before"]),
             "all_seconds": times["before"], "kept": sum(len(f) for f in chosen["before"].values())},
            {"case": f"pick {args.per_class}/class, then check only those", "seconds": min(times["now"]),
             "all_seconds": times["now"], "kept": kept, "same_files": same, "speedup": ratio,
             "load_avg": os.getloadavg()[0], "goal": "faster, the same files", "met": same and ratio > 1}]
    print(f"{'case':<52}{'seconds':>9}{'kept':>7}  goal / met")
    for row in rows:
        verdict = "" if "met" not in row else ("MET" if row["met"] else "NOT MET")
        extra = f"  speedup={row['speedup']:.1f}x same_files={row['same_files']}" if "speedup" in row else ""
        print(f"{row['case']:<52}{row['seconds']:>9.2f}{row['kept']:>7}  {row.get('goal', '')} {verdict}{extra}")
    write_results("max_per_class", rows)


if __name__ == "__main__":
    main()
