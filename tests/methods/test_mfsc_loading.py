"""Loading captions: the user folder first, then the shipped data; missing captions name the command to run."""
from __future__ import annotations

import json
import re
import shlex

import pytest

from zsadbench.cli.main import build_parser, main
from zsadbench.errors import ConfigError, ZsadError
from zsadbench.methods.finegrainedad.mfsc import (
    CaptionsError,
    MissingCaptionsError,
    caption_path,
    load_captions,
    read_captions,
    shipped_dir,
    write_captions,
)


def test_the_user_folder_comes_first(tmp_path):
    shipped = load_captions("synthetic", "nut")
    doc = shipped.to_dict()
    doc["summary"] = "A grey nut seen from above on black, described by the user."
    path = caption_path(tmp_path, "synthetic", "nut")
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(doc))
    assert load_captions("synthetic", "nut", tmp_path).summary == doc["summary"]
    assert load_captions("synthetic", "nut", str(tmp_path)).summary == doc["summary"]
    # a category the user folder lacks falls back to the shipped file
    assert load_captions("synthetic", "pill", tmp_path) == load_captions("synthetic", "pill")
    assert load_captions("synthetic", "nut", None) == shipped


def test_missing_captions_name_the_folders_and_the_command(tmp_path):
    with pytest.raises(MissingCaptionsError) as info:
        load_captions("mvtec", "teapot", tmp_path)
    message = str(info.value)
    assert isinstance(info.value, ConfigError) and isinstance(info.value, ZsadError)
    assert "mvtec/teapot" in message and "\n" not in message
    assert str(tmp_path / "mvtec" / "teapot.json") in message
    assert str(shipped_dir() / "mvtec" / "teapot.json") in message
    assert f"--set captions_dir={tmp_path}" in message

    command = re.search(r"'(zsadbench captions generate [^']+)'", message).group(1)
    argv = shlex.split(command)[1:]
    args = build_parser().parse_args([a if a != "IMAGE" else "normal.png" for a in argv])
    assert (args.command, args.captions_command) == ("captions", "generate")
    assert (args.dataset, args.category, str(args.out)) == ("mvtec", "teapot", str(tmp_path))


def test_a_user_folder_that_does_not_exist_is_an_error(tmp_path):
    with pytest.raises(CaptionsError, match=rf"^captions folder {tmp_path / 'typo'} does not exist; fix captions_dir"):
        load_captions("synthetic", "nut", tmp_path / "typo")


def test_missing_without_a_user_folder_names_a_placeholder():
    with pytest.raises(MissingCaptionsError, match=r"--out DIR' .* --set captions_dir=DIR$"):
        load_captions("visa", "teapot")


def test_write_is_atomic_and_leaves_no_temporary_files(tmp_path):
    captions = load_captions("mvtec", "bottle")
    path = write_captions(captions, tmp_path)
    assert path == tmp_path / "mvtec" / "bottle.json"
    assert [p.name for p in path.parent.iterdir()] == ["bottle.json"]
    assert read_captions(path, "mvtec", "bottle") == captions


def test_check_passes_on_the_shipped_data(capsys):
    assert main(["captions", "check"]) == 0
    out = capsys.readouterr().out
    count = len(list(shipped_dir().glob("*/*.json")))
    assert f"{count} of {count} files valid" in out and "missing" not in out


def test_check_reports_a_broken_user_file(tmp_path, capsys):
    good = load_captions("btad", "01")
    write_captions(good, tmp_path)
    doc = good.to_dict()
    doc["image_view"]["foreground"] = ""
    bad = caption_path(tmp_path, "btad", "02")
    bad.write_text(json.dumps({**doc, "category": "02"}))
    assert main(["captions", "check", "--folder", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert f"invalid: {bad}: image_view.foreground: empty text; write a value" in out
    assert f"{tmp_path}: 1 of 2 files valid" in out


def test_check_of_a_missing_folder_is_an_error(tmp_path, capsys):
    assert main(["captions", "check", "--folder", str(tmp_path / "nope")]) == 1
    assert "no such folder" in capsys.readouterr().err


def test_captions_error_is_a_config_error():
    assert issubclass(CaptionsError, ConfigError)
    assert issubclass(MissingCaptionsError, CaptionsError)
