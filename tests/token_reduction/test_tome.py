"""Token merging against outside truths: brute-force matching, the plain model, the closed form,
attention over duplicated tokens."""

from __future__ import annotations

import math

import pytest
import torch
from tiny_vits import (
    DISTILLED,
    FAMILIES,
    IDS,
    N0,
    POST_NORM,
    QK_NORM_LAYER_SCALE,
    REGISTERS,
    SCRATCH_DISTILLED,
    SHAPE,
    TIMM,
    block_outputs,
    build,
    images,
    queries_keys,
    reduced,
    spec,
    tokens_seen,
)

from vitbench.attention.extract import extract_attention
from vitbench.errors import VitbenchError
from vitbench.measure.closed_form import ViTShape, vit_macs, vit_macs_at_tokens
from vitbench.measure.flops import count_macs, count_train_macs
from vitbench.token_reduction import TokenReduction, apply_token_reduction, planned_tokens
from vitbench.token_reduction.tome import merge_tokens
from vitbench.zoo import ModelSpec, create_model, set_fused_attn

#: the families and the block variants they allow: qk-norm and layer scale, post-norm
VARIANTS = [*FAMILIES, QK_NORM_LAYER_SCALE, POST_NORM]
VARIANT_IDS = [*IDS, "timm-qk-norm-layer-scale", "scratch-post-norm"]
HEAD_DIM = SHAPE.embed_dim // SHAPE.num_heads


# --- the plain model as the limit r = 0 -------------------------------------------------------


@pytest.mark.parametrize("s", VARIANTS, ids=VARIANT_IDS)
@pytest.mark.parametrize("r", [0, None, (0, 0, 0, 0)])
def test_r_zero_leaves_the_model_as_it_was(s: ModelSpec, r) -> None:
    model, plain = build(s), build(s)
    classes = [type(m) for m in model.modules()]
    assert apply_token_reduction(model, TokenReduction(tome_r=r)) == [N0] * SHAPE.depth
    assert [type(m) for m in model.modules()] == classes
    x = images()
    with torch.no_grad():
        assert torch.equal(model(x), plain(x))


@pytest.mark.parametrize("s", VARIANTS, ids=VARIANT_IDS)
@pytest.mark.parametrize("fused", [True, False])
def test_blocks_before_the_first_merge_are_bit_for_bit_the_plain_blocks(
    s: ModelSpec, fused: bool
) -> None:
    """r = 0 in the reducing classes: blocks 0-2 merge nothing and equal the plain ones."""
    model, plain = reduced(s, TokenReduction(tome_r=(0, 0, 0, 8)), fused), build(s)
    set_fused_attn(plain, fused)
    x = images()
    ours, theirs = block_outputs(model, x), block_outputs(plain, x)
    assert all(torch.equal(a, b) for a, b in zip(ours[:3], theirs[:3], strict=True))
    assert ours[3].shape[1] == N0 - 8


def test_an_inactive_reduction_turns_a_merged_model_back() -> None:
    model, plain = reduced(TIMM, TokenReduction(tome_r=8)), build(TIMM)
    apply_token_reduction(model, TokenReduction(tome_r=0))
    assert [type(m) for m in model.modules()] == [type(m) for m in plain.modules()]
    assert not hasattr(model, "token_reduction_state")
    x = images()
    with torch.no_grad():
        assert torch.equal(model(x), plain(x))


# --- the matching against a brute force -------------------------------------------------------


def brute_force_merge(
    x: torch.Tensor, keys: torch.Tensor, size: torch.Tensor, r: int, prefix: int
) -> tuple[torch.Tensor, list[tuple[torch.Tensor, float]]]:
    """One image, by loops over pairs: x (N, C), keys (heads, N, d), size (N,).

    Returns the prefix rows, then (row, size) of every other token after the merge.
    """
    metric = keys.mean(0).double()
    n = x.shape[0]
    set_a = [i for i in range(prefix, n) if i % 2 == 0]
    set_b = [j for j in range(prefix, n) if j % 2 == 1]

    def cosine(i: int, j: int) -> float:
        return float(metric[i] @ metric[j] / (metric[i].norm() * metric[j].norm()))

    edges = sorted(
        (max((cosine(i, j), j) for j in set_b) + (i,) for i in set_a), reverse=True
    )  # (similarity, partner, a token), best first
    groups = {j: [j] for j in set_b}
    for _, j, i in edges[:r]:
        groups[j].append(i)
    gone = {i for _, _, i in edges[:r]}
    rest = [(x[i].double(), float(size[i])) for i in set_a if i not in gone]
    for members in groups.values():
        weights = size[members].double()
        avg = (x[members].double() * weights[:, None]).sum(0) / weights.sum()
        rest.append((avg, float(weights.sum())))
    return x[:prefix], rest


