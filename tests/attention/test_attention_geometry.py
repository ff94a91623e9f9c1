"""Token positions of every family against positions the models' own code puts there.

Each test takes a map of pixel positions (a cell's position is the mean of the centres of the
image pixels it covers, by average pooling), sends it through the model's own partition,
unfold or subsampling code, and compares what each batch row holds with the layout: pairwise
distances for windowed rows (one window's layout serves all), positions themselves otherwise.
Feature map sizes come from a forward on the meta device; no weights are made.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import timm
import torch
import torch.nn.functional as F
from torch import nn

from vitbench.attention.geometry import layout_for, place_tokens


class Captured(Exception):
    """Raised by :class:`Capture` to stop a forward once the tensor of interest is reached."""

    def __init__(self, x: torch.Tensor) -> None:
        super().__init__()
        self.x = x


class Capture(nn.Module):
    def forward(self, x: torch.Tensor, *_args, **_kwargs) -> torch.Tensor:
        raise Captured(x)


def captured(fn, *args, **kwargs) -> torch.Tensor:
    """The tensor a :class:`Capture` inside ``fn`` received."""
    with pytest.raises(Captured) as info:
        fn(*args, **kwargs)
    return info.value.x


def meta_model(name: str, **kwargs) -> nn.Module:
    with torch.device("meta"):
        return timm.create_model(name, **kwargs).eval()


def meta_inputs(model: nn.Module, hw: tuple[int, int], cls: type) -> dict[str, tuple]:
    """The positional inputs of every ``cls`` module during a meta forward, by module name."""
    seen: dict[str, tuple] = {}
    hooks = [
        m.register_forward_pre_hook(lambda _m, args, n=n: seen.__setitem__(n, args))
        for n, m in model.named_modules()
        if isinstance(m, cls)
    ]
    with torch.no_grad():
        model(torch.empty(1, 3, *hw, device="meta"))
    for h in hooks:
        h.remove()
    return seen


def pixel_positions(hw: tuple[int, int], fh: int, fw: int) -> torch.Tensor:
    """(1, 2, fh, fw): (y, x) px of each cell of an fh x fw map over the image, the mean of the
    centres of the pixels it covers."""
    ys, xs = torch.meshgrid(
        torch.arange(hw[0], dtype=torch.float64) + 0.5,
        torch.arange(hw[1], dtype=torch.float64) + 0.5,
        indexing="ij",
    )
    return F.avg_pool2d(torch.stack([ys, xs])[None], (hw[0] // fh, hw[1] // fw))


def assert_rows_match(rows: torch.Tensor, layout) -> None:
    """Every batch row's (N, 2) positions have the layout's pairwise distances. Tokens a model
    pads a window with hold zeros, position (0, 0): they are left out (the layout continues
    the grid over them)."""
    assert rows.shape[1] == layout.n_queries == layout.n_keys
    want = layout.distances().double()  # (N, N)
    real = rows.abs().sum(-1) > 0  # (rows, N)
    pairs = real[:, :, None] & real[:, None, :]
    assert ((torch.cdist(rows, rows) - want).abs() * pairs).max() < 1e-3
    assert real.float().mean() > 0.5


@pytest.mark.parametrize(
    ("name", "module"),
    [
        ("swinv2_tiny_window8_256", "timm.models.swin_transformer_v2"),
        ("swinv2_cr_tiny_ns_224", "timm.models.swin_transformer_v2_cr"),
    ],
)
def test_swin_v2_windows_are_those_of_timms_window_partition(name, module):
    import importlib

    mod = importlib.import_module(module)
    block_cls = getattr(
        mod, "SwinTransformerV2Block" if "cr" not in name else "SwinTransformerV2CrBlock"
    )
    model = meta_model(name)
    hw = model.pretrained_cfg["input_size"][1:]
    blocks = meta_inputs(model, hw, block_cls)
    assert len(blocks) == 12
    for block_name, (x, *_) in blocks.items():
        _b, fh, fw, _c = x.shape
        block = model.get_submodule(block_name)
        grid = pixel_positions(hw, fh, fw).permute(0, 2, 3, 1)  # (1, fh, fw, 2)
        windows = mod.window_partition(grid, block.window_size).flatten(1, 2)  # (nW, ws², 2)
        n = windows.shape[1]
        layout = layout_for(model, f"{block_name}.attn", hw, n, n)
        assert layout.kind == "window"
        assert_rows_match(windows, layout)


def test_maxvit_block_and_grid_partitions_are_those_of_timms_partition_functions():
    from timm.models.maxxvit import PartitionAttentionCl, grid_partition, window_partition

    model = meta_model("maxvit_tiny_tf_224")
    hw = (224, 224)
    parts = meta_inputs(model, hw, PartitionAttentionCl)
    assert len(parts) == 22
    kinds = set()
    for part_name, (x,) in parts.items():
        _b, fh, fw, _c = x.shape
        holder = model.get_submodule(part_name)
        grid = pixel_positions(hw, fh, fw).permute(0, 2, 3, 1)
        split = window_partition if holder.partition_block else grid_partition
        rows = split(grid, holder.partition_size).flatten(1, 2)  # (partitions, 49, 2)
        layout = layout_for(model, f"{part_name}.attn", hw, 49, 49)
        assert_rows_match(rows, layout)
        kinds.add((layout.kind, holder.partition_block))
    assert kinds == {("window", True), ("grid", False)}
    # the last stage's map is 7 x 7: its grid partition is the whole map, 32 px apart
    last = layout_for(model, "stages.3.blocks.1.attn_grid.attn", hw, 49, 49)
    assert last.key_yx[1, 1] - last.key_yx[0, 1] == 32


def test_mobilevit_rows_hold_one_offset_of_every_patch_as_timms_unfold_does():
    from timm.models.mobilevit import MobileVitBlock

    model = meta_model("mobilevit_s")
    hw = (256, 256)
    blocks = meta_inputs(model, hw, MobileVitBlock)
    assert len(blocks) == 3
    for block_name, (x,) in blocks.items():
        _b, _c, fh, fw = x.shape
        block = model.get_submodule(block_name)
        convs, transformer = (block.conv_kxk, block.conv_1x1), block.transformer
        block.conv_kxk, block.conv_1x1, block.transformer = nn.Identity(), nn.Identity(), Capture()
        rows = captured(block, pixel_positions(hw, fh, fw))  # (patch_area, patches, 2)
        (block.conv_kxk, block.conv_1x1), block.transformer = convs, transformer
        assert rows.shape[0] == block.patch_area
        n = rows.shape[1]
        for i in range(len(transformer)):
            layer = f"{block_name}.transformer.{i}.attn"
            assert_rows_match(rows, layout_for(model, layer, hw, n, n))


def test_twins_windows_and_subsampled_keys_are_where_its_attention_puts_them():
    from timm.models.twins import GlobalSubSampleAttn, LocallyGroupedAttn

    model = meta_model("twins_svt_small")
    hw = (224, 224)
    local = meta_inputs(model, hw, LocallyGroupedAttn)
    glob = meta_inputs(model, hw, GlobalSubSampleAttn)
    assert len(local) == len(glob) == 9
    for name, (x, size) in local.items():
        attn = model.get_submodule(name)
        attn.qkv = Capture()
        pos = pixel_positions(hw, *size).flatten(2).transpose(1, 2)  # (1, N, 2)
        pos = F.pad(pos, (0, x.shape[-1] - 2))  # the module's channel count
        windows = captured(attn, pos, size)[..., :2].flatten(0, 2).flatten(1, 2)
        layout = layout_for(model, name, hw, attn.ws**2, attn.ws**2)
        assert_rows_match(windows, layout)
    for name, (x, size) in glob.items():
        attn = model.get_submodule(name)
        pos = F.pad(pixel_positions(hw, *size).flatten(2).transpose(1, 2), (0, x.shape[-1] - 2))
        attn.q, attn.kv = nn.Identity(), Capture()
        if attn.sr is not None:  # a key is the mean of the cells its strided conv merges
            attn.sr = nn.AvgPool2d(attn.sr.kernel_size, attn.sr.stride)
            attn.norm = nn.Identity()
        keys = captured(attn, pos, size)[0, :, :2]
        n_q = size[0] * size[1]
        layout = layout_for(model, name, hw, n_q, len(keys))
        assert np.allclose(layout.query_yx, pos[0, :, :2].numpy())
        assert np.allclose(layout.key_yx, keys.numpy())


def test_levit_queries_subsample_the_keys_as_timms_downsample_does():
    from timm.models.levit import Attention, AttentionDownsample

    model = meta_model("levit_128")
    hw = (224, 224)
    stem = meta_inputs(model, hw, type(model.stages[0]))  # stage 0's input: the stem's tokens
    n0 = stem["stages.0"][0].shape[1]
    side = math.isqrt(n0)
    keys = pixel_positions(hw, side, side).flatten(2).transpose(1, 2)  # (1, 196, 2)
    for name, module in model.named_modules():
        if isinstance(module, AttentionDownsample):
            queries = module.q.down(keys)  # timm's own subsampling of the previous grid
            layout = layout_for(model, name, hw, queries.shape[1], keys.shape[1])
            assert layout.kind == "subsampled"
            assert np.allclose(layout.key_yx, keys[0].numpy())
            assert np.allclose(layout.query_yx, queries[0].numpy())
            assert np.allclose(layout.key_yx[layout.self_key], layout.query_yx)
            keys = queries
        elif isinstance(module, Attention):
            n = keys.shape[1]
            layout = layout_for(model, name, hw, n, n)
            assert np.allclose(layout.query_yx, keys[0].numpy()), name
    assert keys.shape[1] == 16  # 14 -> 7 -> 4 cells a side


def test_vitamin_tokens_are_the_cells_of_its_conv_stem():
    from timm.models.vision_transformer import Block

    model = meta_model("vitamin_small_224")
    blocks = meta_inputs(model, (224, 224), Block)
    n = blocks["blocks.0"][0].shape[1]
    layout = layout_for(model, "blocks.0.attn", (224, 224), n, n)
    side = math.isqrt(n)
    cells = pixel_positions((224, 224), side, side).flatten(2)[0].T
    assert layout.n_prefix_q == 0 and np.allclose(layout.query_yx, cells.numpy())


def test_torchvision_vit_tokens_are_its_class_token_then_its_patches():
    from torchvision.models import VisionTransformer

    model = VisionTransformer(32, 8, num_layers=1, num_heads=1, hidden_dim=8, mlp_dim=8)
    model.conv_proj = nn.AvgPool2d(8)  # each patch's embedding: the mean position of its pixels
    image = F.pad(pixel_positions((32, 32), 32, 32).float(), (0, 0, 0, 0, 0, 6))  # 8 channels
    patches = model._process_input(image)[0, :, :2]  # (16, 2), before the class token is put first
    place = place_tokens(model, "encoder.layers.encoder_layer_0.self_attention", (32, 32), 17, 17)
    lay = place.layout
    assert (lay.n_prefix_q, lay.cls_key, lay.grid) == (1, 0, (4, 4))
    assert np.allclose(lay.key_yx, patches.numpy())
    assert "declared" in place.rule


class Plain(nn.Module):
    """A model vitbench knows nothing about (attention through F.sdpa, say)."""


@pytest.mark.parametrize(
    ("n", "hw", "prefix", "grid"),
    [(16, (32, 32), 0, (4, 4)), (197, (224, 224), 1, (14, 14)), (5 + 140, (224, 320), 5, (10, 14))],
)
def test_an_unknown_model_gets_the_fewest_prefix_tokens_that_leave_a_grid_of_the_image(
    n, hw, prefix, grid
):
    place = place_tokens(Plain(), "attn", hw, n, n)
    lay = place.layout
    # the first guessed prefix token is taken as the class token, as in ViT
    assert (lay.n_prefix_k, lay.grid, lay.cls_key) == (prefix, grid, 0 if prefix else None)
    assert lay.key_yx[0].tolist() == [hw[0] / grid[0] / 2, hw[1] / grid[1] / 2]
    assert place.summary.startswith(f"{prefix} prefix (guessed)")


@pytest.mark.parametrize(
    ("n_q", "n_k", "rows", "why"),
    [
        (49, 49, 16, "16 batch rows per image"),  # windows: a 7 x 7 window is no 7 x 7 image
        (1, 50, 1, "not one sequence"),
        (13, 13, 1, "not prefix tokens plus a grid"),
    ],
)
def test_an_unknown_layout_says_why_it_has_no_positions(n_q, n_k, rows, why):
    model = Plain()
    model.num_prefix_tokens = 0  # declared: no guessing of prefix tokens
    place = place_tokens(model, "attn", (224, 224), n_q, n_k, rows)
    assert place.layout is None and why in place.reason
    assert place.summary == f"unknown: {place.reason}"


def test_a_known_family_with_a_shape_it_does_not_predict_says_so():
    model = meta_model("vit_small_patch16_224")
    place = place_tokens(model, "blocks.0.attn", (224, 224), 50, 50)
    assert place.layout is None
    assert place.reason == "50 x 50 tokens where the ViT patch grid rule predicts 197 x 197"


class OwnAttention(nn.Module):
    """Attention following vitbench's own contract (keep_attn / last_attn), so it is read."""

    def __init__(self, dim: int = 8, num_heads: int = 2) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.qkv, self.keep_attn, self.last_attn = nn.Linear(dim, 3 * dim), False, None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        attn = (q @ k.transpose(-1, -2) * (c // self.num_heads) ** -0.5).softmax(-1)
        if self.keep_attn:
            self.last_attn = attn
        return (attn @ v).transpose(1, 2).reshape(b, n, c)


class FirstTokens(nn.Module):
    """8 px patches of a 32 px image, of which the first ``n`` go through one attention."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n, self.num_prefix_tokens = n, 0
        self.embed, self.attn, self.head = nn.Conv2d(3, 8, 8, 8), OwnAttention(), nn.Linear(8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.embed(x).flatten(2).transpose(1, 2)[:, : self.n]  # (B, n, 8)
        return self.head(self.attn(tokens).mean(1))


@pytest.mark.parametrize("n", [16, 13])
def test_records_say_where_positions_came_from_or_why_there_are_none(n):
    from vitbench.attention import AttentionOptions, analyze_attention

    opts = AttentionOptions(n_images=2, importance="none", img_size=32)
    a = analyze_attention(FirstTokens(n), opts=opts)
    positions = {r["token_positions"] for r in a.records}
    distances = [r["mean_distance_px"] for r in a.records]
    if n == 16:  # a 4 x 4 grid of 8 px cells, no prefix tokens (declared)
        assert positions == {"0 prefix (declared) + 4 x 4 grid from the token count"}
        assert all(0 < d < math.hypot(32, 32) for d in distances)
        assert not any("no patch positions" in note for note in a.notes)
    else:
        reason = "13 tokens are not prefix tokens plus a grid of the 32 x 32 image"
        assert positions == {f"unknown: {reason}"}
        assert all(math.isnan(d) for d in distances)
        assert f"attn: no patch positions known ({reason}), distances left empty" in a.notes
        assert all(not math.isnan(r["entropy"]) for r in a.records)


def test_torchvision_swin_windows_are_those_its_window_attention_cuts(monkeypatch):
    from torchvision.models import swin_t, swin_v2_t
    from torchvision.models import swin_transformer as tv_swin

    for build in (swin_t, swin_v2_t):
        with torch.device("meta"):
            model = build().eval()
        blocks = meta_inputs(model, (224, 224), tv_swin.SwinTransformerBlock)
        blocks |= meta_inputs(model, (224, 224), tv_swin.SwinTransformerBlockV2)
        assert len(blocks) == 12
        for name, (x,) in blocks.items():
            _b, fh, fw, _c = x.shape
            attn = model.get_submodule(f"{name}.attn")
            grid = pixel_positions((224, 224), fh, fw).permute(0, 2, 3, 1)  # (1, fh, fw, 2)
            with monkeypatch.context() as patch:  # the qkv projection, just after the cut
                patch.setattr(F, "linear", Capture().forward)
                cut = (grid, None, None, None, attn.window_size, attn.num_heads, [0, 0])
                windows = captured(tv_swin.shifted_window_attention, *cut)[..., :2]  # (nW, N, 2)
            n = windows.shape[1]
            assert_rows_match(windows, layout_for(model, f"{name}.attn", (224, 224), n, n))


def test_torchvision_maxvit_partitions_are_those_its_partition_layer_cuts():
    from torchvision.models import maxvit_t
    from torchvision.models.maxvit import PartitionAttentionLayer

    with torch.device("meta"):
        model = maxvit_t().eval()
    parts = meta_inputs(model, (224, 224), PartitionAttentionLayer)
    assert len(parts) == 2 * 11  # a window and a grid partition in each of 11 blocks
    for name, (x,) in parts.items():
        holder = model.get_submodule(name)
        layer = f"{name}.attn_layer.1"
        layers, holder.attn_layer = holder.attn_layer, Capture()
        rows = captured(holder, pixel_positions((224, 224), *x.shape[-2:]))[0]  # (G, P, 2)
        holder.attn_layer = layers
        n = rows.shape[1]
        assert_rows_match(rows, layout_for(model, layer, (224, 224), n, n))
