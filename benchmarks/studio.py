"""The studio, timed as a user meets it: ``python -m benchmarks.studio [--only ...] [--quick]``.

Cases (``keras-transfer studio`` as a child process on loopback, the page in headless Chromium):
- ``first_screen``: from starting ``studio DATA --run RUN`` to the page showing the held-out accuracy,
  per-class table and confusion matrix, then to the audit's likely-label-error count, on hymenoptera
  and flowers5 (EfficientNet-Lite0 runs, trained once into the work folder): cold (an empty feature
  cache, no workspace, no thumbnails) and warm (the same command again);
- ``grid_10k``: a data folder of 10,000 images (flowers5's 4,317 photos hard-linked 2-3 times under
  new names: the feature cache extracts each content once), the grid of every image: time to first
  paint (the first row of thumbnails decoded) and to scroll through one page of 200, thumbnails cold
  (made on first request) then cached, and a page turn;
- ``backend``: refit after 10 fixes, add a class of 50 images, the heat map of one image (the
  workspace's own timings, from ``benchmarks/studio_backend.py``).
Writes ``benchmarks/results/studio.json``. ``--quick``: hymenoptera only, and no ``grid_10k``.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

from benchmarks.data import cpu
import keras_transfer  # noqa: F401  (sets the Keras backend before keras is imported)
from benchmarks.default_path import run_cases, write_results

DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"
SETS = {"hymenoptera": DATASETS / "hymenoptera_data", "flowers5": DATASETS / "flowers5"}
BACKBONE = "efficientnet_lite0"
QUICK = "--quick" in sys.argv


def _trained(work: Path, name: str, data: Path) -> Path:
    """A Lite0 run of ``data`` (flowers5: the backend benchmark's run), trained once into the work folder."""
    from keras_transfer.config import TrainConfig
    from keras_transfer.run import train

    if name == "flowers5":
        from benchmarks.studio_backend import _run

        return _run(work)
    run = work / "runs-studio" / name
    if not (run / "config.json").exists():
        train(TrainConfig(data=str(data), backbone=BACKBONE), run)
    return run


def _cold_cache(work: Path) -> dict:
    """The environment of a studio with a cold feature cache: a copy of this process's cache without
    its features and audit results (the engine files and weights kept, as after a first train)."""
    from keras_transfer.base.paths import cache_dir

    cold = work / "cache-studio-cold"
    shutil.rmtree(cold, ignore_errors=True)
    shutil.copytree(cache_dir(), cold, ignore=shutil.ignore_patterns("features*", "audit*", "big-head*"))
    return {**os.environ, "KERAS_TRANSFER_CACHE": str(cold)}


def _browser(p):
    chromium = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))))
    return p.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])


def _open(data: Path, run: Path, env: dict) -> dict:
    """Seconds from the command to the health check, the first screen, and the label-error count."""
    from playwright.sync_api import sync_playwright

    from keras_transfer.studio.process import StudioProcess

    start = time.perf_counter()
    with StudioProcess(data, ["--run", str(run)], timeout=900, env=env) as studio, sync_playwright() as p:
        listening = time.perf_counter() - start
        browser = _browser(p)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(studio.url + "/")
        page.wait_for_selector("#dash:not(.hidden) #cm td.cell", timeout=900_000)
        first = time.perf_counter() - start
        page.wait_for_function("!document.querySelector('#findings').textContent.includes('computing')",
                               timeout=900_000, polling=200)
        findings = time.perf_counter() - start
        browser.close()
    return {"listening_s": listening, "first_screen_s": first, "label_errors_s": findings}


def case_first_screen(work: Path) -> list[dict]:
    rows = []
    for name, data in list(SETS.items())[:1 if QUICK else 2]:
        run = _trained(work, name, data)
        shutil.rmtree(run / "studio", ignore_errors=True)  # no workspace, no thumbnails
        env = _cold_cache(work)
        cold = _open(data, run, env)
        warm = _open(data, run, env)
        for kind, row in (("cold", cold), ("warm", warm)):
            rows.append({"case": f"{name}: studio start -> first screen, {kind} cache", **row,
                         "seconds": row["first_screen_s"], "images": sum(1 for _ in data.rglob("*.jp*g"))})
    return rows


