"""Feature-extraction benchmark: ``python -m benchmarks.run [--images 2000] [--help]``.

Measures, side by side on the same CIFAR-10 JPEGs (224x224, fp32 unless said):
(a) the classic tutorial path: keras.applications ResNet50 + load_img/preprocess_input/predict;
(b) plain Keras predict of the default backbone (EfficientNet-Lite0);
(c) our engine (OpenVINO, and ONNX Runtime) on a cold then warm feature cache;
plus the reduced-precision mode and its accuracy cost, a warm re-run of ``train``, and peak
RSS against dataset size. Prints a table and writes JSON to benchmarks/results/.
Every case runs in its own process (its own peak RSS). The paths (a) and (b) are slow, so
they run on a prefix of the images (their rate does not depend on how many).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.data import balanced_files, cifar_root, linked_dataset

RESULTS = Path(__file__).resolve().parent / "results"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=2000, help="CIFAR-10 train JPEGs for the engine (default 2000)")
    p.add_argument("--classic-images", type=int, default=64, help="images for (a), the slow ResNet50 path")
    p.add_argument("--keras-images", type=int, default=128, help="images for (b), plain Keras predict")
    p.add_argument("--test-images", type=int, default=1000, help="CIFAR-10 test JPEGs for the precision check")
    p.add_argument("--reduced", default="bf16", help="reduced precision to measure, or 'none'")
    p.add_argument("--memory-sizes", default="1000,10000,50000", help="dataset sizes of the RSS scan ('' = skip)")
    p.add_argument("--memory-input", type=int, default=64,
                   help="input size of the RSS scan (64 keeps 50k images to about a minute; 224 = full cost)")
    p.add_argument("--sweep", action="store_true", help="also try OpenVINO batch sizes x streams")
    p.add_argument("--skip", default="", help="comma list of parts to skip: classic,keras,onnx,train,precision")
    p.add_argument("--work", type=Path, default=Path.home() / ".cache" / "keras-transfer-bench",
                   help="where CIFAR-10 is unpacked and caches live (outside the repo)")
    return p.parse_args(argv)


class Bench:
    """Runs cases in subprocesses with the benchmark's own cache root; collects their results."""

    def __init__(self, work: Path):
        self.work = work
        self.env = {**os.environ, "KERAS_TRANSFER_CACHE": str(work / "cache"), "KERAS_BACKEND": "torch",
                    "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[1]),
                                                   os.environ.get("PYTHONPATH", "")])}
        self.results: dict[str, dict] = {}

    def case(self, key: str, name: str, args: dict | list) -> dict:
        file = self.work / f"args-{key}.json"
        file.write_text(json.dumps({"files": args} if isinstance(args, list) else args))
        print(f"... {key}", file=sys.stderr, flush=True)
        done = subprocess.run([sys.executable, "-m", "benchmarks.cases", name, str(file)], env=self.env,
                              capture_output=True, text=True)
        if done.returncode:
            result = {"error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "failed"}
        else:
            result = json.loads(done.stdout.strip().splitlines()[-1])
        self.results[key] = result
        return result

    def fresh(self, name: str) -> str:
        """An empty feature-cache folder (a cold cache)."""
        folder = self.work / "cache" / name
        shutil.rmtree(folder, ignore_errors=True)
        return str(folder)


def _engine_cases(bench: Bench, args, train: list[str], test: list[str], skip: set[str]) -> None:
    feats = bench.work / "feats"
    feats.mkdir(parents=True, exist_ok=True)
    bench.case("engine_openvino", "engine", {"files": train, "runtime": "openvino", "cache": bench.fresh("features"),
                                             "save": str(feats / "fp32_train.npy")})
    if "onnx" not in skip:
        bench.case("engine_onnx", "engine", {"files": train, "runtime": "onnx", "cache": bench.fresh("f-onnx")})
    if "precision" not in skip and args.reduced != "none":
        bench.case("engine_openvino_" + args.reduced, "engine", {
            "files": train, "runtime": "openvino", "precision": args.reduced, "cache": bench.fresh("f-reduced"),
            "save": str(feats / "reduced_train.npy")})
        for name, precision in (("fp32", "fp32"), ("reduced", args.reduced)):
            bench.case(f"test_{name}", "engine", {"files": test, "runtime": "openvino", "precision": precision,
                                                 "cache": bench.fresh(f"f-test-{name}"),
                                                 "save": str(feats / f"{name}_test.npy")})
        bench.case("precision_cost", "precision_cost", {
            "files": {"train": train, "test": test},
            "features": {f"{n}_{s}": str(feats / f"{n}_{s}.npy") for n in ("fp32", "reduced")
                         for s in ("train", "test")}})


def _sweep(bench: Bench, train: list[str]) -> None:
    for batch in (1, 4, 8, 16):
        for streams in (None, 1, 2):
            bench.case(f"sweep_b{batch}_s{streams or 'auto'}", "engine",
                       {"files": train, "runtime": "openvino", "batch_size": batch, "streams": streams,
                        "cache": bench.fresh("f-sweep")})


def run(args: argparse.Namespace) -> dict:
    skip = set(filter(None, args.skip.split(",")))
    bench = Bench(args.work)
    started, load_before = time.time(), os.getloadavg()
    root = cifar_root(args.work)
    train, test = ([str(f) for f in balanced_files(root, split, n)]
                   for split, n in (("train", args.images), ("test", args.test_images)))
    _engine_cases(bench, args, train, test, skip)
    if "classic" not in skip:
        bench.case("classic_resnet50", "classic_resnet50", train[:args.classic_images])
    if "keras" not in skip:
        bench.case("keras_lite0", "keras_lite0", train[:args.keras_images])
    if "train" not in skip:
        data = linked_dataset([Path(f) for f in train], args.work / f"cifar-{args.images}")
        shutil.rmtree(args.work / "run", ignore_errors=True)
        bench.case("warm_train", "warm_train", {"data": str(data), "out": str(args.work / "run")})
    for size in filter(None, args.memory_sizes.split(",")):
        files = [str(f) for f in balanced_files(root, "train", int(size))]
        bench.case(f"memory_{size}", "memory", {"files": files, "size": args.memory_input,
                                                "runtime": "openvino", "cache": bench.fresh("f-memory")})
    if args.sweep:
        _sweep(bench, train)
    return {"started": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started)),
            "seconds": round(time.time() - started, 1), "machine": _machine(load_before),
            "settings": {k: str(v) for k, v in vars(args).items()}, "results": bench.results}


