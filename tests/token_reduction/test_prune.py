"""Token pruning against outside truths: an explicit attention map, EViT's token counts, the
closed form."""

from __future__ import annotations

import math

import pytest
import torch
from tiny_vits import (
    DISTILLED,
    FAMILIES,
    IDS,
    N0,
    REGISTERS,
    SCRATCH_DISTILLED,
    SHAPE,
    TIMM,
    build,
    images,
    queries_keys,
    reduced,
    spec,
    tokens_seen,
)

from vitbench.errors import VitbenchError
from vitbench.measure.closed_form import vit_macs_at_tokens
from vitbench.measure.flops import count_macs, count_train_macs
from vitbench.token_reduction import TokenReduction, apply_token_reduction, planned_tokens
from vitbench.zoo import ModelSpec, create_model, set_fused_attn


@pytest.mark.parametrize("s", FAMILIES, ids=IDS)
@pytest.mark.parametrize("fused", [True, False])
def test_keeps_the_top_k_by_class_attention_and_fuses_the_rest(s: ModelSpec, fused: bool) -> None:
    model = reduced(s, TokenReduction(prune_keep=0.5, prune_layers=(1,)), fused)
    block, plain = model.blocks[1], build(s).blocks[1]  # plain: the same weights, untouched
    seen: dict[str, torch.Tensor] = {}
    block.register_forward_pre_hook(lambda _m, args: seen.update(x=args[0]))
    block.norm2.register_forward_pre_hook(lambda _m, args: seen.update(reduced=args[0]))
    with torch.no_grad():
        model(images(batch=2))
        x = seen["x"]
        mid = x + plain.ls1(plain.attn(plain.norm1(x)))  # the tokens after attention
    q, k = queries_keys(block, x)
    attention = (q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])).softmax(-1)  # (B, H, N, N)
    score = attention.mean(1)[:, 0, 1:]  # the class token's, over the 64 patch tokens
    k_kept = math.ceil(0.5 * 64)
    after = seen["reduced"]
    assert after.shape == (2, 1 + k_kept + 1, SHAPE.embed_dim)
    for b in range(2):
        order = score[b].argsort(descending=True)
        top, rest = order[:k_kept], order[k_kept:]
        assert torch.allclose(after[b, 0], mid[b, 0], atol=1e-6)  # the class token
        assert torch.allclose(after[b, 1 : 1 + k_kept], mid[b, 1 + top], atol=1e-5)
        fused_token = (score[b, rest, None] * mid[b, 1 + rest]).sum(0)  # EViT: sum a_i x_i
        assert torch.allclose(after[b, -1], fused_token, atol=1e-5)


def test_default_layers_for_a_vit_b_are_evits() -> None:
    """EViT on DeiT-B: the 4th, 7th and 10th blocks keep ceil(0.7 x tokens) and fuse one."""
    model = create_model(ModelSpec("vit_base_patch16_224"), device="meta")
    # 196 patches -> ceil(137.2) + fused = 139; -> ceil(97.3) + 1 = 99; -> ceil(69.3) + 1 = 71
    expected = [197] * 4 + [140] * 3 + [100] * 3 + [72] * 2
    assert planned_tokens(model, TokenReduction(prune_keep=0.7)) == expected
    assert apply_token_reduction(model, TokenReduction(prune_keep=0.7)) == expected


#: (reduction, tokens entering each of the 4 blocks and leaving the last), by hand from EViT's rule
COUNTS = [
    # default blocks for depth 4: 1, 2, 3; 64 -> 32 + 1; 33 -> 17 + 1; 18 -> 9 + 1
    (TokenReduction(prune_keep=0.5), [65, 65, 34, 19, 11]),
    # 64 -> ceil(44.8) = 45 + 1; 46 -> ceil(32.2) = 33 + 1
    (TokenReduction(prune_keep=0.7, prune_layers=(0, 2)), [65, 47, 47, 35, 35]),
]


@pytest.mark.parametrize("s", FAMILIES, ids=IDS)
@pytest.mark.parametrize("reduction,counts", COUNTS, ids=["default", "chosen"])
def test_tokens_per_block_are_what_the_blocks_receive(
    s: ModelSpec, reduction: TokenReduction, counts: list[int]
) -> None:
    model = build(s)
    assert apply_token_reduction(model, reduction) == counts[:-1]
    assert tokens_seen(model, images(batch=3)) == counts[:-1]


