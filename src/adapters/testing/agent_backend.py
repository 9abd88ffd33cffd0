"""The agent-backend conformance kit: what every :class:`~handoff_core.ports.AgentBackend` must do.

In the spirit of ``trio.testing.check_two_way_stream``: give :func:`check_agent_backend` a factory
of backend instances connected to a running simulator and an :class:`AgentController` that plays
the human agent on that simulator, and it runs the real :class:`~handoff_core.runtime.Runtime`
through every case — queue then join, messages both ways in order, typing, agent-to-agent transfer,
agent ends, user ends, rejection when no agent is available, resuming from the stored cursor in a
fresh adapter instance, and each fault the controller can inject — counting lost and duplicated
messages in both directions. It is backend-neutral: nothing here knows Live Agent or MIAW.

Typical use (one simulator per test, on whichever event loop the test runs)::

    async with serve(simulator.app) as url:
        report = await check_agent_backend(lambda: make_backend(url), controller)
    assert report.lost == report.duplicated == 0
"""

from __future__ import annotations

import enum
import itertools
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from typing import Protocol, runtime_checkable

import anyio
import attrs

from handoff_core import effects as fx
from handoff_core import events as ev
from handoff_core.conversation import Conversation
from handoff_core.machine import State
from handoff_core.policy import Policy
from handoff_core.ports import AgentBackend
from handoff_core.runtime import MemoryStore, Runtime

__all__ = [
    "AgentController",
    "BackendFactory",
    "CASES",
    "CaseResult",
    "Fault",
    "KitReport",
    "check_agent_backend",
]


class Fault(enum.Enum):
    """Faults a simulator can inject into one session (each backend maps them to its protocol)."""

    #: The service moves the session (Live Agent: 503 and a new affinity; MIAW: a new token…).
    RECONNECT = "reconnect"
    #: The next request gets one 5xx; the session is fine.
    SERVER_ERROR = "server_error"
    #: The next inbound delivery (a poll or stream with data) is cut off mid-response.
    DROP_STREAM = "drop_stream"
    #: The next user message is processed, then its response is cut off (the client retries).
    DROP_SEND = "drop_send"
    #: The next inbound delivery repeats what was delivered before.
    REPEAT = "repeat"
    #: The next inbound delivery arrives late.
    DELAY = "delay"
    #: The session is gone (403/401): the conversation must go back to the bot, told why.
    SESSION_LOST = "session_lost"


#: Faults after which the chat must go on with nothing lost or repeated.
RECOVERABLE: tuple[Fault, ...] = (
    Fault.RECONNECT,
    Fault.SERVER_ERROR,
    Fault.DROP_STREAM,
    Fault.DROP_SEND,
    Fault.REPEAT,
    Fault.DELAY,
)


@runtime_checkable
class AgentController(Protocol):
    """Plays the human agent on a simulator, and breaks things on purpose.

    Sessions are opaque handles of the simulator's choosing. Agents join only when told.
    """

    #: The faults :meth:`inject` supports.
    faults: frozenset[Fault]

    async def next_session(self) -> str:
        """Wait for the next session the backend opens (creation order) and return its handle;
        each session is handed out once."""
        ...

    async def join(self, session: str, agent_name: str) -> None: ...

    async def say(self, session: str, text: str) -> None: ...

    async def typing(self, session: str, typing: bool) -> None: ...

    async def transfer(self, session: str, agent_name: str) -> None: ...

    async def end(self, session: str) -> None:
        """The agent ends the chat."""
        ...

    async def received(self, session: str) -> list[str]:
        """The user's messages the agent has received, in order, as the agent saw them."""
        ...

    async def typing_received(self, session: str) -> list[bool]:
        """The user's typing indicators the agent has seen, in order."""
        ...

    async def ended_by_user(self, session: str) -> bool: ...

    async def set_available(self, available: bool) -> None:
        """Make every queue/button (un)available to new chats."""
        ...

    async def inject(self, session: str, fault: Fault) -> None: ...

    async def violations(self, session: str) -> list[str]:
        """Protocol rules the client broke in this session, as the simulator saw them."""
        ...


#: Makes a fresh backend instance connected to the running simulator (closed on exit).
BackendFactory = Callable[[], AbstractAsyncContextManager[AgentBackend]]


@attrs.define(kw_only=True)
class CaseResult:
    name: str
    passed: bool = False
    detail: str = ""
    #: Messages (both directions) that never arrived / arrived more than once.
    lost: int = 0
    duplicated: int = 0
    seconds: float = 0.0


