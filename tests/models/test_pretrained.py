"""ImageNet-pretrained ResNets (simlearn.models.pretrained), checked against torchvision itself.

No network: the "ImageNet" weights are a randomly initialised torchvision state dict saved into a
temporary torch hub cache under the exact file name torchvision's weights API expects.
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision
from torchvision.models import ResNet18_Weights, ResNet50_Weights
from torchvision.transforms import functional as TF

from simlearn.config import ConfigError, to_dict
from simlearn.config.metric import ModelConfig
from simlearn.models import ImageNetResNet, ResNetEmbedding, load_model, save_model, to_input
from simlearn.models.embedder import channel_stats, new_embedder, rows_per_batch
from simlearn.models.encoders import imagenet_stem
from simlearn.models.pretrained import (
    check_weights_available,
    imagenet_stats,
    imagenet_weights,
    weights_path,
)


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """An empty torch hub cache in ``tmp_path`` (TORCH_HOME), whatever the machine's holds."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)  # a set_dir elsewhere would win over it
    assert torch.hub.get_dir() == str(tmp_path / "torch" / "hub")
    return tmp_path / "torch" / "hub"


@pytest.fixture
def no_network(monkeypatch):
    """Fail the test if anything tries to download."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"tried to download: {args[:1]}")

    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", refuse)


def _fake_imagenet_file(arch: str = "resnet18", seed: int = 0) -> dict[str, torch.Tensor]:
    """A random torchvision ``arch`` state dict (BN statistics random too, so that loading them
    shows) saved where torch hub caches the IMAGENET1K_V1 weights; returns it."""
    torch.manual_seed(seed)
    net = getattr(torchvision.models, arch)(weights=None)
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    state = net.state_dict()
    path = weights_path(imagenet_weights(arch))
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return state


def _torchvision_features(arch: str, state: dict, x: torch.Tensor) -> torch.Tensor:
    """torchvision's own network with ``state``, classifier removed: pooled features of ``x``
    (float (B, 3, H, W) in [0, 1]) after the weights' own normalisation."""
    ref = getattr(torchvision.models, arch)(weights=None)
    ref.load_state_dict(state)
    ref.fc = torch.nn.Identity()
    t = imagenet_weights(arch).transforms()
    return ref.eval()(TF.normalize(x, mean=t.mean, std=t.std))


def _images(n: int, size: int, channels: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, channels), dtype=np.uint8)


def test_weights_file_is_where_torch_hub_caches_it(hub):
    w = ResNet18_Weights.IMAGENET1K_V1
    assert imagenet_weights("resnet50") is ResNet50_Weights.IMAGENET1K_V1
    assert weights_path(w) == hub / "checkpoints" / "resnet18-f37072fd.pth"
    assert weights_path(w).name == w.url.rsplit("/", 1)[1]


@pytest.mark.parametrize("arch", ["resnet18", "resnet50"])
def test_normalisation_is_the_weights_transforms(arch):
    t = imagenet_weights(arch).transforms()
    mean, std = imagenet_stats(arch)
    assert mean == list(t.mean) and std == list(t.std)
    assert mean == pytest.approx([0.485, 0.456, 0.406]) and std == pytest.approx(
        [0.229, 0.224, 0.225]
    )


def test_features_equal_torchvision_with_the_cached_weights(hub, no_network):
    state = _fake_imagenet_file("resnet18")
    images = _images(6, 64, 3)
    cfg = ModelConfig(name="resnet18", weights="imagenet", embedding_dim=16)
    model, spec = new_embedder(cfg, images, seed=0, rows=np.arange(4))
    model.eval()
    t = ResNet18_Weights.IMAGENET1K_V1.transforms()
    assert spec["input_mean"] == list(t.mean) and spec["input_std"] == list(t.std)
    assert spec["in_channels"] == 3 and spec["weights"] == "imagenet"
    enc = model.encoder
    assert isinstance(enc, ImageNetResNet)
    assert enc.backbone.conv1.kernel_size == (7, 7) and enc.head.in_features == 512

    x = to_input(images)  # (6, 3, 64, 64) in [0, 1]
    ref = _torchvision_features("resnet18", state, x)  # (6, 512)
    with torch.no_grad():
        ours = enc.features((x - model.mean) / model.std)
        torch.testing.assert_close(ours, ref, rtol=0, atol=1e-6)
        # the whole model: the head on those features, then L2 normalisation
        torch.testing.assert_close(model(x), F.normalize(enc.head(ref), dim=1), rtol=0, atol=1e-6)


