from __future__ import annotations

import io
import json
from collections.abc import AsyncGenerator
from pathlib import Path

import anyio
import pytest

from handoff_adapters.cli import main
from handoff_adapters.service.cli import TerminalChannel, run_chat
from handoff_adapters.service.config import parse_config
from handoff_core import AgentMessage
from tests.adapters.service.conftest import NamedScriptedAgents


async def typed(
    lines: list[str], agents: dict[str, NamedScriptedAgents]
) -> AsyncGenerator[str, None]:
    for line in lines:
        if line == "<agent says hello>":
            backend = agents["desk"]
            (session,) = {request.session for request in backend.opened}
            backend.push(session, AgentMessage, text="Hello from the desk")
            await anyio.sleep(0.05)
            continue
        yield line + "\n"


@pytest.mark.anyio
@pytest.mark.parametrize("as_json", [False, True])
async def test_chat_bot_then_agent(
    scripted_backends: dict[str, NamedScriptedAgents], as_json: bool
) -> None:
    config = parse_config({"bot": {"type": "echo"}, "backends": {"desk": {"type": "scripted"}}})
    out = io.StringIO()
    lines = ["hi", "transfer me", "my order", "<agent says hello>", "endagentchat", "/quit"]
    await run_chat(
        config,
        lines=typed(lines, scripted_backends),
        channel=TerminalChannel(as_json=as_json, out=out),
    )
    printed = out.getvalue().splitlines()
    if as_json:
        items = [json.loads(line) for line in printed]
        assert items[0] == {
            "type": "message",
            "sender": "bot",
            "text": "Hello! I am the echo bot.",
            "agent_name": None,
            "message_key": None,
            "state": "bot",
        }
        agent_lines = [i for i in items if i["sender"] == "agent"]
        assert agent_lines[0]["text"] == "Hello from the desk"
        assert items[-1]["message_key"] == "userEndedMessage"
    else:
        assert printed[0] == "bot: Hello! I am the echo bot."
        assert "Ada: Hello from the desk" in printed
        assert printed[-1].startswith("* You have ended the chat")
    assert [text for _, text in scripted_backends["desk"].sent] == ["my order"]


def test_serve_and_chat_report_config_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "handoff.toml"
    path.write_text('[bot]\ntype = "echo"\n[backends.web]\ntype = "miaw"\n[server]\nport = "x"\n')
    assert main(["serve", "--config", str(path)]) == 2
    assert "server.port: expected int" in capsys.readouterr().err
    assert main(["chat", "--config", str(path)]) == 2
    assert "server.port" in capsys.readouterr().err
