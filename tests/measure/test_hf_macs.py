"""MACs of Hugging Face models counted on the meta device equal the closed forms: BERT-base at
several sequence lengths and ViT-B/16, with eager and SDPA attention."""

from __future__ import annotations

import pytest

from vitbench.measure.closed_form import (
    BertShape,
    ViTShape,
    bert_macs,
    bert_params,
    vit_macs,
    vit_params,
)
from vitbench.measure.model_cost import count_model
from vitbench.zoo import ModelSpec


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
@pytest.mark.parametrize("seq_len", [16, 128, 512])
def test_hf_bert_base_equals_the_closed_form(attn: str, seq_len: int) -> None:
    """``AutoConfig.for_model("bert")`` is BERT-base with 2 labels."""
    spec = ModelSpec("hf:bert", kwargs={"seq_len": seq_len, "attn_implementation": attn})
    cost = count_model(spec)
    shape = BertShape(seq_len=seq_len)
    assert cost.macs == bert_macs(shape)
    assert cost.params == bert_params(shape)
    assert cost.tokens == seq_len and cost.uncounted == {}


def test_hf_bert_without_head_and_our_bert_equal_the_closed_form() -> None:
    """No classifier: the pooled output; vitbench's own BERT-base counts the same (its
    ``seq_len`` also sizes its position table)."""
    shape = BertShape(seq_len=64, num_classes=0)
    hf = count_model(ModelSpec("hf:bert", num_classes=0, kwargs={"seq_len": 64}))
    ours = count_model(ModelSpec("scratch_bert_base", kwargs={"seq_len": 64}))
    assert hf.macs == ours.macs == bert_macs(shape)
    assert hf.params == bert_params(shape)
    assert ours.params == bert_params(BertShape(seq_len=64, positions=64, num_classes=0))
    assert hf.uncounted == ours.uncounted == {}


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
def test_hf_vit_base_equals_the_vit_closed_form(attn: str) -> None:
    """``hf:vit`` is ViT-B/16 at 224 with 2 labels: the same terms as timm's ViT."""
    cost = count_model(ModelSpec("hf:vit", kwargs={"attn_implementation": attn}))
    shape = ViTShape(num_classes=2)
    assert cost.macs == vit_macs(shape) and cost.params == vit_params(shape)
    assert cost.tokens == 197 and cost.uncounted == {}
