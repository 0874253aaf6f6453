"""Bad command lines: integer options out of range fail at parse time; unexpected errors print one line."""
from __future__ import annotations

import subprocess
import sys

import pytest

from zsadbench.cli import listing
from zsadbench.cli.main import build_parser, main


@pytest.mark.parametrize(("argv", "option", "value"), [
    (["run", "-m", "winclip", "--seeds", "99999999999999999999"], "--seeds", "99999999999999999999"),
    (["run", "-m", "winclip", "--seeds", "0,2147483648"], "--seeds", "2147483648"),
    (["run", "-m", "winclip", "--shots", "1,65"], "--shots", "65"),
    (["run", "-m", "winclip", "--shots", "-1"], "--shots", "-1"),
    (["run", "-m", "winclip", "--eval-size", "4"], "--eval-size", "4"),
    (["run", "-m", "winclip", "--eval-size", "100000"], "--eval-size", "100000"),
    (["run", "-m", "winclip", "--batch-size", "0"], "--batch-size", "0"),
    (["run", "-m", "winclip", "--workers", "1000"], "--workers", "1000"),
    (["run", "-m", "winclip", "--threads", "100000"], "--threads", "100000"),
    (["table", "--digits", "40"], "--digits", "40"),
    (["data", "check", "--max-problems", "-1"], "--max-problems", "-1"),
])
def test_integer_options_out_of_range_are_rejected_naming_option_and_value(argv, option, value, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]
    assert f"argument {option}" in last and value in last
    assert "Traceback" not in err


def test_values_at_the_ends_of_the_ranges_are_accepted():
    args = build_parser().parse_args(["run", "-m", "winclip", "--seeds", "0,2147483647", "--shots", "0,64",
                                      "--eval-size", "8", "--batch-size", "4096", "--workers", "1",
                                      "--threads", "1024"])
    assert args.seeds == (0, 2**31 - 1) and args.shots == (0, 64) and args.threads == 1024
    assert (args.eval_size, args.batch_size, args.workers) == (8, 4096, 1)
    assert build_parser().parse_args(["data", "check", "--max-problems", "0"]).max_problems == 0


def test_huge_seed_from_a_real_shell_gives_the_argparse_line_and_no_traceback():
    done = subprocess.run([sys.executable, "-m", "zsadbench", "run", "-m", "winclip", "--seeds",
                           "99999999999999999999", "--dry-run"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "argument --seeds" in done.stderr and "99999999999999999999" in done.stderr
    assert "Traceback" not in done.stderr and "OverflowError" not in done.stderr


def _explode(args):
    raise RuntimeError("disk on fire\nsecond line of the message")


def test_unexpected_exception_is_one_line_with_its_type_and_the_debug_hint(monkeypatch, capsys):
    monkeypatch.setattr(listing, "execute", _explode)
    assert main(["list"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.splitlines() == [
        "RuntimeError: disk on fire second line of the message (run with --debug for the traceback)"]


def test_debug_lets_the_exception_and_its_traceback_through(monkeypatch):
    monkeypatch.setattr(listing, "execute", _explode)
    with pytest.raises(RuntimeError, match="disk on fire"):
        main(["--debug", "list"])


def test_zsad_errors_stay_one_line_without_the_debug_hint(capsys):
    assert main(["run", "-m", "wincip", "--dry-run"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert err.startswith("PluginError: unknown method 'wincip'") and "--debug" not in err


@pytest.mark.parametrize(("extra", "expected"), [
    (["--address", "127.0.0.1:1"], "--address only apply to --executor ray"),
    (["--gpus-per-cell", "1"], "--gpus-per-cell only apply to --executor ray"),
    (["--set", "image_size=224", "--set", "image_size=240"], "--set image_size is given twice"),
])
def test_options_that_would_be_ignored_or_overridden_fail_with_one_line(extra, expected, capsys):
    assert main(["run", "-m", "winclip", "-d", "synthetic", "--pretrained", "none", "--dry-run", *extra]) == 1
    err = " ".join(capsys.readouterr().err.split())
    assert expected in err and "Traceback" not in err


def test_threads_beyond_what_the_machine_can_run_fail_with_the_reason(capsys, monkeypatch):
    from zsadbench.cli import run as run_cli

    monkeypatch.setattr("zsadbench.machine.available_cpus", lambda: 2)
    allowed = run_cli.THREADS_PER_CPU * 2
    assert main(["run", "-m", "winclip", "-d", "synthetic", "--pretrained", "none", "--dry-run", "--threads",
                 str(allowed + 1)]) == 1
    err = " ".join(capsys.readouterr().err.split())
    assert f"--threads {allowed + 1}: this machine gives the run 2 CPUs" in err and f"use at most {allowed}" in err
    assert main(["run", "-m", "winclip", "-d", "synthetic", "--pretrained", "none", "--dry-run", "--threads",
                 str(allowed)]) == 0
