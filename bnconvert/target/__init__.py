"""Mapping a Caffe net's weights onto a user's own PyTorch model (issue #13): the units of both
sides (``caffe_side``, ``torch_side``), the structural matcher (``match``), ``--map`` files
(``mapfile``), the exact numeric adaptations (``adapt``), the target state_dict
(``state_dict``) and the diagnosis of the first diverging module (``diagnose``).

``torch_side`` imports torch; the rest does not (``adapt``/``state_dict`` use numpy).
"""

from __future__ import annotations
