"""Entropy in nats and where attention goes, on limiting cases."""

from __future__ import annotations

import math

import pytest
import torch

from vitbench.attention.entropy import (
    attention_entropy,
    attention_to,
    normalised_entropy,
    rows_are_distributions,
)


@pytest.mark.parametrize("n", [2, 7, 197])
def test_uniform_attention_over_n_keys_has_entropy_ln_n(n):
    w = torch.full((2, 3, 5, n), 1.0 / n)
    assert torch.allclose(attention_entropy(w), torch.full((2, 3, 5), math.log(n)), atol=1e-5)
    assert torch.allclose(normalised_entropy(w), torch.ones(2, 3, 5), atol=1e-6)


def test_one_key_has_entropy_zero_with_0_log_0_as_zero():
    w = torch.eye(5).expand(1, 1, 5, 5)
    assert torch.equal(attention_entropy(w), torch.zeros(1, 1, 5))


def test_attention_to_class_token_and_to_self():
    w = torch.eye(4).expand(2, 1, 4, 4).clone()
    assert torch.equal(attention_to(w, torch.arange(4)), torch.ones(2, 1, 4))
    assert torch.equal(attention_to(w, 0), torch.tensor([1.0, 0, 0, 0]).expand(2, 1, 4))


def test_rows_that_are_no_distributions_are_recognised():
    assert rows_are_distributions(torch.full((1, 1, 2, 4), 0.25))
    assert not rows_are_distributions(torch.tensor([[[[1.2, -0.2]]]]))
