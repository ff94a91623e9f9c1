"""Readable names for the families the field compares, mapped to timm model names.

Aliases are case-insensitive and accept ``-``, ``_`` or ``/`` as separators, so
``ViT-B/16``, ``vit-b16`` and ``vit_b_16`` all name ``vit_base_patch16_224``.
"""

from __future__ import annotations

import re

#: alias (normalised: lower case, separators removed) -> timm model name
ALIASES: dict[str, str] = {}
#: normalised alias -> the form it was declared in, for listings and suggestions
_DISPLAY: dict[str, str] = {}


def _add(name: str, target: str) -> None:
    ALIASES[normalise(name)] = target
    _DISPLAY.setdefault(normalise(name), name)


def normalise(name: str) -> str:
    return re.sub(r"[-_/ .]", "", name.strip().lower())


for _short, _long in {"ti": "tiny", "s": "small", "b": "base", "l": "large"}.items():
    _add(f"vit-{_short}", f"vit_{_long}_patch16_224")
    _add(f"vit-{_short}/16", f"vit_{_long}_patch16_224")
    _add(f"vit-{_long}", f"vit_{_long}_patch16_224")
    if _short in ("s", "b", "l"):
        _add(f"vit-{_short}/32", f"vit_{_long}_patch32_224")
    if _short in ("ti", "s", "b"):
        _add(f"deit-{_short}", f"deit_{_long}_patch16_224")
        _add(f"deit-{_long}", f"deit_{_long}_patch16_224")
        _add(f"deit-{_short}-distilled", f"deit_{_long}_distilled_patch16_224")
        _add(f"deit-{_short}-dist", f"deit_{_long}_distilled_patch16_224")
_add("vit-b/8", "vit_base_patch8_224")
for _short, _long in {"t": "tiny", "s": "small", "b": "base", "l": "large"}.items():
    _add(f"swin-{_short}", f"swin_{_long}_patch4_window7_224")
    _add(f"swin-{_long}", f"swin_{_long}_patch4_window7_224")
for _b in range(6):
    _add(f"pvt-v2-b{_b}", f"pvt_v2_b{_b}")
    _add(f"pvtv2-b{_b}", f"pvt_v2_b{_b}")
for _v in ("xxs24", "xxs36", "s24"):
    _add(f"cait-{_v}", f"cait_{_v}_224")
for _short, _long in {"ti": "tiny", "s": "small", "b": "base"}.items():
    _add(f"crossvit-{_short}", f"crossvit_{_long}_240")
    _add(f"crossvit-{_long}", f"crossvit_{_long}_240")
for _n in (9, 15, 18):
    _add(f"crossvit-{_n}", f"crossvit_{_n}_240")
_add("beit-b", "beit_base_patch16_224")
_add("beit-base", "beit_base_patch16_224")
_add("beit-l", "beit_large_patch16_224")
_add("beit-large", "beit_large_patch16_224")


def resolve_alias(name: str) -> str | None:
    """The timm name an alias stands for, or None when ``name`` is no alias."""
    return ALIASES.get(normalise(name))


def alias_names() -> list[str]:
    """Display forms of the aliases (for listing and for suggestions)."""
    return sorted(_DISPLAY.values())


def aliases_by_target() -> dict[str, list[str]]:
    """timm name -> the aliases (display forms) that name it."""
    out: dict[str, list[str]] = {}
    for key, target in ALIASES.items():
        out.setdefault(target, []).append(_DISPLAY[key])
    return {k: sorted(v) for k, v in out.items()}
