"""One home for each option: a dataclass field that is also a command-line option.

A field made with :func:`option` carries its default and help text and, where the command line
writes the value as text (``"1,8,32"``, ``"depth=6,embed_dim=96"``), a parser from that text.
``vitbench.cli.dataclass_options`` turns such fields into Typer options, so a name, its default
and its help are written once and shared by the library and the command line.

Torch-free: the command line imports it at start-up.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from vitbench.errors import VitbenchError

#: the metadata key under which a field keeps its :class:`OptionSpec`
OPTION = "vitbench_option"


@dataclass(frozen=True)
class OptionSpec:
    """How a dataclass field appears on the command line."""

    help: str
    flags: tuple[str, ...] = ()  # () : --field-name (and --no-field-name for a bool)
    parse: Callable[[str], Any] | None = None  # text -> value; the option then reads text
    text_default: str | None = None  # the default as text, for a parsed option


def option(
    default: Any = dataclasses.MISSING,
    *,
    help: str,
    flags: Sequence[str] = (),
    parse: Callable[[str], Any] | None = None,
    text_default: str | None = None,
    default_factory: Callable[[], Any] | Any = dataclasses.MISSING,
) -> Any:
    """A dataclass field with its command-line spelling; the default is the library's."""
    spec = OptionSpec(help, tuple(flags), parse, text_default)
    return dataclasses.field(
        default=default, default_factory=default_factory, metadata={OPTION: spec}
    )


def option_spec(f: dataclasses.Field) -> OptionSpec | None:
    """The command-line spelling of a field, or None for a field the command line does not set."""
    return f.metadata.get(OPTION)


def at_least(name: str, value: float | None, low: float, low_text: str | None = None) -> None:
    """Refuse ``value`` below ``low`` in one line (None is the default and passes)."""
    if value is not None and value < low:
        raise VitbenchError(f"{name} must be at least {low_text or low}, got {value}")


def one_of(name: str, value: str, choices: Sequence[str]) -> None:
    """Refuse a ``value`` that is not among ``choices`` in one line, naming them."""
    if value not in choices:
        raise VitbenchError(f"{name} must be one of {', '.join(choices)}, got '{value}'")


def int_list(what: str, *, positive: bool = True) -> Callable[[str], tuple[int | None, ...]]:
    """A parser of ``'1,8,32'`` into ``(1, 8, 32)`` (repeats dropped); '' is ``(None,)``.

    ``positive=False`` takes any integer and leaves the range to the options' validation.
    """

    def parse(text: str) -> tuple[int | None, ...]:
        if not text.strip():
            return (None,)
        out: list[int] = []
        for part in text.split(","):
            try:
                value = int(part.strip())
            except ValueError:
                raise VitbenchError(
                    f"{what} must be integers separated by commas, got '{text}'"
                ) from None
            if positive and value < 1:
                raise VitbenchError(f"{what} must be positive, got {value}")
            out.append(value)
        return tuple(dict.fromkeys(out))

    return parse


def float_list(what: str) -> Callable[[str], tuple[float | None, ...]]:
    """A parser of ``'0.5,0.7'`` into ``(0.5, 0.7)`` (repeats dropped); '' is ``(None,)``.

    The range is left to the options' validation.
    """

    def parse(text: str) -> tuple[float | None, ...]:
        if not text.strip():
            return (None,)
        try:
            values = [float(part.strip()) for part in text.split(",")]
        except ValueError:
            raise VitbenchError(
                f"{what} must be numbers separated by commas, got '{text}'"
            ) from None
        return tuple(dict.fromkeys(values))

    return parse


def parse_kwargs(text: str | None) -> dict[str, Any]:
    """Parse ``"patch_size=8,depth=6,qkv_bias=false"`` into typed keyword arguments."""
    out: dict[str, Any] = {}
    for item in (text or "").split(","):
        item = item.strip()
        if not item:
            continue
        if "=" not in item:
            raise VitbenchError(f"model kwarg '{item}' is not of the form key=value")
        key, raw = (s.strip() for s in item.split("=", 1))
        out[key] = parse_value(raw)
    return out


def parse_value(raw: str) -> Any:
    """``'true'`` -> True, ``'none'`` -> None, ``'6'`` -> 6, ``'0.5'`` -> 0.5, else the text."""
    low = raw.lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("none", "null"):
        return None
    for cast in (int, float):
        try:
            return cast(raw)
        except ValueError:
            pass
    return raw
