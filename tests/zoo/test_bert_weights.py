"""vitbench's BERT given a Hugging Face BERT's weights (the documented key mapping) computes what
transformers computes: hidden states, pooled output, logits and every head's attention, within
1e-5 (tiny config, float32, eval: no dropout)."""

from __future__ import annotations

import pytest
import torch
from transformers import BertConfig, BertForSequenceClassification

from vitbench.attention.extract import AttentionExtractor, extract_attention
from vitbench.errors import VitbenchError
from vitbench.zoo import ModelSpec, create_model
from vitbench.zoo.bert_weights import bert_kwargs_from_hf, bert_state_dict_from_hf
from vitbench.zoo.scratch.bert import Bert

TOL = dict(atol=1e-5, rtol=1e-5)
SHAPE = dict(
    vocab_size=128,
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=4,
    intermediate_size=64,
    max_position_embeddings=24,
)


@pytest.fixture
def pair() -> tuple[BertForSequenceClassification, Bert]:
    """A random Hugging Face BERT classifier (eager attention) and ours with its weights."""
    torch.manual_seed(0)
    config = BertConfig(**SHAPE, num_labels=3, attn_implementation="eager")
    hf = BertForSequenceClassification(config).eval()
    ours = Bert(**bert_kwargs_from_hf(config), num_classes=3).eval()
    ours.load_state_dict(bert_state_dict_from_hf(hf.state_dict()), strict=True)
    return hf, ours


def test_same_weights_same_hidden_states_logits_and_attention(pair) -> None:
    hf, ours = pair
    ids = torch.randint(0, 128, (2, 11))
    with torch.no_grad():
        ref = hf(input_ids=ids, output_attentions=True, output_hidden_states=True)
        logits, maps = extract_attention(ours, ids)
        hidden = ours.forward_features(ids)
    torch.testing.assert_close(hidden, ref.hidden_states[-1], **TOL)
    torch.testing.assert_close(logits, ref.logits, **TOL)
    assert len(maps) == len(ref.attentions) == 2
    for got, want in zip(maps, ref.attentions, strict=True):
        torch.testing.assert_close(got, want, **TOL)


def test_segments_and_padding_give_the_same_states_on_real_tokens(pair) -> None:
    """Token types of a sentence pair, and the second sequence padded after 6 tokens."""
    hf, ours = pair
    ids = torch.randint(0, 128, (2, 10))
    types = torch.tensor([[0] * 5 + [1] * 5] * 2)
    mask = torch.tensor([[1] * 10, [1] * 6 + [0] * 4])
    maps: list[torch.Tensor] = []
    with torch.no_grad(), AttentionExtractor(ours, lambda _layer, w: maps.append(w)):
        hidden = ours.forward_features(ids, types, mask)
    with torch.no_grad():
        ref = hf(input_ids=ids, token_type_ids=types, attention_mask=mask, output_attentions=True)
        want = hf.bert(input_ids=ids, token_type_ids=types, attention_mask=mask).last_hidden_state
    real = mask.bool()
    torch.testing.assert_close(hidden[real], want[real], **TOL)
    for got, ref_map in zip(maps, ref.attentions, strict=True):
        torch.testing.assert_close(got[0], ref_map[0], **TOL)
        torch.testing.assert_close(got[1, :, :6], ref_map[1, :, :6], **TOL)  # real queries
        assert float(got[1, :, :, 6:].abs().max()) == 0.0  # nothing on padding


def test_older_key_names_and_pretraining_heads(pair) -> None:
    """LayerNorm gamma/beta (original BERT checkpoints) map; the ``cls.`` heads are dropped."""
    hf, ours = pair
    sd = {k.replace("LayerNorm.weight", "LayerNorm.gamma"): v for k, v in hf.state_dict().items()}
    sd = {k.replace("LayerNorm.bias", "LayerNorm.beta"): v for k, v in sd.items()}
    sd["cls.predictions.bias"] = torch.zeros(128)
    fresh = Bert(**bert_kwargs_from_hf(hf.config), num_classes=3).eval()
    fresh.load_state_dict(bert_state_dict_from_hf(sd), strict=True)
    ids = torch.randint(0, 128, (1, 7))
    with torch.no_grad():
        torch.testing.assert_close(fresh(ids), ours(ids), **TOL)
    with pytest.raises(VitbenchError, match="no vitbench Bert key .* bert.encoder.rogue.weight"):
        bert_state_dict_from_hf({"bert.encoder.rogue.weight": torch.zeros(1)})


def test_weights_of_an_hf_model_built_by_vitbench() -> None:
    """The ``hf.`` keys of vitbench's wrapper map too: the pooled outputs agree."""
    spec = ModelSpec("hf:bert", num_classes=0, kwargs={**SHAPE, "seq_len": 9})
    model = create_model(spec)
    ours = Bert(**bert_kwargs_from_hf(model.config)).eval()
    ours.load_state_dict(bert_state_dict_from_hf(model.state_dict()), strict=True)
    (ids,) = model.example_inputs(2)
    with torch.no_grad():
        torch.testing.assert_close(ours(ids), model(ids), **TOL)
