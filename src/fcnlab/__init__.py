"""fcnlab: train, evaluate and explain VGG/ResNet classifiers and FCN segmentation models."""

__version__ = "0.1.0"
