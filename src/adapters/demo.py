"""``handoff demo``: a scripted conversation through the real runtime, adapter and simulator.

It starts a simulator on a free loopback port, connects the real agent backend to it over HTTP,
and plays two conversations with the built-in rule bot, printing the transcript with the
conversation state on each line:

1. the user talks to the bot, asks for an agent, waits in the queue, the agent joins, they talk
   (with typing indicators), the user ends the chat with the keyword;
2. no agent is available: the transfer fails, the user is told, and the bot takes over again.

Backends plug in through :data:`BACKENDS` (a factory of a running backend plus the simulator's
agent controller), so adding one is one entry; ``--lang`` picks the system messages' language.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TYPE_CHECKING

import anyio
import attrs

from handoff_adapters.rulebot import RuleBot
from handoff_adapters.terminal import TerminalChannel
from handoff_adapters.testing import AgentController
from handoff_core.machine import State
from handoff_core.messages import resolve_language
from handoff_core.ports import AgentBackend
from handoff_core.runtime import MemoryStore, Runtime

if TYPE_CHECKING:
    from handoff_adapters.cli import Commands

__all__ = ["BACKENDS", "DemoWorld", "register", "run_demo"]

#: How long any one step of the script may take before the demo gives up.
STEP_LIMIT = 15.0


@attrs.frozen(kw_only=True)
class DemoWorld:
    """A backend connected to a running simulator, and the simulator's agent."""

    backend: AgentBackend
    agent: AgentController


@attrs.frozen(kw_only=True)
class DemoOptions:
    pace: float = 0.3


DemoFactory = Callable[[DemoOptions], AbstractAsyncContextManager[DemoWorld]]


@asynccontextmanager
async def _liveagent(options: DemoOptions) -> AsyncIterator[DemoWorld]:
    from handoff_adapters._serve import serve
    from handoff_adapters.liveagent import LiveAgentBackend, LiveAgentConfig
    from handoff_adapters.liveagent.simulator import (
        LiveAgentController,
        Simulator,
        SimulatorConfig,
    )

    simulator = Simulator(
        SimulatorConfig(
            agent_name="Ada",
            agent_delay=max(0.4, 3 * options.pace),
            queue_position=2,
            estimated_wait=90,
            greeting="Hi, I'm {agent} from customer care. How can I help?",
        )
    )
    async with serve(simulator.app) as url:
        config = LiveAgentConfig(
            endpoint=url,
            organization_id="00D000000000DEMO",
            deployment_id="572000000000DEMO",
            button_id="573000000000DEMO",
        )
        async with LiveAgentBackend(config) as backend:
            yield DemoWorld(backend=backend, agent=LiveAgentController(simulator))


#: The backends the demo can run, by name.
BACKENDS: dict[str, DemoFactory] = {"liveagent": _liveagent}


class DemoFailed(Exception):
    """A step of the script did not happen in time."""


