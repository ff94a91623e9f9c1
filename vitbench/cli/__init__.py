"""The `vitbench` command line: thin Typer wiring over the library.

Each command group lives in its own module and is registered here. Errors a user can fix
(:class:`vitbench.errors.VitbenchError`) become one line on stderr and a non-zero exit.
"""

from __future__ import annotations

import importlib
import os
import sys
import warnings

import typer

# Command modules register themselves on `app` when imported.
from vitbench.cli import analyze as _analyze  # noqa: F401
from vitbench.cli import demo as _demo  # noqa: F401
from vitbench.cli import models as _models  # noqa: F401
from vitbench.cli import pretrain as _pretrain  # noqa: F401
from vitbench.cli import profile as _profile  # noqa: F401
from vitbench.cli import report as _report  # noqa: F401
from vitbench.cli import store as _store  # noqa: F401
from vitbench.cli import train as _train  # noqa: F401
from vitbench.cli.app import app
from vitbench.cli.output import err_console, error, warn
from vitbench.errors import VitbenchError


def _usage_errors() -> tuple[type[Exception], ...]:
    """The usage-error classes of click and of the copy of click that typer ships (if any)."""
    classes: list[type[Exception]] = []
    for module in ("click", "typer._click.exceptions"):
        try:
            classes.append(importlib.import_module(module).ClickException)
        except ImportError:
            continue
    return tuple(classes)


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Python's warnings (a size a factory does not take, ...) as one ``warning:`` line."""
    warn(str(message).strip().splitlines()[0] if str(message).strip() else category.__name__)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: run the app, turning user errors and warnings into lines."""
    with warnings.catch_warnings():  # the process's own display comes back after
        warnings.showwarning = _one_line_warning
        _run(argv)


def _run(argv: list[str] | None) -> None:
    """The app, with user errors as one line and the shell's exit codes."""
    try:
        rc = app(args=argv, standalone_mode=False)
        if isinstance(rc, int):  # click returns the code of --help / --version exits
            if rc == 130:  # typer's exit for Ctrl-C
                err_console.print("interrupted")
            sys.exit(rc)
    except VitbenchError as exc:
        error(str(exc))
        sys.exit(exc.exit_code)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        err_console.print("aborted")
        sys.exit(130)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)
    except _usage_errors() as exc:  # click's own message; exit 2 for usage errors
        exc.show()
        sys.exit(exc.exit_code)
    except Exception as exc:
        if os.environ.get("VITBENCH_DEBUG"):
            raise
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        error(f"{type(exc).__name__}: {first} (set VITBENCH_DEBUG=1 for the traceback)")
        sys.exit(1)
    sys.exit(0)
