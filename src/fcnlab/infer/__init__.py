"""Inference on trained checkpoints: :mod:`~fcnlab.infer.predictor` (a checkpoint made ready for inference),
:mod:`~fcnlab.infer.tiling` (masks of any image size), the exact speed-ups it applies
(:mod:`~fcnlab.infer.folding`, :mod:`~fcnlab.infer.fusion`, :mod:`~fcnlab.infer.unfold_conv`) and
:mod:`~fcnlab.infer.export` (ONNX / ``torch.export``); :mod:`~fcnlab.infer.folders` predicts whole folders
(label CSV, features, mask files).

Nothing here imports training code (:mod:`fcnlab.training`).
"""
