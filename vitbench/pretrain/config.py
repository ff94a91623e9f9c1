"""What decides an MAE pre-training run: one dataclass, its defaults and checks, shared with the
CLI (``vitbench pretrain mae``). Torch-free at import.

The data, model and optimisation fields mean what they mean for ``vitbench train``: the run
builds the matching :class:`~vitbench.train.config.TrainConfig` (:meth:`MAEConfig.recipe`) and
takes its data split, model shape, AdamW and warm-up/cosine schedule from it, so fine-tuning
with the same data, seed and model options sees the same training split and the same shape.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from vitbench.errors import VitbenchError
from vitbench.options import at_least, option, parse_kwargs
from vitbench.train.config import TrainConfig, _resolve_model
from vitbench.train.defaults import DEFAULT_MODEL, DEFAULT_MODEL_KWARGS, NATIVE

#: crops of the sample photographs, as the attention analysis draws them (no labels)
SAMPLE = "sample"
#: what MAE pre-trains on: embedded datasets (their labels unused) and the sample crops
PRETRAIN_DATASETS = ("digits", "photos", SAMPLE)
#: dataset -> (native side, channels)
PRETRAIN_NATIVE = {**{name: NATIVE[name] for name in PRETRAIN_DATASETS[:2]}, SAMPLE: (64, 3)}


@dataclass
class MAEConfig:
    """Everything that decides an MAE pre-training run's result."""

    # data: as for `vitbench train`; pre-training reads the training split only
    dataset: str = option(
        "digits",
        flags=("--dataset", "-d"),
        help="digits or photos (their training split, labels unused), or sample: crops of "
        "the sample photographs as `analyze attention --sample-images` draws them (64 px).",
    )
    img_size: int | None = option(None, help="Image side the model sees (default: the data's).")
    in_chans: int | None = option(None, help="Channels the model sees, 1 or 3 (default: data's).")
    subset: int | None = option(
        None, help="At most this many training images (sample: the crops drawn, default 1024)."
    )
    # the encoder: a from-scratch ViT, as `vitbench train` builds it
    model: str = option(
        DEFAULT_MODEL,
        flags=("--model", "-m"),
        help=f"The encoder, a vitbench ViT (scratch_vit_*; default: {DEFAULT_MODEL} shrunk to "
        "digits with " + ",".join(f"{k}={v}" for k, v in DEFAULT_MODEL_KWARGS.items()) + ").",
        parse=_resolve_model,
    )
    model_kwargs: dict[str, Any] = option(
        default_factory=dict,
        help="Encoder keyword overrides, e.g. 'patch_size=4,depth=6'; fine-tune with the same.",
        parse=parse_kwargs,
    )
    # MAE
    mask_ratio: float = option(0.75, help="Share of each image's patches hidden from the encoder.")
    norm_pix: bool = option(
        True, help="Predict each patch's pixels normalised by its own mean and spread (MAE's)."
    )
    decoder_dim: int = option(64, help="Width of the decoder (a multiple of 4).")
    decoder_depth: int = option(2, help="Blocks of the decoder.")
    decoder_heads: int = option(4, help="Attention heads of the decoder.")
    # optimisation
    epochs: int = option(20, help="Epochs of pre-training.")
    batch_size: int = option(64, flags=("--batch-size", "-b"), help="Batch size.")
    lr: float = option(1e-3, help="Peak learning rate (AdamW).")
    min_lr: float = option(1e-5, help="Learning rate at the end of the cosine.")
    weight_decay: float = option(0.05, help="AdamW weight decay (not on biases/norms).")
    warmup: float = option(0.1, help="Share of the updates spent in linear warm-up.")
    # execution
    seed: int = option(0, help="Seed for the split (as train's), initialisation and masking.")
    device: str | None = option(None, help="cpu or cuda (default: cuda when available).")
    threads: int | None = option(None, help="CPU threads (default: torch's; recorded).")

    def recipe(self) -> TrainConfig:
        """The training config with this run's data (the sample crops are none of train's
        datasets), model and optimisation."""
        own = {f.name for f in dataclasses.fields(self)}
        names = [f.name for f in dataclasses.fields(TrainConfig) if f.name in own]
        shared = {name: getattr(self, name) for name in names}
        if self.dataset == SAMPLE:
            del shared["dataset"]
        return TrainConfig(**shared)

    def input_shape(self) -> tuple[int, int]:
        """(side, channels) of the images the encoder sees."""
        side, chans = PRETRAIN_NATIVE[self.dataset]
        return self.img_size or side, self.in_chans or chans

    def validate(self) -> None:
        """Raise :class:`VitbenchError` for options that cannot make a run."""
        if self.dataset not in PRETRAIN_DATASETS:
            raise VitbenchError(
                f"MAE pre-trains on {', '.join(PRETRAIN_DATASETS)}, not '{self.dataset}'"
            )
        self.recipe().validate()
        if not 0 < self.mask_ratio < 1:
            raise VitbenchError(f"mask_ratio is a share in (0, 1), got {self.mask_ratio}")
        at_least("decoder_depth", self.decoder_depth, 1)
        at_least("decoder_heads", self.decoder_heads, 1)
        if self.decoder_dim < 4 or self.decoder_dim % 4:
            raise VitbenchError(
                f"decoder_dim must be a positive multiple of 4, not {self.decoder_dim}"
            )
        if self.decoder_dim % self.decoder_heads:
            raise VitbenchError(
                f"decoder_dim {self.decoder_dim} does not split into {self.decoder_heads} heads"
            )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def fingerprint(self) -> str:
        """A short hash of every field that decides the result (not where or how fast it runs)."""
        d = {k: v for k, v in self.to_dict().items() if k not in ("device", "threads")}
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:12]
