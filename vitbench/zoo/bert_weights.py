"""Hugging Face BERT weights in vitbench's own :class:`~vitbench.zoo.scratch.bert.Bert`.

The key mapping, Hugging Face ``BertModel`` / ``BertForSequenceClassification`` -> ``Bert``
(``{i}`` is the layer index; each module's ``weight`` and ``bias`` keep their names, and the
``gamma``/``beta`` of older checkpoints' layer norms become ``weight``/``bias``):

=============================================  =====================
Hugging Face                                   vitbench ``Bert``
=============================================  =====================
embeddings.word_embeddings                     token_embed
embeddings.position_embeddings                 pos_embed (1, P, D)
embeddings.token_type_embeddings               type_embed
embeddings.LayerNorm                           embed_norm
encoder.layer.{i}.attention.self.query         blocks.{i}.attn.q
encoder.layer.{i}.attention.self.key           blocks.{i}.attn.k
encoder.layer.{i}.attention.self.value         blocks.{i}.attn.v
encoder.layer.{i}.attention.output.dense       blocks.{i}.attn.proj
encoder.layer.{i}.attention.output.LayerNorm   blocks.{i}.norm1
encoder.layer.{i}.intermediate.dense           blocks.{i}.mlp.fc1
encoder.layer.{i}.output.dense                 blocks.{i}.mlp.fc2
encoder.layer.{i}.output.LayerNorm             blocks.{i}.norm2
pooler.dense                                   pooler
classifier                                     head
=============================================  =====================

Keys may carry the ``bert.`` prefix of the task models and the ``hf.`` of vitbench's
:class:`~vitbench.zoo.hf.HFModel`. The pre-training heads (``cls.``) and the position and
segment id buffers have no counterpart and are dropped; any other key is an error. Both models
are post-norm with exact GELU, so the same weights give the same hidden states and attention.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from torch import Tensor

from vitbench.errors import VitbenchError

#: Hugging Face BERT module -> vitbench Bert module; {i}: the layer index
KEY_MAP = {
    "embeddings.word_embeddings": "token_embed",
    "embeddings.position_embeddings": "pos_embed",
    "embeddings.token_type_embeddings": "type_embed",
    "embeddings.LayerNorm": "embed_norm",
    "encoder.layer.{i}.attention.self.query": "blocks.{i}.attn.q",
    "encoder.layer.{i}.attention.self.key": "blocks.{i}.attn.k",
    "encoder.layer.{i}.attention.self.value": "blocks.{i}.attn.v",
    "encoder.layer.{i}.attention.output.dense": "blocks.{i}.attn.proj",
    "encoder.layer.{i}.attention.output.LayerNorm": "blocks.{i}.norm1",
    "encoder.layer.{i}.intermediate.dense": "blocks.{i}.mlp.fc1",
    "encoder.layer.{i}.output.dense": "blocks.{i}.mlp.fc2",
    "encoder.layer.{i}.output.LayerNorm": "blocks.{i}.norm2",
    "pooler.dense": "pooler",
    "classifier": "head",
}
#: keys without a counterpart: pre-training heads, position and segment id buffers
DROPPED = ("cls.", "embeddings.position_ids", "embeddings.token_type_ids")
_PARAMS = {"gamma": "weight", "beta": "bias"}  # older checkpoints' layer norms
_LAYER = re.compile(r"encoder\.layer\.(\d+)\.(.+)")


def bert_state_dict_from_hf(sd: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """A Hugging Face BERT state dict as the state dict of vitbench's ``Bert`` (see
    :data:`KEY_MAP`); an unknown key is a one-line error."""
    out: dict[str, Tensor] = {}
    for key, value in sd.items():
        short = _strip(key)
        if short.startswith(DROPPED):
            continue
        module, _, param = short.rpartition(".")
        ours = _module(module)
        if ours is None:
            raise VitbenchError(f"no vitbench Bert key for the Hugging Face BERT key {key}")
        if ours == "pos_embed":
            value = value.unsqueeze(0)  # (P, D) -> (1, P, D)
        out[f"{ours}.{_PARAMS.get(param, param)}"] = value
    return out


def _strip(key: str) -> str:
    """The key without vitbench's wrapper (``hf.``) and the task models' ``bert.``."""
    for prefix in ("hf.", "bert."):
        key = key.removeprefix(prefix)
    return key


def _module(module: str) -> str | None:
    """vitbench's name of a Hugging Face BERT module, None when it has none."""
    layer = _LAYER.fullmatch(module)
    if layer is None:
        return KEY_MAP.get(module)
    ours = KEY_MAP.get(f"encoder.layer.{{i}}.{layer.group(2)}")
    return None if ours is None else ours.format(i=layer.group(1))


def bert_kwargs_from_hf(config: Any) -> dict[str, Any]:
    """``Bert`` keyword arguments of the shape a Hugging Face ``BertConfig`` describes."""
    if config.hidden_act != "gelu":
        raise VitbenchError(f"vitbench's Bert uses exact GELU, not {config.hidden_act!r}")
    ratio = config.intermediate_size / config.hidden_size
    if int(config.hidden_size * ratio) != config.intermediate_size:  # Bert's MLP: int(D * r)
        raise VitbenchError(
            f"vitbench's Bert cannot take intermediate_size {config.intermediate_size} "
            f"with hidden_size {config.hidden_size}"
        )
    return dict(
        vocab_size=config.vocab_size,
        type_vocab_size=config.type_vocab_size,
        seq_len=config.max_position_embeddings,
        embed_dim=config.hidden_size,
        depth=config.num_hidden_layers,
        num_heads=config.num_attention_heads,
        mlp_ratio=ratio,
        drop_rate=config.hidden_dropout_prob,
        attn_drop_rate=config.attention_probs_dropout_prob,
        norm_eps=config.layer_norm_eps,
    )
