"""What decides a training run: one dataclass, its defaults and checks, shared with the CLI.

Each field is also an option of ``vitbench train`` and ``vitbench sweep`` (its help is here).
Torch-free at import, so the command line builds its options without loading torch.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from vitbench.errors import UnknownModelError, VitbenchError
from vitbench.model_options import (
    imports_option,
    proportional_attn_option,
    prune_option,
    tome_option,
    tome_schedule_option,
)
from vitbench.options import at_least, option, parse_kwargs
from vitbench.precision import TRAIN_PRECISIONS, check_precision
from vitbench.segmentation import NATIVE as SEGMENTATION_DATASETS
from vitbench.segmentation import TASKS
from vitbench.segmentation.checks import check_classification, check_segmentation
from vitbench.train.defaults import DATASETS, DEFAULT_MODEL, DEFAULT_MODEL_KWARGS, LOCAL_DATASETS

if TYPE_CHECKING:
    from vitbench.token_reduction import TokenReduction
    from vitbench.zoo import ModelSpec

_MODEL_HELP = (
    "Model name or alias, torchvision:NAME, or a factory file.py:fn or package.module:fn "
    f"(default: {DEFAULT_MODEL} shrunk to digits with "
    + ",".join(f"{k}={v}" for k, v in DEFAULT_MODEL_KWARGS.items())
    + ")."
)


_POINTS_LEAD = (
    "Test the trained model at these points (test accuracy and images/s, table token_reduction). "
)
#: fields whose default leaves the fingerprint of a config as it was before they existed
_NEW_FIELDS = ("train_tome", "train_prune", "tome", "prune", "tome_schedule", "proportional_attn")
_NEW_FIELDS += ("teacher", "teacher_kwargs", "teacher_checkpoint", "teacher_pretrained")
_NEW_FIELDS += ("distillation", "distill_weight", "distill_tau", "freeze", "layer_decay", "ema")
_NEW_FIELDS += ("randaugment", "random_erasing")
_NEW_FIELDS += ("task", "decoder")
_NEW_FIELDS += ("img_size_schedule",)
#: the kinds of knowledge distillation (DeiT's)
DISTILLATIONS = ("hard", "soft")
#: the teacher's weight in the objective by default: DeiT's hard objective halves the two terms
DISTILL_WEIGHTS = {"hard": 0.5, "soft": 0.1}


def _resolve_model(name: str) -> str:
    """The canonical name; a name not known yet is kept, for :meth:`TrainConfig.resolved` to
    try again once the packages of ``imports`` are imported."""
    from vitbench.zoo import resolve_name

    try:
        return resolve_name(name)
    except UnknownModelError:
        return name


@dataclass
class TrainConfig:
    """Everything that decides a training run's result (and nothing that does not)."""

    # task
    task: str = option(
        "classification",
        help="classification (a label per image) or segmentation (a label per pixel, "
        "on a dataset with masks: digits_canvas, embedded, or ade20k).",
    )
    decoder: str = option(
        "linear", help="Segmentation decoder of the patch tokens: linear or setr-pup (SETR's)."
    )
    # data
    dataset: str = option(
        "digits",
        flags=("--dataset", "-d"),
        help=f"Dataset: {', '.join(DATASETS)} (digits and photos are embedded); for "
        f"segmentation, {', '.join(SEGMENTATION_DATASETS)}.",
    )
    data_dir: str | None = option(None, help="Folder holding a local dataset (never downloaded).")
    img_size: int | None = option(None, help="Image side the model sees (default: the data's).")
    img_size_schedule: str | None = option(
        None,
        help="Progressive resizing: image sides and the share of training at which each starts, "
        "e.g. 16:0,24:0.5,32:0.8 (a ViT's position table is resampled at each change).",
    )
    in_chans: int | None = option(None, help="Channels the model sees, 1 or 3 (default: data's).")
    val_fraction: float = option(0.1, help="Share of images held out for validation.")
    test_fraction: float = option(0.2, help="Test share, for data with no test split.")
    subset: int | None = option(None, help="At most this many images in each split.")
    # model; for DEFAULT_MODEL, model_kwargs override DEFAULT_MODEL_KWARGS key by key
    model: str = option(
        DEFAULT_MODEL, flags=("--model", "-m"), help=_MODEL_HELP, parse=_resolve_model
    )
    model_kwargs: dict[str, Any] = option(
        default_factory=dict,
        help="Model keyword overrides, e.g. 'depth=6,embed_dim=96'.",
        parse=parse_kwargs,
    )
    imports: list[str] | None = imports_option()
    pretrained: bool = option(
        False, help="Start from published weights (timm's, or torchvision's when cached)."
    )
    checkpoint: str | None = option(None, help="Start from these weights (safetensors/torch).")
    dropout: float | None = option(None, help="Dropout rate (the model's drop_rate).")
    drop_path: float | None = option(None, help="Stochastic depth rate (drop_path_rate).")
    layer_scale: float | None = option(None, help="LayerScale initial value (init_values).")
    # transfer learning
    freeze: bool = option(
        False, help="Linear probe: train only the classification head, the rest frozen."
    )
    layer_decay: float | None = option(
        None,
        help="Layer-wise learning-rate decay for fine-tuning: the head learns at lr, the block "
        "below at lr x decay, and so on down to the patch embedding.",
    )
    # knowledge distillation (DeiT)
    teacher: str | None = option(
        None,
        help="Teacher to distil from: a model as for --model (needs distillation).",
        parse=_resolve_model,
    )
    teacher_kwargs: dict[str, Any] = option(
        default_factory=dict, help="Teacher model keyword overrides.", parse=parse_kwargs
    )
    teacher_checkpoint: str | None = option(
        None, help="The teacher's weights, e.g. a run's model.safetensors."
    )
    teacher_pretrained: bool = option(
        False, help="The teacher's published weights (timm's, from the local cache)."
    )
    distillation: str | None = option(
        None,
        help="hard (the teacher's argmax is a second label) or soft (KL divergence to the "
        "teacher at distill_tau), into the student's distillation head, else its class head.",
    )
    distill_weight: float | None = option(
        None,
        help="Weight of the teacher's term, the label's is 1 - it (default: 0.5 hard, 0.1 soft).",
    )
    distill_tau: float = option(3.0, help="Temperature of soft distillation.")
    # token reduction: trained with, and the points the trained model is tested at
    train_tome: int | None = option(
        None, help="Train (and test) with token merging on: r tokens merged in every block."
    )
    train_prune: float | None = option(
        None, help="Train (and test) with token pruning on: the share of tokens kept."
    )
    tome: Sequence[int | None] = tome_option(points=True, lead=_POINTS_LEAD)
    prune: Sequence[float | None] = prune_option(points=True, lead=_POINTS_LEAD)
    tome_schedule: str = tome_schedule_option()
    proportional_attn: bool = proportional_attn_option()
    # optimisation
    epochs: int = option(
        50, help="Epochs (0 trains nothing: it tests the weights of checkpoint or pretrained)."
    )
    batch_size: int = option(
        64, flags=("--batch-size", "-b"), help="Global batch size (split over processes)."
    )
    lr: float = option(1e-3, help="Peak learning rate (AdamW).")
    min_lr: float = option(1e-5, help="Learning rate at the end of the cosine.")
    weight_decay: float = option(0.05, help="AdamW weight decay (not on biases/norms).")
    warmup: float = option(0.1, help="Share of the updates spent in linear warm-up.")
    label_smoothing: float = option(0.1, help="Label smoothing.")
    mixup: float = option(0.0, help="Mixup alpha (0: off).")
    cutmix: float = option(0.0, help="CutMix alpha (0: off).")
    clip_grad: float | None = option(1.0, help="Max gradient norm (0: no clipping).")
    ema: float | None = option(
        None,
        help="Also keep an exponential moving average of the weights with this decay, e.g. "
        "0.99, and test it (timm's ModelEmaV3).",
    )
    randaugment: str | None = option(
        None, help="RandAugment of training images: timm's spec, e.g. rand-m9-mstd0.5-inc1."
    )
    random_erasing: float = option(
        0.0, help="Probability of erasing a random rectangle of a training image (timm's)."
    )
    # execution
    seed: int = option(0, help="Seed for splits, initialisation and shuffling.")
    device: str | None = option(None, help="cpu or cuda (default: cuda when available).")
    precision: str = option("fp32", help="fp32, bf16 or fp16 (fp16 on CUDA only).")
    grad_checkpointing: bool = option(False, help="Recompute activations (timm models).")
    workers: int = option(0, help="Data loader worker processes.")
    threads: int | None = option(None, help="CPU threads (default: torch's; recorded).")

    def __post_init__(self) -> None:
        if self.clip_grad == 0:
            self.clip_grad = None  # one spelling of "no clipping", so one fingerprint
        self.tome, self.prune = tuple(self.tome), tuple(self.prune)  # as read back from JSON

    def validate(self) -> None:
        """Raise :class:`VitbenchError` for options that cannot make a run."""
        self._validate_data()
        self._validate_optimisation()
        self._validate_methods()
        self._validate_teacher()
        for name in ("dropout", "drop_path"):
            value = getattr(self, name)
            if value is not None and not 0 <= value < 1:
                raise VitbenchError(f"{name} must be in [0, 1), got {value}")
        check_precision(self.precision, TRAIN_PRECISIONS)
        at_least("threads", self.threads, 1)
        at_least("workers", self.workers, 0)
        if self.pretrained and self.checkpoint:
            raise VitbenchError("give pretrained or checkpoint, not both")
        self.train_reduction()
        self.reduction_points()
        if self.device is not None:  # None: cuda when available, else the CPU
            from vitbench.device import check_device

            check_device(self.device)

    def resolved(self) -> TrainConfig:
        """This config with the packages of ``imports`` imported and the model's and the
        teacher's names canonical (an alias resolved); an unknown name is a one-line error."""
        from vitbench.zoo import load_imports, resolve_name

        load_imports(self.imports)
        teacher = resolve_name(self.teacher) if self.teacher is not None else None
        return dataclasses.replace(self, model=resolve_name(self.model), teacher=teacher)

    def _validate_data(self) -> None:
        """The dataset, where it is read from and the image shape."""
        if self.task not in TASKS:
            raise VitbenchError(f"task is one of {', '.join(TASKS)}, not '{self.task}'")
        if self.task == "segmentation":
            check_segmentation(self)
        elif self.dataset not in DATASETS:
            check_classification(self.dataset)
            choices = ", ".join(DATASETS)
            raise VitbenchError(f"unknown dataset '{self.dataset}'; choose from {choices}")
        elif self.data_dir is not None and self.dataset not in LOCAL_DATASETS:
            raise VitbenchError(
                f"data_dir is read only by the local datasets ({', '.join(LOCAL_DATASETS)}); "
                f"{self.dataset} is embedded"
            )
        for name in ("img_size", "subset"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise VitbenchError(f"{name} must be positive, got {value}")
        if self.in_chans is not None and self.in_chans not in (1, 3):
            raise VitbenchError(f"in_chans must be 1 or 3, got {self.in_chans}")
        if self.img_size_schedule is not None:
            self._validate_size_schedule()

    def _validate_size_schedule(self) -> None:
        """The schedule parses, gives every size an epoch and is the only source of sizes."""
        from vitbench.train.resize import SizeSchedule

        if self.img_size is not None:
            raise VitbenchError("give img_size or img_size_schedule, not both")
        if self.teacher is not None:
            raise VitbenchError("img_size_schedule does not resize a teacher: train without one")
        if self.task != "classification":
            raise VitbenchError(f"img_size_schedule resizes classification runs, not {self.task}")
        if self.epochs < 1:
            raise VitbenchError("img_size_schedule needs epochs to train, at least one")
        SizeSchedule.parse(self.img_size_schedule).check_epochs(self.epochs)

    def _validate_optimisation(self) -> None:
        """Epochs, batch, learning rates and the regularisers' ranges."""
        evaluating = self.epochs == 0 and (self.checkpoint or self.pretrained)
        if self.epochs < 1 and not evaluating:
            raise VitbenchError(
                f"epochs must be at least 1, got {self.epochs} (0 tests the weights of "
                "checkpoint or pretrained)"
            )
        at_least("batch_size", self.batch_size, 1)
        if self.lr <= 0:
            raise VitbenchError(f"lr must be positive, got {self.lr}")
        if self.min_lr < 0 or self.weight_decay < 0:
            raise VitbenchError("min_lr and weight_decay must be non-negative")
        if not 0 <= self.warmup < 1:
            raise VitbenchError(f"warmup is a share of the run in [0, 1), got {self.warmup}")
        if not 0 <= self.label_smoothing < 1:
            raise VitbenchError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if self.mixup < 0 or self.cutmix < 0:
            raise VitbenchError("mixup and cutmix alphas must be non-negative")
        at_least("clip_grad", self.clip_grad, 0)

    def _validate_methods(self) -> None:
        """Transfer learning, weights EMA and augmentation."""
        if self.layer_decay is not None and not 0 < self.layer_decay <= 1:
            raise VitbenchError(f"layer_decay must be in (0, 1], got {self.layer_decay}")
        if self.layer_decay is not None and self.freeze:
            raise VitbenchError(
                "layer_decay has nothing to decay with freeze: only the head trains"
            )
        if self.ema is not None and not 0 < self.ema < 1:
            raise VitbenchError(f"ema is a decay in (0, 1), got {self.ema}")
        if not 0 <= self.random_erasing <= 1:
            raise VitbenchError(f"random_erasing is a probability, got {self.random_erasing}")
        if self.randaugment is not None:
            from vitbench.train.augment import check_randaugment

            check_randaugment(self.randaugment)

    def _validate_teacher(self) -> None:
        """Distillation needs a teacher with weights, and a teacher needs distillation."""
        if self.distillation is not None and self.distillation not in DISTILLATIONS:
            raise VitbenchError(f"distillation is hard or soft, not '{self.distillation}'")
        if self.teacher is None:
            given = [n for n in ("distillation", "teacher_checkpoint") if getattr(self, n)]
            given += [n for n in ("teacher_pretrained", "teacher_kwargs") if getattr(self, n)]
            if given:
                raise VitbenchError(f"{given[0]} needs a teacher")
            return
        if self.distillation is None:
            raise VitbenchError("a teacher needs distillation: hard or soft")
        if self.teacher_pretrained and self.teacher_checkpoint:
            raise VitbenchError("give teacher_pretrained or teacher_checkpoint, not both")
        if not (self.teacher_pretrained or self.teacher_checkpoint):
            raise VitbenchError(
                "the teacher needs weights: teacher_checkpoint or teacher_pretrained"
            )
        if self.distill_weight is not None and not 0 <= self.distill_weight <= 1:
            raise VitbenchError(f"distill_weight must be in [0, 1], got {self.distill_weight}")
        if self.distill_tau <= 0:
            raise VitbenchError(f"distill_tau must be positive, got {self.distill_tau}")

    def teacher_weight(self) -> float:
        """The weight of the teacher's term in the objective (0 without distillation)."""
        if self.distill_weight is not None and self.distillation is not None:
            return self.distill_weight
        return DISTILL_WEIGHTS.get(self.distillation or "", 0.0)

    def augmentation(self) -> dict[str, Any]:
        """How training images are augmented: the augmentation keywords of ``load_data``."""
        return dict(randaugment=self.randaugment, random_erasing=self.random_erasing)

    def start(self) -> str:
        """Where the weights start: scratch, pretrained or checkpoint."""
        return "pretrained" if self.pretrained else "checkpoint" if self.checkpoint else "scratch"

    def data_split(self) -> dict[str, Any]:
        """Where the data comes from and how it is split: the keywords of ``load_data``."""
        return dict(
            data_dir=self.data_dir,
            seed=self.seed,
            val_fraction=self.val_fraction,
            test_fraction=self.test_fraction,
            subset=self.subset,
        )

    def resolved_model_kwargs(self) -> dict[str, Any]:
        """Architecture keywords for the model, with the recipe's regularisers added."""
        base = DEFAULT_MODEL_KWARGS if self.model == DEFAULT_MODEL else {}
        kw = {**base, **self.model_kwargs}
        for key, value in (
            ("drop_rate", self.dropout),
            ("drop_path_rate", self.drop_path),
            ("init_values", self.layer_scale),
        ):
            if value is not None:
                kw[key] = value
        return kw

    def model_spec(self, img_size: int, in_chans: int, num_classes: int) -> ModelSpec:
        """The model trained: its shape, and the token reduction it trains with."""
        from vitbench.zoo import ModelSpec

        return ModelSpec(
            self.model,
            img_size=img_size,
            in_chans=in_chans,
            num_classes=num_classes,
            kwargs=self.resolved_model_kwargs(),
            reduction=self.train_reduction(),
        )

    def train_reduction(self) -> TokenReduction | None:
        """The token merging or pruning the model trains with, checked; None when it has
        nothing to do."""
        from vitbench.token_reduction import TokenReduction

        reduction = TokenReduction(
            tome_r=self.train_tome,
            tome_schedule=self.tome_schedule,
            proportional=self.proportional_attn,
            prune_keep=self.train_prune,
        )
        reduction.validate()
        return reduction if reduction.active else None

    def reduction_points(self) -> list[TokenReduction | None]:
        """The points the trained model is tested at, checked (the plain model first); just
        [None] when no point is asked for."""
        from vitbench.zoo.reduction import reduction_points

        return reduction_points(
            self.tome, self.prune, schedule=self.tome_schedule, proportional=self.proportional_attn
        )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise VitbenchError(f"unknown training options: {', '.join(sorted(unknown))}")
        return cls(**data)

    def fingerprint(self) -> str:
        """A short hash of every field that decides the result (not where or how fast it runs)."""
        d = self.to_dict()
        for key in ("device", "workers", "threads", "data_dir"):
            d.pop(key)
        defaults = type(self)().to_dict()
        for key in _NEW_FIELDS:  # JSON text: a tuple and the list it is read back as agree
            if json.dumps(d[key]) == json.dumps(defaults[key]):
                d.pop(key)
        blob = json.dumps(d, sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]
