"""Bilinear kernels and upsamplers: the NOTES formula and equivalence with F.interpolate."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from fcnlab.models.upsampling import bilinear_kernel, bilinear_kernel_1d, bilinear_upsampler


def test_1d_kernel_even_and_odd():
    assert torch.allclose(bilinear_kernel_1d(4), torch.tensor([0.25, 0.75, 0.75, 0.25]))
    assert torch.allclose(bilinear_kernel_1d(3), torch.tensor([0.5, 1.0, 0.5]))
    k16 = bilinear_kernel_1d(16)
    assert torch.allclose(k16[:2], torch.tensor([1 / 16, 3 / 16])) and torch.allclose(k16, k16.flip(0))


def test_kernel_is_diagonal_outer_product():
    w = bilinear_kernel(3, 4)
    assert w.shape == (3, 3, 4, 4)
    k = bilinear_kernel_1d(4)
    for i in range(3):
        for j in range(3):
            expected = torch.outer(k, k) if i == j else torch.zeros(4, 4)
            assert torch.equal(w[i, j], expected)


@pytest.mark.parametrize("factor", [2, 8, 32])
def test_upsampler_matches_interpolate_in_interior(factor):
    up = bilinear_upsampler(3, factor)
    x = torch.randn(2, 3, 5, 4, generator=torch.Generator().manual_seed(factor))
    with torch.no_grad():
        y = up(x)
    assert y.shape == (2, 3, 5 * factor, 4 * factor)
    ref = F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False)
    b = factor // 2
    torch.testing.assert_close(y[..., b:-b, b:-b], ref[..., b:-b, b:-b], atol=1e-5, rtol=0)
    assert (y - ref).abs().max() > 1e-2  # the border band does differ (zero padding)


def test_upsampler_freezing_and_bad_factor():
    assert bilinear_upsampler(2, 8, learnable=False).weight.requires_grad is False
    assert bilinear_upsampler(2, 8).weight.requires_grad is True
    with pytest.raises(ValueError):
        bilinear_upsampler(2, 3)