@pytest.mark.parametrize("s", FAMILIES, ids=IDS)
@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("reduction,counts", COUNTS, ids=["default", "chosen"])
def test_macs_are_the_closed_form_at_the_shrinking_counts(
    s: ModelSpec, fused: bool, reduction: TokenReduction, counts: list[int]
) -> None:
    """Fused attention keeps no map: the class token's row costs N x width more per pruning
    block; unfused, the row is read off the map."""
    model = create_model(s, device="meta")
    apply_token_reduction(model, reduction)
    set_fused_attn(model, fused)
    cost = count_macs(model, (torch.randn(2, 3, 64, 64, device="meta"),))
    pruning = [i for i in range(SHAPE.depth) if counts[i + 1] != counts[i]]
    row = sum(counts[i] * SHAPE.embed_dim for i in pruning) if fused else 0
    assert cost.uncounted == {}
    assert cost.macs == 2 * (vit_macs_at_tokens(SHAPE, counts) + row)


@pytest.mark.parametrize("s,prefix", [(DISTILLED, 2), (REGISTERS, 5), (SCRATCH_DISTILLED, 2)])
def test_prefix_tokens_are_always_kept(s: ModelSpec, prefix: int) -> None:
    model = reduced(s, TokenReduction(prune_keep=0.5))
    n0 = SHAPE.num_patches + prefix
    state = model.token_reduction_state
    state.trace_source = True
    with torch.no_grad():
        model(images(batch=2))
    for source in state.sources[1:]:
        assert torch.equal(source[:, :prefix], torch.eye(n0)[:prefix].expand(2, -1, -1))
        assert torch.equal(source.sum(1), torch.ones(2, n0))  # kept, or in the fused token


@pytest.mark.parametrize("s", FAMILIES, ids=IDS)
def test_keep_rate_one_leaves_the_model_as_it_was(s: ModelSpec) -> None:
    model, plain = build(s), build(s)
    assert apply_token_reduction(model, TokenReduction(prune_keep=1.0)) == [N0] * SHAPE.depth
    assert [type(m) for m in model.modules()] == [type(m) for m in plain.modules()]
    x = images()
    with torch.no_grad():
        assert torch.equal(model(x), plain(x))


@pytest.mark.parametrize("s", FAMILIES, ids=IDS)
def test_fused_and_explicit_attention_prune_alike(s: ModelSpec) -> None:
    reduction = TokenReduction(prune_keep=0.5)
    x = images()
    with torch.no_grad():
        fused, explicit = reduced(s, reduction, True)(x), reduced(s, reduction, False)(x)
    assert torch.allclose(fused, explicit, atol=1e-5)


def test_a_pruned_model_trains() -> None:
    model = reduced(TIMM, TokenReduction(prune_keep=0.5)).train()
    step = count_train_macs(model, (images(batch=2),), lambda out: out.sum())
    assert step.uncounted == {}
    model(images(batch=2)).sum().backward()
    assert all(p.grad is not None and p.grad.isfinite().all() for p in model.parameters())


# --- bad input: one line each --------------------------------------------------------------------


@pytest.mark.parametrize(
    "reduction,words",
    [
        (TokenReduction(prune_keep=-0.5), "prune_keep"),
        (TokenReduction(prune_keep=0.0), "prune_keep"),
        (TokenReduction(prune_keep=1.5), "prune_keep"),
        (TokenReduction(prune_keep=float("nan")), "prune_keep"),
        (TokenReduction(prune_keep=0.5, prune_layers=(1, -2)), "prune_layers"),
        (TokenReduction(prune_keep=0.5, prune_layers=(1, 4)), "past the model's 4 blocks"),
    ],
)
def test_bad_pruning_values(reduction: TokenReduction, words: str) -> None:
    with pytest.raises(VitbenchError) as err:
        apply_token_reduction(create_model(TIMM, device="meta"), reduction)
    assert words in str(err.value) and "\n" not in str(err.value)
    assert err.value.exit_code == 2


@pytest.mark.parametrize(
    "s,words",
    [
        (spec(class_token=False, global_pool="avg"), "class token"),
        (
            ModelSpec("swin_tiny_patch4_window7_224", img_size=112, kwargs=dict(depths=(1,) * 4)),
            "token pruning supports timm's VisionTransformer and vitbench's own ViT, not Swin",
        ),
    ],
    ids=["no-class-token", "swin"],
)
def test_unsupported_models_are_refused(s: ModelSpec, words: str) -> None:
    with pytest.raises(VitbenchError) as err:
        apply_token_reduction(create_model(s, device="meta"), TokenReduction(prune_keep=0.5))
    assert words in str(err.value) and "\n" not in str(err.value)
