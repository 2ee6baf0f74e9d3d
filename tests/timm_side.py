"""Run by ``tests/test_timm_backbone.py`` with ``.venv-timm``'s Python (timm beside a torchvision that
fits its torch; see the Makefile): ``python tests/timm_side.py FOLDER``.

For each model of ``MODELS``: random weights (seeded), saved with the classifier the way a user's
file is saved (``.safetensors`` or a ``torch.save`` state dict), or, with no format, the way
timm's own download is cached by huggingface_hub (``$HF_HOME``, read offline: ``HF_HUB_OFFLINE=1``);
converted by keras-transfer's ``timm:NAME@FILE`` / ``timm:NAME`` route (into
``$KERAS_TRANSFER_CACHE``, shared with the test), and timm's own forward pass (``forward_features``
then ``forward_head(pre_logits=True)``) on ``FOLDER/pixels.npy`` normalised as timm's
``resolve_data_config`` says. Writes ``FOLDER/<key>.npy`` and ``FOLDER/side.json``.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import timm
import torch
from safetensors.torch import save_file

from keras_transfer.backbones import get_backbone

# key: (timm name, seed, file format ('' for timm's download), global_pool given to timm ('' for the default))
MODELS = {"vit": ("test_vit.r160_in1k", 1, "safetensors", ""),
          "vit2": ("test_vit.r160_in1k", 2, "safetensors", ""),
          "vit_avg": ("test_vit.r160_in1k", 1, "safetensors", "avg"),
          "convnext": ("test_convnext.r160_in1k", 1, "pth", ""),
          "downloaded": ("test_convnext.r160_in1k", 3, "", "")}
REVISION = "0" * 40


def hub_cache(name: str, model) -> None:
    """The model's weights where huggingface_hub keeps timm's download of them (``timm/<name>``, main)."""
    repo = Path(os.environ["HF_HOME"]) / "hub" / f"models--{model.pretrained_cfg['hf_hub_id'].replace('/', '--')}"
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(REVISION)
    (repo / "snapshots" / REVISION).mkdir(parents=True, exist_ok=True)
    save_file(model.state_dict(), str(repo / "snapshots" / REVISION / "model.safetensors"))


def main(folder: Path) -> None:
    pixels = np.load(folder / "pixels.npy", allow_pickle=False).astype(np.float32) / 255  # (N, 160, 160, 3)
    found = {}
    for key, (name, seed, fmt, pool) in MODELS.items():
        torch.manual_seed(seed)
        model = timm.create_model(name, pretrained=False, **({"global_pool": pool} if pool else {})).eval()
        file = folder / f"{key}.{fmt}"
        if not fmt:
            hub_cache(name, model)
        elif fmt == "safetensors":
            save_file(model.state_dict(), str(file))
        else:
            torch.save(model.state_dict(), file)
        reference = f"timm:{name}" + (f"@{file}" if fmt else "") + (f"#{pool}" if pool else "")
        spec = get_backbone(reference)  # converts (timm is importable here)
        config = timm.data.resolve_data_config({}, model=model)
        x = (pixels - np.asarray(config["mean"], np.float32)) / np.asarray(config["std"], np.float32)
        with torch.no_grad():
            features = model.forward_head(model.forward_features(torch.from_numpy(x.transpose(0, 3, 1, 2))),
                                          pre_logits=True)
        np.save(folder / f"{key}.npy", features.numpy(), allow_pickle=False)
        found[key] = {"reference": reference, "key": spec.weights_identity(None), "input_size": spec.input_size,
                      "feature_dim": spec.feature_dim, "mean": list(config["mean"]), "std": list(config["std"])}
    (folder / "side.json").write_text(json.dumps(found))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
