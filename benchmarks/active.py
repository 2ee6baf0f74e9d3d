"""Labelling queue and pseudo-labels: ``python -m benchmarks.active [--quick] [--only flowers5|cifar10]``.

Simulated labelling on cached lite0 features (4 stages pooled) of flowers5 (every photo; a fixed
stratified 20% held out) and CIFAR-10 (5,000 train images as the pool; 1,000 test images held
out): 5 labelled images per class to start (drawn per seed), the rest a pool whose labels stay
hidden until a strategy "labels" them, batches of 20, 12 batches; after each batch the head is
refit and scored on the held-out images, which no choice ever sees. Seeds 0-2 for random and
mixed (the start set and random's order), 0-1 for uncertainty, 0 for diversity. Inside the
simulation the head is the solver's softmax regression at a fixed C (``SIM_C``; cross-validation
every round would take minutes); seed 0's final labelled sets are also fit by the real solver
(C by cross-validation). Also
timed: one re-rank of 5,000 images (head probabilities + ranking, warm). Pseudo-labels: flowers5,
10 labelled images per class, the rest of the pool unlabelled, held-out accuracy with and
without ``strategies.pseudo.self_train`` (seed 0). Near duplicates: the cosine of re-encoded,
resized and cropped copies of flowers5 photos to their originals beside the nearest distinct
image's. Prints the CPU, load and a table; writes benchmarks/results/active[-NAME].json and
docs/active-learning[-NAME].png (``--only``: one dataset's parts, so the two can run side by side).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from benchmarks.data import REPO, balanced_files, cifar_root, cpu, linked_dataset

RESULTS = Path(__file__).resolve().parent / "results"
FLOWERS = REPO.parent / "shared" / "datasets" / "flowers5"
BACKBONE = "efficientnet_lite0"  # 4 stages pooled, as the solved default path pools Lite backbones
CIFAR_POOL, CIFAR_HELD = 5000, 1000  # CIFAR-10 train images in the pool, test images held out


def load_features(name: str, work: Path) -> dict:
    """Cached lite0 features of flowers5 (every image) or CIFAR-10 (5,000 train + 1,000 test images).

    Returns:
        {"x": (N, D), "y": (N,), "names": class names, "paths": (N,), "held": (N,) bool or None}.
    """
    from keras_transfer.config import TrainConfig, feature_source
    from keras_transfer.data.dataset import Split

    if name == "flowers5":
        folder, held_count = FLOWERS, 0
    else:
        root = cifar_root(work)
        folder = linked_dataset(balanced_files(root, "train", CIFAR_POOL), work / "active-cifar" / "pool")
        linked_dataset(balanced_files(root, "test", CIFAR_HELD), work / "active-cifar" / "held")
        folder, held_count = folder.parent, CIFAR_HELD
    names = sorted(p.name for p in (FLOWERS if name == "flowers5" else folder / "pool").iterdir() if p.is_dir())
    parts = ["."] if name == "flowers5" else ["pool", "held"]
    paths, labels, held = [], [], []
    for part in parts:
        for label, cls in enumerate(names):
            files = sorted((folder / part / cls).glob("*.jpg"))
            paths += files
            labels += [label] * len(files)
            held += [part == "held"] * len(files)
    config = TrainConfig(data=str(folder), backbone=BACKBONE)
    source = feature_source(config, work / f"active-{name}-run")
    split = Split(f"active-{name}", paths, np.array(labels, np.int64))
    x, indices = source(split)
    return {"x": x, "y": split.labels[indices], "names": names, "paths": np.array([str(p) for p in paths])[indices],
            "held": np.array(held)[indices] if held_count else None}


SIM_C = 0.1  # fixed inverse L2 strength of the head inside the simulation (standardised features)
START, BATCH = 5, 20
STRATEGIES = ("random", "uncertainty", "diversity", "mixed")


def held_out_split(data: dict, seed: int = 0) -> np.ndarray:
    """The held-out mask: CIFAR's test images, or a stratified 20% of flowers5 (fixed seed)."""
    from keras_transfer.data.dataset import stratified_split

    if data["held"] is not None:
        return data["held"]
    _, held = stratified_split(data["y"], 0.2, seed)
    mask = np.zeros(len(data["y"]), bool)
    mask[held] = True
    return mask


