"""``analyze_text_attention``: what each head of a token model does on each sentence.

The phases, in order: check the options and the text, build the model and choose its
tokenizer (:mod:`vitbench.attention.text_input`), tokenize and check every sentence, then one
forward per sentence (no padding), reading every layer's (heads, N, N) weights and, in the same
forward, the gradient of the loss with respect to a gate on every head; then head importance,
head clusters and the records. One record per sentence x layer x head (see
:mod:`vitbench.attention.text_measures` for its measures, and ``attention_matrix``, the
weights).

Importance is as for images (Michel et al.), against the model's own predicted class (text
comes without labels), summed over the sentences and copied onto each sentence's rows; so are
the clusters, of each head's measures and token-distance profile averaged over the sentences.
With a store, one heatmap figure per sentence and layer goes to the ``figures`` table
(``<model>_s<k>_layer<l>.png``, named in the rows' ``heatmap_figure``), then the rows to the
``attention`` table in one transaction; nothing is stored until every check has passed.
"""

from __future__ import annotations

import dataclasses
import os
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from textwrap import shorten
from typing import Any

import numpy as np
import torch
from torch import nn

from vitbench.attention.analysis import OnProgress
from vitbench.attention.build import frozen, model_spec, refuse_for_module, seeded
from vitbench.attention.clusters import cluster_heads, head_features
from vitbench.attention.entropy import rows_are_distributions
from vitbench.attention.extract import AttentionExtractor, AttentionLayer
from vitbench.attention.importance import HeadGates
from vitbench.attention.importance_fields import add_importance, gate_gradients
from vitbench.attention.options import AttentionOptions, check_plots_dir
from vitbench.attention.text_input import TextSource, choose_tokenizer, encode_sentences
from vitbench.attention.text_measures import distance_profile, head_measures, token_position
from vitbench.attention.text_plots import plot_heatmaps
from vitbench.attention.tokenize import INPUT_WORDS, TextTokenizer, WordPieceTokenizer
from vitbench.environment import environment
from vitbench.errors import VitbenchError
from vitbench.files import file_stem
from vitbench.store import Recorder, Store
from vitbench.zoo import ModelSpec, create_model
from vitbench.zoo.registry import get_factory
from vitbench.zoo.scratch.bert import Bert

#: options that shape images or their tokens, which text has no use for
IMAGE_OPTIONS = ("img_size", "input_size", "tome", "prune")
#: the measures of a head that its cluster is drawn from, with its token-distance profile
CLUSTER_METRICS = ("entropy_norm", "cls_attention", "sep_attention", "self_attention")

#: each sentence's ids (1, N) and tokens
Encoded = list[tuple[torch.Tensor, list[str]]]


@dataclass
class TextAttentionAnalysis:
    """Records (one per sentence x layer x head, stamped), notes and the figures drawn."""

    model: str
    records: list[dict[str, Any]]
    notes: list[str] = field(default_factory=list)  # what could not be measured, and why
    run_id: str = ""
    figures: dict[str, Path] = field(default_factory=dict)  # by "s<k>_layer<l>"
    sentences: list[list[str]] = field(default_factory=list)  # the tokens of each sentence


def analyze_text_attention(
    model: nn.Module | str | ModelSpec,
    source: TextSource,
    opts: AttentionOptions = AttentionOptions(),
    *,
    store: Store | None = None,
    plots_dir: str | os.PathLike | None = None,
    on_progress: OnProgress | None = None,
    model_name: str | None = None,
) -> TextAttentionAnalysis:
    """Analyse a token model's attention heads on the sentences of ``source``.

    ``model``: a name (``scratch_bert_base``, ``hf:NAME``...), a :class:`ModelSpec` or a built
    module, as for :func:`vitbench.attention.analyze_attention`; its tokenizer is chosen as
    :mod:`vitbench.attention.text_input` says. Options for images (img_size, input_size, tome,
    prune) are refused. The heatmaps are drawn into ``plots_dir``, by default
    ``<store artifacts>/plots/<run id>/`` (none without a store). ``on_progress(done, total,
    phase)`` after each sentence.
    """
    _check_options(opts)
    if plots_dir is not None:
        check_plots_dir(plots_dir)
    device = opts.resolved_device()
    recorder = Recorder(store, environment(device))
    sentences = source.sentences()
    subject = _build(model, opts, source.vocab, sentences, device, model_name)
    encoded = encode_sentences(subject.tokenizer, sentences, subject.net, subject.name)
    _check_classifier(subject, opts)
    run = _TextPass(subject, opts, device, encoded[0][0].to(device))
    run.run(encoded, on_progress)
    records = _records(run, encoded, sentences)
    _add_importance(records, run, on_progress)
    _add_clusters(records, run)
    records = _describe(records, run, source)
    tokens = [t for _, t in encoded]
    analysis = TextAttentionAnalysis(
        subject.name, records, _notes(run), recorder.run_id, sentences=tokens
    )
    return _record(analysis, run.maps, recorder, plots_dir)


