"""``handoff demo``: scripted conversations through the real runtime, adapters and simulators.

Everything runs in this process on free loopback ports, over real HTTP: an agent backend's
simulator (MIAW or Live Agent) with the real backend client, a bot platform (the Einstein Bots
simulator with the real Einstein client; the Kore.ai platform simulator sending webhooks to the
real BotKit routes and getting the answers back through ``sendUserMessageUrl``; or the built-in
rule bot) and the real :class:`~handoff_core.runtime.Runtime`. Two conversations are played, with
the conversation state on every line:

1. the bot answers; on Einstein, the main bot hands the user to the billing bot, whose session
   starts with the first session's variables (an info line shows what arrived); the bot hands the
   user to an agent, who is queued, joins and chats (with typing indicators), the platform is told
   the transfer succeeded, the user ends with the keyword and is back with the bot (on Einstein,
   a new session that still knows the conversation's variables);
2. no agent is available: the transfer fails, the bot platform is told (Einstein answers with its
   failed-transfer reply) and the bot takes the conversation back.

Backends and bots plug in through :data:`BACKENDS` and :data:`BOTS`: one factory per entry,
yielding what the story needs (a :class:`DemoWorld`, a :class:`DemoBot`), so adding a backend or a
bot is one entry. ``--lang`` picks the system messages' language.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TYPE_CHECKING

import anyio
import attrs

from handoff_adapters._serve import serve
from handoff_adapters.rulebot import RuleBot
from handoff_adapters.terminal import TerminalChannel
from handoff_adapters.testing import AgentController
from handoff_core import effects as fx
from handoff_core.conversation import Conversation
from handoff_core.machine import State
from handoff_core.messages import resolve_language
from handoff_core.ports import AgentBackend, UserChannel
from handoff_core.runtime import MemoryStore, Runtime

if TYPE_CHECKING:
    from handoff_adapters.cli import Commands

__all__ = [
    "BACKENDS",
    "BOTS",
    "DemoBot",
    "DemoOptions",
    "DemoWorld",
    "Turn",
    "play",
    "register",
    "run_demo",
]

#: How long any one step of the script may take before the demo gives up.
STEP_LIMIT = 15.0
AGENT_NAME = "Ada"
AGENT_GREETING = "Hi, I'm {agent} from customer care. How can I help?"


@attrs.frozen(kw_only=True)
class DemoOptions:
    pace: float = 0.3
    language: str = "en"

    @property
    def join_delay(self) -> float:
        """How long the simulated agent takes to accept: long enough to see the queue."""
        return max(0.3, 3 * self.pace)


# -- agent backends -------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class DemoWorld:
    """A backend connected to a running simulator, and the simulator's agent."""

    backend: AgentBackend
    agent: AgentController


#: Starts a simulator, connects the real backend to it and yields both (closed on exit).
BackendFactory = Callable[[DemoOptions], AbstractAsyncContextManager[DemoWorld]]


@asynccontextmanager
async def _miaw(options: DemoOptions) -> AsyncIterator[DemoWorld]:
    from handoff_adapters.miaw import MiawBackend
    from handoff_adapters.miaw.simulator import MiawController, MiawSimulator

    simulator = MiawSimulator(
        auto_join=AGENT_NAME,
        join_delay=options.join_delay,
        queue_position=2,
        estimated_wait=90,
        greeting=AGENT_GREETING,
    )
    async with (
        serve(simulator.app) as url,
        MiawBackend(url, simulator.org_id, simulator.developer_name) as backend,
    ):
        yield DemoWorld(backend=backend, agent=MiawController(simulator))


