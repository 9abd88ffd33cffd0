"""Promises about the packages themselves."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from tests.fakes import RecordingChannel, RuleBot, ScriptedAgents

REPO = Path(__file__).resolve().parents[1]


def test_importing_the_core_pulls_in_no_io_libraries() -> None:
    code = (
        "import sys, handoff_core, handoff_core.serialization, handoff_core.diagrams;"
        "print(sorted({m.split('.')[0] for m in sys.modules} & "
        "{'httpx', 'anyio', 'trio', 'sniffio', 'asyncio', 'socket', 'starlette', 'hypercorn'}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def test_every_adapter_package_is_declared_for_the_wheel() -> None:
    """setuptools needs the renamed package tree listed; a new subpackage must be added."""
    import tomllib

    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    declared = set(config["packages"])
    found = set()
    for init in (REPO / "src").rglob("__init__.py"):
        parts = init.parent.relative_to(REPO / "src").parts
        top = {"adapters": "handoff_adapters"}.get(parts[0], parts[0])
        found.add(".".join((top, *parts[1:])))
    assert found == declared


def test_readme_embedding_example_runs() -> None:
    readme = (REPO / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, flags=re.S)
    assert blocks, "README has no python example"
    namespace: dict[str, object] = {}
    exec(compile(blocks[0], "README.md", "exec"), namespace)
    channel, agents = RecordingChannel(), ScriptedAgents()
    main = namespace["main"]
    anyio.run(main, RuleBot(), agents, channel)  # type: ignore[arg-type]
    agents.close_all()
    assert "lookingForAgentMessage" in channel.keys("conversation-42")


@pytest.mark.parametrize("module", ["handoff_core", "handoff_adapters"])
def test_typed(module: str) -> None:
    package = __import__(module)
    assert (Path(package.__file__).parent / "py.typed").exists()
