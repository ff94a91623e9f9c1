"""`tokens`: the positions entering the first attention layer, against the papers' stage layout,
timm's feature reductions and closed forms for the input layouts an attention layer takes."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from vitbench.measure.model_cost import count_model
from vitbench.zoo import ModelSpec, create_model

#: model -> the stage that holds its first attention layer, as the papers lay them out
FIRST_ATTENTION_STAGE = {
    "swin_tiny_patch4_window7_224": "layers.0",  # windows over the stride-4 map
    "pvt_v2_b0": "stages.0",
    "maxvit_tiny_tf_224": "stages.0",  # MBConv, block and grid attention in every stage
    "coatnet_0_rw_224": "stages.2",  # C-C-T-T
    "caformer_s18": "stages.2",  # convolution mixers in stages 0-1, attention in 2-3
    "mobilevit_s": "stages.2",  # MobileViT blocks from the stride-8 stage on
    "efficientformer_l1": "stages.3",  # 4D (convolution) stages, then 3D attention in the last
    "levit_128": "stages.0",  # a stride-16 convolution stem, then attention
}


@pytest.mark.parametrize("name", FIRST_ATTENTION_STAGE)
def test_tokens_are_the_positions_of_the_first_attention_stage(name: str) -> None:
    stage = FIRST_ATTENTION_STAGE[name]
    model = create_model(ModelSpec(name), device="meta")
    reduction = {f["module"]: f["reduction"] for f in model.feature_info}[stage]
    _, h, w = model.pretrained_cfg["input_size"]
    cost = count_model(ModelSpec(name), macs=False, model=model)
    assert cost.tokens == (h // reduction) * (w // reduction)
    assert cost.tokens_at.startswith(f"{stage}.")


@pytest.mark.parametrize(
    ("name", "tokens", "at"),
    [
        ("vit_base_patch16_224", 14 * 14 + 1, "blocks.0.attn"),  # patches and the class token
        ("deit_base_distilled_patch16_224", 14 * 14 + 2, "blocks.0.attn"),  # and distillation
        ("cait_xxs24_224", 14 * 14, "blocks.0.attn"),  # the class token joins later
        # two branches, added up: 240 px in 12 px patches, 224 px in 16 px, each with a class token
        ("crossvit_tiny_240", (20 * 20 + 1) + (14 * 14 + 1), "blocks.0"),
    ],
)
def test_tokens_of_sequence_models_by_closed_form(name: str, tokens: int, at: str) -> None:
    cost = count_model(ModelSpec(name), macs=False)
    assert (cost.tokens, cost.tokens_at) == (tokens, at)


def test_a_model_without_attention_reads_its_first_block() -> None:
    # ResNet-18: the first residual block runs on the stride-4 map (timm's feature_info)
    cost = count_model(ModelSpec("resnet18"), macs=False)
    assert (cost.tokens, cost.tokens_at) == (56 * 56, "layer1.0")


def test_tokens_do_not_depend_on_the_batch() -> None:
    spec = ModelSpec("swin_tiny_patch4_window7_224", img_size=112, kwargs=dict(depths=(1, 1, 1, 1)))
    assert count_model(spec, batch_size=3, macs=False).tokens == (112 // 4) ** 2


class WindowAttention(nn.Module):
    """Stands for an attention layer; reads (B', N, C), (B', H, W, C) or (B', C, H, W)."""

    def __init__(self, width: int, conv: bool = False) -> None:
        super().__init__()
        self.qkv = nn.Conv2d(width, 3 * width, 1) if conv else nn.Linear(width, 3 * width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


class Windowed(nn.Module):
    """A (B, C, H, W) map cut into ``windows`` pieces along H, handed over in ``layout``."""

    def __init__(self, layout: str, width: int = 8, windows: int = 4) -> None:
        super().__init__()
        self.layout, self.windows = layout, windows
        self.attn = WindowAttention(width, conv=layout == "BCHW")

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W)
        b, c, h, w = x.shape
        parts = x.reshape(b, c, self.windows, h // self.windows, w).permute(0, 2, 1, 3, 4)
        parts = parts.reshape(b * self.windows, c, h // self.windows, w)  # (B*nW, C, h, W)
        if self.layout == "BHWC":
            parts = parts.permute(0, 2, 3, 1)
        elif self.layout == "BNC":
            parts = parts.flatten(2).transpose(1, 2)
        return self.attn(parts)


@pytest.mark.parametrize("layout", ["BNC", "BHWC", "BCHW"])
def test_every_layout_gives_the_whole_map(layout: str) -> None:
    # an 8-channel 32 x 6 map in 4 windows of 8 x 6: 192 positions in any layout, at any batch
    # (a window is as high as the map is wide: only the layer's width tells the layouts apart)
    model = Windowed(layout)
    model.example_inputs = lambda b, device: [torch.randn(b, 8, 32, 6, device=device)]
    cost = count_model(ModelSpec("windowed"), batch_size=2, macs=False, model=model, device="cpu")
    assert (cost.tokens, cost.tokens_at) == (32 * 6, "attn")


@pytest.mark.parametrize("batch_first", [True, False])
def test_multihead_attention_either_layout(batch_first: bool) -> None:
    layer = nn.TransformerEncoderLayer(16, 2, 32, batch_first=batch_first)
    model = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
    shape = (3, 10, 16) if batch_first else (10, 3, 16)  # batch 3, 10 tokens
    model.example_inputs = lambda b, device: [torch.randn(*shape, device=device)]
    cost = count_model(ModelSpec("encoder"), batch_size=3, macs=False, model=model, device="cpu")
    assert (cost.tokens, cost.tokens_at) == (10, "layers.0.self_attn")
