"""The P2 from-scratch recipes: valid, no ImageNet weights, the seed's architectures, the new options on."""

from __future__ import annotations

from pathlib import Path

import pytest

from fcnlab.config import from_dict
from fcnlab.recipes import load_yaml

CONFIGS = Path(__file__).resolve().parents[1] / "src" / "fcnlab" / "configs"


@pytest.mark.parametrize(
    "scratch,seed", [("p2_fcn32s_vgg16_scratch", "p2_fcn32s_vgg16"), ("p2_fcn8s_resnet34_scratch", "p2_fcn8s_resnet34")]
)
def test_scratch_recipes_keep_the_seed_architecture_without_imagenet(scratch, seed):
    new = from_dict(load_yaml(CONFIGS / f"{scratch}.yaml"), scratch)
    old = from_dict(load_yaml(CONFIGS / f"{seed}.yaml"), seed)
    assert new.model == old.model and new.learn_upsampling == old.learn_upsampling
    assert not new.pretrained and new.weights is None
    assert old.pretrained  # the seed's recipes stay ImageNet-initialised
    assert new.image_size == 512 and new.task == "segment"


def test_best_recipe_uses_a_registered_model_from_scratch():
    from fcnlab.models import build_model

    cfg = from_dict(load_yaml(CONFIGS / "p2_best.yaml"), "p2_best")
    assert not cfg.pretrained
    model = build_model(cfg.model, cfg.num_classes)
    assert sum(p.numel() for p in model.parameters()) > 0


def test_laptop_recipes_train_reduced_tiles_from_scratch():
    cfg = from_dict(load_yaml(CONFIGS / "p2_laptop.yaml"), "p2_laptop")
    assert cfg.model == "fpn_lite16_ppm" and cfg.input_size == 128 and cfg.image_size == 128
    assert not cfg.pretrained and cfg.amp == "bf16" and cfg.channels_last


def test_the_laptop_pair_differs_only_in_its_head():
    """FCN-32s vs FCN-8s on a laptop: the same encoder, schedule and data; only the head differs."""
    fcn32s = from_dict(load_yaml(CONFIGS / "p2_laptop_fcn32s.yaml"), "p2_laptop_fcn32s").to_dict()
    fcn8s = from_dict(load_yaml(CONFIGS / "p2_laptop_fcn8s.yaml"), "p2_laptop_fcn8s").to_dict()
    assert {k: (fcn32s[k], fcn8s[k]) for k in fcn32s if fcn32s[k] != fcn8s[k]} == {
        "model": ("fcn32s_lite", "fcn8s_lite")
    }
    assert fcn8s["snapshot_epochs"] == [5, 25, 50] and fcn8s["epochs"] == 50 and fcn8s["input_size"] == 128
