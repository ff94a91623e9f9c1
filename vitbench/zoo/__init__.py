"""Where models come from: timm names and globs, readable aliases, our from-scratch models,
torchvision's classifiers, Hugging Face ``transformers`` models (``hf:``), a user's factory and
packages that register models with timm."""

from vitbench.zoo import scratch  # noqa: F401  (registers the from-scratch models)
from vitbench.zoo.factory import (
    ModelSpec,
    create_model,
    default_input_size,
    expand_names,
    known_names,
    list_models,
    resolve_name,
    set_fused_attn,
    spec_metadata,
    with_checkpoint_spec,
)
from vitbench.zoo.registry import register_model, scratch_names
from vitbench.zoo.sources import NotAppliedWarning, load_imports, not_applied
from vitbench.zoo.weights import load_checkpoint, read_state_dict

__all__ = [
    "ModelSpec",
    "NotAppliedWarning",
    "create_model",
    "default_input_size",
    "expand_names",
    "known_names",
    "list_models",
    "load_checkpoint",
    "load_imports",
    "not_applied",
    "read_state_dict",
    "register_model",
    "resolve_name",
    "scratch_names",
    "set_fused_attn",
    "spec_metadata",
    "with_checkpoint_spec",
]
