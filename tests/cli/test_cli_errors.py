"""Bad input on the command line: exit code and the line that names it, never a traceback.

One row per case: the arguments, the exit code, and a piece of the message's error line. Cases
run in-process through ``vitbench.cli.main`` and fail before any model is built.
"""

from __future__ import annotations

import sys

import pytest

from vitbench.cli import main

CASES = [
    # usage errors: click's own message, exit 2 (typer ships its own copy of click)
    (["train", "--epoch", "1"], 2, "No such option: --epoch"),
    (["analyze", "attention"], 2, "give a MODEL (or --qkv FILE"),
    (["profile", "--format", "xml"], 2, "Invalid value for '--format'"),
    (["train", "--threads", "abc"], 2, "Invalid value for '--threads'"),
    (["profil"], 2, "No such command 'profil'"),
    (["export", "--format", "csv"], 2, "Missing option '--out'"),
    # input errors: one line from vitbench, exit 2
    (["profile", "vit_tiny_patch16_224", "--metrics", "speed"], 2, "unknown metric(s) speed"),
    (["export", "STORE", "--format", "xlsx", "--out", "OUT"], 2, "unknown export format 'xlsx'"),
    (["report", "STORE/missing"], 2, "results store not found"),
    (["profile", "vit_tiny_patch16_224", "--store", "mysql://u@h/db"], 2, "'mysql' is not a"),
    (["profile", "vit_tiny_patch16_224", "--store", "RANDOM"], 2, "not an SQLite database"),
]


@pytest.mark.parametrize(("args", "code", "message"), CASES, ids=[" ".join(c[0]) for c in CASES])
def test_bad_input_is_one_line_and_its_exit_code(args, code, message, tmp_path, capsys) -> None:
    random_file = tmp_path / "random.db"
    random_file.write_bytes(bytes(range(256)) * 4)
    paths = {"STORE": str(tmp_path), "OUT": str(tmp_path / "out"), "RANDOM": str(random_file)}
    args = [paths.get(a, a.replace("STORE", str(tmp_path))) for a in args]
    with pytest.raises(SystemExit) as exit_:
        main(args)
    err = capsys.readouterr().err
    assert exit_.value.code == code, err
    error_lines = [line for line in err.splitlines() if line.lower().startswith("error")]
    assert len(error_lines) == 1 and message in error_lines[0], err
    assert "Traceback" not in err
    assert random_file.read_bytes() == bytes(range(256)) * 4  # nothing written into it


def test_bare_command_prints_the_help_and_no_error_line(capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        main([])
    out, err = capsys.readouterr()
    assert exit_.value.code == 2  # click's code when a group is called without a command
    assert "Usage:" in out + err and "profile" in out + err
    assert "error" not in (out + err).lower()


def test_brackets_in_a_message_are_printed_not_read_as_markup(monkeypatch, capsys) -> None:
    """Without transformers, hf: names how to install it; rich must not eat '[hf]'."""
    from vitbench.zoo import hf

    monkeypatch.setitem(sys.modules, "transformers", None)  # import transformers fails
    hf._config.cache_clear()  # a config cached by another test would need no import
    with pytest.raises(SystemExit) as exit_:
        main(["profile", "hf:bert", "--metrics", "params", "--no-save"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2
    assert err.strip() == (
        "error: hf: models need the transformers package: pip install 'vitbench[hf]'"
    )