def test_greyscale_enters_as_three_equal_channels(hub, no_network):
    state = _fake_imagenet_file("resnet18")
    grey = _images(3, 48, 1)
    model, spec = new_embedder(ModelConfig(name="resnet18", weights="imagenet"), grey, seed=1)
    assert spec["in_channels"] == 1 and len(spec["input_mean"]) == 3
    x = to_input(grey)  # (3, 1, 48, 48)
    ref = _torchvision_features("resnet18", state, x.repeat(1, 3, 1, 1))
    with torch.no_grad():
        got = model.eval()(x)
        want = F.normalize(model.encoder.head(ref), dim=1)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-6)


def test_missing_weights_file_names_file_path_url_and_fix(hub, no_network):
    cfg = ModelConfig(name="resnet50", weights="imagenet")
    w = ResNet50_Weights.IMAGENET1K_V1
    path = hub / "checkpoints" / "resnet50-0676ba61.pth"
    with pytest.raises(ConfigError) as e:
        check_weights_available(cfg)
    msg = str(e.value)
    assert msg.startswith("model.weights='imagenet': ")
    for part in (
        "resnet50-0676ba61.pth",
        str(path),
        w.url,
        "ResNet50_Weights.IMAGENET1K_V1",
        "python -c \"import torchvision; torchvision.models.resnet50(weights='IMAGENET1K_V1')\"",
        "model.weights: null",
    ):
        assert part in msg, part
    # building the network says the same, and downloads nothing (no_network)
    with pytest.raises(ConfigError, match="resnet50-0676ba61.pth"):
        new_embedder(cfg, _images(2, 32, 3), seed=0)
    # the key of the section, for the stages' "experiments.<name>." prefix
    with pytest.raises(ConfigError, match=r"^experiments\.e\.model\.weights='imagenet'"):
        check_weights_available(cfg, key="experiments.e.model")
    # nothing asked, nothing checked; the file in place, no error
    check_weights_available(ModelConfig(name="resnet50"))
    _fake_imagenet_file("resnet18")
    check_weights_available(ModelConfig(name="resnet18", weights="imagenet"))
    check_weights_available({"name": "resnet18", "weights": "imagenet"})


def _batch_norms(model: torch.nn.Module) -> list[torch.nn.BatchNorm2d]:
    return [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]


@pytest.mark.parametrize("freeze", [True, False])
def test_freeze_bn_keeps_statistics_through_a_training_step(hub, no_network, freeze):
    _fake_imagenet_file("resnet18")
    cfg = ModelConfig(name="resnet18", weights="imagenet", freeze_bn=freeze, embedding_dim=8)
    model, _ = new_embedder(cfg, _images(8, 32, 3), seed=0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.train()
    bns = _batch_norms(model)
    assert all(m.training != freeze for m in bns)
    params = [p for p in model.parameters() if p.requires_grad]  # what engine._optimizer takes
    opt = torch.optim.SGD(params, lr=0.1)
    x = to_input(_images(8, 32, 3, seed=2))
    loss = model(x).pow(3).sum()
    loss.backward()
    opt.step()
    after = model.state_dict()
    bn_keys = [k for k in before if ".bn" in k or "downsample.1" in k]
    assert bn_keys and all(k.startswith("encoder.backbone.") for k in bn_keys)
    unchanged = [k for k in bn_keys if torch.equal(before[k], after[k])]
    if freeze:
        assert unchanged == bn_keys  # running stats, counts, weight and bias: ImageNet's
        assert all(not p.requires_grad for m in bns for p in m.parameters())
    else:
        stats = [k for k in bn_keys if k.endswith(("running_mean", "running_var"))]
        assert not set(stats) & set(unchanged)
    assert not torch.equal(before["encoder.head.weight"], after["encoder.head.weight"])
    conv = "encoder.backbone.layer1.0.conv1.weight"
    assert not torch.equal(before[conv], after[conv])
    model.eval()
    assert all(not m.training for m in bns)


def test_saved_pretrained_model_loads_without_the_weights_file(hub, no_network, tmp_path):
    _fake_imagenet_file("resnet18")
    cfg = ModelConfig(name="resnet18", weights="imagenet", freeze_bn=True, embedding_dim=8)
    model, spec = new_embedder(cfg, _images(4, 32, 3), seed=0)
    save_model(tmp_path / "model.pt", model, spec)
    weights_path(imagenet_weights("resnet18")).unlink()
    loaded, loaded_spec = load_model(tmp_path / "model.pt")
    assert loaded_spec["freeze_bn"] is True
    x = to_input(_images(3, 32, 3, seed=5))
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model.eval()(x), rtol=0, atol=0)


