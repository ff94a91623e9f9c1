"""Datasets for training: embedded digits and photographs, local torchvision sets, image folders.

Every dataset becomes three splits (train, validation, test) of ``(image, label)`` pairs where
the image is a float tensor ``(C, H, W)`` already sized to the model: resized to ``img_size``,
normalised with the dataset's statistics, then given the model's channel count. Splits are
stratified and decided by the seed alone. Nothing is ever downloaded: a local dataset that is
missing is a one-line :class:`~vitbench.errors.DataError` naming the files expected and where.
"""

from __future__ import annotations

import functools
import itertools
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import Dataset, Subset, TensorDataset

from vitbench.errors import DataError
from vitbench.train.augment import Augment, AugmentedTensors
from vitbench.train.config import TrainConfig
from vitbench.train.defaults import DATASETS, LOCAL_DATASETS, NATIVE

#: published per-channel statistics of the local torchvision datasets (train split, [0, 1] pixels)
STATS = {
    "mnist": ((0.1307,), (0.3081,)),
    "fashion_mnist": ((0.2860,), (0.3530,)),
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
    "imagefolder": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),  # ImageNet's
}

PHOTO_CROPS = 256  # crops cut from each sample photograph

#: a split's preprocessing -> the training split's augmenting transform of PIL images
AugmentFactory = Callable[["Preprocess"], Augment]


@dataclass
class DataBundle:
    """Three splits sized for one model, with what it takes to reproduce the preprocessing."""

    name: str
    train: Dataset
    val: Dataset
    test: Dataset
    classes: list[str]
    img_size: int  # side of the images the model sees
    in_chans: int  # channels the model sees
    mean: tuple[float, ...]  # normalisation, per native channel
    std: tuple[float, ...]

    @property
    def num_classes(self) -> int:
        return len(self.classes)


class Preprocess:
    """``(N, C, H, W)`` or ``(C, H, W)`` pixels in [0, 1] -> resized, normalised, model channels.

    Normalising comes before the channel change, so one set of statistics (the dataset's own)
    serves both directions: 1 -> 3 repeats the grey channel, 3 -> 1 averages the colours.
    """

    def __init__(
        self, img_size: int, in_chans: int, mean: Sequence[float], std: Sequence[float]
    ) -> None:
        self.img_size, self.in_chans = img_size, in_chans
        self.mean = torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(-1, 1, 1)

    def __call__(self, x: Tensor) -> Tensor:
        single = x.dim() == 3
        x = x[None] if single else x  # (N, C, H, W)
        if tuple(x.shape[-2:]) != (self.img_size, self.img_size):
            x = F.interpolate(
                x, size=(self.img_size, self.img_size), mode="bilinear", antialias=True
            )
        x = (x - self.mean) / self.std
        if x.shape[1] == 3 and self.in_chans == 1:
            x = x.mean(1, keepdim=True)
        elif x.shape[1] == 1 and self.in_chans == 3:
            x = x.expand(-1, 3, -1, -1).contiguous()
        return x[0] if single else x


class PilToPreprocessed:
    """Per-sample transform for torchvision datasets: PIL image -> :class:`Preprocess` output."""

    def __init__(self, prep: Preprocess) -> None:
        self.prep = prep

    def __call__(self, img) -> Tensor:
        from torchvision.transforms.v2.functional import to_dtype, to_image

        return self.prep(to_dtype(to_image(img), torch.float32, scale=True))


def _train_size(n: int, val_fraction: float, test_fraction: float) -> int:
    """Images left for training out of ``n`` after the cuts :func:`split_indices` makes."""
    test = math.ceil(test_fraction * n) if test_fraction > 0 else 0
    rest = n - test
    val_of_rest = val_fraction / (1 - test_fraction)
    return rest - (math.ceil(val_of_rest * rest) if val_of_rest > 0 else 0)


def _check_split_sizes(n: int, val_fraction: float, test_fraction: float) -> None:
    """Refuse ``n`` images too few to leave every split at least one image."""
    if n > 0 and _train_size(n, val_fraction, test_fraction) >= 1:
        return
    need = next(m for m in itertools.count(1) if _train_size(m, val_fraction, test_fraction) >= 1)
    raise DataError(
        f"{n} image(s) cannot be split into train, validation and test splits of at least one "
        f"image each: val_fraction {val_fraction} and test_fraction {test_fraction} need at "
        f"least {need} images"
    )


