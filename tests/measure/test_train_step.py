"""One training step: it trains, it refuses what it cannot do, and its memory split adds up to
hand counts on an MLP and a tiny ViT (eager against fused attention, gradient checkpointing)."""

from __future__ import annotations

import gc
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from vitbench.errors import VitbenchError
from vitbench.measure.memory import (
    CPU_METHOD,
    SavedTensors,
    live_tensor_bytes,
    measure_train_memory,
)
from vitbench.measure.timing import time_callable
from vitbench.measure.train_step import (
    TrainStep,
    build_optimizer,
    build_train_step,
    step_loss,
)
from vitbench.zoo import ModelSpec, create_model, set_fused_attn

TINY_VIT = dict(patch_size=8, embed_dim=32, depth=2, num_heads=2)  # img 32 px: N = 16 + 1
B, IN, HID, OUT = 32, 64, 256, 10  # the hand-counted MLP: Linear(64, 256), GELU, Linear(256, 10)
WEIGHTS = 4 * (IN * HID + HID + HID * OUT + OUT)  # 76,840 bytes of fp32 parameters


def _mlp_step(optimizer: str = "adamw", lr: float = 1e-3, precision: str = "fp32") -> TrainStep:
    torch.manual_seed(0)
    mlp = nn.Sequential(nn.Linear(IN, HID), nn.GELU(), nn.Linear(HID, OUT))
    return TrainStep(mlp, (torch.randn(B, IN),), optimizer=optimizer, lr=lr, precision=precision)


def _vit_step(
    img_size: int, *, fused: bool, checkpointing: bool = False, batch: int = 2
) -> TrainStep:
    torch.manual_seed(0)
    spec = ModelSpec("vit_tiny_patch16_224", img_size=img_size, kwargs=TINY_VIT)
    model = create_model(spec)
    set_fused_attn(model, fused)
    return build_train_step(model, spec, batch, device="cpu", grad_checkpointing=checkpointing)


def _saved_bytes(step: TrainStep) -> int:
    saved = SavedTensors(exclude=[*step.model.parameters(), *step.model.buffers()])
    with saved.record():
        step.loss()
    return saved.nbytes()


@pytest.mark.parametrize("optimizer, lr", [("adamw", 1e-2), ("sgd", 0.5)])
def test_one_step_lowers_the_loss_on_its_batch(optimizer: str, lr: float) -> None:
    step = _mlp_step(optimizer, lr)
    mlp, (x,) = step.model, step.inputs
    step()  # the labels are drawn at the first forward, once
    labels = step.labels.clone()

    def loss() -> float:  # the model's own forward, outside the step
        with torch.no_grad():
            return F.cross_entropy(mlp(x), labels).item()

    before = loss()
    step()
    assert torch.equal(step.labels, labels)  # the same batch and labels every step
    assert loss() < before - 1e-3
    assert all(p.grad is None for p in mlp.parameters())  # zero_grad(set_to_none=True)


def test_mlp_memory_parts_match_hand_counts() -> None:
    mem = measure_train_memory(_mlp_step("adamw"))
    assert mem.weights_bytes == WEIGHTS
    assert mem.grads_bytes == WEIGHTS
    # AdamW: exp_avg and exp_avg_sq as large as the weights, and a 0-d fp32 step counter per
    # parameter tensor (4 of them, 4 bytes each)
    assert mem.optimizer_bytes == 2 * WEIGHTS + 4 * 4
    # saved by autograd, parameters left out (they are the weights): the input x (addmm, for
    # W1's gradient), the pre-activation (GELU), the GELU output (addmm), the log-softmax output
    # (log_softmax and nll_loss save it: counted once), the int64 labels, nll's 0-d total weight
    saved = 4 * B * IN + 4 * B * HID + 4 * B * HID + 4 * B * OUT + 8 * B + 4
    assert mem.saved_bytes == saved == 75_268
    rec = mem.as_record()
    assert rec["train_memory_method"] == CPU_METHOD
    assert rec["train_memory_saved_bytes"] == saved