async def run_demo(
    channel: TerminalChannel, world: DemoWorld, *, language: str = "en", pace: float = 0.3
) -> None:
    """Play both scripted conversations through a real :class:`Runtime`."""
    bot = RuleBot()
    runtime = Runtime(
        bot=bot, agents=world.backend, channel=channel, store=MemoryStore(serialize=True)
    )
    agent = world.agent

    async def say(cid: str, text: str) -> None:
        channel.user(await runtime.get(cid), text)
        await runtime.user_said(cid, text)
        await anyio.sleep(pace)

    async def until(what: str, check: Callable[[], Awaitable[bool]]) -> None:
        try:
            with anyio.fail_after(STEP_LIMIT):
                # Polls: the checks read the store and the simulator, which share no event.
                while not await check():  # noqa: ASYNC110
                    await anyio.sleep(0.02)
        except TimeoutError:
            raise DemoFailed(f"timed out waiting until {what}") from None

    def state_is(cid: str, state: State) -> Callable[[], Awaitable[bool]]:
        async def check() -> bool:
            conversation = await runtime.get(cid)
            return conversation is not None and conversation.state is state

        return check

    def delivered(
        cid: str, predicate: Callable[[str | None, str], bool]
    ) -> Callable[[], Awaitable[bool]]:
        async def check() -> bool:
            return any(c == cid and predicate(d.message_key, d.text) for c, d in channel.deliveries)

        return check

    def agent_got(session: str, text: str) -> Callable[[], Awaitable[bool]]:
        async def check() -> bool:
            return text in await agent.received(session)

        return check

    async with runtime.running():
        channel.note("── 1. The bot answers; the user asks for a person; an agent joins ──")
        cid = "demo-1"
        await runtime.start(cid, language=language, user_name="Jon")
        await say(cid, "hi")
        await say(cid, "what are your opening hours?")
        await say(cid, "agent")
        session = await _within(agent.next_session(), "the chat request reaches the agent service")
        await until("the agent joins", state_is(cid, State.AGENT_CONNECTED))
        await until(
            "the agent greets the user",
            delivered(cid, lambda key, text: key is None and "How can I help" in text),
        )
        await say(cid, "My parcel has not arrived yet.")
        await until(
            "the agent reads the message", agent_got(session, "My parcel has not arrived yet.")
        )
        for reply in (
            "Sorry about that! Let me check your order.",
            "It left our warehouse this morning; you will have it tomorrow.",
        ):
            await agent.typing(session, True)
            await anyio.sleep(pace * 2)
            await agent.say(session, reply)
            await until("the user reads the agent's reply", delivered(cid, _text_is(reply)))
        await say(cid, "Great, thank you!")
        await until("the agent reads the thanks", agent_got(session, "Great, thank you!"))
        await agent.say(session, "You're welcome. Have a good day!")
        await until(
            "the user reads the goodbye",
            delivered(cid, lambda _, t: t == "You're welcome. Have a good day!"),
        )
        await say(cid, "endagentchat")
        await until("the chat ends", state_is(cid, State.USER_ENDED))
        await say(cid, "thanks")

        channel.note("")
        channel.note("── 2. No agent is available: the bot takes the conversation back ──")
        await agent.set_available(False)
        cid = "demo-2"
        await runtime.start(cid, language=language, user_name="Jon")
        await say(cid, "agent")
        await until("the transfer fails", state_is(cid, State.TRANSFER_FAILED))
        await until(
            "the bot speaks again",
            delivered(cid, lambda _, t: t.startswith("I could not reach a person")),
        )
        await say(cid, "how long does shipping take?")
        await until("the bot answers", delivered(cid, lambda _, t: t.startswith("Orders ship")))


def _text_is(expected: str) -> Callable[[str | None, str], bool]:
    return lambda _key, text: text == expected


async def _within(awaitable: Awaitable[str], what: str) -> str:
    try:
        with anyio.fail_after(STEP_LIMIT):
            return await awaitable
    except TimeoutError:
        raise DemoFailed(f"timed out waiting until {what}") from None


async def _demo(args: argparse.Namespace) -> int:
    channel = TerminalChannel(sys.stdout, json=args.json)
    options = DemoOptions(pace=args.pace)
    if not args.json:
        channel.note(
            f"handoff demo: the {args.backend} simulator on loopback, the rule bot, "
            f"system messages in {resolve_language(args.lang)!r}"
        )
        channel.note("")
    try:
        async with BACKENDS[args.backend](options) as world:
            await run_demo(channel, world, language=args.lang, pace=args.pace)
    except DemoFailed as exc:
        print(f"handoff demo: {exc}", file=sys.stderr)
        return 1
    return 0


def _run(args: argparse.Namespace) -> int:
    return anyio.run(_demo, args)


def register(commands: Commands) -> None:
    parser = commands.top.add_parser(
        "demo",
        help="watch a scripted bot-to-agent handoff against a local simulator",
        description="Run a scripted conversation: the rule bot, a hand-off to a simulated "
        "agent over real HTTP, and a second run where no agent is available.",
    )
    parser.add_argument(
        "--backend",
        choices=sorted(BACKENDS),
        default="liveagent",
        help="the agent backend to simulate (default: liveagent)",
    )
    parser.add_argument(
        "--lang", default="en", help="language of the system messages, e.g. fr, de, ja, pt-BR"
    )
    parser.add_argument(
        "--json", action="store_true", help="one JSON object per line instead of the transcript"
    )
    parser.add_argument(
        "--pace",
        type=float,
        default=0.3,
        help="seconds between scripted steps (default 0.3; 0 runs at full speed)",
    )
    parser.set_defaults(handler=_run)