def _check_options(opts: AttentionOptions) -> None:
    opts.validate()
    given = [k for k in IMAGE_OPTIONS if getattr(opts, k) not in (None, (None,))]
    if given:
        raise VitbenchError(f"{', '.join(given)}: options for images, of no use with text")


# -- build ----------------------------------------------------------------------------------


@dataclass
class _Subject:
    """The model analysed, its name, its tokenizer and where its weights came from."""

    net: nn.Module
    name: str
    tokenizer: TextTokenizer
    weights: str  # random | pretrained | checkpoint | module (a built module's own)
    checkpoint: str | None = None


def _build(
    model: nn.Module | str | ModelSpec,
    opts: AttentionOptions,
    vocab: Path | None,
    sentences: list[str],
    device: str,
    model_name: str | None,
) -> _Subject:
    """The model in eval mode on ``device``, with its tokenizer. vitbench's BERT is built with
    its vocabulary's size and [CLS]/[SEP] ids, unless a checkpoint fixes them or the model
    kwargs give them (the ids must then fit: ``encode_sentences`` checks); another model's
    tokenizer is chosen once it is built and known to read tokens."""
    if isinstance(model, nn.Module):
        refuse_for_module(opts)
        name = model_name or type(model).__name__
        _check_text_model(model, name)
        tokenizer = choose_tokenizer(name, vocab, isinstance(model, Bert), sentences)
        return _Subject(model.to(device).eval(), name, tokenizer, "module")
    spec = model_spec(model, opts)
    if spec.reduction is not None:
        raise VitbenchError("token merging and pruning: options for images, of no use with text")
    name = model_name or spec.name
    own_bert = get_factory(spec.name) is not None and isinstance(
        create_model(spec.name, device="meta"),
        Bert,  # the class alone: no sizes
    )
    tokenizer = choose_tokenizer(spec.name, vocab, True, sentences) if own_bert else None
    if own_bert and opts.checkpoint is None:
        spec = _with_vocabulary(spec, tokenizer)
    with seeded(opts.seed, device):
        net = create_model(
            spec, device=device, pretrained=opts.pretrained, checkpoint=opts.checkpoint
        )
    _check_text_model(net, name)
    if tokenizer is None:
        tokenizer = choose_tokenizer(spec.name, vocab, False, sentences)
    checkpoint = None if opts.checkpoint is None else str(opts.checkpoint)
    weights = "checkpoint" if checkpoint else "pretrained" if opts.pretrained else "random"
    return _Subject(net.to(device), name, tokenizer, weights, checkpoint)


def _with_vocabulary(spec: ModelSpec, tokenizer: WordPieceTokenizer) -> ModelSpec:
    """vitbench's BERT sized to the vocabulary (vocab_size) with its [CLS]/[SEP] ids (cls_id,
    sep_id); what the spec gives wins."""
    sized = dict(vocab_size=tokenizer.vocab_size, cls_id=tokenizer.cls_id, sep_id=tokenizer.sep_id)
    return dataclasses.replace(spec, kwargs={**sized, **spec.kwargs})


def _check_text_model(net: nn.Module, name: str) -> None:
    kind = getattr(net, "input_kind", "image")
    if kind != "tokens":
        raise VitbenchError(
            f"{name} reads {kind}s, not text: text attention needs a token model "
            "(scratch_bert_base, hf:bert)"
        )


def _check_classifier(subject: _Subject, opts: AttentionOptions) -> None:
    if opts.importance != "none" and getattr(subject.net, "num_classes", None) == 0:
        raise VitbenchError(
            f"head importance needs a classifier: {subject.name} has num_classes 0 "
            "(give num_classes, or importance 'none')"
        )


# -- one forward per sentence ---------------------------------------------------------------