def test_resnet18_without_weights_is_the_cifar_network_of_before():
    """``weights: null`` keeps the network every saved resnet18 model has: the same random
    draws under the same seed, the same channel statistics."""
    images = _images(20, 32, 3)
    rows = np.arange(3, 17)
    cfg = ModelConfig(name="resnet18", embedding_dim=16)
    model, spec = new_embedder(cfg, images, seed=7, rows=rows)
    # the construction of before, written out
    torch.manual_seed(7)
    net = torchvision.models.resnet18(weights=None, num_classes=16)
    net.conv1 = torch.nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
    net.maxpool = torch.nn.Identity()
    want = net.state_dict()
    got = {k.removeprefix("encoder.net."): v for k, v in model.state_dict().items()}
    assert isinstance(model.encoder, ResNetEmbedding)
    assert set(want) <= set(got)
    assert all(torch.equal(got[k], want[k]) for k in want)
    assert (spec["input_mean"], spec["input_std"]) == channel_stats(images[rows])


@pytest.mark.parametrize(
    ("stem", "weights", "imagenet"),
    [("auto", None, False), ("cifar", None, False), ("imagenet", None, True)],
)
def test_stem_choice_without_weights(stem, weights, imagenet):
    cfg = ModelConfig(name="resnet34", stem=stem, weights=weights, embedding_dim=4)
    model, _ = new_embedder(cfg, _images(4, 32, 1), seed=0)
    enc = model.encoder
    assert isinstance(enc, ImageNetResNet if imagenet else ResNetEmbedding)
    assert imagenet_stem(to_dict(cfg)) == imagenet
    assert model.eval()(to_input(_images(2, 32, 1))).shape == (2, 4)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"name": "convnet", "weights": "imagenet"}, r"weights='imagenet': only the ResNets"),
        ({"name": "resnet50", "weights": "imagenet21k"}, r"allowed: imagenet, null"),
        ({"name": "resnet50", "weights": "imagenet", "stem": "cifar"}, r"stem='cifar'"),
        ({"name": "resnet50", "freeze_bn": True}, r"freeze_bn=true needs weights"),
        ({"name": "convnet", "stem": "imagenet"}, r"stem='imagenet': only the ResNets"),
        ({"name": "resnet200"}, r"name='resnet200': unknown name"),
    ],
)
def test_bad_model_settings_are_refused(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        ModelConfig(**kwargs)


def test_rows_per_batch_bounds_the_batch_by_pixels():
    assert rows_per_batch((0, 8, 8, 1)) == 1024  # the batch of every image up to 44 x 44 px
    assert rows_per_batch((0, 28, 28, 1)) == 1024
    assert rows_per_batch((0, 64, 64, 3)) == 2_000_000 // 4096 == 488
    assert rows_per_batch((0, 224, 224, 3)) == 39
    assert rows_per_batch((0, 5000, 5000, 3)) == 1


def test_pretrained_statistics_read_no_image(hub, no_network):
    """With weights, the input statistics are the weights': images on disk are not read."""

    class Unreadable:
        shape, dtype, ndim = (10_000, 32, 32, 3), np.uint8, 4

        def __len__(self):
            return self.shape[0]

        def __getitem__(self, rows):
            raise AssertionError("read images for statistics the weights fix")

    _fake_imagenet_file("resnet18")
    cfg = ModelConfig(name="resnet18", weights="imagenet")
    _, spec = new_embedder(cfg, Unreadable(), seed=0, rows=np.arange(5000))
    assert (spec["input_mean"], spec["input_std"]) == imagenet_stats("resnet18")


def test_sbir_imagenet_tower_reads_the_same_cache_and_names_its_key(hub, no_network):
    from simlearn.models.two_tower import ImageNetResNet18

    with pytest.raises(ConfigError) as e:
        ImageNetResNet18(8, pretrained=True, key="model.sketch_model")
    msg = str(e.value)
    assert msg.startswith("model.sketch_model.pretrained=true: ")
    assert "resnet18-f37072fd.pth" in msg and "model.sketch_model.pretrained: false" in msg
    state = _fake_imagenet_file("resnet18")
    net = ImageNetResNet18(8, pretrained=True).net.state_dict()
    assert all(torch.equal(net[k], v) for k, v in state.items() if not k.startswith("fc."))
