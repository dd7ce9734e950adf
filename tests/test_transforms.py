"""Batch augmentations: image and mask stay aligned through zoom/crop/flip/rotate; crop+flip is exact."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torchvision.transforms.v2 import functional as TF

from fcnlab.config import from_dict
from fcnlab.data.transforms import augment_pair, color_jitter, cutmix_pair, normalize, random_crop_flip, resize
from fcnlab.tasks import make_task


def blocky_masks(b: int, size: int, block: int, seed: int = 0) -> torch.Tensor:
    """``(b, size, size)`` int64 masks of random 7-class blocks."""
    gen = torch.Generator().manual_seed(seed)
    coarse = torch.randint(0, 7, (b, size // block, size // block), generator=gen)
    return coarse.repeat_interleave(block, 1).repeat_interleave(block, 2)


def image_from_mask(masks: torch.Tensor) -> torch.Tensor:
    """A float image whose 3 channels encode the class (10 * id, 255 - 10 * id, 5 * id)."""
    m = masks.float()
    return torch.stack([10 * m, 255 - 10 * m, 5 * m], 1)


def d4(mask: torch.Tensor) -> list[torch.Tensor]:
    """The 8 rotations/flips of a ``(H, W)`` mask."""
    out = []
    for k in range(4):
        r = torch.rot90(mask, k, (0, 1))
        out += [r, r.flip(-1)]
    return out


def windows(mask: torch.Tensor, size: int) -> list[torch.Tensor]:
    h, w = mask.shape
    return [mask[y : y + size, x : x + size] for y in range(h - size + 1) for x in range(w - size + 1)]


@pytest.mark.parametrize(("min_scale", "max_scale"), [(0.75, 1.25), (0.5, 0.5), (2.0, 2.0)])
def test_image_derived_from_the_mask_stays_aligned_with_it(min_scale, max_scale):
    masks = blocky_masks(6, 64, 4)
    images = image_from_mask(masks)
    gen = torch.Generator().manual_seed(1)
    out_img, out_mask = augment_pair(images, masks, 32, gen, min_scale, max_scale, image_mode="nearest")
    assert out_img.shape == (6, 3, 32, 32) and out_mask.shape == (6, 32, 32)
    assert out_mask.dtype == masks.dtype
    assert torch.equal(out_img, image_from_mask(out_mask))  # every pixel: the image's class == the mask's


def test_bilinear_images_agree_with_nearest_masks_away_from_borders():
    masks = blocky_masks(4, 64, 8, seed=2)
    images = image_from_mask(masks)
    out_img, out_mask = augment_pair(images, masks, 48, torch.Generator().manual_seed(3))
    decoded = (out_img[:, 0] / 10).round().clamp(0, 6).long()
    agree = (decoded == out_mask).float().mean()
    assert agree > 0.85  # only pixels next to a class border are blended
    # and the blended pixels really are borders: a pixel surrounded by its own class must agree
    same = torch.ones_like(out_mask, dtype=torch.bool)
    for dy, dx in ((0, 1), (1, 0), (0, -1), (-1, 0)):
        same &= out_mask == torch.roll(out_mask, (dy, dx), (1, 2))
    inner = same[:, 1:-1, 1:-1]
    assert torch.equal(decoded[:, 1:-1, 1:-1][inner], out_mask[:, 1:-1, 1:-1][inner])


def test_full_tile_without_zoom_is_an_exact_rotation_or_flip():
    masks = blocky_masks(8, 32, 2, seed=4)
    images = image_from_mask(masks)
    gen = torch.Generator().manual_seed(5)
    out_img, out_mask = augment_pair(images, masks, 32, gen, 1.0, 1.0, image_mode="bilinear")
    seen = set()
    for i in range(len(masks)):
        matches = [k for k, t in enumerate(d4(masks[i])) if torch.equal(out_mask[i], t)]
        assert matches, f"sample {i}: mask is not a rotation/flip of the input"
        seen.add(matches[0])
        # whole-pixel moves: even the bilinear image is exactly the same permutation
        k = matches[0]
        assert torch.allclose(out_img[i], torch.stack([d4(images[i, c])[k] for c in range(3)]), atol=1e-3)
    assert len(seen) > 1  # the transforms vary between samples


def test_crop_without_zoom_is_a_window_of_the_input():
    masks = blocky_masks(3, 24, 3, seed=6)
    out_img, out_mask = augment_pair(
        image_from_mask(masks),
        masks,
        16,
        torch.Generator().manual_seed(7),
        1.0,
        1.0,
        flips=False,
        rotations=False,
        image_mode="nearest",
    )
    for i in range(3):
        assert any(torch.equal(out_mask[i], w) for w in windows(masks[i], 16))
    assert torch.equal(out_img, image_from_mask(out_mask))


def test_same_seed_same_batch_and_seeds_differ():
    masks = blocky_masks(4, 32, 4)
    images = image_from_mask(masks)
    a = augment_pair(images, masks, 32, torch.Generator().manual_seed(9))
    b = augment_pair(images, masks, 32, torch.Generator().manual_seed(9))
    c = augment_pair(images, masks, 32, torch.Generator().manual_seed(10))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[1], c[1])


def test_random_crop_flip_is_a_padded_window_possibly_mirrored():
    b, pad = 16, 4
    images = torch.arange(b * 3 * 8 * 8, dtype=torch.int64).reshape(b, 3, 8, 8).to(torch.uint8)
    out = random_crop_flip(images, pad, torch.Generator().manual_seed(0))
    assert out.shape == images.shape and out.dtype == torch.uint8
    padded = torch.nn.functional.pad(images, (pad,) * 4)
    flipped = 0
    offsets = set()
    for i in range(b):
        found = None
        for oy in range(2 * pad + 1):
            for ox in range(2 * pad + 1):
                win = padded[i, :, oy : oy + 8, ox : ox + 8]
                if torch.equal(out[i], win):
                    found = (oy, ox, False)
                elif torch.equal(out[i], win.flip(-1)):
                    found = (oy, ox, True)
        assert found is not None, f"sample {i} is not a crop of the padded image"
        flipped += found[2]
        offsets.add(found[:2])
    assert 0 < flipped < b and len(offsets) > 3


def _crop_flip_by_indexing(images, pad, generator):
    """The first implementation (advanced indexing, then a flip), kept as the reference of the draws."""
    b, c, h, w = images.shape
    padded = torch.nn.functional.pad(images, (pad, pad, pad, pad))
    oy = (torch.rand(b, generator=generator) * (2 * pad + 1)).long().clamp_(max=2 * pad)
    ox = (torch.rand(b, generator=generator) * (2 * pad + 1)).long().clamp_(max=2 * pad)
    rows = (oy[:, None] + torch.arange(h)[None])[:, None, :, None]
    cols = (ox[:, None] + torch.arange(w)[None])[:, None, None, :]
    out = padded[torch.arange(b)[:, None, None, None], torch.arange(c)[None, :, None, None], rows, cols]
    do = (torch.rand(b, generator=generator) < 0.5)[:, None, None, None]
    return torch.where(do, out.flip(-1), out)


@pytest.mark.parametrize("shape", [(16, 3, 32, 32), (5, 3, 7, 12), (3, 1, 9, 4)])
def test_random_crop_flip_equals_the_indexing_reference(shape):
    """One gather does what padding, four-tensor indexing and a flip did, with the same random draws."""
    images = torch.randint(0, 256, shape, dtype=torch.uint8, generator=torch.Generator().manual_seed(3))
    for seed in range(5):
        ours = random_crop_flip(images, 4, torch.Generator().manual_seed(seed))
        assert torch.equal(ours, _crop_flip_by_indexing(images, 4, torch.Generator().manual_seed(seed)))


def test_random_crop_flip_without_pad_only_flips():
    gen = torch.Generator().manual_seed(1)
    images = torch.randint(0, 256, (8, 3, 5, 5), dtype=torch.uint8, generator=gen)
    out = random_crop_flip(images, 0, torch.Generator().manual_seed(2))
    for i in range(8):
        assert torch.equal(out[i], images[i]) or torch.equal(out[i], images[i].flip(-1))


def segment_batch(images: torch.Tensor, masks: torch.Tensor, **options) -> tuple[torch.Tensor, torch.Tensor]:
    """A P2 training batch of 32-px tiles without zoom, prepared with ``options`` and a generator seeded 0."""
    base = {"task": "segment", "num_classes": 7, "image_size": 32, "min_scale": 1.0, "max_scale": 1.0}
    return make_task(from_dict({**base, **options})).prepare_train(images, masks, torch.Generator().manual_seed(0))


def test_color_jitter_is_torchvision_brightness_contrast_saturation_per_tile():
    images = torch.randint(0, 256, (5, 3, 16, 16), dtype=torch.uint8)
    out = color_jitter(images, 0.3, torch.Generator().manual_seed(3))
    factors = 1.0 + 0.3 * (2.0 * torch.rand(3, 5, generator=torch.Generator().manual_seed(3)) - 1.0)
    assert ((factors >= 0.7) & (factors <= 1.3)).all() and factors.std() > 0.05  # each tile its own factors
    for i in range(5):
        b, c, s = (float(f) for f in factors[:, i])
        expected = TF.adjust_saturation(TF.adjust_contrast(TF.adjust_brightness(images[i], b), c), s)
        assert (out[i] - expected.float()).abs().max() <= 1  # torchvision's uint8 results, to its rounding
    assert out.dtype == torch.float32 and out.min() >= 0 and out.max() <= 255
    assert torch.equal(color_jitter(images, 0.0, torch.Generator().manual_seed(0)), images.float())


def test_segment_training_batches_get_colour_jitter_only_when_asked():
    images = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)
    masks = torch.randint(0, 7, (4, 32, 32))
    plain, jittered, unaugmented = (
        segment_batch(images, masks, **options)
        for options in ({}, {"color_jitter": 0.4}, {"augment": False, "color_jitter": 0.4})
    )
    assert torch.equal(unaugmented[0], normalize(images)) and torch.equal(unaugmented[1], masks)
    # jittered tiles keep their masks: each is one of the 8 rotations/flips of its input's mask
    for i in range(4):
        assert any(torch.equal(jittered[1][i], m) for m in d4(masks[i]))
    # the colours differ from the plain batch's beyond what the geometry explains: sorted values differ
    assert not torch.equal(plain[0].flatten(1).sort(1).values, jittered[0].flatten(1).sort(1).values)


def test_cutmix_pair_pastes_one_box_of_the_previous_tile_with_its_mask():
    b, size = 6, 32
    masks = torch.arange(b).view(b, 1, 1).expand(b, size, size).clone()  # tile i is all class i
    images = image_from_mask(masks)
    out, out_masks = cutmix_pair(images, masks, 1.0, 1.0, torch.Generator().manual_seed(1))
    pasted_any = False
    for i in range(b):
        partner = (i - 1) % b
        box = out_masks[i] == partner
        # every pixel is its own or its partner's, image and mask from the same tile
        assert torch.equal(box | (out_masks[i] == i), torch.ones_like(box))
        assert torch.equal(out[i], torch.where(box, images[partner], images[i]))
        if box.any():
            pasted_any = True
            rows, cols = box.any(1).nonzero()[:, 0], box.any(0).nonzero()[:, 0]
            # one axis-aligned box: its bounding rectangle is filled
            assert int(box.sum()) == (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1)
    assert pasted_any
    # the same generator state gives the same boxes; prob 0, alpha 0 or one tile change nothing
    again = cutmix_pair(images, masks, 1.0, 1.0, torch.Generator().manual_seed(1))
    assert torch.equal(again[0], out) and torch.equal(again[1], out_masks)
    for args in ((1.0, 0.0), (0.0, 1.0)):
        same = cutmix_pair(images, masks, *args, torch.Generator().manual_seed(1))
        assert same[0] is images and same[1] is masks
    one_image, one_mask = images[:1], masks[:1]
    one = cutmix_pair(one_image, one_mask, 1.0, 1.0, torch.Generator())
    assert one[0] is one_image and one[1] is one_mask  # no partner


def test_cutmix_pair_box_area_follows_beta_and_prob():
    b, size = 4000, 32
    masks = torch.zeros(b, size, size, dtype=torch.long)
    masks[1::2] = 1  # partners of even tiles are odd ones and vice versa: every pasted pixel changes class
    images = image_from_mask(masks)
    _, out = cutmix_pair(images, masks, 1.0, 0.5, torch.Generator().manual_seed(0))
    share = (out != masks).flatten(1).float().mean(1)
    assert abs(float((share > 0).float().mean()) - 0.5) < 0.03  # about half the tiles get a box
    # lam ~ U(0, 1) and the box is (1 - lam) of the tile before clipping at the borders: mean below 0.5, well above 0
    assert 0.2 < float(share[share > 0].mean()) < 0.5
    # a large alpha puts lam near 0.5: sides of about 0.71 of the tile's, so at most about half the tile
    _, big = cutmix_pair(images, masks, 100.0, 1.0, torch.Generator().manual_seed(0))
    assert float((big != masks).flatten(1).float().mean(1).max()) <= 0.6


def test_segment_training_batches_get_cutmix_only_when_asked():
    masks = torch.arange(4).view(4, 1, 1).expand(4, 32, 32).clone()
    images = image_from_mask(masks).to(torch.uint8)
    plain, mixed, unaugmented = (
        segment_batch(images, masks, **options) for options in ({}, {"cutmix": 1.0}, {"augment": False, "cutmix": 1.0})
    )
    assert torch.equal(unaugmented[1], masks)
    for i in range(4):
        assert torch.equal(plain[1][i], masks[i])  # uniform tiles: flips and rotations change nothing
        assert set(mixed[1][i].unique().tolist()) <= {i, (i - 1) % 4}
    assert not torch.equal(mixed[1], plain[1])


def test_normalize_and_resize():
    x = torch.full((2, 3, 4, 4), 255, dtype=torch.uint8)
    y = normalize(x)
    assert y.dtype == torch.float32
    np.testing.assert_allclose(
        y[0, :, 0, 0].numpy(), (1 - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225]), rtol=1e-5
    )
    assert resize(y, 4) is y
    assert resize(y, 8).shape == (2, 3, 8, 8)


def test_normalize_stats_are_cached_and_not_inference_tensors():
    x = torch.randint(0, 256, (2, 3, 4, 4), dtype=torch.uint8)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1) * 255.0
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1) * 255.0
    with torch.inference_mode():
        first = normalize(x)  # stats made inside inference mode must still work outside it
    second = normalize(x)
    assert torch.equal(first, (x.float() - mean) / std) and torch.equal(second, first)
    assert not second.is_inference()
    w = torch.ones(1, requires_grad=True)
    (normalize(x) * w).sum().backward()  # usable in an autograd graph
    assert w.grad is not None
    custom = normalize(x, mean=[0.5, 0.5, 0.5], std=[0.5, 0.5, 0.5])  # lists are fine too
    assert torch.allclose(custom, (x.float() - 127.5) / 127.5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU: checks that no step waits for it")
def test_batch_preparation_never_synchronises_on_cuda():
    dev = torch.device("cuda")
    gen = torch.Generator(device=dev).manual_seed(0)
    images = torch.randint(0, 256, (4, 3, 64, 64), dtype=torch.uint8, device=dev)
    masks = torch.randint(0, 7, (4, 64, 64), device=dev)
    normalize(images)  # the per-device statistics are made once, here
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        x, y = augment_pair(normalize(color_jitter(images, 0.2, gen)), masks, 32, gen)
        crops = random_crop_flip(images, 4, gen)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert x.shape == (4, 3, 32, 32) and y.shape == (4, 32, 32) and crops.shape == images.shape
