"""Training: :mod:`~fcnlab.training.fit` (a run folder from a config, or resumed), the epoch loop
(:mod:`~fcnlab.training.loop`), the train state built in one place (:mod:`~fcnlab.training.state`, shared with
``fcnlab bench``), optimizer and LR schedule factories (:mod:`~fcnlab.training.optim`), progress, signals and
per-epoch hooks (mask snapshots, TensorBoard).

The package is ``training``, not ``train``: ``fcnlab.train`` is the public API function.
"""