def fit_head(x: np.ndarray, y: np.ndarray, n: int, C: float | None = SIM_C):
    from keras_transfer.strategies.solver import fit_linear_head

    return fit_linear_head(x[None], y, n, C=C).head


class SimHead:
    """The solver's softmax regression at ``SIM_C`` on features standardised once over every image
    (no labels used), each fit warm-started from the previous round's weights (minutes -> seconds)."""

    def __init__(self, x: np.ndarray, n: int):
        std = x.std(axis=0)
        self.scaled, self.n, self.w = ((x - x.mean(axis=0)) / np.where(std < 1e-6, 1, std)).astype(np.float32), n, None

    def fit(self, rows: np.ndarray, y: np.ndarray) -> SimHead:
        from keras_transfer.strategies.solver import softmax_regression

        self.w = softmax_regression(self.scaled[rows], y, self.n, SIM_C, np.ones(len(y), np.float32), self.w)
        return self

    def predict(self, rows: np.ndarray) -> np.ndarray:
        from keras_transfer.inference.head import softmax

        return softmax(self.scaled[rows] @ self.w[:-1] + self.w[-1])


def simulate(data: dict, strategy: str, seed: int, rounds: int) -> dict:
    """Held-out accuracy after each batch ({"curve": [(labels, accuracy)], start and every batch of
    ``BATCH``}) and of the real solver on the final labelled set ({"solver": accuracy})."""
    from keras_transfer.strategies.active import rank

    x, y, n = data["x"], data["y"], len(data["names"])
    held = held_out_split(data)
    rng = np.random.default_rng(seed)
    pool = np.flatnonzero(~held)
    labelled = np.concatenate([rng.choice(pool[y[pool] == c], START, replace=False) for c in range(n)])
    left = np.setdiff1d(pool, labelled)
    curve, head, tested = [], SimHead(x, n), np.flatnonzero(held)
    for step in range(rounds + 1):
        head.fit(labelled, y[labelled])
        curve.append((len(labelled), float((head.predict(tested).argmax(1) == y[tested]).mean())))
        if step == rounds:
            break
        order = rank(head.predict(left), x[left], x[labelled], strategy, seed=seed * 1000 + step,
                     depth=BATCH).order[:BATCH]
        labelled, left = np.concatenate([labelled, left[order]]), np.delete(left, order)
    if seed:  # the real solver (C by cross-validation) on the final labelled set: seed 0 only (it takes a while)
        return {"curve": curve, "solver": None}
    final = fit_head(x[labelled], y[labelled], n, C=None)
    return {"curve": curve, "solver": float((final.predict(x[held]).argmax(1) == y[held]).mean())}


def labels_needed(curve: list[tuple[int, float]], target: float) -> float:
    """Labels at which ``curve`` first reaches ``target`` (linear between points; inf if never)."""
    for (n0, a0), (n1, a1) in zip(curve, curve[1:]):
        if a0 >= target:
            return n0
        if a1 >= target:
            return n0 + (n1 - n0) * (target - a0) / (a1 - a0)
    return float(curve[-1][0]) if curve and curve[-1][1] >= target else float("inf")


def efficiency(runs: dict) -> dict:
    """Per strategy: labels it needs for the accuracy random's mean curve has at N, divided by N (at every N
    past the start), and its worst gap below random's mean in units of random's spread across seeds."""
    random = np.array([[a for _, a in r["curve"]] for r in runs["random"]])
    labels = [n for n, _ in runs["random"][0]["curve"]]
    mean, spread = random.mean(axis=0), random.std(axis=0, ddof=1) if len(random) > 1 else np.zeros(len(labels))
    out = {}
    for strategy, seeds in runs.items():
        curve = [(n, float(a)) for n, a in zip(labels, np.mean([[a for _, a in r["curve"]] for r in seeds], axis=0))]
        ratios = {n: labels_needed(curve, mean[i]) / n for i, n in enumerate(labels) if i > 0}
        gap = mean - np.array([a for _, a in curve])
        out[strategy] = {"curve": curve, "ratio_at": ratios, "ratio_final": ratios[labels[-1]],
                         "ratio_worst": max(ratios.values()), "worst_gap_below_random": float(gap.max()),
                         "random_spread_at_worst_gap": float(spread[int(gap.argmax())]),
                         "solver_final": seeds[0]["solver"]}
    return out


