"""The CLI's one-line errors under torchrun: only rank 0 prints them, every rank returns the same exit code."""

from __future__ import annotations

from pathlib import Path

import pytest

from fcnlab.cli.main import main


def _missing_labels(tmp_path: Path) -> list[str]:
    """A ``miou`` run that fails with a DataError (the labels folder does not exist); it never imports torch."""
    return ["miou", "--labels", str(tmp_path / "no_such_labels"), "--pred", str(tmp_path)]


@pytest.mark.parametrize("rank", ["1", "3"])
def test_error_is_silent_on_other_ranks_with_the_same_exit_code(tmp_path, capsys, monkeypatch, rank):
    monkeypatch.setenv("RANK", rank)
    assert main(_missing_labels(tmp_path)) == 2
    out = capsys.readouterr()
    assert out.err == "" and out.out == ""


@pytest.mark.parametrize("rank", ["0", None])
def test_error_is_one_line_on_rank_zero_or_without_torchrun(tmp_path, capsys, monkeypatch, rank):
    if rank is None:
        monkeypatch.delenv("RANK", raising=False)
    else:
        monkeypatch.setenv("RANK", rank)
    assert main(_missing_labels(tmp_path)) == 2
    err = capsys.readouterr().err
    assert err.startswith("fcnlab: error: ") and err.count("\n") == 1
    assert "no_such_labels" in err


def test_usage_errors_print_on_rank_zero_only(capsys, monkeypatch):
    monkeypatch.setenv("RANK", "2")
    with pytest.raises(SystemExit) as silent:
        main(["miou", "--no-such-option"])
    assert silent.value.code == 2 and capsys.readouterr().err == ""
    monkeypatch.setenv("RANK", "0")
    with pytest.raises(SystemExit) as loud:
        main(["miou", "--no-such-option"])
    assert loud.value.code == 2 and "fcnlab miou: error: " in capsys.readouterr().err


def test_interrupted_prints_on_rank_zero_only(capsys, monkeypatch):
    import fcnlab.cli.miou as miou

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(miou, "run", interrupted)
    argv = ["miou", "--labels", "a", "--pred", "b"]
    monkeypatch.setenv("RANK", "1")
    assert main(argv) == 130 and capsys.readouterr().err == ""
    monkeypatch.setenv("RANK", "0")
    assert main(argv) == 130 and capsys.readouterr().err == "fcnlab: interrupted\n"


def test_at_least_is_one_check_for_every_bound():
    from fcnlab.cli.arguments import at_least
    from fcnlab.errors import ConfigError

    assert at_least(0, 0, "--threads") == 0 and at_least(3, 1, "--workers") == 3 and at_least(None, 1, "--x") is None
    with pytest.raises(ConfigError, match=r"^option --workers: must be >= 1, got 0$"):
        at_least(0, 1, "--workers")
    with pytest.raises(ConfigError, match=r"^option --workers: must be >= 0 \(0: here\), got -1$"):
        at_least(-1, 0, "--workers", " (0: here)")
