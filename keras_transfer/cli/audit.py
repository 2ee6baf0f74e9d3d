"""``keras-transfer audit``: duplicates, leakage across splits, likely label errors, damaged and odd files."""

from __future__ import annotations

from pathlib import Path

from keras_transfer.cli.options import add_common, add_executor, command
from keras_transfer.base.paths import strict_json

LISTED = 10
TITLES = {"exact_duplicate": "exact duplicate groups", "near_duplicate": "near-duplicate pairs",
          "label_issue": "likely label errors (score: probability of the given class)", "damaged": "damaged files",
          "odd_file": "odd files", "outlier": "outliers (score: cleanlab outlier score, lower is odder)"}  # findings of each kind printed (the JSON and the HTML page hold all)


def register(sub) -> None:
    p = command(sub, "audit", "audit a dataset before training: exact and near duplicates, leakage across splits, "
                              "likely label errors, damaged and odd files, class balance (the data folder is only read)",
                ["keras-transfer audit photos/", "keras-transfer audit photos/ --out audit/ --write-clean clean.txt",
                 "keras-transfer train photos/ --exclude clean.txt"], _cmd_audit)
    p.add_argument("data", help="dataset folder (class folders, or train/val/test folders of them)")
    p.add_argument("--out", "-o", help="folder for audit.json and audit.html (thumbnails of every finding)")
    p.add_argument("--write-clean", metavar="LIST", help="write the images minus exact duplicates, leaked copies "
                   "and damaged files: a keep list for train --exclude, or (LIST/ ending in a slash, or an "
                   "existing folder) a folder of symbolic links")
    p.add_argument("--backbone", "-b", default="efficientnet_lite0", help="backbone whose features compare images")
    p.add_argument("--labels", help="CSV/TSV table of file name and class (as for train)")
    p.add_argument("--splits", help="which folder is each split (as for train)")
    p.add_argument("--seed", type=int, default=0, help="seed of the splits, folds and calibration sample")
    add_executor(p)
    add_common(p)


def _describe(finding: dict) -> str:
    files = "  ".join(m["file"] for m in finding["images"])
    what = finding.get("scope") or finding.get("check") or str(finding["evidence"])
    if finding["kind"] == "label_issue":
        what = f"filed as {finding['given']}, looks like {finding['suggested']}"
    return f"  {finding['score']:.3f}  {what}: {files}"


def _print_text(result, written: dict) -> None:
    from keras_transfer.base import log

    counts = result.counts
    rows = [[name] + [counts[s].get(name, 0) for s in counts] for name in result.classes]
    print(log.table(["class", *counts], rows, title="images per class and split"))
    for kind in TITLES:
        found = result.of(kind)
        if found:
            print(f"{TITLES[kind]}: {len(found)}" + (f" (first {LISTED})" if len(found) > LISTED else ""))
            print("\n".join(_describe(f) for f in found[:LISTED]))
    print(result.line())
    for name, path in written.items():
        print(f"{name} written to {path}")


def _cmd_audit(args) -> int:
    from keras_transfer.audit import audit, write_clean

    for option, path in (("--out", args.out), ("--write-clean", args.write_clean)):
        _refuse_inside(option, path, Path(args.data))
    result = audit(args.data, backbone=args.backbone, seed=args.seed, labels_table=args.labels, splits=args.splits,
                   executor=args.executor, ray_address=args.ray_address)
    written = {}
    if args.write_clean:
        clean = write_clean(result, args.write_clean)
        written["clean list" if not Path(clean["path"]).is_dir() else "clean folder"] = clean["path"]
    if args.out:
        written.update(_write_out(result, Path(args.out)))
    if args.json:
        print(strict_json({**result.as_dict(), "written": written}))
    else:
        _print_text(result, written)
    return 0


def _refuse_inside(option: str, path: str | None, data: Path) -> None:
    """An output inside the data folder is refused before anything runs (the audit only reads it)."""
    from keras_transfer.audit.clean import inside
    from keras_transfer.base.errors import ConfigError

    if path and data.is_dir() and inside(Path(path), data):
        raise ConfigError(f"{option} {path} is inside the data folder {data}",
                          "a path outside the data folder (the audit never writes into it)",
                          hint=f"e.g. {option} {'audit/' if option == '--out' else 'clean.txt'} in the current folder")


def _write_out(result, out: Path) -> dict:
    from keras_transfer.base.paths import write_json

    out.mkdir(parents=True, exist_ok=True)
    from keras_transfer.report.audit_section import write_audit_page

    return {"audit.json": str(write_json(out / "audit.json", result.as_dict())),
            "audit.html": str(write_audit_page(result, out / "audit.html"))}
