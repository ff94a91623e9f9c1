"""Library checks of training input: each bad value is one VitbenchError naming the parameter."""

from __future__ import annotations

import pytest
from PIL import Image

from vitbench.errors import CheckpointError, DataError, VitbenchError
from vitbench.train import TrainConfig
from vitbench.train.checkpoint import load_state
from vitbench.train.data import check_data, split_indices
from vitbench.train.sweep import parse_grid


@pytest.mark.parametrize(
    ("options", "words"),
    [
        (dict(device="meta"), "unknown device 'meta'; choose from cpu, cuda"),
        (dict(data_dir="/data"), "data_dir is read only by the local datasets"),
        (dict(img_size=-8), "img_size must be positive"),
        (dict(in_chans=2), "in_chans must be 1 or 3"),
        (dict(lr=0.0), "lr must be positive"),
        (dict(pretrained=True, checkpoint="w.safetensors"), "pretrained or checkpoint"),
    ],
)
def test_config_names_the_bad_parameter(options, words) -> None:
    with pytest.raises(VitbenchError, match=words):
        TrainConfig(**options).validate()


def test_too_few_images_to_split_say_how_many_are_needed() -> None:
    with pytest.raises(DataError, match="2 image.* at least 3 images"):
        split_indices([0, 1], 0.1, 0.2, seed=0)
    assert [len(s) for s in split_indices([0, 1, 0], 0.1, 0.2, seed=0)] == [1, 1, 1]


def _folder(root, counts):
    for name, count in counts.items():
        (root / name).mkdir(parents=True)
        for i in range(count):
            Image.new("RGB", (8, 8)).save(root / name / f"{i}.png")
    return root


def test_an_image_folder_needs_two_classes_and_readable_images(tmp_path) -> None:
    with pytest.raises(DataError, match="1 class folder \\(cat\\).*at least two"):
        check_data("imagefolder", data_dir=_folder(tmp_path / "one", {"cat": 10}))
    good = _folder(tmp_path / "two", {"cat": 10, "dog": 10})
    check_data("imagefolder", data_dir=good)
    (good / "dog" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match="broken.png"):
        check_data("imagefolder", data_dir=good, subset=None)


def test_an_image_changed_since_it_was_verified_is_verified_again(tmp_path) -> None:
    good = _folder(tmp_path / "two", {"cat": 10, "dog": 10})
    check_data("imagefolder", data_dir=good)  # verified once, remembered for this process
    (good / "cat" / "3.png").write_bytes(b"not a png any more")
    with pytest.raises(DataError, match="3.png"):
        check_data("imagefolder", data_dir=good)


def test_random_bytes_are_not_a_training_state(tmp_path) -> None:
    path = tmp_path / "last.safetensors"
    path.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(CheckpointError, match="is not a vitbench training state"):
        load_state(path)


@pytest.mark.parametrize(
    ("item", "words"),
    [
        ("embed_dim=abc", "grid key 'embed_dim' wants int values, not 'abc'"),
        ("lr=fast", "grid key 'lr' wants float values"),
        ("epochs=1.5", "grid key 'epochs' wants int values"),
    ],
)
def test_grid_values_of_the_wrong_type_name_the_key(item, words) -> None:
    with pytest.raises(VitbenchError, match=words):
        parse_grid([item])


def test_grid_values_of_the_right_type_pass() -> None:
    grid = parse_grid(["embed_dim=16,32", "lr=1,0.5", "img_size=none,8", "mlp_ratio=2"])
    assert grid == {"embed_dim": [16, 32], "lr": [1, 0.5], "img_size": [None, 8], "mlp_ratio": [2]}