class _TextPass:
    """Each sentence once through the model: every layer's weights and the gate gradients."""

    def __init__(
        self, subject: _Subject, opts: AttentionOptions, device: str, probe: torch.Tensor
    ) -> None:
        self.subject, self.opts, self.device = subject, opts, device
        self.extractor = AttentionExtractor(subject.net, self._on_attention, subject.name, probe)
        self.layers = self.extractor.layers
        want_grad = opts.gradient_importance
        self.gates = (
            HeadGates(self.layers, requires_grad=True, model=subject.net) if want_grad else None
        )
        self.gate_grads: list[torch.Tensor] | None = None  # per layer (heads,), summed
        self.kept: list[tuple[torch.Tensor, torch.Tensor]] = []  # (ids, predicted), to mask
        self.maps: list[list[torch.Tensor]] = []  # per sentence, per layer (heads, N, N)
        self._layer_maps: dict[int, torch.Tensor] = {}  # the sentence being run, by layer
        self._n = 0  # tokens of the sentence being run

    def run(self, encoded: Encoded, on_progress: OnProgress | None) -> None:
        with frozen(self.subject.net), self.extractor:
            for k, (ids, _tokens) in enumerate(encoded):
                self._sentence(ids.to(self.device))
                if on_progress:
                    on_progress(k + 1, len(encoded), "attention")

    def _on_attention(self, layer: AttentionLayer, weights: torch.Tensor) -> None:
        """Keep one layer's (1, heads, N, N) weights of the sentence."""
        if weights.shape[0] != 1 or weights.shape[-2:] != (self._n, self._n):
            raise VitbenchError(
                f"cannot read {layer.name} of {self.subject.name} as attention over the "
                f"sentence's {self._n} tokens: its weights are {tuple(weights.shape)}"
            )
        self._layer_maps[layer.index] = weights[0].cpu()

    def _sentence(self, ids: torch.Tensor) -> None:
        """ids (1, N): its maps, and (importance) its gate gradients and predicted class."""
        self._layer_maps, self._n = {}, ids.shape[-1]
        gates = self.gates if self.gates is not None else nullcontext()
        with torch.set_grad_enabled(self.gates is not None), gates:
            logits = self.extractor.run(ids)
        self.maps.append([self._layer_maps[layer.index] for layer in self.layers])
        if self.opts.importance == "none":
            return
        predicted = logits.detach().argmax(-1)  # (1,)
        if self.gates is not None:
            self.gate_grads = gate_gradients(self.gates, logits, predicted, self.gate_grads)
        if self.opts.mask_importance:
            self.kept.append((ids, predicted))

    @property
    def n_heads(self) -> int:
        return sum(layer.num_heads for layer in self.layers)


# -- records --------------------------------------------------------------------------------


def _records(run: _TextPass, encoded: Encoded, sentences: list[str]) -> list[dict[str, Any]]:
    """One record per sentence x layer x head, in that order: the measures of its weights."""
    tok = run.subject.tokenizer
    out = []
    for k, ((ids, tokens), maps) in enumerate(zip(encoded, run.maps, strict=True)):
        ids_k = ids[0].tolist()
        cls_pos = token_position(ids_k, tok.cls_id)
        sep_pos = token_position(ids_k, tok.sep_id, last=True)
        for layer, weights in zip(run.layers, maps, strict=True):
            where = dict(sentence=k, layer=layer.index, layer_name=layer.name)
            common = dict(text=sentences[k], tokens=tokens, n_tokens=len(tokens))
            for h, measures in enumerate(head_measures(weights, tokens, cls_pos, sep_pos)):
                out.append(
                    dict(**where, head=h, num_heads=layer.num_heads, reader=layer.reader)
                    | common
                    | measures
                )
    return out


def _add_importance(
    records: list[dict[str, Any]], run: _TextPass, on_progress: OnProgress | None
) -> None:
    """Importance of each head over all sentences, copied onto its rows of every sentence."""
    heads = {
        (layer.index, h): dict(importance=None, importance_grad=None)
        for layer in run.layers
        for h in range(layer.num_heads)
    }
    kept = run.kept if run.opts.mask_importance else None
    net = run.subject.net
    add_importance(heads, run.layers, run.gate_grads, len(run.maps), net, kept, on_progress)
    for rec in records:
        rec.update(heads[rec["layer"], rec["head"]])