def test_bf16_saves_half_width_activations_and_the_cast_weights() -> None:
    step = _mlp_step(precision="bf16")
    # under autocast the Linears run in bf16 (2 bytes): x's bf16 copy, the pre-activation and
    # the GELU output are saved at half width, and so is the bf16 copy of W2 (the second
    # Linear needs it for its input's gradient; it is not a parameter, so it counts); the loss
    # is taken in fp32: log-softmax output, labels and total weight as in fp32
    hand = 2 * B * IN + 2 * 2 * B * HID + 2 * HID * OUT + 4 * B * OUT + 8 * B + 4
    assert _saved_bytes(step) == hand == 43_524


def test_mlp_peak_is_the_adamw_update_with_every_gradient_alive() -> None:
    gc.collect()  # earlier tests' garbage is not in the baseline, whatever else lives is
    elsewhere = live_tensor_bytes("cpu")
    mem = measure_train_memory(_mlp_step("adamw"))
    # live before the step: weights, both moments and counters, the input and the labels
    step_bytes = WEIGHTS + mem.optimizer_bytes + 4 * B * IN + 8 * B
    assert mem.peak.baseline_bytes == elsewhere + step_bytes
    # lower bounds: the end of forward (saved, less the input and labels of the baseline) and
    # the end of backward (every gradient)
    saved_new = mem.saved_bytes - 4 * B * IN - 8 * B
    assert mem.peak.peak_over_baseline_bytes >= max(mem.grads_bytes, saved_new)
    # the peak of this small MLP is in AdamW's update (for-loop on CPU) of W1: all gradients
    # alive, and exp_avg_sq.sqrt() and its quotient by the bias correction, two W1-sized
    # temporaries; at most a few 0-d scalar tensors (4 to 8 bytes each) beside them
    w1 = 4 * IN * HID
    assert mem.peak.peak_over_baseline_bytes == pytest.approx(WEIGHTS + 2 * w1, abs=64)


def test_mlp_peak_with_sgd_is_in_the_last_layers_backward() -> None:
    mem = measure_train_memory(_mlp_step("sgd"))
    assert mem.optimizer_bytes == WEIGHTS  # one momentum buffer per parameter
    # SGD's update makes no temporaries: the peak is while Linear(256, 10)'s backward has made
    # its three gradients; alive then: the GELU input and output (saved), the gradients of the
    # logits and of the GELU output, W2's and b2's gradients, the 0-d loss and its gradient
    peak = 2 * 4 * B * HID + 4 * B * OUT + 4 * B * HID + 4 * (HID * OUT + OUT) + 2 * 4
    assert mem.peak.peak_over_baseline_bytes == pytest.approx(peak, abs=64)


