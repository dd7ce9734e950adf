"""Fold eval-mode BatchNorm into the convolution before it, for inference.

In eval mode ``BatchNorm2d(conv(x))`` is an affine map per channel, so it folds into the convolution's
weight and bias (:func:`torch.nn.utils.fusion.fuse_conv_bn_eval`) and the BN layer becomes an
``Identity``: one pass over each feature map fewer, the same outputs up to float rounding. On the CPU this
makes VGG16-BN and ResNet34 inference 10-16 % faster (docs/ENGINEERING.md).

Only pairs whose data flow is known are fused: neighbours in an ``nn.Sequential`` (torchvision's VGG
``features``, ResNet ``downsample``), and the ``convN``/``bnN`` pairs of torchvision's ``ResNet``,
``BasicBlock`` and ``Bottleneck`` and of fcnlab's ResNet trunk, whose ``forward`` applies ``bnN`` right
after ``convN``. Any other module is left as it is.
"""

from __future__ import annotations

import copy

from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval
from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet

_NAMED_PAIRS = (("conv1", "bn1"), ("conv2", "bn2"), ("conv3", "bn3"))


def _has_resnet_pairs(module: nn.Module) -> bool:
    from fcnlab.models.fcn import ResNetTrunk

    return isinstance(module, (ResNet, BasicBlock, Bottleneck, ResNetTrunk))


def _fusable(conv: nn.Module | None, bn: nn.Module | None) -> bool:
    return (
        type(conv) is nn.Conv2d
        and type(bn) is nn.BatchNorm2d
        and bn.track_running_stats
        and bn.running_mean is not None
        and conv.out_channels == bn.num_features
    )


def _fuse_in_place(module: nn.Module) -> int:
    fused = 0
    children = module._modules
    if isinstance(module, nn.Sequential):
        names = list(children)
        for prev, name in zip(names, names[1:], strict=False):
            if _fusable(children[prev], children[name]):
                children[prev] = fuse_conv_bn_eval(children[prev], children[name])  # type: ignore[type-var,arg-type]
                children[name] = nn.Identity()
                fused += 1
    elif _has_resnet_pairs(module):
        for conv_name, bn_name in _NAMED_PAIRS:
            if _fusable(children.get(conv_name), children.get(bn_name)):
                children[conv_name] = fuse_conv_bn_eval(children[conv_name], children[bn_name])  # type: ignore[type-var,arg-type]
                children[bn_name] = nn.Identity()
                fused += 1
    for child in children.values():
        if child is not None:
            fused += _fuse_in_place(child)
    return fused


def fuse_conv_bn(model: nn.Module, inplace: bool = False) -> tuple[nn.Module, int]:
    """``model`` in eval mode with BatchNorm folded into convolutions; also the number of pairs fused.

    Works on a deep copy unless ``inplace``. The result is for inference only: its BN layers are gone, so
    training it would no longer normalise.
    """
    fused_model = (model if inplace else copy.deepcopy(model)).eval()
    return fused_model, _fuse_in_place(fused_model)
