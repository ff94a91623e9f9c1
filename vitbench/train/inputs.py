"""Checks of a run's inputs beyond its config, made before anything is written: the data, the
published weights asked for, the head a linear probe trains, the teacher."""

from __future__ import annotations

from vitbench.train.config import TrainConfig


def check_inputs(cfg: TrainConfig) -> None:
    """Raise a one-line :class:`~vitbench.errors.VitbenchError` for inputs ``cfg`` (validated,
    resolved) cannot train from: a local dataset that is missing or unreadable, published
    weights that are not at hand offline, ``freeze`` on a model with no head, a teacher that
    does not fit its weights or predicts other classes than the data's, a model that cannot
    take every size of its image-size schedule."""
    from vitbench.train.data import check_data, load_data
    from vitbench.train.resize import check_schedule_model, epoch_img_size
    from vitbench.zoo.sources import check_available

    check_data(cfg.dataset, **cfg.data_split())
    check_available(cfg.model, cfg.pretrained)
    if cfg.task == "segmentation":  # its data, and a model with a patch grid
        from vitbench.segmentation.training import check_inputs as check_segmentation_inputs

        check_segmentation_inputs(cfg)
        return
    if cfg.img_size_schedule:
        check_schedule_model(cfg)
    if not (cfg.freeze or cfg.teacher):
        return
    size = epoch_img_size(cfg, 0)
    data = load_data(cfg.dataset, img_size=size, in_chans=cfg.in_chans, **cfg.data_split())
    shape = (data.img_size, data.in_chans, data.num_classes)
    if cfg.freeze:
        from vitbench.train.transfer import head_modules
        from vitbench.zoo import create_model
        from vitbench.zoo.factory import with_checkpoint_spec

        spec = with_checkpoint_spec(cfg.model_spec(*shape), cfg.checkpoint)
        head_modules(create_model(spec, device="meta"), cfg.model)
    if cfg.teacher:
        from vitbench.train.distill import teacher_spec

        teacher_spec(cfg, *shape)