@attrs.define(kw_only=True)
class KitReport:
    results: list[CaseResult] = attrs.field(factory=list)

    def __getitem__(self, name: str) -> CaseResult:
        for result in self.results:
            if result.name == name:
                return result
        raise KeyError(name)

    @property
    def lost(self) -> int:
        return sum(r.lost for r in self.results)

    @property
    def duplicated(self) -> int:
        return sum(r.duplicated for r in self.results)

    @property
    def failures(self) -> list[CaseResult]:
        return [r for r in self.results if not r.passed]


class _CaseFailed(AssertionError):
    pass


# -- the kit's own user channel and bot -----------------------------------------------------------


class _Channel:
    def __init__(self) -> None:
        self.deliveries: list[tuple[str, fx.DeliverToUser]] = []
        self.typing_shown: list[tuple[str, bool]] = []
        self._changed = anyio.Event()

    def _touch(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()

    async def deliver(self, conversation: Conversation, delivery: fx.DeliverToUser) -> None:
        self.deliveries.append((conversation.id, delivery))
        self._touch()

    async def typing(self, conversation: Conversation, indicator: fx.SetUserTyping) -> None:
        self.typing_shown.append((conversation.id, indicator.typing))
        self._touch()

    def of(self, cid: str) -> list[fx.DeliverToUser]:
        return [d for c, d in self.deliveries if c == cid]

    def agent_texts(self, cid: str) -> list[str]:
        return [d.text for d in self.of(cid) if d.sender is fx.Sender.AGENT]

    def keys(self, cid: str) -> list[str | None]:
        return [d.message_key for d in self.of(cid)]

    async def changed(self) -> None:
        await self._changed.wait()


class _Bot:
    def __init__(self) -> None:
        self.reports: list[tuple[str, fx.TransferOutcome]] = []

    async def send(
        self, conversation: Conversation, message: fx.ForwardToBot
    ) -> Sequence[ev.BotEvent]:
        return [ev.BotReplied(at=time.time(), text=f"bot heard: {message.text}")]

    async def start_session(
        self, conversation: Conversation, request: fx.StartBotSession
    ) -> Sequence[ev.BotEvent]:
        return []

    async def report_transfer(
        self, conversation: Conversation, report: fx.ReportTransferOutcome
    ) -> Sequence[ev.BotEvent]:
        self.reports.append((conversation.id, report.outcome))
        return []


# -- the harness ----------------------------------------------------------------------------------


_ids = itertools.count(1)


class _Harness:
    """One case's world: a store, a channel, a bot, and runtimes over fresh backend instances."""

    def __init__(
        self, make_backend: BackendFactory, controller: AgentController, wait: float
    ) -> None:
        self.make_backend = make_backend
        self.controller = controller
        self.wait_limit = wait
        self.store = MemoryStore(serialize=True)
        self.channel = _Channel()
        self.bot = _Bot()
        self.stack = AsyncExitStack()

    async def runtime(self, policy: Policy | None = None) -> Runtime:
        backend = await self.stack.enter_async_context(self.make_backend())
        runtime = Runtime(
            bot=self.bot,
            agents=backend,
            channel=self.channel,
            store=self.store,
            policy=policy or Policy(queue_timeout=60.0),
        )
        await self.stack.enter_async_context(runtime.running())
        return runtime

    async def until(self, what: str, predicate: Callable[[], Awaitable[bool] | bool]) -> None:
        """Wait until ``predicate`` holds, or fail the case saying what did not happen."""
        try:
            with anyio.fail_after(self.wait_limit):
                while True:
                    result = predicate()
                    if not isinstance(result, bool):
                        result = await result
                    if result:
                        return
                    with anyio.move_on_after(0.05):
                        await self.channel.changed()
        except TimeoutError:
            raise _CaseFailed(f"timed out waiting until {what}") from None

    async def state_is(self, runtime: Runtime, cid: str, *states: State) -> bool:
        conversation = await runtime.get(cid)
        return conversation is not None and conversation.state in states

    async def connect(self, runtime: Runtime, cid: str, agent: str = "Ada") -> str:
        """Escalate ``cid``, see it queued, let ``agent`` join; returns the session handle."""
        await runtime.user_said(cid, "hello")
        await runtime.user_said(cid, "agent")
        with anyio.fail_after(self.wait_limit):
            session = await self.controller.next_session()
        await self.until(
            "the backend accepts and queues the chat",
            lambda: self.state_is(runtime, cid, State.QUEUED),
        )
        await self.controller.join(session, agent)
        await self.until(
            f"{agent} joins", lambda: self.state_is(runtime, cid, State.AGENT_CONNECTED)
        )
        joined = [d for d in self.channel.of(cid) if d.message_key == "agentJoinedMessage"]
        _check(
            joined and joined[-1].params.get("agent") == agent,
            f"the user was told {agent} joined (got {[d.text for d in joined]})",
        )
        return session

    async def end_by_user(self, runtime: Runtime, cid: str, session: str) -> None:
        await runtime.user_said(cid, "endagentchat")
        await self.until(
            "the agent sees the user end the chat", lambda: self.controller.ended_by_user(session)
        )

    async def clean(self, session: str) -> None:
        broken = await self.controller.violations(session)
        _check(not broken, f"the simulator saw protocol violations: {broken}")


def _check(condition: object, what: str) -> None:
    if not condition:
        raise _CaseFailed(what)


def _count(expected: Sequence[str], got: Sequence[str]) -> tuple[int, int]:
    """(lost, duplicated) of ``expected`` in ``got``."""
    lost = sum(1 for text in expected if text not in got)
    duplicated = sum(max(0, got.count(text) - 1) for text in set(expected))
    return lost, duplicated


# -- the cases ------------------------------------------------------------------------------------


async def _queue_then_join(h: _Harness, result: CaseResult) -> None:
    runtime = await h.runtime()
    cid = f"kit-{next(_ids)}"
    session = await h.connect(runtime, cid)
    keys = h.channel.keys(cid)
    _check("lookingForAgentMessage" in keys, "the user was told we are looking for an agent")
    await h.end_by_user(runtime, cid, session)
    await h.clean(session)


async def _messages_both_ways(h: _Harness, result: CaseResult, count: int) -> None:
    runtime = await h.runtime()
    cid = f"kit-{next(_ids)}"
    session = await h.connect(runtime, cid)
    said = [f"user message {i}" for i in range(count)]
    for text in said:
        await runtime.user_said(cid, text)
    answers = [f"agent message {i}" for i in range(count)]
    for text in answers:
        await h.controller.say(session, text)
    await h.until(
        "the agent receives every user message",
        lambda: _has_all(h.controller.received(session), said),
    )
    await h.until(
        "the user receives every agent message",
        lambda: all(a in h.channel.agent_texts(cid) for a in answers),
    )
    received = await h.controller.received(session)
    _check(received == said, f"the agent got the user's messages in order: {received}")
    _check(
        h.channel.agent_texts(cid) == answers,
        f"the user got the agent's messages in order: {h.channel.agent_texts(cid)}",
    )
    await h.end_by_user(runtime, cid, session)
    await h.clean(session)


async def _has_all(received: Awaitable[list[str]], expected: Sequence[str]) -> bool:
    got = await received
    return all(text in got for text in expected)


async def _typing(h: _Harness, result: CaseResult) -> None:
    runtime = await h.runtime()
    cid = f"kit-{next(_ids)}"
    session = await h.connect(runtime, cid)
    await h.controller.typing(session, True)
    await h.until("the user sees the agent typing", lambda: (cid, True) in h.channel.typing_shown)
    await h.controller.typing(session, False)
    await h.until(
        "the user sees the agent stop typing", lambda: (cid, False) in h.channel.typing_shown
    )
    await runtime.user_typing(cid, True)
    await runtime.user_typing(cid, False)

    async def agent_saw_typing() -> bool:
        return (await h.controller.typing_received(session))[-2:] == [True, False]

    await h.until("the agent sees the user type, then stop", agent_saw_typing)
    await h.end_by_user(runtime, cid, session)
    await h.clean(session)


async def _transfer(h: _Harness, result: CaseResult) -> None:
    runtime = await h.runtime()
    cid = f"kit-{next(_ids)}"
    session = await h.connect(runtime, cid)
    await h.controller.transfer(session, "Grace")

    def told() -> bool:
        return any(
            d.message_key == "agentTransferredMessage" and d.params.get("agent") == "Grace"
            for d in h.channel.of(cid)
        )

    await h.until("the user is told about the transfer to Grace", told)
    await h.controller.say(session, "Grace here")
    await h.until(
        "the new agent's message arrives", lambda: "Grace here" in h.channel.agent_texts(cid)
    )
    last = [d for d in h.channel.of(cid) if d.sender is fx.Sender.AGENT][-1]
    _check(last.agent_name == "Grace", f"the message is from Grace, not {last.agent_name!r}")
    await runtime.user_said(cid, "hi Grace")
    await h.until(
        "Grace receives the user's message",
        lambda: _has_all(h.controller.received(session), ["hi Grace"]),
    )
    await h.end_by_user(runtime, cid, session)
    await h.clean(session)


async def _agent_ends(h: _Harness, result: CaseResult) -> None:
    runtime = await h.runtime()
    cid = f"kit-{next(_ids)}"
    session = await h.connect(runtime, cid)
    await h.controller.end(session)
    await h.until(
        "the conversation is back with the bot", lambda: h.state_is(runtime, cid, State.BOT)
    )
    _check("conversationClosedMessage" in h.channel.keys(cid), "the user was told the agent left")
    await runtime.user_said(cid, "still there?")
    await h.until(
        "the bot answers again",
        lambda: any(d.text == "bot heard: still there?" for d in h.channel.of(cid)),
    )
    await h.clean(session)


async def _user_ends(h: _Harness, result: CaseResult) -> None:
    runtime = await h.runtime()
    cid = f"kit-{next(_ids)}"
    session = await h.connect(runtime, cid)
    await h.end_by_user(runtime, cid, session)
    _check(await h.state_is(runtime, cid, State.USER_ENDED), "the conversation is user_ended")
    _check("userEndedMessage" in h.channel.keys(cid), "the user was told the chat ended")
    await h.clean(session)


async def _no_agent(h: _Harness, result: CaseResult) -> None:
    await h.controller.set_available(False)
    try:
        runtime = await h.runtime()
        cid = f"kit-{next(_ids)}"
        await runtime.user_said(cid, "agent")
        await h.until("the transfer fails", lambda: h.state_is(runtime, cid, State.TRANSFER_FAILED))
        _check(
            "noAgentAvailableMessage" in h.channel.keys(cid),
            f"the user was told no agent is available: {h.channel.keys(cid)}",
        )
        _check(
            (cid, fx.TransferOutcome.NO_AGENT_AVAILABLE) in h.bot.reports,
            "the bot was told NoAgentAvailable",
        )
        with anyio.move_on_after(1.0):  # a backend may or may not have opened a session
            await h.controller.next_session()
        # With the availability check first, no session is opened at all.
        checked = await h.runtime(Policy(check_availability=True, queue_timeout=60.0))
        cid = f"kit-{next(_ids)}"
        await checked.user_said(cid, "agent")
        await h.until(
            "the availability check refuses the transfer",
            lambda: h.state_is(checked, cid, State.TRANSFER_FAILED),
        )
        _check(
            "noAgentAvailableMessage" in h.channel.keys(cid),
            "the user was told no agent is available (availability check)",
        )
    finally:
        await h.controller.set_available(True)


async def _resume(h: _Harness, result: CaseResult) -> None:
    first = AsyncExitStack()
    h.stack, outer = first, h.stack
    try:
        runtime = await h.runtime()
        cid = f"kit-{next(_ids)}"
        session = await h.connect(runtime, cid)
        await h.controller.say(session, "before the restart")
        await h.until(
            "the first message arrives", lambda: "before the restart" in h.channel.agent_texts(cid)
        )
    finally:
        h.stack = outer
        await first.aclose()  # the process "dies": runtime and backend instance are gone
    away = ["while you were away 1", "while you were away 2"]
    for text in away:
        await h.controller.say(session, text)
    runtime = await h.runtime()  # a fresh backend instance, resuming from the stored cursor
    await h.until(
        "the messages said meanwhile arrive",
        lambda: all(t in h.channel.agent_texts(cid) for t in away),
    )
    await runtime.user_said(cid, "I am back")
    await h.until(
        "the agent receives the user's message after the restart",
        lambda: _has_all(h.controller.received(session), ["I am back"]),
    )
    await anyio.sleep(0.3)  # let any repeat show itself
    expected = ["before the restart", *away]
    lost, duplicated = _count(expected, h.channel.agent_texts(cid))
    lost2, duplicated2 = _count(["I am back"], await h.controller.received(session))
    result.lost, result.duplicated = lost + lost2, duplicated + duplicated2
    _check(
        result.lost == 0 and result.duplicated == 0,
        f"resume lost {result.lost} and repeated {result.duplicated} message(s)",
    )
    await h.end_by_user(runtime, cid, session)
    await h.clean(session)


async def _recoverable_fault(h: _Harness, result: CaseResult, fault: Fault, count: int) -> None:
    runtime = await h.runtime()
    cid = f"kit-{next(_ids)}"
    session = await h.connect(runtime, cid)
    said = [f"{fault.value} user {i}" for i in range(count)]
    answers = [f"{fault.value} agent {i}" for i in range(count)]
    await h.controller.inject(session, fault)
    for user_text, agent_text in zip(said, answers, strict=True):
        await h.controller.say(session, agent_text)
        await runtime.user_said(cid, user_text)
    await h.until(
        "every user message reaches the agent",
        lambda: _has_all(h.controller.received(session), said),
    )
    await h.until(
        "every agent message reaches the user",
        lambda: all(a in h.channel.agent_texts(cid) for a in answers),
    )
    await anyio.sleep(0.3)  # let any repeat show itself
    received = await h.controller.received(session)
    lost_in, duplicated_in = _count(said, received)
    lost_out, duplicated_out = _count(answers, h.channel.agent_texts(cid))
    result.lost, result.duplicated = lost_in + lost_out, duplicated_in + duplicated_out
    _check(
        result.lost == 0 and result.duplicated == 0,
        f"after {fault.value}: {result.lost} lost, {result.duplicated} duplicated",
    )
    _check(received == said, f"the agent got the user's messages in order: {received}")
    _check(h.channel.agent_texts(cid) == answers, "the user got the agent's messages in order")
    _check(await h.state_is(runtime, cid, State.AGENT_CONNECTED), "the chat is still on")
    await h.end_by_user(runtime, cid, session)
    await h.clean(session)


async def _session_lost(h: _Harness, result: CaseResult) -> None:
    runtime = await h.runtime()
    cid = f"kit-{next(_ids)}"
    session = await h.connect(runtime, cid)
    await h.controller.inject(session, Fault.SESSION_LOST)
    await h.controller.say(session, "you will not see this")  # wakes whatever is waiting
    await h.until(
        "the conversation is back with the bot", lambda: h.state_is(runtime, cid, State.BOT)
    )
    _check(
        "agentConnectionLostMessage" in h.channel.keys(cid),
        f"the user was told the connection was lost: {h.channel.keys(cid)}",
    )


#: Every case by name (faults are ``fault:<value>``).
CASES: tuple[str, ...] = (
    "queue_then_join",
    "messages_both_ways",
    "typing",
    "transfer",
    "agent_ends",
    "user_ends",
    "no_agent",
    "resume",
    *(f"fault:{f.value}" for f in RECOVERABLE),
    f"fault:{Fault.SESSION_LOST.value}",
)


async def check_agent_backend(
    make_backend: BackendFactory,
    controller: AgentController,
    *,
    cases: Iterable[str] | None = None,
    messages: int = 5,
    wait: float = 10.0,
) -> KitReport:
    """Run the conformance cases; raise ``AssertionError`` naming every case that failed.

    ``cases`` picks a subset of :data:`CASES`; fault cases the controller cannot inject are left
    out. ``messages`` is how many messages each direction carries; ``wait`` bounds every wait.
    """
    chosen = list(CASES if cases is None else cases)
    unknown = [c for c in chosen if c not in CASES]
    if unknown:
        raise ValueError(f"unknown case(s) {unknown}; expected some of {list(CASES)}")
    report = KitReport()
    for name in chosen:
        if name.startswith("fault:") and Fault(name[6:]) not in controller.faults:
            continue
        result = CaseResult(name=name)
        report.results.append(result)
        harness = _Harness(make_backend, controller, wait)
        started = time.monotonic()
        try:
            async with harness.stack:
                await _run(name, harness, result, messages)
            result.passed = True
        except Exception as exc:  # a crash is a failure of that case, not of the kit
            result.detail = _explain(exc)
        result.seconds = time.monotonic() - started
    if report.failures:
        lines = [f"{r.name}: {r.detail}" for r in report.failures]
        raise AssertionError("agent backend conformance failed:\n  " + "\n  ".join(lines))
    return report


def _explain(exc: BaseException) -> str:
    """The case's own failure message, even from inside task groups' exception groups."""
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(_explain(inner) for inner in exc.exceptions)
    if isinstance(exc, _CaseFailed):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


async def _run(name: str, harness: _Harness, result: CaseResult, messages: int) -> None:
    match name:
        case "queue_then_join":
            await _queue_then_join(harness, result)
        case "messages_both_ways":
            await _messages_both_ways(harness, result, messages)
        case "typing":
            await _typing(harness, result)
        case "transfer":
            await _transfer(harness, result)
        case "agent_ends":
            await _agent_ends(harness, result)
        case "user_ends":
            await _user_ends(harness, result)
        case "no_agent":
            await _no_agent(harness, result)
        case "resume":
            await _resume(harness, result)
        case "fault:session_lost":
            await _session_lost(harness, result)
        case _:
            await _recoverable_fault(harness, result, Fault(name[6:]), messages)
