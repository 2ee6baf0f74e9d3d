"""Dataset exploration figures: class balance, per-class RGB densities and image sizes."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter

from keras_transfer.base import log

SPLIT_COLOURS = {"train": "#1f77b4", "val": "#ff7f0e", "test": "#2ca02c"}


def class_colours(names: list[str]) -> dict[str, tuple]:
    palette = colormaps["tab10" if len(names) <= 10 else "tab20"]
    return {name: palette(i % palette.N) for i, name in enumerate(names)}


def counts_figure(counts: pd.DataFrame) -> Figure:
    """Images per class, one stacked bar segment per split."""
    splits = [c for c in counts.columns if c != "total"]
    horizontal = len(counts) > 12
    size = (9, max(3.5, 0.28 * len(counts))) if horizontal else (min(10, 4 + 0.6 * len(counts)), 3.8)
    figure = Figure(figsize=size, layout="constrained")
    ax = figure.add_subplot()
    positions, base = np.arange(len(counts)), np.zeros(len(counts))
    for split in splits:
        values = counts[split].to_numpy()
        draw = ax.barh if horizontal else ax.bar
        draw(positions, values, 0.7, base, label=split, color=SPLIT_COLOURS.get(split))
        base = base + values
    names = [log.figure_text(n) for n in counts.index]
    if horizontal:
        ax.set_yticks(positions, names)
        ax.invert_yaxis()
        ax.set_xlabel("images")
    else:
        ax.set_xticks(positions, names, rotation=30 if len(names) > 5 else 0, ha="right" if len(names) > 5 else "center")
        ax.set_ylabel("images")
        for x, total in zip(positions, counts["total"]):
            ax.text(x, total, str(int(total)), ha="center", va="bottom", fontsize=9)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1))
    ax.set_title("images per class")
    return figure


def colors_figure(densities: dict[str, np.ndarray]) -> Figure:
    """One panel per RGB channel, one density curve per class."""
    figure = Figure(figsize=(11, 3.6), layout="constrained")
    colours = class_colours(list(densities))
    levels = np.arange(256)
    for c, ax in enumerate(figure.subplots(1, 3, sharey=True)):
        for name, density in densities.items():
            ax.plot(levels, density[c], color=colours[name], label=log.figure_text(name), lw=1.5)
        ax.set_title(("red", "green", "blue")[c] + " channel")
        ax.set_xlabel("pixel value")
        ax.set_xlim(0, 255)
        ax.grid(alpha=0.3)
    figure.axes[0].set_ylabel("density")
    if len(densities) <= 12:
        figure.axes[-1].legend(fontsize=8)
    return figure


def sizes_figure(sizes: pd.DataFrame, input_size: int) -> Figure:
    """Width vs height scatter by class, and the distribution of aspect ratios."""
    figure = Figure(figsize=(11, 4), layout="constrained")
    scatter, ratios = figure.subplots(1, 2)
    colours = class_colours(list(dict.fromkeys(sizes["class"])))
    for name, group in sizes.groupby("class", sort=False):
        scatter.scatter(group["width"], group["height"], s=14, alpha=0.6, color=colours[name],
                        label=log.figure_text(name))
    scatter.scatter([input_size], [input_size], marker="x", s=80, color="black", label=f"model input {input_size}")
    if sizes[["width", "height"]].to_numpy().max() > 4 * max(1, sizes[["width", "height"]].to_numpy().min()):
        scatter.set_xscale("log")
        scatter.set_yscale("log")
        for axis in (scatter.xaxis, scatter.yaxis):
            axis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
            axis.set_major_formatter(ScalarFormatter())
            axis.set_minor_formatter(NullFormatter())
    scatter.set_xlabel("width (pixels)")
    scatter.set_ylabel("height (pixels)")
    scatter.set_title(f"image sizes ({len(sizes)} sampled)")
    scatter.legend(fontsize=8)
    scatter.grid(alpha=0.3)
    aspect = (sizes["width"] / sizes["height"]).to_numpy()
    ratios.hist(aspect, bins=min(30, max(5, len(aspect) // 5)), color="#888", edgecolor="white")
    ratios.axvline(1.0, color="black", ls="--", lw=1, label="square")
    ratios.set_xlabel("aspect ratio (width / height)")
    ratios.set_ylabel("images")
    ratios.set_title("aspect ratios")
    ratios.legend(fontsize=8)
    return figure