def test_fused_attention_saves_no_attention_matrix() -> None:
    # per block, eager keeps its softmax output (B, heads, N, N) and copies of q * scale, k^T
    # and v plus proj's input (4 x B N C); fused keeps the qkv output (3 x B N C), its output
    # (B N C, proj's input is a view of it) and a (B, heads, N) log-sum-exp: the difference is
    # depth x B x heads x N x (N - 1) x 4 bytes exactly
    depth, heads, batch = TINY_VIT["depth"], TINY_VIT["num_heads"], 2
    grown = {}
    for img in (32, 64):
        n = (img // TINY_VIT["patch_size"]) ** 2 + 1
        eager = _saved_bytes(_vit_step(img, fused=False))
        fused = _saved_bytes(_vit_step(img, fused=True))
        assert eager - fused == depth * batch * heads * n * (n - 1) * 4
        grown[img] = (eager, fused)
    assert grown[64][0] - grown[32][0] > grown[64][1] - grown[32][1]  # eager grows faster


def test_grad_checkpointing_keeps_only_block_inputs() -> None:
    # with checkpointing, a block saves nothing but its (B, N, C) input; what is saved is the
    # image (patch conv), one input per block, the final norm's input, output (the pooled
    # token is a view of it), mean and rstd, the log-softmax output, labels and total weight
    batch, n, c, classes = 2, 17, TINY_VIT["embed_dim"], 1000
    bnc = 4 * batch * n * c
    hand = 4 * batch * 3 * 32 * 32 + TINY_VIT["depth"] * bnc + 2 * bnc + 2 * 4 * batch * n
    hand += 4 * batch * classes + 8 * batch + 4
    for fused in (False, True):
        plain = _saved_bytes(_vit_step(32, fused=fused))
        kept = _saved_bytes(_vit_step(32, fused=fused, checkpointing=True))
        assert kept == hand < plain


def test_refusals_are_one_line() -> None:
    mlp = nn.Linear(4, 2)
    cases = [
        lambda: TrainStep(mlp, (torch.randn(2, 4),), precision="fp16"),
        lambda: TrainStep(mlp, (torch.randn(2, 4),), precision="fp8"),
        lambda: TrainStep(nn.Linear(4, 2).requires_grad_(False), (torch.randn(2, 4),)),
    ]
    for make in cases:
        with pytest.raises(VitbenchError) as err:
            make()
        assert "\n" not in str(err.value)
    with pytest.raises(VitbenchError, match="^unknown optimizer 'lamb'; choose from adamw, sgd$"):
        build_optimizer("lamb", list(mlp.parameters()))
    spec = ModelSpec("scratch_mlp")
    with pytest.raises(VitbenchError, match="^scratch_mlp has no gradient checkpointing switch$"):
        build_train_step(create_model(spec), spec, 2, device="cpu", grad_checkpointing=True)


def test_loss_of_outputs_that_are_not_logits() -> None:
    # mean of the squares of every element: (4 x 2^2 + 3 x 1^2 + 0) / 8 elements
    out = (torch.full((2, 2), 2.0), [torch.ones(3), {"z": torch.zeros(1)}], torch.ones(2).long())
    assert step_loss(out).item() == pytest.approx(19 / 8)
    logits = torch.zeros(4, 5)  # uniform: cross-entropy is log 5 whatever the labels
    assert step_loss(logits, torch.tensor([0, 1, 2, 4])).item() == pytest.approx(math.log(5))


def test_features_and_tokens_train_on_the_mean_square() -> None:
    # timm's num_classes=0 answers with pooled features (B, C): no labels are drawn
    torch.manual_seed(0)
    spec = ModelSpec("vit_tiny_patch16_224", img_size=32, num_classes=0, kwargs=TINY_VIT)
    step = build_train_step(create_model(spec), spec, 2, device="cpu")
    step()
    assert step.labels is None
    assert step.loss().item() == pytest.approx(step.model(*step.inputs).square().mean().item())


def test_bf16_tf32_and_channels_last_on_cpu() -> None:
    spec = ModelSpec("vit_tiny_patch16_224", img_size=32, kwargs=TINY_VIT)
    for precision in ("bf16", "tf32"):
        step = build_train_step(
            create_model(spec), spec, 2, device="cpu", precision=precision, channels_last=True
        )
        assert step.inputs[0].is_contiguous(memory_format=torch.channels_last)
        step()
        assert step.model.training
        assert step.loss().dtype == torch.float32  # the loss is taken in fp32 under autocast


def test_time_callable_runs_whole_steps() -> None:
    step = _mlp_step("adamw")
    stats = time_callable(step, warmup=1, min_runs=3, max_runs=3, budget_s=60)
    counters = [s["step"].item() for s in step.optimizer.state.values()]
    assert counters == [1 + 1 + stats.n] * 4  # the first call, the warm-up, the samples


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
def test_cuda_step_and_memory(precision: str) -> None:
    torch.manual_seed(0)
    mlp = nn.Sequential(nn.Linear(IN, HID), nn.GELU(), nn.Linear(HID, OUT)).cuda()
    step = TrainStep(mlp, (torch.randn(B, IN, device="cuda"),), precision=precision)
    mem = measure_train_memory(step)
    assert (mem.weights_bytes, mem.grads_bytes) == (WEIGHTS, WEIGHTS)
    assert mem.optimizer_bytes == 2 * WEIGHTS + 4 * 4  # the step counters stay on the CPU
    assert mem.peak.peak_bytes >= WEIGHTS + mem.optimizer_bytes + mem.grads_bytes