@asynccontextmanager
async def _liveagent(options: DemoOptions) -> AsyncIterator[DemoWorld]:
    from handoff_adapters.liveagent import LiveAgentBackend, LiveAgentConfig
    from handoff_adapters.liveagent.simulator import (
        LiveAgentController,
        Simulator,
        SimulatorConfig,
    )

    simulator = Simulator(
        SimulatorConfig(
            agent_name=AGENT_NAME,
            agent_delay=options.join_delay,
            queue_position=2,
            estimated_wait=90,
            greeting=AGENT_GREETING,
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


#: The agent backends the demo can run, by name.
BACKENDS: dict[str, BackendFactory] = {"miaw": _miaw, "liveagent": _liveagent}


# -- bots -----------------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class Turn:
    """Something the user types, and what the bot must answer before the story goes on."""

    text: str
    #: A piece of the bot's (or the system's) next line; ``None``: don't wait for an answer.
    reply: str | None = None
    #: Afterwards, an info line for the reader (e.g. the variables a target bot received).
    aside: Callable[[str], Awaitable[str | None]] | None = None


@attrs.frozen(kw_only=True)
class DemoBot:
    """A bot platform wired to a running :class:`Runtime`, and its part of the script."""

    #: For the heading, e.g. "the Einstein Bots simulator".
    description: str
    runtime: Runtime
    #: The user types ``text`` in conversation ``cid``, the way this platform receives it.
    say: Callable[[str, str], Awaitable[None]]
    #: What the bot platform has been told about transfers in conversation ``cid`` so far.
    told: Callable[[str], Awaitable[Sequence[str]]]
    #: Conversation 1: before the hand-off, the hand-off, and after the user ended the agent chat.
    opening: Sequence[Turn]
    escalate: Turn
    closing: Turn | None
    #: Conversation 2 (no agent available): before the hand-off, the hand-off, what the bot says
    #: once told the transfer failed (``None``: nothing), and a question it answers afterwards.
    retry_opening: Sequence[Turn]
    retry_escalate: Turn
    failed_reply: str | None
    afterwards: Turn
    conversation_id: Callable[[int], str] = lambda number: f"demo-{number}"


#: Yields a :class:`DemoBot` whose runtime runs against the world's backend and shows ``channel``.
BotFactory = Callable[
    [DemoOptions, DemoWorld, TerminalChannel], AbstractAsyncContextManager[DemoBot]
]


@asynccontextmanager
async def _rule_bot(
    options: DemoOptions, world: DemoWorld, channel: TerminalChannel
) -> AsyncIterator[DemoBot]:
    bot = RuleBot()
    runtime = Runtime(
        bot=bot, agents=world.backend, channel=channel, store=MemoryStore(serialize=True)
    )

    async def say(cid: str, text: str) -> None:
        await runtime.user_said(cid, text)

    async def told(cid: str) -> list[str]:
        return [f"the bot is told: {_outcome(report)}" for c, report in bot.reports if c == cid]

    async with runtime.running():
        yield DemoBot(
            description="the built-in rule bot",
            runtime=runtime,
            say=say,
            told=told,
            opening=[
                Turn(text="hi", reply="Hello!"),
                Turn(text="what are your opening hours?", reply="We are open"),
            ],
            escalate=Turn(text="agent"),  # the core's own phrase: it escalates by itself
            closing=Turn(text="thanks", reply="You're welcome"),
            retry_opening=[],
            retry_escalate=Turn(text="agent"),
            failed_reply="I could not reach a person",
            afterwards=Turn(text="how long does shipping take?", reply="Orders ship"),
        )


def _outcome(report: fx.ReportTransferOutcome) -> str:
    if report.outcome is fx.TransferOutcome.SUCCEEDED:
        return str(report.outcome.value)
    return f"{report.outcome.value} ({report.description})"


@asynccontextmanager
async def _einstein_bot(
    options: DemoOptions, world: DemoWorld, channel: TerminalChannel
) -> AsyncIterator[DemoBot]:
    from handoff_adapters.einstein import EinsteinBot, EinsteinConfig, StaticToken
    from handoff_adapters.einstein.simulator import (
        BILLING_BOT_ID,
        DEFAULT_ORG_ID,
        MAIN_BOT_ID,
        EinsteinSimulator,
    )

    simulator = EinsteinSimulator()  # tokens=None: any bearer token will do

    async def sessions(cid: str) -> list[str]:
        """The simulator's sessions of this conversation (they share its external key)."""
        conversation = await runtime.get(cid)
        cursor = conversation.bot_cursor if conversation is not None else None
        key = cursor.get("key") if cursor else None
        return [s.id for s in simulator.sessions.values() if s.external_key == key]

    def bot_name(bot_id: str) -> str:
        dialog = simulator.bots.get(bot_id)
        return dialog.name if dialog is not None else bot_id

    async def told(cid: str) -> list[str]:
        mine = await sessions(cid)
        lines = []
        for session_id, kind, _, reason in simulator.reports:
            if session_id in mine:
                name = bot_name(simulator.sessions[session_id].bot_id)
                why = f" ({reason})" if reason else ""
                lines.append(f"Einstein ({name}) is told: {kind}{why}")
        return lines

    async def arrived(cid: str) -> str | None:
        """What the target bot's session started with: the source session's variables."""
        for session_id in await sessions(cid):
            session = simulator.sessions[session_id]
            if session.bot_id != BILLING_BOT_ID:
                continue
            sources = [
                bot_name(r["value"]) for r in session.referrers if r["value"] in simulator.bots
            ]
            values = ", ".join(
                f"{name}={variable.get('value')!r}"
                for name, variable in sorted(session.variables.items())
                if name != "BotName" and not name.startswith("$")
            )
            origin = f"{' and '.join(sources)}'s" if sources else "the"
            return (
                f"bot-to-bot transfer: {bot_name(session.bot_id)}'s session starts with {origin} "
                f"variables: {values}"
            )
        return None

    async with serve(simulator.app) as url:
        config = EinsteinConfig(
            runtime_url=url,
            org_id=DEFAULT_ORG_ID,
            bot_id=MAIN_BOT_ID,
            force_endpoint="https://simulated.my.salesforce.com/",
            retry_base=0.05,
        )
        async with EinsteinBot(config, StaticToken("demo-token")) as bot:
            runtime = Runtime(
                bot=bot, agents=world.backend, channel=channel, store=MemoryStore(serialize=True)
            )

            async def say(cid: str, text: str) -> None:
                await runtime.user_said(cid, text)

            menu = "1. Order status"
            async with runtime.running():
                yield DemoBot(
                    description="the Einstein Bots simulator (Astro, and Penny from billing)",
                    runtime=runtime,
                    say=say,
                    told=told,
                    opening=[
                        Turn(text="hello", reply=menu),
                        Turn(text="2", reply="from billing", aside=arrived),
                    ],
                    escalate=Turn(text="transfer me to a person", reply="transferring you"),
                    # Back from the agent the user is with Penny again: her new session starts
                    # with the conversation's variables, so she still knows the order.
                    closing=Turn(text="hello", reply="I see order A-1001"),
                    retry_opening=[Turn(text="hello", reply=menu)],
                    retry_escalate=Turn(text="3", reply="transferring you"),
                    failed_reply="nobody could take the chat",
                    afterwards=Turn(text="1", reply="ships today"),
                )


_AGENT_MODE = {
    "startAgentSession": "an agent has the user",
    "clearAgentSession": "the bot has the user back",
}


class _Mirrored:
    """Delivers through the platform (the user's real channel), then shows it in the terminal."""

    def __init__(self, platform: UserChannel, terminal: TerminalChannel) -> None:
        self.platform = platform
        self.terminal = terminal

    async def deliver(self, conversation: Conversation, delivery: fx.DeliverToUser) -> None:
        await self.platform.deliver(conversation, delivery)
        await self.terminal.deliver(conversation, delivery)

    async def typing(self, conversation: Conversation, indicator: fx.SetUserTyping) -> None:
        await self.platform.typing(conversation, indicator)
        await self.terminal.typing(conversation, indicator)


@asynccontextmanager
async def _kore_bot(
    options: DemoOptions, world: DemoWorld, channel: TerminalChannel
) -> AsyncIterator[DemoBot]:
    import httpx
    from starlette.applications import Starlette

    from handoff_adapters.kore import KoreApp, KoreApps, KoreBotKit, KoreWebhooks, conversation_id
    from handoff_adapters.kore.simulator import KoreSimulator

    secret = secrets.token_urlsafe(48)  # this run's BotKit app secret
    simulator = KoreSimulator(client_secret=secret)
    botkit = KoreBotKit(
        KoreApps({"*": KoreApp(client_id=simulator.client_id, client_secret=secret)})
    )
    runtime = Runtime(
        bot=botkit,
        agents=world.backend,
        channel=_Mirrored(botkit, channel),
        store=MemoryStore(serialize=True),
    )
    webhooks = KoreWebhooks(runtime, botkit)
    users: dict[str, str] = {}

    def cid_of(number: int) -> str:
        user = f"jon-{number}"
        cid = conversation_id(simulator.bot_id, user)
        users[cid] = user
        return cid

    async def told(cid: str) -> list[str]:
        return [
            f"the Kore platform is called: {call['kind']} ({_AGENT_MODE[call['kind']]})"
            for call in simulator.calls
            if call["userId"] == users.get(cid)
            and call["kind"] in ("startAgentSession", "clearAgentSession")
        ]

    async def no_bot_transfer(cid: str) -> str:
        return "(Kore BotKit has no bot-to-bot transfer: the Kore bot hands over to an agent only)"

    try:
        async with (
            serve(Starlette(routes=webhooks.routes())) as botkit_url,
            serve(simulator.app) as platform_url,
            httpx.AsyncClient(base_url=platform_url, timeout=STEP_LIMIT) as control,
        ):
            await control.post("/control/config", json={"botkit_url": botkit_url})

            async def say(cid: str, text: str) -> None:
                # The user types on the platform; it sends the on_user_message webhook.
                answer = await control.post(
                    f"/control/users/{users[cid]}/messages", json={"text": text}
                )
                status = answer.json().get("status")
                if status != 200:
                    raise DemoFailed(f"the BotKit endpoint answered the webhook with {status}")

            async with runtime.running():
                yield DemoBot(
                    description="the Kore.ai platform simulator (webhooks into BotKit)",
                    runtime=runtime,
                    say=say,
                    told=told,
                    opening=[
                        Turn(text="hi", reply="Kore demo bot"),
                        Turn(text="where is my parcel?", reply="You said", aside=no_bot_transfer),
                    ],
                    escalate=Turn(text=simulator.transfer_phrase, reply="connect you"),
                    closing=Turn(text="hi", reply="Kore demo bot"),
                    retry_opening=[Turn(text="hi", reply="Kore demo bot")],
                    retry_escalate=Turn(text=simulator.transfer_phrase, reply="connect you"),
                    failed_reply=None,  # the platform learns it from clearAgentSession
                    afterwards=Turn(text="hi", reply="Kore demo bot"),
                    conversation_id=cid_of,
                )
    finally:
        await botkit.aclose()


#: The bots the demo can run, by name.
BOTS: dict[str, BotFactory] = {"einstein": _einstein_bot, "kore": _kore_bot, "rule": _rule_bot}


# -- the story ------------------------------------------------------------------------------------


class DemoFailed(Exception):
    """A step of the script did not happen in time."""


async def run_demo(
    channel: TerminalChannel,
    world: DemoWorld,
    *,
    language: str = "en",
    pace: float = 0.3,
    bot: str = "einstein",
) -> None:
    """Play both conversations with the bot named ``bot`` (see :data:`BOTS`) against ``world``."""
    options = DemoOptions(pace=pace, language=language)
    async with BOTS[bot](options, world, channel) as demo_bot:
        await play(channel, world, demo_bot, options)


async def play(
    channel: TerminalChannel, world: DemoWorld, bot: DemoBot, options: DemoOptions
) -> None:
    """Both scripted conversations: a hand-off that succeeds, then one that fails."""
    runtime, agent, pace = bot.runtime, world.agent, options.pace

    async def say(cid: str, text: str) -> None:
        channel.user(await runtime.get(cid), text)
        await bot.say(cid, text)
        await anyio.sleep(pace)

    async def until(what: str, check: Callable[[], Awaitable[bool]]) -> None:
        try:
            with anyio.fail_after(STEP_LIMIT):
                # Polls: the checks read the store and the simulators, which share no event.
                while not await check():  # noqa: ASYNC110
                    await anyio.sleep(0.02)
        except TimeoutError:
            raise DemoFailed(f"timed out waiting until {what}") from None

    def state_is(cid: str, state: State) -> Callable[[], Awaitable[bool]]:
        async def check() -> bool:
            conversation = await runtime.get(cid)
            return conversation is not None and conversation.state is state

        return check

    def shown(cid: str, piece: str, *, after: int = 0) -> Callable[[], Awaitable[bool]]:
        async def check() -> bool:
            return any(c == cid and piece in d.text for c, d in channel.deliveries[after:])

        return check

    def agent_got(session: str, text: str) -> Callable[[], Awaitable[bool]]:
        async def check() -> bool:
            return text in await agent.received(session)

        return check

    async def turn(cid: str, step: Turn) -> None:
        mark = len(channel.deliveries)
        await say(cid, step.text)
        if step.reply is not None:
            await until(f"the bot answers {step.text!r}", shown(cid, step.reply, after=mark))
        if step.aside is not None:
            aside = await step.aside(cid)
            if aside:
                channel.info(await runtime.get(cid), aside)

    async def report_told(cid: str, before: int, what: str) -> None:
        """Wait until the bot platform has been told the outcome; show what it was told."""

        async def check() -> bool:
            return len(await bot.told(cid)) > before

        await until(what, check)
        conversation = await runtime.get(cid)
        for line in (await bot.told(cid))[before:]:
            channel.info(conversation, line)

    channel.note("── 1. The bot answers, then hands the user to a person; an agent joins ──")
    cid = bot.conversation_id(1)
    await runtime.start(cid, language=options.language, user_name="Jon")
    for step in bot.opening:
        await turn(cid, step)
    reported = len(await bot.told(cid))
    await turn(cid, bot.escalate)
    session = await _within(agent.next_session(), "the chat request reaches the agent service")
    await until("the agent joins", state_is(cid, State.AGENT_CONNECTED))
    await until("the agent greets the user", shown(cid, "How can I help"))
    await report_told(cid, reported, "the bot platform is told the transfer succeeded")
    await say(cid, "My parcel has not arrived yet.")
    await until("the agent reads the message", agent_got(session, "My parcel has not arrived yet."))
    for reply in (
        "Sorry about that! Let me check your order.",
        "It left our warehouse this morning; you will have it tomorrow.",
    ):
        await agent.typing(session, True)
        await anyio.sleep(pace * 2)
        await agent.say(session, reply)
        await until("the user reads the agent's reply", shown(cid, reply))
    await say(cid, "Great, thank you!")
    await until("the agent reads the thanks", agent_got(session, "Great, thank you!"))
    await agent.say(session, "You're welcome. Have a good day!")
    await until("the user reads the goodbye", shown(cid, "You're welcome. Have a good day!"))
    conversation = await runtime.get(cid)
    keyword = (conversation.end_keyword if conversation else None) or runtime.policy.end_keyword
    await say(cid, keyword)
    await until("the chat ends", state_is(cid, State.USER_ENDED))
    if bot.closing is not None:
        await turn(cid, bot.closing)

    channel.note("")
    channel.note("── 2. No agent is available: the bot is told, and takes the conversation back ──")
    await agent.set_available(False)
    cid = bot.conversation_id(2)
    await runtime.start(cid, language=options.language, user_name="Jon")
    for step in bot.retry_opening:
        await turn(cid, step)
    reported = len(await bot.told(cid))
    await turn(cid, bot.retry_escalate)
    await until("the transfer fails", state_is(cid, State.TRANSFER_FAILED))
    # The user is told before they speak again (through Kore this travels over HTTP too).
    told = runtime.policy.messages.render("noAgentAvailableMessage", options.language)
    await until("the user is told no agent is available", shown(cid, told))
    if bot.failed_reply is not None:
        await until("the bot speaks again", shown(cid, bot.failed_reply))
    await report_told(cid, reported, "the bot platform is told the transfer failed")
    await turn(cid, bot.afterwards)


async def _within(awaitable: Awaitable[str], what: str) -> str:
    try:
        with anyio.fail_after(STEP_LIMIT):
            return await awaitable
    except TimeoutError:
        raise DemoFailed(f"timed out waiting until {what}") from None


# -- the command ----------------------------------------------------------------------------------


async def _demo(args: argparse.Namespace) -> int:
    channel = TerminalChannel(sys.stdout, json=args.json)
    options = DemoOptions(pace=args.pace, language=args.lang)
    status = 0
    async with (
        BACKENDS[args.backend](options) as world,
        BOTS[args.bot](options, world, channel) as bot,
    ):
        # Failures are caught here, inside: the servers and the runtime then stop cleanly.
        try:
            if not args.json:
                channel.note(
                    f"handoff demo: {bot.description} → the {args.backend} simulator, all on "
                    f"loopback; system messages in {resolve_language(args.lang)!r}"
                )
                channel.note("")
            await play(channel, world, bot, options)
        except DemoFailed as exc:
            print(f"handoff demo: {exc}", file=sys.stderr)
            status = 1
        except BrokenPipeError:
            _silence_stdout()  # the reader went away (`handoff demo | head`): not an error
    return status


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's last flush does not fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass  # not a real file (captured output): nothing will be flushed to a pipe


def _run(args: argparse.Namespace) -> int:
    return anyio.run(_demo, args, backend=args.async_backend)


def register(commands: Commands) -> None:
    parser = commands.top.add_parser(
        "demo",
        help="watch a scripted bot-to-agent handoff against local simulators",
        description="Run scripted conversations through the real runtime and adapters against "
        "simulators on loopback: a bot (Einstein by default, with a bot-to-bot transfer), a "
        "hand-off to a simulated agent over real HTTP, and a second run where no agent is "
        "available and the bot is told.",
    )
    parser.add_argument(
        "--bot",
        choices=sorted(BOTS),
        default="einstein",
        help="the bot platform to simulate (default: einstein)",
    )
    parser.add_argument(
        "--backend",
        choices=sorted(BACKENDS),
        default="miaw",
        help="the agent backend to simulate (default: miaw)",
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
    # For the tests: the demo runs the same on either event loop.
    parser.add_argument(
        "--async-backend", choices=("asyncio", "trio"), default="asyncio", help=argparse.SUPPRESS
    )
    parser.set_defaults(handler=_run)
