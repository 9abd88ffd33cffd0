"""The committed diagrams are what the table generates, and the check notices drift."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from handoff_adapters import diagrams_cli
from handoff_core import diagrams
from handoff_core.machine import TRANSITIONS, State

REPO = Path(__file__).resolve().parents[1]


def main(argv: list[str]) -> int:
    """`handoff diagrams …` through the command's own parser."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default="diagrams")
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args(argv[1:])
    return diagrams_cli._run(args)


def test_committed_diagrams_match_the_table() -> None:
    assert diagrams_cli.check(REPO / "diagrams") == []


def test_check_notices_each_kind_of_drift(tmp_path: Path) -> None:
    shutil.copytree(REPO / "diagrams", tmp_path, dirs_exist_ok=True)
    assert main(["diagrams", "--check", "--out", str(tmp_path)]) == 0
    (tmp_path / "transitions.md").write_text("stale", encoding="utf-8")
    (tmp_path / "conversation.mmd").unlink()
    svg = tmp_path / "conversation.svg"
    svg.write_text(svg.read_text().replace("handoff-dot-sha256: ", "handoff-dot-sha256: 0"))
    problems = diagrams_cli.check(tmp_path)
    assert len(problems) == 3
    assert main(["diagrams", "--check", "--out", str(tmp_path)]) == 1


def test_write_then_check(tmp_path: Path) -> None:
    assert main(["diagrams", "--out", str(tmp_path)]) == 0
    assert diagrams_cli.check(tmp_path) == []
    assert "<svg" in (tmp_path / "conversation.svg").read_text()


def test_every_state_change_is_drawn() -> None:
    text = diagrams.mermaid()
    for row in TRANSITIONS:
        dest = row["dest"]
        for source in row["source"]:
            if dest is not None and dest is not source:
                assert f"{source.value} --> {dest.value}: {row['trigger']}" in text
    table = diagrams.markdown()
    for state in State:
        assert f"`{state.value}`" in table
