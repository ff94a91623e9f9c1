"""vitbench: benchmark and analyze vision transformers on your own hardware."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("vitbench")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+source"

__all__ = ["__version__"]
