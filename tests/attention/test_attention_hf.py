"""Attention of Hugging Face models read by the extractor: BERT's equals transformers' own
``output_attentions`` (eager) with eager and SDPA attention alike, and leaves the logits as
they were; the ViT family's image analysis gives every head a distance."""

from __future__ import annotations

import math

import pytest
import torch

from vitbench.attention import AttentionOptions, ImageSource, analyze_attention
from vitbench.attention.extract import AttentionExtractor, extract_attention
from vitbench.zoo import ModelSpec, create_model

BERT = dict(
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=4,
    intermediate_size=64,
    vocab_size=100,
    max_position_embeddings=32,
)


def hf_bert(attn: str) -> torch.nn.Module:
    torch.manual_seed(0)  # the same weights for either attention
    return create_model(ModelSpec("hf:bert", kwargs={**BERT, "attn_implementation": attn}))


@pytest.fixture(scope="module")
def truth() -> torch.nn.Module:
    """transformers' eager BERT, whose ``output_attentions`` are the reference."""
    return hf_bert("eager").hf


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
def test_extracted_bert_attention_is_transformers_own(truth, attn: str) -> None:
    model = hf_bert(attn)
    ids = torch.randint(0, 100, (2, 12))
    with torch.no_grad():
        plain = model(ids)
        logits, maps = extract_attention(model, ids, "hf:bert")
        ref = truth(input_ids=ids, output_attentions=True)
    assert torch.equal(logits, plain)
    torch.testing.assert_close(logits, ref.logits, atol=1e-6, rtol=1e-6)
    assert len(maps) == 2 and maps[0].shape == (2, 4, 12, 12)
    for got, want in zip(maps, ref.attentions, strict=True):
        torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
def test_padding_mask_is_read_as_transformers_applies_it(truth, attn: str) -> None:
    model = hf_bert(attn)
    ids = torch.randint(0, 100, (2, 9))
    mask = torch.tensor([[1] * 9, [1] * 5 + [0] * 4])
    maps: list[torch.Tensor] = []
    with torch.no_grad(), AttentionExtractor(model, lambda _layer, w: maps.append(w), example=ids):
        model(ids, None, mask)
    with torch.no_grad():
        ref = truth(input_ids=ids, attention_mask=mask, output_attentions=True)
    for got, want in zip(maps, ref.attentions, strict=True):
        torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-6)
        assert float(got[1, :, :, 5:].max()) < 1e-6  # no weight on padding


def vit_options(kind: str, attn: str) -> AttentionOptions:
    width = {"mlp_ratio": 2} if kind.startswith("dinov2") else {"intermediate_size": 64}
    kwargs = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, patch_size=8)
    return AttentionOptions(
        n_images=2,
        img_size=32,
        num_classes=10,
        importance="none",
        model_kwargs={**kwargs, **width, "attn_implementation": attn},
    )


@pytest.mark.parametrize("kind", ["vit", "deit", "beit", "dinov2", "dinov2_with_registers"])
def test_vit_family_heads_all_get_a_distance_under_either_attention(kind: str) -> None:
    """Eager attention is read by the softmax reader, SDPA by the sdpa reader: the same
    weights give the same numbers. Tokens are placed as prefix (class, DeiT's distillation
    token, DINOv2's registers) plus the 4 x 4 patch grid."""
    prefix = {"deit": 2, "dinov2_with_registers": 5}.get(kind, 1)
    runs = {}
    for attn in ("eager", "sdpa"):
        runs[attn] = analyze_attention(f"hf:{kind}", ImageSource("digits"), vit_options(kind, attn))
    eager, sdpa = runs["eager"].records, runs["sdpa"].records
    assert len(eager) == len(sdpa) == 2 * 2
    assert {r["reader"] for r in eager} == {"softmax"} and {r["reader"] for r in sdpa} == {"sdpa"}
    for a, b in zip(eager, sdpa, strict=True):
        assert 0 < a["mean_distance_px"] < math.hypot(32, 32)
        assert a["mean_distance_px"] == pytest.approx(b["mean_distance_px"], rel=1e-5)
        assert a["n_prefix_tokens"] == prefix and a["n_queries"] == prefix + 16


def test_bert_head_gate_acts_on_the_sibling_output_projection() -> None:
    """BERT projects ``attention.self`` by ``attention.output.dense``: gate 0 on a head equals
    that head's value weights and bias zeroed by hand (its context is then zero)."""
    from vitbench.attention.importance import HeadGates

    model, ids = hf_bert("eager").eval(), torch.randint(0, 100, (2, 7))
    with torch.no_grad():
        layers = AttentionExtractor(model, lambda *_: None, example=ids).layers
        gates = HeadGates(layers, model=model)
        gates.gates[0][1] = 0.0
        with gates:
            gated = model(ids)
        value = model.hf.bert.encoder.layer[0].attention.self.value
        head = slice(8, 16)  # head 1 of 4, 8 wide
        value.weight[head] = 0.0
        value.bias[head] = 0.0
        torch.testing.assert_close(gated, model(ids), atol=1e-6, rtol=1e-6)
