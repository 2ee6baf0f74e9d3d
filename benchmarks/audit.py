"""The dataset audit, measured: ``python -m benchmarks.audit [--only planted] [--sizes 200,1000]``.

For each size, a folder of that many flowers5 images (classes balanced, distinct content) gets
planted defects: exact copies (2% of the images), near copies (2%: half-size re-compressed,
cropped, mirrored, dimmed), images moved to another class (2%), truncated and empty files (1%).
``keras-transfer audit --json`` runs as a process twice: with a cold feature and audit cache
(the compiled backbone kept, as after any first run), then warm. Reported: seconds per 1,000
images, and recall / precision of each planted kind. Precision counts every other finding of
the kind as false, including flowers5's own look-alikes (``_n``/``_m`` resized copies) and
images it really has in the wrong class: a floor. Label errors also report precision among
the top k suspects (k = planted). Writes ``benchmarks/results/audit.json``.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

from PIL import Image, ImageEnhance, ImageOps

from benchmarks.data import REPO
from benchmarks.default_path import CLI, run_cases, timed, write_results

FLOWERS = REPO.parent / "shared" / "datasets" / "flowers5"
SIZES = (200, 1000)
SHARE = 0.02


def _pick(count: int) -> list[Path]:
    from keras_transfer.features.keys import file_hash

    classes = sorted(p for p in FLOWERS.iterdir() if p.is_dir())
    per_class, seen, picked = -(-count // len(classes)), set(), []
    for folder in classes:
        files = []
        for f in sorted(folder.glob("*.jpg")):
            if len(files) < per_class and (h := file_hash(f)) not in seen and "_n" not in f.stem and "_m" not in f.stem:
                seen.add(h)
                files.append(f)
        picked += files
    return picked[:count]


def _near(image: Image.Image, k: int) -> Image.Image:
    w, h = image.size
    return [lambda: image.resize((w // 2, h // 2)), lambda: image.crop((w // 12, h // 12, w - w // 12, h - h // 12)),
            lambda: ImageOps.mirror(image), lambda: ImageEnhance.Brightness(image).enhance(0.8)][k % 4]()


def plant(root: Path, count: int) -> dict:
    """A planted copy of ``count`` flowers5 images under ``root``; what was planted, by kind."""
    shutil.rmtree(root, ignore_errors=True)
    files = []
    for f in _pick(count):
        (root / f.parent.name).mkdir(parents=True, exist_ok=True)
        files.append(Path(shutil.copy(f, root / f.parent.name / f.name)))
    import random

    random.Random(0).shuffle(files)  # defects spread over the classes
    n = max(2, round(SHARE * count))
    planted = {"exact": [], "near": [], "mislabelled": [], "damaged": []}
    for k, f in enumerate(files[0:n]):
        planted["exact"].append({str(f), str(shutil.copy(f, f.with_name(f"copy_{k}.jpg")))})
    for k, f in enumerate(files[n:2 * n]):
        twin = f.with_name(f"near_{k}.jpg")
        _near(Image.open(f).convert("RGB"), k).save(twin, quality=60 if k % 4 == 0 else 90)
        planted["near"].append({str(f), str(twin)})
    classes = sorted(p.name for p in root.iterdir())
    for k, f in enumerate(files[-n:]):
        other = classes[(classes.index(f.parent.name) + 1 + k % (len(classes) - 1)) % len(classes)]
        planted["mislabelled"].append(str(f.rename(root / other / f.name)))
    for k, f in enumerate(files[2 * n:2 * n + max(1, n // 2)]):
        bad = f.with_name(f"truncated_{k}.jpg")
        bad.write_bytes(f.read_bytes()[: len(f.read_bytes()) // 3] if k % 2 == 0 else b"")
        planted["damaged"].append(str(bad))
    return planted


def score(report: dict, planted: dict) -> dict:
    """Recall and precision per planted kind."""
    found = {"exact": [], "near": [], "mislabelled": [], "damaged": []}
    for f in report["findings"]:
        files = frozenset(m["file"] for m in f["images"])
        kind = {"exact_duplicate": "exact", "near_duplicate": "near", "label_issue": "mislabelled",
                "damaged": "damaged"}.get(f["kind"])
        if kind:
            found[kind].append(files)
    out = {}
    for kind, truth in planted.items():
        truth = [frozenset(t) if isinstance(t, set) else frozenset([t]) for t in truth]
        hits = sum(t in found[kind] for t in truth)
        right = sum(f in truth for f in found[kind])
        out[kind] = {"planted": len(truth), "recall": hits / len(truth), "findings": len(found[kind]),
                     "precision": right / len(found[kind]) if found[kind] else 1.0}
        if kind == "mislabelled":
            top = found[kind][:len(truth)]
            out[kind]["precision_at_k"] = sum(f in truth for f in top) / max(1, len(top))
    return out


def case_planted(work: Path, sizes=SIZES) -> list[dict]:
    cache = work / "cache-audit"
    env = {**os.environ, "KERAS_TRANSFER_CACHE": str(cache)}
    rows = []
    for count in sizes:
        root = work / f"audit-flowers-{count}"
        planted = plant(root, count)
        timed(CLI + ["audit", str(root), "-q", "--json"], env)  # compiles the backbone once (then kept)
        for name in ("features", "audit"):
            shutil.rmtree(cache / name, ignore_errors=True)
        images = sum(1 for _ in root.rglob("*.jpg"))
        for temperature in ("cold", "warm"):
            start = time.perf_counter()
            _, done = timed(CLI + ["audit", str(root), "-q", "--json"], env)
            seconds = time.perf_counter() - start
            report = json.loads(done.stdout)
            rows.append({"case": f"audit flowers5 {images} images, {temperature}", "images": images,
                         "seconds": seconds, "per_1000_s": seconds / images * 1000,
                         "steps": report["seconds"], "scores": score(report, planted)})
    return rows


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)))
    known, rest = parser.parse_known_args(argv)
    sizes = tuple(int(s) for s in known.sizes.split(","))
    rows = run_cases("python -m benchmarks.audit", __doc__.splitlines()[0],
                     {"planted": lambda work: case_planted(work, sizes)}, rest)
    print(f"{'case':<40}{'s':>7}{'s/1000':>8}  recall / precision: exact  near  labels (p@k)  damaged")
    for row in rows:
        s = row["scores"]
        kinds = "  ".join(f"{s[k]['recall']:.2f}/{s[k]['precision']:.2f}" for k in ("exact", "near", "mislabelled", "damaged"))
        print(f"{row['case']:<40}{row['seconds']:>7.1f}{row['per_1000_s']:>8.1f}  {kinds}  "
              f"(labels p@k {s['mislabelled']['precision_at_k']:.2f})")
    write_results("audit", rows)


if __name__ == "__main__":
    main()