def _add_clusters(records: list[dict[str, Any]], run: _TextPass) -> None:
    """Cluster the heads by their measures and token-distance profile, both averaged over the
    sentences; each head's cluster and projection go onto its rows of every sentence."""
    cells = [[np.nan if r[m] is None else r[m] for m in CLUSTER_METRICS] for r in records]
    profile = np.array(cells).reshape(len(run.maps), run.n_heads, -1).mean(axis=0)  # (heads, 4)
    pattern = np.mean(
        [np.concatenate([distance_profile(w) for w in maps]) for maps in run.maps], axis=0
    )  # (heads, bands + 1)
    clusters, xy = cluster_heads(
        head_features(profile, pattern), run.opts.n_clusters, run.opts.projection
    )
    for i, rec in enumerate(records):
        h = i % run.n_heads
        rec.update(cluster=int(clusters[h]), proj_x=float(xy[h, 0]), proj_y=float(xy[h, 1]))


def _describe(
    records: list[dict[str, Any]], run: _TextPass, source: TextSource
) -> list[dict[str, Any]]:
    """The records stamped with what was analysed and how; model, sentence, layer, head lead."""
    subject, opts = run.subject, run.opts
    stamp = dict(
        input_kind="text",
        tokenizer=subject.tokenizer.describe(),
        text_source=source.describe(),
        n_sentences=len(run.maps),
        labels="predicted" if opts.importance != "none" else None,
        weights=subject.weights,
        checkpoint=subject.checkpoint,
        device=str(run.device),
        seed=opts.seed,
    )
    lead = dict(model=subject.name)
    return [lead | {k: r[k] for k in ("sentence", "layer", "head")} | r | stamp for r in records]


def _notes(run: _TextPass) -> list[str]:
    """What could not be measured, and why."""
    tok = run.subject.tokenizer
    notes = [
        f"the tokenizer places no {token}: {field_} left empty"
        for token, token_id, field_ in (
            ("[CLS]", tok.cls_id, "cls_attention"),
            ("[SEP]", tok.sep_id, "sep_attention"),
        )
        if token_id is None
    ]
    if getattr(tok, "source", None) == INPUT_WORDS and run.subject.weights != "random":
        notes.append(
            "the vocabulary is the input's words: trained weights read ids that mean nothing "
            "to them (give the vocabulary they were trained with)"
        )
    unnormalised = {
        layer.name
        for maps in run.maps
        for layer, w in zip(run.layers, maps, strict=True)
        if not rows_are_distributions(w)
    }
    notes += [
        f"{name}: rows are not probability distributions, entropy left empty"
        for name in sorted(unnormalised)
    ]
    return notes


# -- figures and the store ------------------------------------------------------------------


def _record(
    analysis: TextAttentionAnalysis,
    maps: list[list[torch.Tensor]],
    recorder: Recorder,
    plots_dir: str | os.PathLike | None,
) -> TextAttentionAnalysis:
    """Draw a heatmap per sentence and layer, store them, then stamp and store the rows."""
    store = recorder.store
    if plots_dir is None and store is not None:
        plots_dir = Path(store.artifacts) / "plots" / recorder.run_id
    if plots_dir is not None:
        analysis.figures = _write_heatmaps(analysis, maps, Path(plots_dir))
    stored = {key: recorder.write_figure(p.name, p) for key, p in analysis.figures.items()}
    rows = [
        {**r, "heatmap_figure": stored.get(f"s{r['sentence']}_layer{r['layer']}")}
        for r in analysis.records
    ]
    analysis.records = recorder.write("attention", rows)
    return analysis


def _write_heatmaps(
    analysis: TextAttentionAnalysis, maps: list[list[torch.Tensor]], directory: Path
) -> dict[str, Path]:
    """``<model>_s<k>_layer<l>.png`` for every sentence k and layer l, by ``s<k>_layer<l>``."""
    directory.mkdir(parents=True, exist_ok=True)
    stem = file_stem(analysis.model)
    texts = {r["sentence"]: r["text"] for r in analysis.records}
    layers = sorted({r["layer"] for r in analysis.records})
    out = {}
    for k, (tokens, sentence_maps) in enumerate(zip(analysis.sentences, maps, strict=True)):
        for layer, weights in zip(layers, sentence_maps, strict=True):
            title = f"{analysis.model}, layer {layer}: {shorten(texts[k], 60, placeholder='...')}"
            path = directory / f"{stem}_s{k}_layer{layer}.png"
            out[f"s{k}_layer{layer}"] = plot_heatmaps(weights.numpy(), tokens, title, path)
    return out
