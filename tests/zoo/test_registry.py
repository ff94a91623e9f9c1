"""The registry imports none of the models; the package imports them, and they register."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import vitbench

REGISTRY = Path(vitbench.__file__).parent / "zoo" / "registry.py"

#: the registry module run on its own, outside the package that imports the models
ALONE = f"""
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("registry_alone", {str(REGISTRY)!r})
registry = importlib.util.module_from_spec(spec)
spec.loader.exec_module(registry)
loaded = [m for m in sys.modules if m.startswith(("vitbench.zoo", "torch"))]
print(json.dumps({{"loaded": loaded, "names": registry.scratch_names()}}))
"""
#: the registry as any caller imports it: through the package
PACKAGED = """
import json
from vitbench.zoo.registry import scratch_names
print(json.dumps(scratch_names()))
"""


def _run(code: str) -> object:
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_registry_alone_imports_no_model() -> None:
    assert _run(ALONE) == {"loaded": [], "names": []}


def test_importing_the_zoo_registers_the_scratch_models() -> None:
    names = _run(PACKAGED)
    assert "scratch_vit_base_patch16_224" in names and "scratch_bert_base" in names