def split_indices(
    targets: Sequence[int], val_fraction: float, test_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stratified train/val/test indices, fixed by ``seed``; a fraction of 0 gives no split."""
    from sklearn.model_selection import train_test_split

    _check_split_sizes(len(targets), val_fraction, test_fraction)
    idx = np.arange(len(targets))
    y = np.asarray(targets)
    empty = np.array([], dtype=int)

    def cut(ids: np.ndarray, frac: float) -> tuple[np.ndarray, np.ndarray]:
        if frac <= 0:
            return ids, empty
        try:
            return train_test_split(ids, test_size=frac, random_state=seed, stratify=y[ids])
        except ValueError:  # too few images of some class to stratify
            return train_test_split(ids, test_size=frac, random_state=seed)

    rest, test = cut(idx, test_fraction)
    val_of_rest = val_fraction / (1 - test_fraction) if test_fraction < 1 else 0.0
    train, val = cut(rest, val_of_rest)
    return train, val, test


def _take(indices: np.ndarray, limit: int | None, seed: int) -> list[int]:
    """At most ``limit`` of ``indices``, a seeded random choice."""
    if limit is not None and len(indices) > limit:
        indices = np.random.default_rng(seed).choice(indices, size=limit, replace=False)
    return sorted(int(i) for i in indices)


def _subsets(
    name: str,
    full: Dataset,
    test: Dataset,
    train_full: Dataset,  # ``full`` read with the training transform
    splits: tuple[np.ndarray, np.ndarray, np.ndarray],  # train and val index `full`, test `test`
    subset: int | None,
    seed: int,
    img_size: int,
    in_chans: int,
    mean: tuple[float, ...],
    std: tuple[float, ...],
) -> DataBundle:
    """A bundle of lazily read splits, each cut to at most ``subset`` images."""
    tr, va, te = splits
    return DataBundle(
        name,
        Subset(train_full, _take(tr, subset, seed)),
        Subset(full, _take(va, subset, seed)),
        Subset(test, _take(te, subset, seed)),
        list(full.classes),
        img_size,
        in_chans,
        mean,
        std,
    )


def _stats(x: Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of ``(N, C, H, W)`` pixels."""
    return tuple(x.mean((0, 2, 3)).tolist()), tuple(x.std((0, 2, 3)).tolist())


def _in_memory(
    name: str,
    pixels: Tensor,  # (N, C, H, W) in [0, 1]
    labels: Tensor,  # (N,)
    classes: list[str],
    *,
    img_size: int,
    in_chans: int,
    seed: int,
    val_fraction: float,
    test_fraction: float,
    subset: int | None,
    augment: AugmentFactory | None,
) -> DataBundle:
    tr, va, te = split_indices(labels.tolist(), val_fraction, test_fraction, seed)
    mean, std = _stats(pixels[torch.as_tensor(tr)])  # statistics of the training split only
    prep = Preprocess(img_size, in_chans, mean, std)
    x = prep(pixels)

    def keep(ids: np.ndarray) -> Tensor:
        return torch.as_tensor(_take(ids, subset, seed), dtype=torch.long)

    def part(ids: np.ndarray) -> TensorDataset:
        return TensorDataset(x[keep(ids)], labels[keep(ids)])

    if augment is None:
        train: Dataset = part(tr)
    else:  # each image augmented when read, from its pixels
        train = AugmentedTensors(pixels[keep(tr)], labels[keep(tr)], augment(prep))
    return DataBundle(name, train, part(va), part(te), classes, img_size, in_chans, mean, std)


def _digits() -> tuple[Tensor, Tensor, list[str]]:
    from sklearn.datasets import load_digits

    d = load_digits()  # 1,797 images, 8 x 8, grey levels 0..16
    pixels = torch.tensor(d.images, dtype=torch.float32)[:, None] / 16.0
    return pixels, torch.tensor(d.target, dtype=torch.long), [str(c) for c in d.target_names]


def _photos(seed: int, side: int) -> tuple[Tensor, Tensor, list[str]]:
    """Random ``side`` x ``side`` crops of scikit-learn's two sample photographs, one class each."""
    from sklearn.datasets import load_sample_images

    photos = load_sample_images()
    gen = torch.Generator().manual_seed(seed)
    crops, labels = [], []
    for label, img in enumerate(photos.images):
        t = torch.tensor(img, dtype=torch.float32).permute(2, 0, 1) / 255.0  # (3, 427, 640)
        h, w = t.shape[1:]
        ys = torch.randint(0, h - side + 1, (PHOTO_CROPS,), generator=gen)
        xs = torch.randint(0, w - side + 1, (PHOTO_CROPS,), generator=gen)
        for y, x in zip(ys.tolist(), xs.tolist(), strict=True):
            crops.append(t[:, y : y + side, x : x + side])  # (3, side, side)
        labels += [label] * PHOTO_CROPS
    names = [Path(f).stem for f in photos.filenames]
    return torch.stack(crops), torch.tensor(labels, dtype=torch.long), names


def _expected_files(name: str) -> list[str]:
    """Paths, relative to ``data_dir``, that torchvision reads for a local dataset."""
    import torchvision.datasets as tvd

    if name in ("mnist", "fashion_mnist"):
        cls = tvd.MNIST if name == "mnist" else tvd.FashionMNIST
        return [f"{cls.__name__}/raw/{os.path.splitext(url)[0]}" for url, _ in cls.resources]
    cls = tvd.CIFAR10 if name == "cifar10" else tvd.CIFAR100
    return [f"{cls.base_folder}/{f}" for f, _ in cls.train_list + cls.test_list]


def _check_local(name: str, root: Path | None) -> Path:
    expected = _expected_files(name)
    if root is None:
        raise DataError(f"{name} is read from data_dir, a folder holding {', '.join(expected)}")
    missing = [f for f in expected if not (root / f).is_file()]
    if missing:
        raise DataError(
            f"{name} not found under {root.resolve()}: missing {', '.join(missing)} "
            "(nothing is downloaded; fetch it where there is a network)"
        )
    return root


def _torchvision(
    name: str,
    root: Path | None,
    *,
    img_size: int,
    in_chans: int,
    seed: int,
    val_fraction: float,
    subset: int | None,
    augment: AugmentFactory | None,
) -> DataBundle:
    import torchvision.datasets as tvd

    root = _check_local(name, root)
    cls = {
        "mnist": tvd.MNIST,
        "fashion_mnist": tvd.FashionMNIST,
        "cifar10": tvd.CIFAR10,
        "cifar100": tvd.CIFAR100,
    }[name]
    mean, std = STATS[name]
    prep = Preprocess(img_size, in_chans, mean, std)
    tf = PilToPreprocessed(prep)
    try:
        full = cls(str(root), train=True, transform=tf, download=False)
        test = cls(str(root), train=False, transform=tf, download=False)
        train_full = full
        if augment is not None:
            train_full = cls(str(root), train=True, transform=augment(prep), download=False)
    except (RuntimeError, OSError, ValueError) as exc:
        raise DataError(f"cannot read {name} under {root.resolve()}: {exc}") from exc
    tr, va, _ = split_indices(list(full.targets), val_fraction, 0.0, seed)
    te = np.arange(len(test))
    splits = (tr, va, te)
    return _subsets(
        name, full, test, train_full, splits, subset, seed, img_size, in_chans, mean, std
    )


def _image_folder(
    root: Path | None,
    *,
    img_size: int,
    in_chans: int,
    seed: int,
    val_fraction: float,
    test_fraction: float,
    subset: int | None,
    augment: AugmentFactory | None,
) -> DataBundle:
    """An ImageFolder tree (``root/<class>/<image>``), or ``root/train`` and ``root/test`` trees."""
    import torchvision.datasets as tvd

    if root is None or not root.is_dir():
        where = root.resolve() if root is not None else "(no data_dir given)"
        raise DataError(
            f"imagefolder needs a data_dir holding <class>/<image> folders "
            f"(or train/ and test/ trees of them); not found: {where}"
        )
    mean, std = STATS["imagefolder"]
    prep = Preprocess(img_size, in_chans, mean, std)
    tf = PilToPreprocessed(prep)
    has_test = (root / "train").is_dir() and (root / "test").is_dir()
    try:
        full = tvd.ImageFolder(str(root / "train" if has_test else root), transform=tf)
        test = tvd.ImageFolder(str(root / "test"), transform=tf) if has_test else full
        train_full = full
        if augment is not None:
            train_full = tvd.ImageFolder(full.root, transform=augment(prep))
    except (FileNotFoundError, RuntimeError) as exc:
        first = str(exc).strip().splitlines()[0]
        raise DataError(f"cannot read image folders under {root.resolve()}: {first}") from exc
    if has_test and test.classes != full.classes:
        raise DataError(f"{root}/train and {root}/test hold different class folders")
    if len(full.classes) < 2:
        raise DataError(
            f"{root.resolve()} holds {len(full.classes)} class folder ({', '.join(full.classes)}); "
            "classification needs at least two"
        )
    if has_test:
        tr, va, _ = split_indices(full.targets, val_fraction, 0.0, seed)
        te = np.arange(len(test))
    else:
        tr, va, te = split_indices(full.targets, val_fraction, test_fraction, seed)
    data = _subsets(
        "imagefolder", full, test, train_full, (tr, va, te), subset, seed, img_size, in_chans,
        mean, std,
    )  # fmt: skip
    _verify_images(data)
    return data


#: image files verified in this process, with the (size, mtime) they had then
_VERIFIED: dict[str, tuple[int, int]] = {}


def _verify_images(data: DataBundle) -> None:
    """Open and verify every image the splits read, so a corrupt file fails before training.

    A file verified earlier in this process and unchanged since is not decoded again (the CLI
    checks the data before opening the store, then the run loads it; a sweep loads it per cell).
    """
    from PIL import Image

    for split in (data.train, data.val, data.test):
        for i in split.indices:
            path = split.dataset.samples[i][0]
            stat = os.stat(path)
            seen = (stat.st_size, stat.st_mtime_ns)
            if _VERIFIED.get(path) == seen:
                continue
            try:
                with Image.open(path) as img:
                    img.verify()
            except Exception as exc:  # PIL raises many kinds for a corrupt file
                raise DataError(f"cannot read image {path}: {exc}") from exc
            _VERIFIED[path] = seen


def load_data(
    name: str = TrainConfig.dataset,
    *,
    data_dir: str | os.PathLike | None = None,
    img_size: int | None = None,
    in_chans: int | None = None,
    seed: int = TrainConfig.seed,
    val_fraction: float = TrainConfig.val_fraction,
    test_fraction: float = TrainConfig.test_fraction,
    subset: int | None = None,
    randaugment: str | None = None,
    random_erasing: float = 0.0,
) -> DataBundle:
    """Load a dataset as train/val/test splits sized ``img_size`` with ``in_chans`` channels.

    Sizes default to the dataset's own. ``test_fraction`` applies to datasets without an
    official test split (digits, photos, a single image folder); ``subset`` caps each split.
    ``randaugment`` (timm's spec) and ``random_erasing`` (a probability) augment each training
    image every time it is read (:mod:`vitbench.train.augment`).
    """
    if name not in NATIVE:
        raise DataError(f"unknown dataset '{name}'; choose from {', '.join(DATASETS)}")
    if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1):
        raise DataError("validation and test fractions must be in [0, 1) and sum below 1")
    if subset is not None and subset < 1:
        raise DataError(f"subset must be a positive number of images, got {subset}")
    side, chans = NATIVE[name]
    img_size = img_size or side
    in_chans = in_chans or chans
    if img_size < 1 or in_chans not in (1, 3):
        raise DataError(f"image size must be positive and channels 1 or 3 ({img_size}, {in_chans})")
    root = Path(data_dir) if data_dir is not None else None
    augment = None
    if randaugment or random_erasing > 0:
        augment = functools.partial(Augment, randaugment=randaugment, random_erasing=random_erasing)
    sizes = dict(img_size=img_size, in_chans=in_chans, seed=seed, subset=subset, augment=augment)
    if name in ("digits", "photos"):
        pixels, labels, classes = _digits() if name == "digits" else _photos(seed, side)
        return _in_memory(
            name,
            pixels,
            labels,
            classes,
            val_fraction=val_fraction,
            test_fraction=test_fraction,
            **sizes,
        )
    if name == "imagefolder":
        return _image_folder(root, val_fraction=val_fraction, test_fraction=test_fraction, **sizes)
    return _torchvision(name, root, val_fraction=val_fraction, **sizes)


def check_data(
    name: str,
    *,
    data_dir: str | os.PathLike | None = None,
    seed: int = TrainConfig.seed,
    val_fraction: float = TrainConfig.val_fraction,
    test_fraction: float = TrainConfig.test_fraction,
    subset: int | None = None,
) -> None:
    """Raise :class:`DataError` for a local dataset that cannot make a run.

    An image folder is scanned (classes, split sizes, every image verified once per process); a
    torchvision dataset's files are looked for. Embedded datasets need no check.
    """
    if name == "imagefolder":
        load_data(
            name,
            data_dir=data_dir,
            seed=seed,
            val_fraction=val_fraction,
            test_fraction=test_fraction,
            subset=subset,
        )
    elif name in LOCAL_DATASETS:
        _check_local(name, Path(data_dir) if data_dir is not None else None)