@pytest.mark.parametrize(
    "prefix,n,r",
    [(0, 9, 1), (0, 9, 4), (0, 12, 6), (1, 9, 4), (1, 12, 3), (2, 9, 3), (2, 13, 5), (5, 13, 4)],
)
def test_merge_equals_a_brute_force_bipartite_matching(prefix: int, n: int, r: int) -> None:
    g = torch.Generator().manual_seed(n * 100 + r * 10 + prefix)
    x, keys = torch.randn(2, n, 5, generator=g), torch.randn(2, 3, n, 4, generator=g)
    size = torch.randint(1, 5, (2, n, 1), generator=g).float()
    size[:, :prefix] = 1  # a prefix token is only ever itself
    out, out_size, _ = merge_tokens(x, keys, r, prefix, size, None)
    assert out.shape == (2, n - r, 5)
    for b in range(2):
        head, rest = brute_force_merge(x[b], keys[b], size[b, :, 0], r, prefix)
        assert torch.equal(out[b, :prefix], head)
        assert torch.equal(out_size[b, :prefix, 0], size[b, :prefix, 0])
        # the other tokens as a set: sorted by their first channel
        want = sorted(rest, key=lambda t: float(t[0][0]))
        pairs = zip(out[b, prefix:], out_size[b, prefix:, 0], strict=True)
        got = sorted(pairs, key=lambda t: float(t[0][0]))
        for (w_row, w_size), (g_row, g_size) in zip(want, got, strict=True):
            assert torch.allclose(g_row.double(), w_row, atol=1e-5)
            assert float(g_size) == w_size


# --- tokens: counts, sizes, sources --------------------------------------------------------------


def tome_reference_schedule(r: int, depth: int) -> list[int]:
    """ToMe's ``parse_r`` for (r, -1), what the paper calls the decreasing schedule."""
    low = int(r * 2.0)
    step = (2 * r - low - low) / (depth - 1)
    return [int(low + step * i) for i in range(depth)]


def counts_after(rs: list[int], start: int = N0) -> list[int]:
    """Tokens entering each block, then leaving the last: depth + 1 counts."""
    counts = [start]
    for r in rs:
        counts.append(counts[-1] - r)
    return counts


SCHEDULES = [
    (TokenReduction(tome_r=8), [8, 8, 8, 8]),
    (TokenReduction(tome_r=4, tome_schedule="decreasing"), tome_reference_schedule(4, 4)),
    (TokenReduction(tome_r=(0, 12, 3, 7)), [0, 12, 3, 7]),
]


@pytest.mark.parametrize("s", VARIANTS, ids=VARIANT_IDS)
@pytest.mark.parametrize("reduction,rs", SCHEDULES, ids=["constant", "decreasing", "per-block"])
def test_tokens_per_block_are_what_the_blocks_receive(
    s: ModelSpec, reduction: TokenReduction, rs: list[int]
) -> None:
    model = build(s)
    planned = planned_tokens(model, reduction)
    assert apply_token_reduction(model, reduction) == planned == counts_after(rs)[:-1]
    assert tokens_seen(model, images(batch=3)) == planned


def test_decreasing_schedule_of_a_vit_b_is_the_papers() -> None:
    model = create_model(ModelSpec("vit_base_patch16_224"), device="meta")
    reduction = TokenReduction(tome_r=8, tome_schedule="decreasing")
    assert (
        planned_tokens(model, reduction) == counts_after(tome_reference_schedule(8, 12), 197)[:-1]
    )


@pytest.mark.parametrize("s", VARIANTS, ids=VARIANT_IDS)
def test_sizes_add_up_and_sources_partition_the_original_tokens(s: ModelSpec) -> None:
    model = reduced(s, TokenReduction(tome_r=(4, 12, 3, 7)))
    state = model.token_reduction_state
    state.trace_source = True
    with torch.no_grad():
        model(images(batch=3))
    for size, source in zip(state.sizes[1:], state.sources[1:], strict=True):
        assert torch.equal(size.sum(1), torch.full((3, 1), float(N0)))
        assert torch.equal(source.sum(-1, keepdim=True), size)  # a size: originals it holds
        assert torch.equal(source.sum(1), torch.ones(3, N0))  # each original in one token