def _ten_thousand(work: Path) -> Path:
    data = work / "studio-10k"
    if sum(1 for _ in data.rglob("*.jpg")) >= 10_000:
        return data
    shutil.rmtree(data, ignore_errors=True)
    photos = sorted(SETS["flowers5"].rglob("*.jpg"))
    for n in range(10_000):
        source = photos[n % len(photos)]
        target = data / source.parent.name / f"{n // len(photos)}_{source.name}"
        target.parent.mkdir(parents=True, exist_ok=True)
        os.link(source, target)
    return data


def case_grid_10k(work: Path) -> list[dict]:
    from playwright.sync_api import sync_playwright

    from keras_transfer.studio.process import StudioProcess

    data = _ten_thousand(work)
    run = _trained(work, "flowers5-10k", data)
    shutil.rmtree(run / "studio" / "thumbnails", ignore_errors=True)
    rows = []
    with StudioProcess(data, ["--run", str(run)], timeout=900) as studio, sync_playwright() as p:
        browser = _browser(p)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(studio.url + "/")
        page.wait_for_selector("#dash:not(.hidden)", timeout=900_000)
        for kind in ("cold", "cached"):
            start = time.perf_counter()
            page.click('[data-view="all"]')
            page.wait_for_function(_LOADED % 6, timeout=300_000, polling=50)
            paint = time.perf_counter() - start
            total = page.evaluate("document.querySelectorAll('.tile').length")
            while page.evaluate("window.scrollY + window.innerHeight < document.body.scrollHeight - 2"):
                page.evaluate("window.scrollBy(0, 800)")  # a user scrolling: lazy thumbnails load in view
                page.wait_for_function(_VISIBLE, timeout=300_000, polling=50)
            scrolled = time.perf_counter() - start
            label = "cold" if kind == "cold" else "cached (server and browser)"
            rows.append({"case": f"10,000 images: grid of every image, thumbnails {label}", "seconds": paint,
                         "first_paint_s": paint, "page_scrolled_s": scrolled, "tiles_per_page": total,
                         "total_images": int(page.inner_text("#gridtitle").split("·")[1].split()[0].replace(",", ""))})
        start = time.perf_counter()
        page.keyboard.press("]")
        page.wait_for_function("document.querySelector('#pageinfo').textContent.startsWith('201')", timeout=300_000)
        page.wait_for_function(_LOADED % 6, timeout=300_000, polling=50)
        rows.append({"case": "10,000 images: next page (200 thumbnails, first row shown)",
                     "seconds": time.perf_counter() - start})
        browser.close()
    return rows


# the first N tiles' thumbnails decoded (naturalWidth > 0)
_LOADED = ("Array.from(document.querySelectorAll('.tile img')).slice(0, %d)"
           ".every(i => i.complete && i.naturalWidth > 0) && document.querySelectorAll('.tile img').length > 0")


# every thumbnail in the viewport decoded
_VISIBLE = ("Array.from(document.querySelectorAll('.tile img')).filter(i => { const r = i.getBoundingClientRect();"
            " return r.bottom > 0 && r.top < innerHeight; }).every(i => i.complete && i.naturalWidth > 0)")


def case_backend(work: Path) -> list[dict]:
    try:
        from benchmarks import studio_backend
    except ImportError as error:
        return [{"case": f"backend timings: benchmarks/studio_backend.py not available ({error})", "seconds": 0.0}]
    return studio_backend.rows(work)


CASES = {"first_screen": case_first_screen, "grid_10k": case_grid_10k, "backend": case_backend}


def main(argv: list[str] | None = None) -> None:
    argv = [a for a in (sys.argv[1:] if argv is None else argv) if a != "--quick"]
    if QUICK and not any(a.startswith("--only") for a in argv):
        argv += ["--only", "first_screen,backend"]
    rows = run_cases("python -m benchmarks.studio", __doc__.splitlines()[0], CASES, argv)
    print(f"{'case':<66}{'seconds':>9}  details")
    for r in rows:
        details = "  ".join(f"{k}={v:.2f}" if isinstance(v, float) else f"{k}={v}" for k, v in r.items()
                            if k not in ("case", "seconds", "met", "goal"))
        verdict = "" if "met" not in r else f"  goal {r['goal']}: {'MET' if r['met'] else 'NOT MET'}"
        print(f"{r['case']:<66}{r['seconds']:>9.2f}  {details}{verdict}")
    print(f"CPU: {cpu()}; load average {os.getloadavg()[0]:.1f}")
    write_results("studio", rows)


if __name__ == "__main__":
    main()
