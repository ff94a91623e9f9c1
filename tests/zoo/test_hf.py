"""Hugging Face models as a model source (``hf:NAME``): names, what is built, overrides, the
hub cache and the fast one-line errors without it. Tiny configs; nothing is downloaded."""

from __future__ import annotations

import time

import pytest
import torch

from vitbench.errors import VitbenchError
from vitbench.zoo import ModelSpec, create_model, default_input_size, resolve_name
from vitbench.zoo.hf import HFModel, hf_tokenizer, is_hf
from vitbench.zoo.sources import source_of

TINY_BERT = dict(
    hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64, vocab_size=120
)
TINY_VIT = dict(
    hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, patch_size=8
)
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hello", "world", "cat", "##s"]


def bert(**kwargs) -> HFModel:
    return create_model(ModelSpec("hf:bert", kwargs={**TINY_BERT, **kwargs}))


def test_hf_names_are_their_own_source_and_timm_hub_names_stay() -> None:
    assert is_hf("hf:bert") and not is_hf("hf-hub:timm/vit_tiny_patch16_224")
    assert source_of("hf:bert") == "hf" and source_of("hf:google/vit-base-patch16-224") == "hf"
    assert source_of("hf-hub:timm/vit_tiny_patch16_224") == "hf-hub"
    assert resolve_name("hf:bert") == "hf:bert"


def test_unknown_model_type_is_one_line_with_close_types() -> None:
    start = time.monotonic()
    with pytest.raises(VitbenchError, match=r"hf:bertt: not a model type .*did you mean bert") as e:
        resolve_name("hf:bertt")
    assert "\n" not in str(e.value) and time.monotonic() - start < 5


def test_text_model_is_the_transformers_model_behind_the_interface() -> None:
    """Logits are the wrapped sequence classifier's; without a head, its BertModel's pooler."""
    model = bert()
    assert (model.input_kind, model.num_classes, model.max_positions) == ("tokens", 2, 512)
    assert model.seq_len == 512 and type(model.hf).__name__ == "BertForSequenceClassification"
    (ids,) = model.example_inputs(3)
    assert ids.shape == (3, 512) and int(ids.max()) < 120
    with torch.no_grad():
        assert torch.equal(model(ids[:, :10]), model.hf(input_ids=ids[:, :10]).logits)
        bare = create_model(ModelSpec("hf:bert", num_classes=0, kwargs={**TINY_BERT, "seq_len": 9}))
        (ids,) = bare.example_inputs(2)
        assert ids.shape == (2, 9) and type(bare.hf).__name__ == "BertModel"
        assert torch.equal(bare(ids), bare.hf(input_ids=ids).pooler_output)


def test_roberta_positions_stop_before_its_padding_offset() -> None:
    """RoBERTa's position ids start after its padding index (1): roberta-base's 514 position
    embeddings take 512 tokens, and transformers itself fails at 513."""
    kw = {**TINY_BERT, "num_hidden_layers": 1, "max_position_embeddings": 514}
    model = create_model(ModelSpec("hf:roberta", kwargs=kw))
    assert model.max_positions == 512
    ids = torch.full((1, 513), 5)
    with torch.no_grad():
        assert model(ids[:, :512]).shape == (1, 2)
        with pytest.raises((IndexError, RuntimeError), match="out of"):
            model(ids)
    for bad in (0, 513):
        with pytest.raises(VitbenchError, match=rf"seq_len must be in 1\.\.512 .*, got {bad}"):
            create_model(ModelSpec("hf:roberta", kwargs={**kw, "seq_len": bad}), device="meta")


def test_vision_model_takes_its_size_from_the_config_and_the_overrides() -> None:
    spec = ModelSpec("hf:vit", img_size=32, in_chans=1, num_classes=10, kwargs=TINY_VIT)
    model = create_model(spec)
    assert (model.input_kind, model.num_classes, model.max_positions) == ("image", 10, None)
    assert default_input_size(model, spec) == (1, 32, 32) and not hasattr(model, "example_inputs")
    x = torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(x), model.hf(pixel_values=x).logits)
    plain = ModelSpec("hf:vit", kwargs={"num_hidden_layers": 1})
    assert default_input_size(create_model(plain, device="meta"), plain) == (3, 224, 224)


def test_model_kwargs_set_the_config_and_choose_the_attention() -> None:
    model = bert(attn_implementation="eager", layer_norm_eps=1e-6)
    assert model.config._attn_implementation == "eager" and model.config.layer_norm_eps == 1e-6
    assert len(model.hf.bert.encoder.layer) == 2 and model.hf.bert.config.hidden_size == 32
    assert bert(attn_implementation="sdpa").config._attn_implementation == "sdpa"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (ModelSpec("hf:bert", kwargs={"hiden_size": 32}), "no attribute 'hiden_size'.*hidden_size"),
        (ModelSpec("hf:bert", kwargs={"hidden_size": "wide"}), "hidden_size wants int"),
        (ModelSpec("hf:bert", img_size=32), "text model: img_size does not apply"),
        (ModelSpec("hf:vit", kwargs={"seq_len": 8}), "vision model: seq_len does not apply"),
        (ModelSpec("hf:vit", img_size=8, kwargs=TINY_VIT | {"patch_size": 16}), "smaller than"),
        (ModelSpec("hf:bert", kwargs={"attn_implementation": "flash"}), "one of eager, sdpa"),
        (ModelSpec("hf:bert", kwargs={"hidden_size": 30}), "cannot build hf:bert"),
        (ModelSpec("hf:t5"), "encoder-decoder"),
        (ModelSpec("hf:clip"), "neither vocab_size .* nor image_size"),
    ],
)
def test_bad_overrides_are_one_line_errors(spec: ModelSpec, message: str) -> None:
    with pytest.raises(VitbenchError, match=message) as e:
        create_model(spec, device="meta")
    assert "\n" not in str(e.value)