@pytest.mark.parametrize("s,prefix", [(DISTILLED, 2), (REGISTERS, 5), (SCRATCH_DISTILLED, 2)])
def test_prefix_tokens_are_never_merged(s: ModelSpec, prefix: int) -> None:
    model = reduced(s, TokenReduction(tome_r=8))
    n0 = SHAPE.num_patches + prefix
    state = model.token_reduction_state
    state.trace_source = True
    x = images(batch=2)
    assert tokens_seen(model, x) == [n0 - 8 * i for i in range(SHAPE.depth)]
    for source in state.sources[1:]:
        assert torch.equal(source[:, :prefix], torch.eye(n0)[:prefix].expand(2, -1, -1))


# --- MACs: the closed form at the shrinking counts plus the matching ----------------------------


def similarity_macs(counts: list[int], rs: list[int]) -> int:
    """The matching's multiply-adds: |A| x |B| x head_dim in every block that merges."""
    return sum(
        (n + 1) // 2 * (n // 2) * HEAD_DIM for n, r in zip(counts[:-1], rs, strict=True) if r > 0
    )


@pytest.mark.parametrize("s", FAMILIES, ids=IDS)
@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("reduction,rs", SCHEDULES, ids=["constant", "decreasing", "per-block"])
def test_macs_are_the_closed_form_at_the_shrinking_counts(
    s: ModelSpec, fused: bool, reduction: TokenReduction, rs: list[int]
) -> None:
    model = create_model(s, device="meta")
    apply_token_reduction(model, reduction)
    set_fused_attn(model, fused)
    cost = count_macs(model, (torch.randn(2, 3, 64, 64, device="meta"),))
    counts = counts_after(rs)
    assert cost.uncounted == {}
    assert cost.macs == 2 * (vit_macs_at_tokens(SHAPE, counts) + similarity_macs(counts, rs))


def test_closed_form_at_unchanged_counts_is_the_plain_vit() -> None:
    for shape in (SHAPE, ViTShape()):
        assert vit_macs_at_tokens(shape, [shape.tokens] * (shape.depth + 1)) == vit_macs(shape)
    model = create_model(TIMM, device="meta")
    apply_token_reduction(model, TokenReduction(tome_r=0))
    assert count_macs(model, (torch.randn(1, 3, 64, 64, device="meta"),)).macs == vit_macs(SHAPE)


# --- proportional attention -----------------------------------------------------------------------


@pytest.mark.parametrize("s", VARIANTS, ids=VARIANT_IDS)
@pytest.mark.parametrize("fused", [True, False])
def test_proportional_attention_is_attention_over_duplicated_tokens(
    s: ModelSpec, fused: bool
) -> None:
    """softmax(s_ij + log m_j) weights key j as if it were there m_j times."""
    attn = reduced(s, TokenReduction(tome_r=1)).blocks[0].attn
    attn.fused_attn = fused
    plain = build(s).blocks[0].attn  # same seed: the same weights, the plain class
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2, 7, SHAPE.embed_dim, generator=g)
    sizes = torch.tensor([[1, 3, 2, 1, 4, 1, 2], [2, 1, 1, 5, 1, 3, 1]])
    with torch.no_grad():
        out, _, _ = attn(x, sizes.float().log()[:, None, None, :])
        for b in range(2):
            repeated = plain(x[b].repeat_interleave(sizes[b], dim=0)[None])[0]
            first = torch.cumsum(sizes[b], 0) - sizes[b]  # where each token's copies start
            assert torch.allclose(out[b], repeated[first], atol=1e-5)


@pytest.mark.parametrize("s", VARIANTS, ids=VARIANT_IDS)
def test_fused_kernel_equals_the_explicit_softmax(s: ModelSpec) -> None:
    reduction = TokenReduction(tome_r=8)
    fused, explicit = reduced(s, reduction, True), reduced(s, reduction, False)
    x = images()
    with torch.no_grad():
        assert torch.allclose(fused(x), explicit(x), atol=1e-5)


