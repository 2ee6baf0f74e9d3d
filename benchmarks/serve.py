"""The server under a bounded load on loopback: ``python -m benchmarks.serve [--only ...]``.

The default hymenoptera run is served by ``keras-transfer serve`` (a child process, stopped at
the end); clients are httpx ``AsyncClient`` tasks in this process, each sending one image per
request (hymenoptera ``val/`` photos in turn) one after another. Cases:
- ``latency``: 1 client x 200 requests: p50 / p95 / p99 latency (goal: p95 <= 100 ms);
- ``load``: 8 clients x 200 requests, batching on (default limits) and then a server started
  with ``--max-batch 1`` (one image per engine call): throughput, latencies, non-2xx count
  (goal: no 5xx; batching gives more throughput, ratio printed).
Writes ``benchmarks/results/serve.json``.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import numpy as np

from benchmarks.default_path import run_cases, write_results
from benchmarks.predict import HYMENOPTERA, _run

REQUESTS = 200


def _load(url: str, clients: int, photos: list[tuple[str, bytes]]) -> dict:
    import httpx

    latencies, statuses = [], []

    async def client(number: int) -> None:
        async with httpx.AsyncClient(base_url=url, timeout=60) as http:
            for i in range(REQUESTS):
                name, data = photos[(number * REQUESTS + i) % len(photos)]
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


def _served(work: Path, clients: int, options: list[str] = ()) -> dict:
    import httpx

    from keras_transfer.serve.process import ServerProcess

    env = {**os.environ, "KERAS_TRANSFER_CACHE": str(work / "cache-predict")}
    run = _run(work, env)
    photos = [(p.name, p.read_bytes()) for p in sorted((HYMENOPTERA / "val").rglob("*.jpg"))]
    with ServerProcess([run], list(options), env=env) as server:
        _load(server.url, 1, photos[:8])  # warm-up: first requests pay for lazy set-up
        row = _load(server.url, clients, photos)
        served = httpx.get(server.url + "/v1/health").json()["served"]["ants"]
    row["images_per_engine_call"] = served["images"] / served["engine_calls"]
    return row


def case_latency(work: Path) -> list[dict]:
    row = _served(work, 1)
    return [{"case": "1 client x 200 single-image requests", **row, "goal": "p95 <= 100 ms", "met": row["p95_ms"] <= 100}]


def case_load(work: Path) -> list[dict]:
    batched = _served(work, 8)
    single = _served(work, 8, ["--max-batch", "1"])
    ratio = batched["requests_per_s"] / single["requests_per_s"]
    return [{"case": "8 clients x 200, batching on", **batched, "goal": "no 5xx", "met": batched["5xx"] == 0},
            {"case": "8 clients x 200, --max-batch 1 (one image per engine call)", **single},
            {"case": "batching: throughput ratio (on / off)", "seconds": 0.0, "ratio": ratio,
             "goal": "> 1", "met": ratio > 1}]


CASES = {"latency": case_latency, "load": case_load}


def main(argv: list[str] | None = None) -> None:
    rows = run_cases("python -m benchmarks.serve", __doc__.splitlines()[0], CASES, argv)
    print(f"{'case':<62}{'req/s':>8}{'p50 ms':>8}{'p95 ms':>8}{'p99 ms':>8}{'non-2xx':>8}{'img/call':>9}  goal / met")
    for r in rows:
        if "ratio" in r:
            numbers = f"{r['ratio']:>8.2f}x" + " " * 41
        else:
            numbers = (f"{r['requests_per_s']:>8.1f}{r['p50_ms']:>8.1f}{r['p95_ms']:>8.1f}{r['p99_ms']:>8.1f}"
                       f"{r['non_2xx']:>8}{r['images_per_engine_call']:>9.2f}")
        verdict = "" if "met" not in r else ("MET" if r["met"] else "NOT MET")
        print(f"{r['case']:<62}{numbers}  {r.get('goal', '')} {verdict}")
    write_results("serve", rows)


if __name__ == "__main__":
    main()