def rerank_seconds(data: dict, repeats: int = 3) -> dict:
    """Seconds of one warm re-rank of 5,000 pool images (the head's probabilities + the ranking), per strategy."""
    import time

    from keras_transfer.strategies.active import rank

    x, y, n = data["x"], data["y"], len(data["names"])
    held = held_out_split(data)
    pool = np.flatnonzero(~held)[:5000]
    labelled = np.concatenate([np.flatnonzero((y == c) & ~held)[:10] for c in range(n)])
    pool = np.setdiff1d(pool, labelled)
    head = fit_head(x[labelled], y[labelled], n)
    seconds = {}
    for strategy in STRATEGIES:
        times = []
        for _ in range(repeats + 1):  # the first warms up
            start = time.perf_counter()
            rank(head.predict(x[pool]), x[pool], x[labelled], strategy)
            times.append(time.perf_counter() - start)
        seconds[strategy] = min(times[1:])
    return {"images": len(pool), "labelled": len(labelled), "seconds": seconds}


def pseudo_labels(data: dict, seeds=(0, 1, 2)) -> list[dict]:
    """flowers5, 10 labelled images per class, the rest of the pool unlabelled: held-out accuracy with and without."""
    from keras_transfer.strategies.pseudo import pseudo_labels as take, self_train

    x, y, n = data["x"], data["y"], len(data["names"])
    held = held_out_split(data)
    rows = []
    for seed in seeds:
        rng = np.random.default_rng(seed)
        pool = np.flatnonzero(~held)
        labelled = np.concatenate([rng.choice(pool[y[pool] == c], 10, replace=False) for c in range(n)])
        unlabelled = np.setdiff1d(pool, labelled)
        trained = self_train(x[labelled][None], y[labelled], x[unlabelled][None], n, seed=seed)
        score = lambda head: float((head.predict(x[held]).argmax(1) == y[held]).mean())  # noqa: E731
        picked, classes, lowest = take(trained.plain.head, x[unlabelled], trained.threshold or 0.0)
        rows.append({"seed": seed, "labelled": len(labelled), "unlabelled": len(unlabelled),
                     "held_out": int(held.sum()), "without": score(trained.plain.head),
                     "with": score(trained.with_pseudo) if trained.with_pseudo is not None else None,
                     "threshold": trained.threshold, "lowest_probability": lowest, "pseudo_labels": trained.confident,
                     "kept": trained.kept, "pseudo_label_accuracy": float((classes == y[unlabelled][picked]).mean())
                     if len(picked) else None, "cv": trained.cv})
    return rows


