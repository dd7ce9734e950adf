"""Inference: prediction helpers and test-time augmentation."""
