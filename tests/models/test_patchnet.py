"""MC-CNN fast: architecture, 9x9 receptive field, whole-image inference = patch embeddings."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from simlearn.models.patchnet import PatchNet, standardise, to_grey


@pytest.mark.parametrize(("colour", "bn"), [(False, False), (True, True)])
def test_architecture(colour, bn):
    net = PatchNet(3, colour=colour, batch_norm=bn)
    convs = [m for m in net.features if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [64] * 4
    assert all(c.kernel_size == (3, 3) and c.padding == (0, 0) for c in convs)
    assert convs[0].in_channels == (3 if colour else 1)
    assert sum(isinstance(m, nn.ReLU) for m in net.features) == 3
    assert sum(isinstance(m, nn.BatchNorm2d) for m in net.features) == (3 if bn else 0)
    assert not isinstance(net.features[-1], nn.ReLU | nn.BatchNorm2d)  # nothing after the last conv
    assert net.patch_size == 9


def test_patch_gives_one_unit_vector_and_receptive_field_is_nine():
    torch.manual_seed(0)
    net = PatchNet(1).eval()
    x = torch.randn(2, 1, 9, 9)
    e = net.embed_patches(x)
    assert e.shape == (2, 64, 1, 1)
    assert torch.allclose(e.norm(dim=1), torch.ones(2, 1, 1))
    big = torch.randn(1, 1, 20, 20)
    out = net.embed_patches(big)  # (1, 64, 12, 12)
    moved = big.clone()
    moved[0, 0, 10, 10] += 5.0  # seen by the outputs o whose field o .. o + 8 holds 10: 2 .. 10
    changed = (net.embed_patches(moved) - out).abs().sum(1)[0] > 0  # (12, 12)
    outside = torch.ones(12, 12, dtype=torch.bool)
    outside[2:11, 2:11] = False
    assert not changed[outside].any()
    assert changed[2, 2] and changed[10, 10] and changed[6, 6]  # the field's corners and centre


def test_whole_image_inference_equals_its_patches_inside():
    torch.manual_seed(1)
    net = PatchNet(3, colour=False).eval()
    img = torch.rand(1, 3, 16, 20)
    full = net(img)  # (1, 64, 16, 20)
    assert full.shape == (1, 64, 16, 20)
    x = standardise(to_grey(img))
    y, xx = 7, 11
    patch = x[:, :, y - 4 : y + 5, xx - 4 : xx + 5]
    assert torch.allclose(full[0, :, y, xx], net.embed_patches(patch)[0, :, 0, 0], atol=1e-5)


def test_standardise_is_per_image():
    x = torch.stack([torch.rand(1, 5, 5) * 3 + 1, torch.rand(1, 5, 5)])
    s = standardise(x)
    assert torch.allclose(s.mean(dim=(1, 2, 3)), torch.zeros(2), atol=1e-6)
    assert torch.allclose(s.std(dim=(1, 2, 3)), torch.ones(2), atol=1e-5)


def test_bad_arguments():
    with pytest.raises(ValueError, match="colour=True needs 3"):
        PatchNet(1, colour=True)
    with pytest.raises(ValueError, match="expected 3 channels"):
        PatchNet(3)(torch.rand(1, 1, 9, 9))