def duplicate_cosines(data: dict, work: Path, count: int = 40) -> dict:
    """Cosine (centred, unit features as ``rank`` uses) of altered copies to their originals, and of every
    flowers5 photo to its nearest other photo (byte-identical copies left out)."""
    from PIL import Image

    from keras_transfer.config import TrainConfig, feature_source
    from keras_transfer.data.dataset import Split
    from keras_transfer.strategies.active import nearest, normalise

    folder = work / "active-duplicates"
    folder.mkdir(parents=True, exist_ok=True)
    picks = np.arange(0, len(data["paths"]), len(data["paths"]) // count)[:count]
    edits = {"jpeg q70": lambda im: im, "resized to 75%": lambda im: im.resize((im.width * 3 // 4, im.height * 3 // 4)),
             "10% cropped": lambda im: im.crop((im.width // 20, im.height // 20, im.width * 19 // 20,
                                                im.height * 19 // 20))}
    files, owners, kinds = [], [], []
    for i in picks:
        image = Image.open(data["paths"][i]).convert("RGB")
        for k, (kind, edit) in enumerate(edits.items()):
            file = folder / f"{i}-{k}.jpg"
            if not file.exists():
                edit(image).save(file, quality=70)
            files.append(file), owners.append(i), kinds.append(kind)
    source = feature_source(TrainConfig(data=str(FLOWERS), backbone=BACKBONE), work / "active-flowers5-run")
    copies, read = source.view(Split("copies", files, np.zeros(len(files), np.int64)), 0)
    mean = data["x"].mean(axis=0)
    x, c = normalise(data["x"], mean), normalise(copies, mean)
    to_original = (c * x[np.array(owners)[read]]).sum(axis=1)
    sims = x @ x.T
    np.fill_diagonal(sims, -1)
    sims[sims > 0.9999] = -1  # byte-identical copies (4 photos sit in both rose and tulip)
    nn = sims.max(axis=1)
    by_kind = {kind: float(to_original[np.array(kinds)[read] == kind].min()) for kind in edits}
    return {"copies_min_cosine": by_kind, "copies_min": float(to_original.min()),
            "distinct_nearest_percentiles": {p: float(np.percentile(nn, p)) for p in (50, 99, 99.9)},
            "distinct_above_cut": int((nn > 0.95).sum()), "photos": len(nn)}


def plot(results: dict, path: Path) -> None:
    """Learning curves, one panel per dataset (uncertainty dashed: mixed often runs on top of it)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(6 * len(results), 4.2))
    for ax, (name, result) in zip(np.atleast_1d(axes), results.items()):
        for strategy, seeds in result["runs"].items():
            for k, run in enumerate(seeds):
                n, a = zip(*run["curve"])
                ax.plot(n, np.array(a) * 100, color={"random": "grey", "uncertainty": "tab:orange",
                                                      "diversity": "tab:green", "mixed": "tab:blue"}[strategy],
                        alpha=0.6 if strategy == "random" else 1, lw=1 if strategy == "random" else 2,
                        ls="--" if strategy == "uncertainty" else "-",
                        label=f"{strategy} ({len(seeds)} seed{'s' if len(seeds) > 1 else ''})" if k == 0 else None)
        ax.set_title(f"{name}: held-out accuracy ({result['held_out']} images)")
        ax.set_xlabel("labelled images")
        ax.set_ylabel("accuracy %")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def run_dataset(name: str, work: Path, rounds: int, seeds: tuple[int, ...]) -> dict:
    """Every strategy's curves: random and mixed with each of ``seeds``, uncertainty with two, diversity one."""
    data = load_features(name, work)
    runs = {}
    for strategy in STRATEGIES:
        runs[strategy] = []
        for seed in seeds if strategy in ("random", "mixed") else seeds[:1 if strategy == "diversity" else 2]:
            runs[strategy].append(simulate(data, strategy, seed, rounds))
            print(f"  {name} {strategy} seed {seed}: " + " ".join(f"{n}:{100 * a:.1f}" for n, a in
                                                               runs[strategy][-1]["curve"]), flush=True)
    return {"images": len(data["y"]), "held_out": int(held_out_split(data).sum()), "dim": int(data["x"].shape[1]),
            "runs": runs, "summary": efficiency(runs), "data": data}


def main(argv: list[str] | None = None) -> None:
    import argparse
    import json
    import time

    parser = argparse.ArgumentParser(prog="python -m benchmarks.active", description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path.home() / ".cache" / "keras-transfer-bench")
    parser.add_argument("--quick", action="store_true", help="fewer batches and seeds (a smoke run)")
    parser.add_argument("--only", choices=("flowers5", "cifar10"), help="one dataset (its parts only; "
                        "results/active-NAME.json): the two halves can run side by side")
    args = parser.parse_args(argv)
    os.environ.setdefault("KERAS_TRANSFER_CACHE", str(args.work / "cache-active"))
    print(f"CPU: {cpu()}; load {os.getloadavg()[0]:.1f}")
    rounds = {"flowers5": 6 if args.quick else 12, "cifar10": 6 if args.quick else 12}
    seeds = (0, 1) if args.quick else (0, 1, 2)
    start, results = time.perf_counter(), {}
    for name in [args.only] if args.only else ("flowers5", "cifar10"):
        results[name] = run_dataset(name, args.work, rounds[name], seeds)
        print(f"\n{name}: {results[name]['images']} images, {results[name]['held_out']} held out, "
              f"lite0 features ({results[name]['dim']} values), start {START}/class, batches of {BATCH}, "
              f"head C={SIM_C:g}; mean of seeds {list(seeds)} (uncertainty: 2, diversity: 1; solver: seed 0)")
        print(f"{'strategy':<12}" + "".join(f"{n:>7}" for n, _ in results[name]["summary"]["random"]["curve"][::4])
              + f"{'solver':>8}{'x N final':>10}{'x N worst':>10}{'worst gap':>10}")
        for strategy, row in results[name]["summary"].items():
            print(f"{strategy:<12}" + "".join(f"{100 * a:>7.1f}" for _, a in row["curve"][::4])
                  + f"{100 * row['solver_final']:>8.1f}{row['ratio_final']:>10.2f}{row['ratio_worst']:>10.2f}"
                  f"{100 * row['worst_gap_below_random']:>9.1f}p")
    timing, pseudo, duplicates = None, None, None
    if "cifar10" in results:
        timing = rerank_seconds(results["cifar10"]["data"])
        print(f"\nre-rank of {timing['images']} CIFAR-10 images, warm: "
              + ", ".join(f"{s} {t:.3f} s" for s, t in timing["seconds"].items()) + " (goal <= 2 s)")
    if "flowers5" in results:
        pseudo, duplicates = flowers_extras(results["flowers5"]["data"], args.work, seeds[:1])
    met = {name: {"ratio_final": r["summary"]["mixed"]["ratio_final"] <= 0.6,
                  "never_below_noise": r["summary"]["mixed"]["worst_gap_below_random"]
                  <= 2 * max(r["summary"]["mixed"]["random_spread_at_worst_gap"], 0.005)} for name, r in results.items()}
    if timing:
        met["rerank"] = max(timing["seconds"].values()) <= 2.0
    print(f"\ngoals: {met}; {time.perf_counter() - start:.0f} s in all")
    RESULTS.mkdir(exist_ok=True)
    suffix = f"-{args.only}" if args.only else ""
    plot(results, REPO / "docs" / f"active-learning{suffix}.png")
    for r in results.values():
        r.pop("data")
    (RESULTS / f"active{suffix}.json").write_text(json.dumps(
        {"cpu": cpu(), "load": os.getloadavg()[0], "results": results, "rerank": timing, "pseudo_labels": pseudo,
         "duplicates": duplicates, "met": met}, indent=1, default=str))


def flowers_extras(data: dict, work: Path, seeds) -> tuple[list[dict], dict]:
    """The pseudo-label and near-duplicate parts (flowers5), printed."""
    pseudo = pseudo_labels(data, seeds)
    print("\npseudo-labels, flowers5, 10 labelled per class:")
    for row in pseudo:
        print(f"  seed {row['seed']}: held-out {100 * row['without']:.1f}% without, "
              f"{100 * row['with']:.1f}% with {row['pseudo_labels']} pseudo-labels (top {row['threshold']:g} of each "
              f"predicted class, p >= {row['lowest_probability']:.2f}) "
              f"({'kept' if row['kept'] else 'not kept'} by CV; pseudo-labels {100 * (row['pseudo_label_accuracy'] or 0):.1f}% right)")
    duplicates = duplicate_cosines(data, work)
    print(f"\nnear duplicates (flowers5): altered copies' lowest cosine to their original {duplicates['copies_min_cosine']}; "
          f"distinct photos' nearest other photo: percentiles {duplicates['distinct_nearest_percentiles']}, "
          f"{duplicates['distinct_above_cut']} of {duplicates['photos']} above 0.95")
    return pseudo, duplicates


if __name__ == "__main__":
    main()
