"""Two towers: separate or shared weights, per-domain input handling, rebuild from the spec."""

from __future__ import annotations

import torch

from simlearn.models.two_tower import build_two_tower


def spec(shared: bool, sketch: str = "convnet") -> dict:
    return {
        "method": "two_tower", "shared": shared, "embedding_dim": 5, "normalize": True,
        "image_size": 16, "sketch_model": {"name": sketch, "width": 4},
        "photo_model": {"name": "convnet", "width": 4},
        "sketch_mean": [0.9], "sketch_std": [0.2], "photo_mean": [0.5] * 3, "photo_std": [0.25] * 3,
    }  # fmt: skip


def test_shared_weights_are_one_encoder_and_separate_ones_are_two():
    torch.manual_seed(0)
    two = build_two_tower(spec(False))
    one = build_two_tower(spec(True))
    assert two.sketch.encoder is not two.photo.encoder
    assert one.sketch.encoder is one.photo.encoder
    n_two = sum(p.numel() for p in two.parameters())
    n_one = sum(p.numel() for p in one.parameters())
    assert n_one < n_two
    # a grey sketch enters the shared network as three equal channels
    x = torch.rand(3, 1, 16, 16)
    one.eval()
    with torch.no_grad():
        e = one.embed(x, "sketch")
        x3 = ((x - 0.9) / 0.2).expand(-1, 3, -1, -1)
        assert torch.allclose(e, one.photo.encoder(x3), atol=1e-6)


def test_rebuilt_from_spec_gives_the_same_embeddings_and_resizes_inputs():
    torch.manual_seed(0)
    net = build_two_tower(spec(False)).eval()
    again = build_two_tower(spec(False))
    again.load_state_dict(net.state_dict())
    again.eval()
    xs, xp = torch.rand(2, 1, 16, 16), torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(net(xs), again.embed(xs, "sketch"))
        assert torch.allclose(net.embed(xp, "photo"), again.embed(xp, "photo"))
        assert net.embed(xp, "photo").shape == (2, 5)
        assert torch.allclose(net.embed(xp, "photo").norm(dim=1), torch.ones(2))


def test_sobel_magnitude_of_a_step_edge_is_four_beside_the_step_and_zero_elsewhere():
    from simlearn.models.two_tower import sobel_magnitude

    x = torch.zeros(1, 3, 6, 6)
    x[..., 3:] = 1.0  # a vertical step between columns 2 and 3, in every channel
    m = sobel_magnitude(x)[0, 0]
    assert m.shape == (6, 6)
    assert torch.allclose(m[:, 2:4], torch.full((6, 2), 4.0), atol=1e-5)
    assert torch.allclose(m[:, [0, 1, 4, 5]], torch.zeros(6, 4), atol=1e-5)


def test_edges_add_one_input_channel_and_sketchnet_embeds_to_the_unit_sphere():
    s = spec(False, sketch="sketchnet")
    s["photo_model"] = {"name": "sketchnet", "width": 4, "edges": True}
    net = build_two_tower(s).eval()
    assert net.photo.encoder.features[0].in_channels == 4  # RGB + gradient magnitude
    assert net.sketch.encoder.features[0].in_channels == 1
    with torch.no_grad():
        e = net.embed(torch.rand(3, 3, 16, 16), "photo")
    assert e.shape == (3, 5) and torch.allclose(e.norm(dim=1), torch.ones(3), atol=1e-6)
