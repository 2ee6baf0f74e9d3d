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
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.data import cpu
from benchmarks.default_path import CLI, run_cases, write_results

DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"
SETS = {"hymenoptera": DATASETS / "hymenoptera_data", "flowers5": DATASETS / "flowers5"}
BACKBONE = "efficientnet_lite0"
QUICK = "--quick" in sys.argv


def _trained(work: Path, name: str, data: Path, env: dict) -> Path:
    run = work / "runs-studio" / name
    if not (run / "config.json").exists():
        subprocess.run(CLI + ["train", str(data), "--backbone", BACKBONE, "--out", str(run), "-q"], env=env, check=True)
    return run


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
        env = {**os.environ, "KERAS_TRANSFER_CACHE": str(work / "cache-studio")}
        run = _trained(work, name, data, env)
        cold_cache = work / "cache-studio-cold"
        shutil.rmtree(cold_cache, ignore_errors=True)
        shutil.copytree(work / "cache-studio", cold_cache, ignore=shutil.ignore_patterns("features*", "audit*"))
        shutil.rmtree(run / "studio", ignore_errors=True)  # no workspace, no thumbnails
        cold = _open(data, run, {**env, "KERAS_TRANSFER_CACHE": str(cold_cache)})
        warm = _open(data, run, {**env, "KERAS_TRANSFER_CACHE": str(cold_cache)})
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

    env = {**os.environ, "KERAS_TRANSFER_CACHE": str(work / "cache-studio")}
    data = _ten_thousand(work)
    run = _trained(work, "flowers5-10k", data, env)
    shutil.rmtree(run / "studio" / "thumbnails", ignore_errors=True)
    rows = []
    with StudioProcess(data, ["--run", str(run)], timeout=900, env=env) as studio, sync_playwright() as p:
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
            page.evaluate("window.scrollTo(0, document.body.scrollHeight)")
            page.wait_for_function(_LOADED % total, timeout=300_000, polling=50)
            scrolled = time.perf_counter() - start
            rows.append({"case": f"10,000 images: grid of every image, thumbnails {kind}", "seconds": paint,
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
