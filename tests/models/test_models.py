import numpy as np
import pytest
import torch

from simlearn.models import (
    ConvNet,
    Embedder,
    ResNetEmbedding,
    build_model,
    fit_shallow,
    load_model,
    save_model,
)


@pytest.mark.parametrize("size", [8, 28])
def test_convnet_shapes_and_normalisation(size):
    net = ConvNet(1, 16, width=8, normalize=True).eval()
    out = net(torch.randn(3, 1, size, size))
    assert out.shape == (3, 16)
    torch.testing.assert_close(out.norm(dim=1), torch.ones(3))
    raw = ConvNet(1, 16, width=8, normalize=False).eval()(torch.randn(3, 1, size, size))
    assert not torch.allclose(raw.norm(dim=1), torch.ones(3))


def test_resnet_cifar_stem_keeps_resolution():
    net = ResNetEmbedding(3, 64)
    assert net.net.conv1.stride == (1, 1) and isinstance(net.net.maxpool, torch.nn.Identity)
    assert net.eval()(torch.randn(2, 3, 32, 32)).shape == (2, 64)


def test_mahalanobis_metric_is_inverse_covariance():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(4, 4))
    x = rng.normal(size=(2000, 4)) @ a.T + 3.0
    enc = fit_shallow("mahalanobis", x, np.zeros(len(x)), shrinkage=0.0, covariance="total")
    w = enc.weight.double().numpy()
    cov = np.cov(x, rowvar=False)
    np.testing.assert_allclose(w.T @ w, np.linalg.inv(cov), rtol=1e-4, atol=1e-6)
    # the distance between two points equals the Mahalanobis distance
    u, v = x[0], x[1]
    enc = enc.double()
    fu, fv = enc(torch.tensor(u[None])), enc(torch.tensor(v[None]))
    d2 = float(((fu - fv) ** 2).sum())
    np.testing.assert_allclose(d2, (u - v) @ np.linalg.inv(cov) @ (u - v), rtol=1e-4)


def test_within_class_mahalanobis_ignores_class_offsets():
    rng = np.random.default_rng(1)
    y = np.repeat(np.arange(3), 400)
    noise = rng.normal(size=(1200, 3)) * np.array([1.0, 2.0, 0.5])
    x = noise + 10.0 * y[:, None]  # classes far apart; within-class covariance = diag(1, 4, .25)
    w = fit_shallow("mahalanobis", x, y, shrinkage=0.0).weight.double().numpy()
    centred = np.concatenate([x[y == c] - x[y == c].mean(axis=0) for c in range(3)])
    within = centred.T @ centred / (len(x) - 1)  # brute force pooled within-class covariance
    np.testing.assert_allclose(w.T @ w, np.linalg.inv(within), rtol=1e-4, atol=1e-6)
    # the 10-unit class offsets do not inflate it: close to diag(1, 1/4, 4)
    np.testing.assert_allclose(np.diag(w.T @ w), [1.0, 0.25, 4.0], rtol=0.15)
    with pytest.raises(ValueError, match="model.covariance='full'"):
        fit_shallow("mahalanobis", x, y, covariance="full")


def test_raw_is_identity_and_lda_has_c_minus_1_dims():
    x = np.random.default_rng(0).normal(size=(90, 6))
    y = np.repeat(np.arange(3), 30)
    x[y == 1] += 2.0
    raw = fit_shallow("raw", x, y)
    xt = torch.tensor(x).float()
    torch.testing.assert_close(raw(xt[:5]), xt[:5], rtol=0, atol=0)

    lda = fit_shallow("lda", x, y)
    z = lda(xt).double().numpy()
    assert z.shape == (90, 2)
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

    ref = LinearDiscriminantAnalysis(solver="eigen", shrinkage="auto").fit(x, y).transform(x)
    from scipy.spatial.distance import pdist

    np.testing.assert_allclose(pdist(z), pdist(ref[:, :2]), rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="model.name='pca'"):
        fit_shallow("pca", x, y)


def test_raw_of_large_images_holds_no_matrix_and_embeds_the_pixels_bit_for_bit(tmp_path):
    # 64x64 RGB (D = 12,288): an identity matrix would be 604 MB in model.pt
    x = torch.rand(3, 3, 64, 64)
    spec = {"name": "raw", "normalize": False, "in_channels": 3,
            "input_mean": [0.0] * 3, "input_std": [1.0] * 3}  # fmt: skip
    model = Embedder(fit_shallow("raw", x.flatten(1).numpy(), np.arange(3)), [0.0] * 3, [1.0] * 3)
    save_model(tmp_path / "model.pt", model, spec)
    assert (tmp_path / "model.pt").stat().st_size < 100_000
    loaded, _ = load_model(tmp_path / "model.pt")
    assert torch.equal(loaded.eval()(x), x.flatten(1))


@pytest.mark.parametrize("name", ["convnet", "lda", "raw"])
def test_save_load_roundtrip_weights_only(tmp_path, name):
    spec = {
        "name": name,
        "embedding_dim": 8,
        "width": 4,
        "normalize": True,
        "in_channels": 1,
        "input_mean": [0.5],
        "input_std": [0.25],
        "shrinkage": 0.0,
    }
    if name == "convnet":
        model = build_model(spec).eval()
    else:
        x = np.random.default_rng(0).random((60, 16))
        y = np.repeat(np.arange(3), 20)
        model = Embedder(fit_shallow(name, x, y), [0.5], [0.25]).eval()
    save_model(tmp_path / "model.pt", model, spec)
    blob = torch.load(tmp_path / "model.pt", weights_only=True)
    assert blob["spec"]["name"] == name
    loaded, _ = load_model(tmp_path / "model.pt")
    x = torch.rand(5, 1, 4, 4)
    torch.testing.assert_close(loaded(x), model(x))
