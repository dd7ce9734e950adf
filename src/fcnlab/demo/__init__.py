"""``fcnlab demo``: the whole homework in miniature, on synthetic data, on the CPU, in about 1.5 minutes.

The demo writes small synthetic data sets in the course's exact formats (:mod:`fcnlab.data.synthetic`)
and then runs every step a user runs, each one through the real command line (``fcnlab.cli.main.main`` with
an argument list, printed as ``$ fcnlab ...`` so it can be copied):

* P1: ``classify train`` -> ``classify eval`` (the seed's ``Val Acc`` line) -> ``classify predict``
  (the ``image_id,label`` CSV) -> ``classify tsne``;
* P2: ``segment train`` of an FCN-32s and an FCN-8s with mask snapshots at a few epochs, ``segment eval``
  (the course's ``class #i`` / ``mean_iou`` lines), ``segment predict`` (``NNNN_mask.png`` files), the
  course-style ``miou`` of the predicted mask files, ``compare`` of the two runs and one ``report`` page.

Model choice. P1 uses **resnet18**, not the seed's vgg16_bn, and P2 compares **fcn32s_resnet34** with
**fcn8s_resnet34**, not the homework's VGG16-BN FCN-32s with ResNet34 FCN-8s (:data:`PAIR_NOTE` says why,
and the summary prints it). The same training, evaluation, prediction and t-SNE code runs either way; one
backbone for both FCNs also isolates what the comparison is about, the skip connections (at 128x128 an
FCN-32s sees a 4x4 grid of scores, an FCN-8s a 16x16 one). ``fcnlab reproduce`` runs the homework's models.

Output folder safety: the demo refuses a folder that holds anything it did not write. A folder written
by an earlier demo carries a ``.fcnlab-demo`` marker that lists the entries the demo made; re-running
into it replaces those entries only, and still refuses if anything else has been added.

The modules: :mod:`~fcnlab.demo.plan` (the sizes, :data:`FULL` and :data:`QUICK`), :mod:`~fcnlab.demo.layout`
(where the demo writes; the folder's safety), :mod:`~fcnlab.demo.steps` (the commands),
:mod:`~fcnlab.demo.results` (the numbers and the summary) and :mod:`~fcnlab.demo.run` (running it all).
"""

from __future__ import annotations

from fcnlab.demo.layout import MARKER, MARKER_FORMAT, DemoLayout, prepare_demo_dir
from fcnlab.demo.plan import FULL, PAIR_NOTE, QUICK, DemoPlan
from fcnlab.demo.results import collect_results, csv_accuracy, majority_miou, summary_text
from fcnlab.demo.run import DemoStepFailed, make_data, run_demo, run_step
from fcnlab.demo.steps import Step, plan_steps

__all__ = [
    "FULL",
    "MARKER",
    "MARKER_FORMAT",
    "PAIR_NOTE",
    "QUICK",
    "DemoLayout",
    "DemoPlan",
    "DemoStepFailed",
    "Step",
    "collect_results",
    "csv_accuracy",
    "majority_miou",
    "make_data",
    "plan_steps",
    "prepare_demo_dir",
    "run_demo",
    "run_step",
    "summary_text",
]
