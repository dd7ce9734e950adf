"""Evaluation, with the metrics of :mod:`~fcnlab.tasks.metrics` (confusion matrix, accuracy, the course's mIoU
and its printed lines, which validation uses too): :mod:`~fcnlab.evaluate.mask_folders` (a folder of predicted
masks against the label masks, as the course's ``mean_iou_evaluate.py`` does; ``fcnlab miou``) and
:mod:`~fcnlab.evaluate.folders` (a checkpoint on a labelled folder: ``classify eval`` / ``segment eval``).
"""
