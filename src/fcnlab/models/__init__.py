"""Architectures only: the model registry, P1 classifiers, P2 FCNs, upsampling, ImageNet weights.

Importing this package registers every model: ``build_model("fcn8s_resnet34", 7)``.
"""

from fcnlab.models import cifar, classifiers, fcn, lite, unet  # noqa: F401  (registers the models)
from fcnlab.models.classifiers import penultimate_features
from fcnlab.models.params import trainable_param_groups
from fcnlab.models.pretrained import normalization
from fcnlab.models.registry import build_model, list_models, model_task, register_model
from fcnlab.models.upsampling import bilinear_kernel

__all__ = [
    "bilinear_kernel",
    "build_model",
    "list_models",
    "model_task",
    "normalization",
    "penultimate_features",
    "register_model",
    "trainable_param_groups",
]