def _machine(load_before: tuple[float, ...]) -> dict:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else ""
    return {"cpu": model, "cores": os.cpu_count(), "load_before": load_before, "load_after": os.getloadavg(),
            "python": platform.python_version()}


def table(report: dict) -> str:
    """The results as a text table, rates relative to the classic ResNet50 path."""
    results = report["results"]
    base = results.get("classic_resnet50", {}).get("images_per_s")
    lines = [f"{'case':34} {'images':>7} {'img/s':>8} {'vs (a)':>7} {'peak RSS MB':>12}  notes"]

    def row(name: str, r: dict, note: str = "") -> None:
        rate = r.get("images_per_s")
        ratio = f"{rate / base:.1f}x" if rate and base else ""
        lines.append(f"{name:34} {r.get('images', ''):>7} {rate or '':>8} {ratio:>7} "
                     f"{r.get('peak_rss_mb', ''):>12}  {note or r.get('error', '')}")

    names = {"classic_resnet50": "(a) ResNet50 keras predict", "keras_lite0": "(b) Lite0 keras predict"}
    for key, r in results.items():
        if key in names:
            row(names[key], r)
        elif key.startswith(("engine_", "sweep_")) and "error" not in r:
            row(f"(c) {key} cold", r, f"{r['runtime']}, setup {r['setup_seconds']} s (export+compile)")
            row(f"(c) {key} warm", {**r["warm"], "peak_rss_mb": r["peak_rss_mb"]}, "content hash + cache read")
        elif key.startswith("memory_"):
            row(f"RSS scan {key[7:]} images", r, f"streaming into the cache, {report['settings']['memory_input']} px")
        elif "error" in r:
            row(key, r)
    if "warm_train" in results:
        r = results["warm_train"]
        lines.append(f"train re-run: features {r.get('rerun_feature_seconds')} s (fresh run folder, shared cache: "
                     f"{r.get('first_feature_seconds')} s); accuracy {r.get('accuracy')}")
    if "precision_cost" in results:
        r = results["precision_cost"]
        lines.append(f"{report['settings']['reduced']} vs fp32: feature rel. error mean {r['feature_rel_error_mean']:.4f} "
                     f"max {r['feature_rel_error_max']:.4f}; logistic-regression accuracy "
                     f"{r['fp32_accuracy']:.4f} (fp32) vs {r['reduced_accuracy']:.4f}")
    machine = report["machine"]
    lines.append(f"{machine['cpu']}, {machine['cores']} cores, load {machine['load_before'][0]:.1f} -> "
                 f"{machine['load_after'][0]:.1f}; {report['seconds']} s in total")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    report = run(parse_args(argv))
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for name in (f"features-{stamp}.json", "latest.json"):
        (RESULTS / name).write_text(json.dumps(report, indent=2))
    print(table(report))
    print(f"JSON: {RESULTS / f'features-{stamp}.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
