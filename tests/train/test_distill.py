"""Knowledge distillation (DeiT): the losses, the student's two heads, a run and bad input."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from vitbench.errors import VitbenchError
from vitbench.store import open_store
from vitbench.train import TrainConfig, train
from vitbench.train.distill import DistillationLoss, head_logits
from vitbench.train.inputs import check_inputs
from vitbench.zoo import create_model

KW = dict(patch_size=2, embed_dim=32, depth=2, num_heads=2, mlp_ratio=2.0)
DEIT = "scratch_deit_tiny_distilled_patch16_224"
FAST = dict(device="cpu", threads=1, lr=5e-3)


class Fixed(torch.nn.Module):
    """A teacher whose logits are given."""

    def __init__(self, logits: torch.Tensor) -> None:
        super().__init__()
        self.logits = logits

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits


def test_soft_loss_is_zero_when_the_teacher_is_the_students_frozen_copy() -> None:
    torch.manual_seed(0)
    student = create_model(TrainConfig(model_kwargs=KW).model_spec(8, 1, 10)).train()
    teacher = copy.deepcopy(student).requires_grad_(False).eval()
    x, y = torch.randn(16, 1, 8, 8), torch.randint(0, 10, (16,))
    loss = DistillationLoss(torch.nn.CrossEntropyLoss(), teacher, "soft", 0.1, 3.0)
    output = student(x)  # step 0: the student's weights are the teacher's
    label, kd = loss.parts(x, output, y)
    assert kd.item() == pytest.approx(0.0, abs=1e-6)
    assert label.item() > 1.0  # the label's term still teaches
    assert loss(x, output, y).item() == pytest.approx(0.9 * label.item(), rel=1e-6)


def test_hard_labels_are_the_teachers_argmax_into_the_distillation_head() -> None:
    y = torch.tensor([0, 1, 2, 3])
    teacher_logits = torch.zeros(4, 10)
    teacher_logits[torch.arange(4), torch.tensor([7, 7, 2, 5])] = 5.0  # argmax 7, 7, 2, 5
    cls, dist = torch.randn(4, 10), torch.randn(4, 10)
    loss = DistillationLoss(torch.nn.CrossEntropyLoss(), Fixed(teacher_logits), "hard", 0.5, 3.0)
    label, kd = loss.parts(torch.zeros(4, 1, 8, 8), (cls, dist), y)
    assert label.item() == pytest.approx(F.cross_entropy(cls, y).item())  # class head: labels
    assert kd.item() == pytest.approx(F.cross_entropy(dist, torch.tensor([7, 7, 2, 5])).item())
    total = loss(torch.zeros(4, 1, 8, 8), (cls, dist), y)
    assert total.item() == pytest.approx(0.5 * label.item() + 0.5 * kd.item())


def test_a_distilled_model_tests_on_the_mean_of_its_two_heads() -> None:
    model = create_model(TrainConfig(model=DEIT, model_kwargs=KW).model_spec(8, 1, 10))
    x = torch.randn(5, 1, 8, 8)
    with torch.no_grad():
        cls, dist = head_logits(model, x)
        torch.testing.assert_close(model(x), (cls + dist) / 2, rtol=0, atol=0)
    assert not torch.equal(cls, dist)


@pytest.fixture(scope="module")
def teacher_weights(tmp_path_factory):
    """The MLP baseline trained on digits (it learns in seconds): the teacher."""
    store = open_store(tmp_path_factory.mktemp("teacher"))
    cfg = TrainConfig(model="scratch_mlp", epochs=3, lr=2e-3, device="cpu", threads=1)
    result = train(cfg, store=store)
    assert result.test_acc > 0.8
    return result.run_dir / "model.safetensors", result.test_acc


def test_a_student_distilled_from_a_trained_teacher_beats_chance_widely(
    tmp_path, teacher_weights
) -> None:
    weights, teacher_acc = teacher_weights
    cfg = TrainConfig(model=DEIT, model_kwargs=KW, epochs=12, teacher="scratch_mlp",
                      teacher_checkpoint=str(weights), distillation="hard", **FAST)  # fmt: skip
    store = open_store(tmp_path)
    result = train(cfg, store=store)
    rec = result.record
    assert result.test_acc > 0.5  # chance is 0.1
    assert rec["teacher_test_acc"] == pytest.approx(teacher_acc)
    assert 0 < rec["test_acc_cls"] <= 1 and 0 < rec["test_acc_dist"] <= 1
    assert (rec["distillation"], rec["distill_weight"]) == ("hard", 0.5)
    row = store.read("train_runs").iloc[0]
    assert row.teacher == "scratch_mlp" and row.test_acc_dist == rec["test_acc_dist"]


def test_soft_distillation_into_the_class_head_of_a_student_without_a_token(
    teacher_weights,
) -> None:
    weights, _ = teacher_weights
    cfg = TrainConfig(model_kwargs=dict(KW, depth=1), epochs=2, subset=256, distillation="soft",
                      teacher="scratch_mlp", teacher_checkpoint=str(weights), **FAST)  # fmt: skip
    rec = train(cfg).record
    assert rec["test_acc_cls"] is None and rec["distill_weight"] == 0.1
    assert 0 <= rec["test_acc"] <= 1


@pytest.mark.parametrize(
    ("options", "words"),
    [
        (dict(distillation="hard"), "distillation needs a teacher"),
        (dict(teacher_checkpoint="t.safetensors"), "teacher_checkpoint needs a teacher"),
        (dict(teacher="scratch_mlp"), "a teacher needs distillation"),
        (dict(teacher="scratch_mlp", distillation="hard"), "the teacher needs weights"),
        (dict(teacher="scratch_mlp", distillation="warm", teacher_pretrained=True), "hard or soft"),
        (
            dict(
                teacher="scratch_mlp",
                distillation="soft",
                teacher_pretrained=True,
                teacher_checkpoint="t.safetensors",
            ),
            "not both",
        ),  # fmt: skip
        (dict(teacher="m", distillation="soft", teacher_pretrained=True, distill_tau=0), "tau"),
    ],
)
def test_bad_distillation_options_name_the_parameter(options, words) -> None:
    with pytest.raises(VitbenchError, match=words):
        TrainConfig(**options).validate()


def test_a_teacher_of_other_classes_or_offline_weights_is_refused_before_training(
    tmp_path,
) -> None:
    two = TrainConfig(dataset="photos", epochs=1, subset=32, model_kwargs=dict(KW, patch_size=8),
                      **FAST)  # fmt: skip
    photos = train(two, store=open_store(tmp_path))
    cfg = TrainConfig(teacher="scratch_vit_tiny_patch16_224", distillation="hard",
                      teacher_checkpoint=str(photos.run_dir / "model.safetensors"), img_size=32,
                      in_chans=3)  # fmt: skip
    with pytest.raises(VitbenchError, match="predicts 2 classes and digits has 10"):
        check_inputs(cfg.resolved())
    offline = TrainConfig(
        teacher="vit_tiny_patch16_224", distillation="soft", teacher_pretrained=True
    )
    with pytest.raises(VitbenchError, match="not in the hub cache"):
        check_inputs(offline.resolved())
