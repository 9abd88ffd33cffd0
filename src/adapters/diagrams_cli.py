"""``handoff diagrams``: write (or ``--check``) the state diagrams generated from the core's table.

Files: ``conversation.mmd`` (Mermaid), ``conversation.dot`` (Graphviz source),
``conversation.svg`` (rendered by Graphviz ``dot``), ``transitions.md`` (state x trigger table).
The SVG carries the SHA-256 of the DOT source it was rendered from, so ``--check`` can tell a
stale SVG without depending on the exact Graphviz version's output (and without Graphviz).
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from handoff_core import diagrams

if TYPE_CHECKING:
    from handoff_adapters.cli import Commands

__all__ = ["check", "register", "write"]

_MARK = "<!-- handoff-dot-sha256: {} -->"


def _texts() -> dict[str, str]:
    return {
        "conversation.mmd": diagrams.mermaid(),
        "conversation.dot": diagrams.dot(),
        "transitions.md": diagrams.markdown(),
    }


def _dot_digest(source: str) -> str:
    return hashlib.sha256(source.encode()).hexdigest()


def render_svg(source: str) -> str:
    executable = shutil.which("dot")
    if executable is None:
        raise RuntimeError("Graphviz `dot` is not installed (Debian: apt-get install -y graphviz)")
    result = subprocess.run(
        [executable, "-Tsvg"], input=source, capture_output=True, text=True, check=True
    )
    svg = result.stdout
    # Keep the XML declaration first; the mark follows it.
    head, sep, rest = svg.partition("?>\n")
    mark = _MARK.format(_dot_digest(source))
    return f"{head}{sep}{mark}\n{rest}" if sep else f"{mark}\n{svg}"


def write(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    texts = _texts()
    for name, text in texts.items():
        path = directory / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    svg = directory / "conversation.svg"
    svg.write_text(render_svg(texts["conversation.dot"]), encoding="utf-8")
    written.append(svg)
    return written


def check(directory: Path) -> list[str]:
    """The names of files that are missing or differ from what the code generates."""
    problems = []
    texts = _texts()
    for name, text in texts.items():
        path = directory / name
        if not path.exists():
            problems.append(f"{path}: missing")
        elif path.read_text(encoding="utf-8") != text:
            problems.append(f"{path}: differs from the table")
    svg = directory / "conversation.svg"
    mark = _MARK.format(_dot_digest(texts["conversation.dot"]))
    if not svg.exists():
        problems.append(f"{svg}: missing")
    elif mark not in svg.read_text(encoding="utf-8"):
        problems.append(f"{svg}: rendered from an older table")
    return problems


def _run(args: argparse.Namespace) -> int:
    directory = Path(args.out)
    if args.check:
        problems = check(directory)
        for problem in problems:
            print(problem, file=sys.stderr)
        if problems:
            print("diagrams are out of date: run `handoff diagrams`", file=sys.stderr)
            return 1
        print(f"diagrams in {directory} match the table")
        return 0
    for path in write(directory):
        print(f"wrote {path}")
    return 0


def register(commands: Commands) -> None:
    parser = commands.top.add_parser(
        "diagrams", help="write the state diagrams generated from the conversation table"
    )
    parser.add_argument("--out", default="diagrams", help="directory (default: diagrams)")
    parser.add_argument(
        "--check", action="store_true", help="fail if the files differ from the table"
    )
    parser.set_defaults(handler=_run)
