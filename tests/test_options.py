"""Option text: key=value lists and integer lists, typed as the command line writes them."""

from __future__ import annotations

import pytest

from vitbench.errors import VitbenchError
from vitbench.options import int_list, parse_kwargs


def test_parse_kwargs_types() -> None:
    assert parse_kwargs("patch_size=8, depth=6,qkv_bias=false,mlp_ratio=2.5,act=gelu,x=none") == {
        "patch_size": 8,
        "depth": 6,
        "qkv_bias": False,
        "mlp_ratio": 2.5,
        "act": "gelu",
        "x": None,
    }
    assert parse_kwargs(None) == {} and parse_kwargs(" , ") == {}
    with pytest.raises(VitbenchError, match="model kwarg 'depth' is not of the form key=value"):
        parse_kwargs("depth")


def test_int_list_keeps_order_and_drops_repeats() -> None:
    parse = int_list("image sizes")
    assert parse("224, 112,224") == (224, 112)
    assert parse("") == (None,)  # no value: the model's own size
    with pytest.raises(VitbenchError, match="image sizes must be integers separated by commas"):
        parse("224,abc")
    with pytest.raises(VitbenchError, match="image sizes must be positive, got 0"):
        parse("0")
