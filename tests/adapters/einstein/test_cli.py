from __future__ import annotations

import json
from pathlib import Path

import pytest

from handoff_adapters import cli
from handoff_adapters.einstein import cli as einstein_cli


def test_simulate_einstein_is_registered() -> None:
    args = cli.build_parser().parse_args(["simulate", "einstein", "--port", "9123"])
    assert args.port == 9123
    assert args.handler is einstein_cli._simulate


def test_bad_dialog_file_is_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dialogs = tmp_path / "dialogs.json"
    dialogs.write_text(json.dumps({"0XxBOT": {"greeting": "not a list", "nope": 1}}))
    assert cli.main(["simulate", "einstein", "--dialogs", str(dialogs)]) == 2
    assert "--dialogs" in capsys.readouterr().err
