"""The server under a bounded load on loopback: ``python -m benchmarks.serve [--only ...] [--before REV]``.

The default hymenoptera run (``keras-transfer train`` defaults) is served by ``keras-transfer
serve`` (a child process, stopped at the end); clients are httpx ``AsyncClient`` tasks in this
process (another process than the server), each sending one image per request (hymenoptera
``val/`` photos in turn) one after another. Cases:
- ``latency``: 1 client x ``--requests``: p50 / p95 / p99 latency (goal: p95 <= 50 ms);
- ``load``: 8 clients x ``--requests``, default limits: throughput, latencies, non-2xx count
  (goal: >= 100 images/s, no 5xx); with ``--batching`` also a server started with
  ``--max-batch 1`` (one image per engine call) and the ratio;
- ``engine``: the ceiling: the run's compiled engine alone in this process, random images in
  batches of its size, requests in flight (no decoding, no HTTP): images/s and ms per image
  at batch 1. No server can serve more images per second than this.
``--before REV`` serves the code of an older commit too (``git archive`` into the work folder),
each case alternated between it and the working tree, so the two are measured side by side.
The CPU, its flags and the load average are printed. Writes ``benchmarks/results/serve.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import time
from pathlib import Path

import numpy as np

from benchmarks.data import REPO, cpu
from benchmarks.default_path import write_results
from benchmarks.predict import HYMENOPTERA, _run


def _load(url: str, clients: int, requests: int, photos: list[tuple[str, bytes]]) -> dict:
    import httpx

    latencies, statuses = [], []

    async def client(number: int) -> None:
        async with httpx.AsyncClient(base_url=url, timeout=120) as http:
            for i in range(requests):
                name, data = photos[(number * requests + i) % len(photos)]
                start = time.perf_counter()
                answer = await http.post("/v1/predict", files={"files": (name, data, "image/jpeg")})
                latencies.append(time.perf_counter() - start)
                statuses.append(answer.status_code)

    async def run() -> float:
        start = time.perf_counter()
        await asyncio.gather(*(client(n) for n in range(clients)))
        return time.perf_counter() - start

    seconds = asyncio.run(run())
    ms = np.array(latencies) * 1000
    return {"clients": clients, "requests": len(statuses), "seconds": seconds,
            "requests_per_s": len(statuses) / seconds, "p50_ms": float(np.percentile(ms, 50)),
            "p95_ms": float(np.percentile(ms, 95)), "p99_ms": float(np.percentile(ms, 99)),
            "non_2xx": sum(not 200 <= s < 300 for s in statuses), "5xx": sum(s >= 500 for s in statuses)}


def _env(work: Path, code: Path | None) -> dict:
    env = {**os.environ, "KERAS_TRANSFER_CACHE": str(work / "cache-predict")}
    if code is not None:  # the older code first on the path (ahead of the editable install), not the cwd's
        env.update(PYTHONPATH=str(code), PYTHONSAFEPATH="1")
    return env


def _served(work: Path, clients: int, requests: int, code: Path | None, options: list[str] = ()) -> dict:
    import httpx

    from keras_transfer.serve.process import ServerProcess

    run = _run(work, _env(work, None))
    photos = [(p.name, p.read_bytes()) for p in sorted((HYMENOPTERA / "val").rglob("*.jpg"))]
    with ServerProcess([run], list(options), env=_env(work, code), timeout=600) as server:
        _load(server.url, 1, 8, photos)  # warm-up: first requests pay for lazy set-up
        row = _load(server.url, clients, requests, photos)
        served = httpx.get(server.url + "/v1/health").json()["served"]["ants"]
    row["images_per_engine_call"] = served["images"] / served["engine_calls"]
    return {**row, "load_avg": os.getloadavg()[0]}


def _versions(args) -> list[tuple[str, Path | None]]:
    return [(f"before ({args.before})", args.code), ("now", None)] if args.before else [("now", None)]


def case_latency(args) -> list[dict]:
    rows = []
    for label, code in _versions(args):
        row = _served(args.work, 1, args.requests, code)
        rows.append({"case": f"{label}: 1 client x {args.requests} single-image requests", **row,
                     "goal": "p95 <= 50 ms", "met": row["p95_ms"] <= 50})
    return rows


def case_load(args) -> list[dict]:
    rows = []
    for label, code in _versions(args):
        row = _served(args.work, 8, args.requests, code)
        rows.append({"case": f"{label}: 8 clients x {args.requests}", **row, "goal": ">= 100 img/s, no 5xx",
                     "met": row["requests_per_s"] >= 100 and row["5xx"] == 0})
    if args.batching:
        single = _served(args.work, 8, args.requests, None, ["--max-batch", "1"])
        ratio = rows[-1]["requests_per_s"] / single["requests_per_s"]
        rows += [{"case": f"now: 8 clients x {args.requests}, --max-batch 1", **single},
                 {"case": "batching: throughput ratio (on / off)", "seconds": 0.0, "ratio": ratio,
                  "goal": "> 1", "met": ratio > 1}]
    return rows


def case_engine(args) -> list[dict]:
    """The compiled engine alone: the most images per second any server of this run can answer."""
    os.environ["KERAS_TRANSFER_CACHE"] = str(args.work / "cache-predict")
    from keras_transfer.run import RunModel

    engine = RunModel.open(_run(args.work, dict(os.environ))).source.engine
    engine.warm()
    size = engine.maker.size
    images = np.random.default_rng(0).integers(0, 256, (96, size, size, 3), dtype=np.uint8)
    start = time.perf_counter()
    for _ in engine.runtime.stream((None, images[i:i + engine.runtime.batch_size]) for i in range(0, 96, 4)):
        pass
    throughput = 96 / (time.perf_counter() - start)
    single = []
    for i in range(20):
        start = time.perf_counter()
        engine.features(images[i:i + 1])
        single.append((time.perf_counter() - start) * 1000)
    return [{"case": f"engine alone ({engine.runtime.name}, {size} px): the ceiling", "requests_per_s": throughput,
             "p50_ms": float(np.percentile(single, 50)), "p95_ms": float(np.percentile(single, 95)),
             "load_avg": os.getloadavg()[0]}]


CASES = {"latency": case_latency, "load": case_load, "engine": case_engine}


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.serve", description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(CASES), help=f"comma list of {list(CASES)}")
    parser.add_argument("--work", type=Path, default=Path.home() / ".cache" / "keras-transfer-bench")
    parser.add_argument("--requests", type=int, default=200, help="requests per client")
    parser.add_argument("--before", help="also serve this git revision's code, side by side (e.g. HEAD~3)")
    parser.add_argument("--batching", action="store_true", help="also a server with --max-batch 1")
    args = parser.parse_args(argv)
    args.code = None
    if args.before:  # the revision's package only: the run, the data and the clients stay the same
        args.code = args.work / f"code-{args.before.replace('/', '_')}"
        if not (args.code / "keras_transfer").is_dir():
            args.code.mkdir(parents=True, exist_ok=True)
            archive = subprocess.run(["git", "-C", str(REPO), "archive", args.before, "keras_transfer"],
                                     capture_output=True, check=True).stdout
            subprocess.run(["tar", "-x", "-C", str(args.code)], input=archive, check=True)
    return args


def main(argv: list[str] | None = None) -> None:
    args = _parse(argv)
    print(f"CPU: {cpu()}; load average {os.getloadavg()[0]:.2f} (1 min)")
    rows = [row for name in args.only.split(",") for row in CASES[name](args)]
    print(f"{'case':<62}{'img/s':>8}{'p50 ms':>8}{'p95 ms':>8}{'p99 ms':>8}{'non-2xx':>8}{'img/call':>9}{'load':>6}"
          "  goal / met")
    for r in rows:
        if "ratio" in r:
            numbers = f"{r['ratio']:>8.2f}x" + " " * 46
        else:
            numbers = (f"{r['requests_per_s']:>8.1f}{r['p50_ms']:>8.1f}{r['p95_ms']:>8.1f}{r.get('p99_ms', 0):>8.1f}"
                       f"{r.get('non_2xx', 0):>8}{r.get('images_per_engine_call', 0):>9.2f}{r['load_avg']:>6.1f}")
        verdict = "" if "met" not in r else ("MET" if r["met"] else "NOT MET")
        print(f"{r['case']:<62}{numbers}  {r.get('goal', '')} {verdict}")
    write_results("serve", rows)


if __name__ == "__main__":
    main()
