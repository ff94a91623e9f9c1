"""Registered scratch models: names, closed-form parameter counts, example inputs, gradients,
and BERT's and the encoder-decoder's own conventions."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from vitbench.errors import VitbenchError
from vitbench.measure.closed_form import ViTShape, vit_params
from vitbench.measure.model_cost import count_model
from vitbench.zoo import ModelSpec, create_model, scratch_names

NAMES = [
    "scratch_bert_base",
    "scratch_deit_tiny_distilled_patch16_224",
    "scratch_mlp",
    "scratch_transformer_base",
    "scratch_vit_base_patch16_224",
    "scratch_vit_large_patch16_224",
    "scratch_vit_small_patch16_224",
    "scratch_vit_tiny_patch16_224",
]
TINY_VIT = dict(
    img_size=16,
    in_chans=2,
    num_classes=3,
    kwargs=dict(patch_size=4, embed_dim=16, depth=2, num_heads=2),
)
TINY_TOKENS = dict(seq_len=12, vocab_size=200, embed_dim=16, depth=2, num_heads=2)
TINY = {
    "scratch_bert_base": ModelSpec("scratch_bert_base", kwargs=dict(num_classes=4, **TINY_TOKENS)),
    "scratch_transformer_base": ModelSpec(
        "scratch_transformer_base", kwargs=dict(decoder_depth=2, **TINY_TOKENS)
    ),
    "scratch_mlp": ModelSpec("scratch_mlp", img_size=8, in_chans=3, num_classes=5),
}


def tiny(name: str) -> ModelSpec:
    return TINY.get(name) or ModelSpec(name, **TINY_VIT)


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_registered_names() -> None:
    assert [n for n in scratch_names() if n in NAMES] == NAMES


def meta(name: str, **kwargs) -> nn.Module:
    return create_model(ModelSpec(name, kwargs=kwargs), device="meta")


def test_closed_form_parameter_counts() -> None:
    assert n_params(meta("scratch_vit_base_patch16_224")) == 86_567_656
    assert n_params(meta("scratch_bert_base")) == 109_482_240
    assert n_params(meta("scratch_bert_base", pos_embed="sinusoidal")) == 109_482_240 - 512 * 768
    assert n_params(meta("scratch_bert_base", seq_len=1024)) == 109_482_240 + 512 * 768
    for name, shape in [
        ("scratch_vit_tiny_patch16_224", ViTShape(embed_dim=192, num_heads=3)),
        ("scratch_vit_large_patch16_224", ViTShape(embed_dim=1024, depth=24, num_heads=16)),
        (
            "scratch_vit_small_patch16_224",
            ViTShape(
                img_size=64, patch_size=8, in_chans=1, num_classes=10, embed_dim=384, num_heads=6
            ),
        ),
    ]:
        kw = dict(
            img_size=shape.img_size,
            patch_size=shape.patch_size,
            in_chans=shape.in_chans,
            num_classes=shape.num_classes,
        )
        assert n_params(meta(name, **kw)) == vit_params(shape), name
    # the encoder-decoder is nn.Transformer plus one shared (tied) embedding table
    with torch.device("meta"):
        ref = nn.Transformer(512, 8, 6, 6, 2048, batch_first=True)
    assert n_params(meta("scratch_transformer_base")) == n_params(ref) + 37000 * 512
    assert n_params(meta("scratch_mlp")) == 28 * 28 * 512 + 512 + 512 * 10 + 10


@pytest.mark.parametrize("name", NAMES)
def test_create_model_builds_each_on_meta_and_cpu(name: str) -> None:
    model = create_model(name, device="meta")
    inputs = model.example_inputs(2, device="meta")
    assert model.input_kind in ("image", "tokens") and all(t.device.type == "meta" for t in inputs)
    model = create_model(tiny(name))
    inputs = model.example_inputs(2)
    if model.input_kind == "image":
        assert len(inputs) == 1 and inputs[0].shape[:2] == (2, model.in_chans)
    else:
        assert all(t.shape == (2, 12) and t.dtype == torch.long for t in inputs)
    with torch.no_grad():
        assert model(*inputs).shape[0] == 2


@pytest.mark.parametrize(
    "spec",
    [
        tiny(n)
        for n in (
            "scratch_bert_base",
            "scratch_transformer_base",
            "scratch_mlp",
            "scratch_deit_tiny_distilled_patch16_224",
        )
    ]
    + [
        ModelSpec(
            "scratch_vit_tiny_patch16_224", **{**TINY_VIT, "kwargs": {**TINY_VIT["kwargs"], **kw}}
        )
        for kw in (
            dict(init_values=0.1),
            dict(pos_embed="rel", norm_first=False),
            dict(global_pool="avg", patch_embed="linear"),
        )
    ],
    ids=[
        "bert",
        "transformer",
        "mlp",
        "deit-distilled",
        "vit-layerscale",
        "vit-rel-postnorm",
        "vit-avg-linear",
    ],
)
def test_gradients_reach_every_parameter(spec: ModelSpec) -> None:
    torch.manual_seed(0)
    model = create_model(spec).train()
    out = model(*model.example_inputs(2))
    (out * torch.randn_like(out)).sum().backward()  # a plain sum is constant under a final norm
    dead = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not dead


def test_bert_segments_cls_sep_and_padding() -> None:
    torch.manual_seed(0)
    bert = create_model(ModelSpec("scratch_bert_base", kwargs=TINY_TOKENS))
    ids, types = bert.build_inputs([7, 8], [9])
    assert ids.tolist() == [[101, 7, 8, 102, 9, 102]] and types.tolist() == [[0, 0, 0, 0, 1, 1]]
    (example,) = bert.example_inputs(3)
    assert (example[:, 0] == 101).all() and (example[:, -1] == 102).all()
    # padding: tokens after the mask change nothing for the real tokens
    ids = torch.randint(0, 200, (1, 8))
    padded = torch.cat([ids, torch.zeros(1, 4, dtype=torch.long)], dim=1)
    mask = torch.cat([torch.ones(1, 8), torch.zeros(1, 4)], dim=1)
    with torch.no_grad():
        short = bert.forward_features(ids)
        long = bert.forward_features(padded, attention_mask=mask)
    assert torch.allclose(long[:, :8], short, atol=1e-5)
    with pytest.raises(ValueError):
        bert.forward_features(torch.zeros(1, 13, dtype=torch.long))  # longer than seq_len 12
    with pytest.raises(VitbenchError, match="vocabulary"):
        create_model(ModelSpec("scratch_bert_base", kwargs=dict(vocab_size=50)), device="meta")


def test_encoder_decoder_is_causal_and_tied() -> None:
    torch.manual_seed(0)
    model = create_model(
        ModelSpec("scratch_transformer_base", kwargs=dict(decoder_depth=2, **TINY_TOKENS))
    )
    assert model.head.weight is model.embed.weight
    src, tgt = model.example_inputs(1)
    changed = tgt.clone()
    changed[:, 6:] = (changed[:, 6:] + 1) % 200
    with torch.no_grad():
        a, b = model(src, tgt), model(src, changed)
    assert torch.allclose(a[:, :6], b[:, :6], atol=1e-5) and not torch.allclose(a[:, 6:], b[:, 6:])


def test_profiler_contract_tokens_follow_seq_len() -> None:
    spec = ModelSpec("scratch_bert_base", kwargs=dict(seq_len=64))
    cost = count_model(spec)  # built on meta
    assert cost.tokens == 64 and cost.input_size == (64,) and cost.macs > 0
    vit = count_model(ModelSpec("scratch_vit_base_patch16_224"))
    assert vit.tokens == 197 and vit.params == 86_567_656
