"""Semantic segmentation: a ViT or BEiT encoder with a light decoder, trained per pixel.

``vitbench train --task segmentation`` trains one on an embedded set of digits drawn on a
canvas (:mod:`.data`) or on ADE20K read from ``data_dir``. The encoder's patch tokens are laid
back on their grid and decoded to one logit per class and pixel (:mod:`.model`); the loss is
per-pixel cross-entropy that skips ``IGNORE_INDEX``; the scores are per-class IoU, their mean
(mIoU) and pixel accuracy (:mod:`.metrics`). This module loads no torch: the training config
reads its names.
"""

from __future__ import annotations

#: the label of pixels no class is scored on (mmseg's), e.g. ADE20K's "other"
IGNORE_INDEX = 255
#: what a training run learns: one label per image, or one per pixel
TASKS = ("classification", "segmentation")
#: decoders of patch tokens: a 1x1 convolution, or SETR's progressive upsampling
DECODERS = ("linear", "setr-pup")
#: the datasets with masks: name -> (native side, native channels); ade20k is read from data_dir
NATIVE = {"digits_canvas": (32, 1), "ade20k": (512, 3)}
#: the name a run's prediction overlays are stored under in the ``figures`` table
OVERLAY_FIGURE = "segmentation_overlays"
