"""Images to pre-train on: the training split of an embedded dataset (its labels unused), or
crops of the two sample photographs drawn as ``analyze attention --sample-images`` draws them.

The sample crops are square, of random side (a third of the photograph's short side to all of
it) and place, scaled to the model's size and normalised with ImageNet's statistics, as the
attention analysis of a from-scratch model normalises them: an encoder pre-trained on them is
analysed on images like those it learned from.
"""

from __future__ import annotations

import torch
from torch.utils.data import TensorDataset

from vitbench.pretrain.config import SAMPLE, MAEConfig
from vitbench.train.data import DataBundle, load_data

#: crops of the sample photographs drawn for training when ``subset`` does not say
SAMPLE_CROPS = 1024
#: crops drawn for validation
SAMPLE_VAL_CROPS = 64


def _crops(n: int, side: int, chans: int, seed: int) -> TensorDataset:
    """``n`` normalised crops (n, chans, side, side), each with label 0."""
    from vitbench.attention.images import ImageSource, image_batches

    shape = (chans, side, side)
    x = torch.cat([b.x for b in image_batches(ImageSource(SAMPLE), n, 256, shape, seed=seed)])
    return TensorDataset(x, torch.zeros(n, dtype=torch.long))


def _sample(cfg: MAEConfig, side: int, chans: int) -> DataBundle:
    """Training and validation crops from distinct seeds (the test split is the validation's)."""
    from vitbench.attention.images import IMAGENET_MEAN, IMAGENET_STD

    train = _crops(cfg.subset or SAMPLE_CROPS, side, chans, cfg.seed)
    val = _crops(SAMPLE_VAL_CROPS, side, chans, cfg.seed + 1)
    mean, std = IMAGENET_MEAN, IMAGENET_STD
    if chans == 1:  # image_batches normalises grey with the means of the RGB statistics
        mean, std = (sum(mean) / 3,), (sum(std) / 3,)
    return DataBundle(SAMPLE, train, val, val, ["crop"], side, chans, mean, std)


def pretrain_data(cfg: MAEConfig) -> DataBundle:
    """The images ``cfg`` pre-trains on; an embedded dataset is split as ``vitbench train``
    splits it with the same seed, so fine-tuning's test split stays unseen."""
    side, chans = cfg.input_shape()
    if cfg.dataset == SAMPLE:
        return _sample(cfg, side, chans)
    return load_data(cfg.dataset, img_size=side, in_chans=chans, **cfg.recipe().data_split())
