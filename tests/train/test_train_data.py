"""Datasets: embedded digits and photos, local torchvision sets read from files, image folders."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vitbench.errors import DataError
from vitbench.train.data import Preprocess, load_data, split_indices


def _labels(ds) -> list[int]:
    return [int(ds[i][1]) for i in range(len(ds))]


def test_digits_splits_cover_every_image_once_and_follow_the_seed() -> None:
    from sklearn.datasets import load_digits

    a = load_data("digits", seed=0)
    sizes = (len(a.train), len(a.val), len(a.test))
    assert sum(sizes) == 1797  # scikit-learn's digits
    assert sizes == (1257, 180, 360)
    assert a.num_classes == 10 and a.img_size == 8 and a.in_chans == 1
    tr, va, te = split_indices(load_digits().target, 0.1, 0.2, seed=0)
    assert sorted(np.concatenate([tr, va, te]).tolist()) == list(range(1797))  # each image once
    # stratified: every class in the test split in proportion (about 36 each)
    counts = np.bincount(_labels(a.test), minlength=10)
    assert counts.min() >= 33 and counts.max() <= 39
    b = load_data("digits", seed=0)
    assert torch.equal(a.test.tensors[0], b.test.tensors[0])
    c = load_data("digits", seed=1)
    assert not torch.equal(a.test.tensors[0], c.test.tensors[0])


def test_digits_normalised_with_the_training_split_statistics() -> None:
    from sklearn.datasets import load_digits

    d = load_data("digits", seed=0)
    x = d.train.tensors[0]  # (N, 1, 8, 8)
    assert abs(x.mean().item()) < 1e-5 and abs(x.std().item() - 1) < 1e-4
    raw = load_digits().images / 16.0
    assert 0.25 < d.mean[0] < 0.36 and abs(d.mean[0] - raw.mean()) < 0.02
    assert len(d.mean) == len(d.std) == 1


def test_preprocess_matches_torchvision_resize_and_normalize() -> None:
    from torchvision.transforms import v2

    x = torch.rand(2, 3, 20, 20)
    mean, std = (0.4, 0.5, 0.6), (0.2, 0.25, 0.3)
    ref = v2.Normalize(mean, std)(v2.Resize((12, 12), antialias=True)(x))
    got = Preprocess(12, 3, mean, std)(x)
    torch.testing.assert_close(got, ref, atol=1e-5, rtol=1e-5)
    grey = Preprocess(12, 1, mean, std)(x)  # 3 -> 1 channel: the mean of the colours
    torch.testing.assert_close(grey, ref.mean(1, keepdim=True))
    colour = Preprocess(8, 3, (0.5,), (0.5,))(torch.rand(1, 8, 8))  # single image, 1 -> 3
    assert colour.shape == (3, 8, 8) and torch.equal(colour[0], colour[2])


def test_digits_resized_and_given_three_channels_for_an_imagenet_model() -> None:
    d = load_data("digits", img_size=32, in_chans=3, subset=50)
    x, y = d.train[0]
    assert x.shape == (3, 32, 32) and 0 <= int(y) < 10
    assert len(d.train) == len(d.val) == len(d.test) == 50


def test_photos_are_two_classes_of_crops() -> None:
    d = load_data("photos", seed=0)
    assert d.classes == ["china", "flower"]
    assert sum(map(len, (d.train, d.val, d.test))) == 512
    assert d.train[0][0].shape == (3, 32, 32) and len(d.mean) == 3


def _write_idx(path, array: np.ndarray) -> None:
    """An MNIST idx file: magic (0, 0, ubyte=8, ndim), big-endian sizes, then the bytes."""
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def _fake_mnist(root, n_train: int = 40, n_test: int = 20):
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    images = {}
    for split, n in (("train", n_train), ("t10k", n_test)):
        x = rng.integers(0, 256, size=(n, 28, 28))
        y = np.arange(n) % 10
        _write_idx(raw / f"{split}-images-idx3-ubyte", x)
        _write_idx(raw / f"{split}-labels-idx1-ubyte", y)
        images[split] = (x, y)
    return images


def test_mnist_read_from_local_files_without_download(tmp_path) -> None:
    truth = _fake_mnist(tmp_path)
    d = load_data("mnist", data_dir=tmp_path, val_fraction=0.25, seed=0)
    assert (len(d.train), len(d.val), len(d.test)) == (30, 10, 20)  # test: the official split
    assert d.classes[0].startswith("0") and d.num_classes == 10
    x, y = d.test[3]
    px, label = truth["t10k"][0][3], truth["t10k"][1][3]
    assert int(y) == label and x.shape == (1, 28, 28)
    expected = (torch.tensor(px, dtype=torch.float32) / 255 - 0.1307) / 0.3081
    torch.testing.assert_close(x[0], expected)


def test_missing_mnist_names_the_files_and_where(tmp_path) -> None:
    with pytest.raises(DataError) as info:
        load_data("mnist", data_dir=tmp_path / "nowhere")
    msg = str(info.value)
    assert "MNIST/raw/train-images-idx3-ubyte" in msg and str(tmp_path / "nowhere") in msg
    assert "\n" not in msg
    with pytest.raises(DataError, match="cifar-10-batches-py/data_batch_1"):
        load_data("cifar10", data_dir=tmp_path)
    with pytest.raises(DataError, match="data_dir"):
        load_data("fashion_mnist")


def test_image_folder_tree(tmp_path) -> None:
    from PIL import Image

    for cls, colour in (("cat", (255, 0, 0)), ("dog", (0, 0, 255))):
        (tmp_path / cls).mkdir()
        for i in range(10):
            Image.new("RGB", (20 + i, 16), colour).save(tmp_path / cls / f"{i}.png")
    d = load_data("imagefolder", data_dir=tmp_path, img_size=16, val_fraction=0.2,
                  test_fraction=0.2)  # fmt: skip
    assert d.classes == ["cat", "dog"]
    assert (len(d.train), len(d.val), len(d.test)) == (12, 4, 4)
    x, y = d.train[0]
    assert x.shape == (3, 16, 16)
    red = (1.0 - 0.485) / 0.229  # ImageNet statistics
    assert abs(x[0].mean().item() - (red if y == 0 else -0.485 / 0.229)) < 1e-4
    with pytest.raises(DataError, match="class"):
        load_data("imagefolder", data_dir=tmp_path / "missing")


def test_bad_options() -> None:
    with pytest.raises(DataError, match="unknown dataset"):
        load_data("imagenet22k")
    with pytest.raises(DataError, match="fractions"):
        load_data("digits", val_fraction=0.6, test_fraction=0.5)
    with pytest.raises(DataError, match="subset"):
        load_data("digits", subset=0)