@pytest.mark.parametrize("s", VARIANTS, ids=VARIANT_IDS)
def test_attention_reader_sees_the_merged_maps_bias_included(s: ModelSpec) -> None:
    model = reduced(s, TokenReduction(tome_r=8))
    x = images(batch=2)
    inputs = []
    for b in model.blocks:
        b.register_forward_pre_hook(lambda _m, args: inputs.append(args[0]))
    _, maps = extract_attention(model, x)
    state = model.token_reduction_state
    for layer, (block, weights) in enumerate(zip(model.blocks, maps, strict=True)):
        n = N0 - 8 * layer
        assert weights.shape == (2, SHAPE.num_heads, n, n)
        q, k = queries_keys(block, inputs[layer])
        scores = q @ k.transpose(-2, -1) / math.sqrt(HEAD_DIM)
        if state.sizes[layer] is not None:
            scores = scores + state.sizes[layer].log()[:, None, None, :, 0]
        assert torch.allclose(weights, scores.softmax(-1), atol=1e-6)


# --- batches and training -----------------------------------------------------------------------


@pytest.mark.parametrize("s", VARIANTS, ids=VARIANT_IDS)
def test_each_image_is_merged_on_its_own(s: ModelSpec) -> None:
    model, x = reduced(s, TokenReduction(tome_r=8)), images(batch=3)
    with torch.no_grad():
        alone = torch.cat([model(x[i : i + 1]) for i in range(3)])
        assert torch.allclose(model(x), alone, atol=1e-5)


def test_a_merged_model_trains() -> None:
    model = reduced(TIMM, TokenReduction(tome_r=8)).train()
    step = count_train_macs(model, (images(batch=2),), lambda out: out.sum())
    assert step.uncounted == {}
    model(images(batch=2)).sum().backward()
    assert all(p.grad is not None and p.grad.isfinite().all() for p in model.parameters())


# --- bad input: one line each --------------------------------------------------------------------


def one_line(err: pytest.ExceptionInfo) -> str:
    text = str(err.value)
    assert "\n" not in text and err.value.exit_code == 2
    return text


@pytest.mark.parametrize(
    "reduction",
    [TokenReduction(tome_r=33), TokenReduction(tome_r=17, tome_schedule="decreasing")],
    ids=["constant", "decreasing"],
)
def test_r_too_large_for_the_tokens_left(reduction: TokenReduction) -> None:
    model = create_model(TIMM, device="meta")
    with pytest.raises(VitbenchError) as err:
        apply_token_reduction(model, reduction)
    assert "tome_r" in one_line(err) and "(32)" in str(err.value)
    with pytest.raises(VitbenchError):
        planned_tokens(model, reduction)
    assert type(model.blocks[0]).__name__ == "Block"  # refused before anything changed


@pytest.mark.parametrize(
    "reduction,words",
    [
        (TokenReduction(tome_r=-1), "tome_r"),
        (TokenReduction(tome_r=(2, -1)), "tome_r"),
        (TokenReduction(tome_r=4, tome_schedule="increasing"), "tome_schedule"),
        (TokenReduction(tome_r=(1, 2, 3)), "4 blocks"),
        (TokenReduction(tome_r=4, prune_keep=0.5), "cannot be combined"),
    ],
)
def test_bad_merging_values(reduction: TokenReduction, words: str) -> None:
    with pytest.raises(VitbenchError) as err:
        apply_token_reduction(create_model(TIMM, device="meta"), reduction)
    assert words in one_line(err)


@pytest.mark.parametrize(
    "s,words",
    [
        (
            ModelSpec("swin_tiny_patch4_window7_224", img_size=112, kwargs=dict(depths=(1,) * 4)),
            "not SwinTransformer",
        ),
        (spec("vit_small_patch16_18x2_224"), "ParallelThingsBlock"),
        (spec("scratch_vit_tiny_patch16_224", pos_embed="rel"), "relative position bias"),
    ],
    ids=["swin", "parallel-blocks", "scratch-rel-pos"],
)
def test_unsupported_models_are_refused_by_name(s: ModelSpec, words: str) -> None:
    with pytest.raises(VitbenchError) as err:
        apply_token_reduction(create_model(s, device="meta"), TokenReduction(tome_r=2))
    assert words in one_line(err) and "token merging" in str(err.value)


def test_activation_checkpointing_recomputes_the_same_merges() -> None:
    """Each block reads the sizes the block before wrote, so a recompute in backward sees
    the tokens of the forward: the gradients equal those without checkpointing."""
    grads = []
    for checkpointing in (False, True):
        model = reduced(TIMM, TokenReduction(tome_r=8)).train()
        model.set_grad_checkpointing(checkpointing)
        model(images(batch=2)).square().sum().backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
    assert torch.allclose(grads[0], grads[1], atol=1e-6)