def test_random_init_follows_torch_seed() -> None:
    torch.manual_seed(0)
    first = bert().state_dict()
    torch.manual_seed(0)
    again = bert().state_dict()
    assert all(torch.equal(v, again[k]) for k, v in first.items())
    assert not torch.equal(bert().state_dict()[next(iter(first))], next(iter(first.values())))


def test_deit_type_builds_without_architectures() -> None:
    """transformers' auto class iterates ``config.architectures``, None in a default config."""
    spec = ModelSpec("hf:deit", img_size=32, kwargs=TINY_VIT)
    assert type(create_model(spec, device="meta").hf).__name__ == "DeiTForImageClassification"


def test_vitbench_checkpoint_rebuilds_the_model_by_name_alone(tmp_path) -> None:
    """The spec stored with the weights (config keys included) gives back the same model."""
    from safetensors.torch import save_file

    from vitbench.zoo import spec_metadata

    spec = ModelSpec("hf:vit", img_size=32, num_classes=10, kwargs=TINY_VIT)
    model = create_model(spec)
    path = tmp_path / "tiny.safetensors"
    save_file(model.state_dict(), str(path), metadata=spec_metadata(spec))
    again = create_model("hf:vit", checkpoint=path)
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(again(x), model(x))


# -- the hub cache ----------------------------------------------------------------------------


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    """An empty Hugging Face hub cache for this test; its offline switch restored after."""
    import huggingface_hub.constants as hub

    monkeypatch.setattr(hub, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(hub, "HF_HUB_OFFLINE", hub.HF_HUB_OFFLINE)
    return tmp_path


def cache_repo(cache, repo: str):
    """The snapshot folder of ``repo`` in the hub cache layout (refs/main names it)."""
    root = cache / f"models--{repo.replace('/', '--')}"
    snapshot = root / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    (root / "refs").mkdir()
    (root / "refs" / "main").write_text("0" * 40)
    return snapshot


@pytest.fixture
def cached_bert(hub_cache):
    """A tiny BERT classifier with 3 labels and its WordPiece tokenizer in the hub cache."""
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    snapshot = cache_repo(hub_cache, "someone/tiny-bert")
    config = BertConfig(**TINY_BERT, num_labels=3, max_position_embeddings=64)
    model = BertForSequenceClassification(config).eval()
    model.save_pretrained(snapshot)
    BertTokenizerFast(vocab={token: i for i, token in enumerate(VOCAB)}).save_pretrained(snapshot)
    return model


def test_hub_config_from_the_cache_builds_offline(cached_bert) -> None:
    model = create_model("hf:someone/tiny-bert")
    assert (model.num_classes, model.max_positions, model.config.hidden_size) == (3, 64, 32)


def test_pretrained_weights_come_from_the_cache(cached_bert) -> None:
    """The saved model's own logits, with its weights; a new class count gets a new head."""
    model = create_model("hf:someone/tiny-bert", pretrained=True)
    saved = cached_bert.state_dict()
    assert all(torch.equal(v, saved[k]) for k, v in model.hf.state_dict().items())
    ids = torch.tensor([[2, 5, 6, 3]])
    with torch.no_grad():
        want = cached_bert(input_ids=ids).logits
        torch.testing.assert_close(model(ids), want, atol=1e-6, rtol=1e-6)
    other = create_model(ModelSpec("hf:someone/tiny-bert", num_classes=5), pretrained=True)
    assert other.num_classes == 5 and other(ids).shape == (1, 5)
    ours = other.hf.bert.embeddings.word_embeddings.weight
    assert torch.equal(ours, cached_bert.bert.embeddings.word_embeddings.weight)


def test_tokenizer_of_a_cached_repo_and_none_otherwise(cached_bert) -> None:
    tok = hf_tokenizer("hf:someone/tiny-bert")
    assert tok("hello cats")["input_ids"] == [2, 5, 7, 8, 3]  # [CLS] hello cat ##s [SEP]
    start = time.monotonic()
    assert hf_tokenizer("hf:bert") is None and hf_tokenizer("hf:someone/missing") is None
    assert time.monotonic() - start < 5


def test_pretrained_needs_a_repo_not_a_model_type() -> None:
    with pytest.raises(VitbenchError, match="hf:bert is a default config without weights"):
        create_model("hf:bert", pretrained=True)


def test_missing_repo_offline_is_a_fast_one_line_error(hub_cache) -> None:
    start = time.monotonic()
    with pytest.raises(VitbenchError, match="no config for someone/missing in the Hugging Face"):
        create_model("hf:someone/missing", device="meta")
    config = '{"model_type": "bert", "hidden_size": 32, "num_attention_heads": 4}'
    cache_repo(hub_cache, "someone/tiny").joinpath("config.json").write_text(config)
    with pytest.raises(VitbenchError, match="pretrained weights for hf:someone/tiny not in the"):
        create_model("hf:someone/tiny", pretrained=True)
    assert time.monotonic() - start < 10


def test_unreachable_hub_without_the_offline_flag_is_fast(hub_cache, monkeypatch) -> None:
    """No HF_HUB_OFFLINE: one connection attempt to the endpoint (here a closed local port)."""
    import huggingface_hub.constants as hub

    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(hub, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(hub, "ENDPOINT", "http://127.0.0.1:9")
    start = time.monotonic()
    with pytest.raises(VitbenchError, match="the hub is unreachable") as e:
        create_model("hf:someone/missing", pretrained=True)
    assert "\n" not in str(e.value) and time.monotonic() - start < 10
