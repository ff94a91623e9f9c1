"""Typer options made from an options dataclass, so each option is written once.

``@with_options(ProfileOptions)`` on a command adds one Typer option per field the dataclass
marks with :func:`vitbench.options.option` (its name, default and help), parses their text,
builds the dataclass and hands it to the command as ``opts``. The command's own parameters
(arguments, ``--out``, ``--format``) stay as they are written.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import types
import typing
from collections.abc import Callable, Collection
from typing import Any

import typer

from vitbench.options import OptionSpec, option_spec


def with_options(
    cls: type, *, exclude: Collection[str] = (), name: str = "opts"
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorate a command: the fields of ``cls`` become options; it receives ``name=cls(...)``."""
    hints = typing.get_type_hints(cls)
    chosen = [
        (f, spec)
        for f in dataclasses.fields(cls)
        if (spec := option_spec(f)) is not None and f.name not in exclude
    ]
    generated = [_parameter(f, spec, hints[f.name]) for f, spec in chosen]

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        own = [
            p.replace(kind=inspect.Parameter.KEYWORD_ONLY)  # Typer passes every value by name
            for p in inspect.signature(func).parameters.values()
            if p.name != name
        ]
        arguments = [p for p in own if not isinstance(p.default, typer.models.OptionInfo)]
        rest = [p for p in own if p not in arguments]

        @functools.wraps(func)
        def command(**kwargs: Any) -> Any:
            given = {f.name: kwargs.pop(f.name) for f, _ in chosen}
            values = {
                f.name: spec.parse(given[f.name]) if spec.parse else given[f.name]
                for f, spec in chosen
                if given[f.name] is not None or spec.parse is None  # no text: the default
            }
            return func(**kwargs, **{name: cls(**values)})

        params = arguments + generated + rest
        command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        command.__annotations__ = {p.name: p.annotation for p in params}
        return command

    return decorate


def _parameter(f: dataclasses.Field, spec: OptionSpec, hint: Any) -> inspect.Parameter:
    """The Typer option for one field: its flags, its default, its help and its type."""
    if spec.parse is not None:
        annotation: Any = typing.Optional[str]  # noqa: UP045 - Typer reads typing.Optional
        default = spec.text_default
    else:
        annotation = _cli_type(hint)
        default = None if f.default is dataclasses.MISSING else f.default
    flags = spec.flags or (_flag(f.name, bool_flag=annotation is bool),)
    info = typer.Option(default, *flags, help=spec.help)
    return inspect.Parameter(
        f.name, inspect.Parameter.KEYWORD_ONLY, default=info, annotation=annotation
    )


def _flag(name: str, *, bool_flag: bool) -> str:
    dashed = name.replace("_", "-")
    return f"--{dashed}/--no-{dashed}" if bool_flag else f"--{dashed}"


def _cli_type(hint: Any) -> Any:
    """``int | None`` -> ``Optional[int]``; ``bool | None`` -> ``bool`` (an on/off flag)."""
    args = typing.get_args(hint)
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        inner = [a for a in args if a is not type(None)]
        if inner == [bool]:
            return bool
        return typing.Optional[inner[0]]  # noqa: UP045 - Typer reads typing.Optional
    return hint
