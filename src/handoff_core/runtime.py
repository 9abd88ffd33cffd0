"""The runtime: drives conversations on anyio (asyncio or trio), the only IO around the pure core.

One data path for everything that happens to a conversation::

    feed(cid, event) → lock(cid) → load → handle → save(state + outbox)
                    → perform effects → mark done
                    └→ results that matter are events, fed back through the same path

* Work is serialized per conversation (never two steps of one conversation at once) and runs
  concurrently across conversations.
* Effects are saved with the new state before they run (an outbox; each effect has an
  idempotency key) and marked done after, so a process that dies mid-step is finished by the next
  one without losing anything.
* A port that raises becomes an event (transfer rejected, session lost, bot failed), never a
  crashed task group or a stuck conversation.
* Agent backend event streams are pumped into the same path; timers fire through it too.

This module imports anyio and is not imported by ``handoff_core/__init__``.
"""

from __future__ import annotations

import heapq
import logging
import math
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

import anyio
import anyio.abc
import attrs

from handoff_core import effects as fx
from handoff_core import events as ev
from handoff_core.conversation import DEFAULT_POLICY, Conversation, handle
from handoff_core.errors import HandoffError
from handoff_core.policy import Policy
from handoff_core.ports import (
    AgentBackend,
    BotPlatform,
    SessionStore,
    StaleConversation,
    UserChannel,
)

__all__ = ["BackendChooser", "KeyedLocks", "MemoryStore", "Runtime"]

log = logging.getLogger("handoff.runtime")

#: Picks the agent backend for an escalation: (conversation, targets) → backend name.
BackendChooser = Callable[[Conversation, tuple[ev.EscalationTarget, ...]], str]


class MemoryStore:
    """An in-process :class:`~handoff_core.ports.SessionStore`.

    With ``serialize=True`` it keeps the cattrs plain-data form instead of the objects, which is
    what a real store does and proves the round trip.
    """

    def __init__(self, *, serialize: bool = False) -> None:
        self._records: dict[str, Any] = {}
        self._serialize = serialize

    def _load(self, conversation_id: str) -> Conversation | None:
        record = self._records.get(conversation_id)
        if record is None or not self._serialize:
            return record
        from handoff_core.serialization import structure_conversation

        return structure_conversation(record)

    def _store(self, conversation: Conversation) -> None:
        if self._serialize:
            from handoff_core.serialization import unstructure_conversation

            self._records[conversation.id] = unstructure_conversation(conversation)
        else:
            self._records[conversation.id] = conversation

    async def load(self, conversation_id: str) -> Conversation | None:
        return self._load(conversation_id)

    async def save(self, conversation: Conversation, *, expected_step: int | None) -> None:
        current = self._load(conversation.id)
        found = None if current is None else current.step
        if found != expected_step:
            raise StaleConversation(
                f"conversation {conversation.id!r} is at step {found}, expected {expected_step}"
            )
        self._store(conversation)

    async def mark_done(self, conversation_id: str, effect_keys: Sequence[str]) -> None:
        current = self._load(conversation_id)
        if current is None:
            return
        done = set(effect_keys)
        outbox = tuple(e for e in current.outbox if e.key not in done)
        if len(outbox) != len(current.outbox):
            self._store(attrs.evolve(current, outbox=outbox))

    async def claim(
        self, conversation_id: str, *, step: int, owner: str, until: float, now: float
    ) -> Conversation | None:
        current = self._load(conversation_id)
        if current is None or current.step != step or not current.outbox:
            return None
        if current.lease_owner not in (None, owner) and (current.lease_until or 0.0) > now:
            return None
        claimed = attrs.evolve(current, lease_owner=owner, lease_until=until)
        self._store(claimed)
        return claimed

    async def active(self) -> AsyncIterator[Conversation]:
        for conversation_id in list(self._records):
            conversation = self._load(conversation_id)
            if conversation is not None and (
                conversation.outbox or conversation.agent_session or conversation.timers
            ):
                yield conversation

    def __len__(self) -> int:
        return len(self._records)


class KeyedLocks:
    """One lock per conversation id, existing only while someone holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[anyio.Lock, list[int]]] = {}

    @asynccontextmanager
    async def __call__(self, key: str) -> AsyncIterator[None]:
        lock, users = self._locks.setdefault(key, (anyio.Lock(), [0]))
        users[0] += 1
        try:
            async with lock:
                yield
        finally:
            users[0] -= 1
            if users[0] == 0:
                del self._locks[key]

    def __len__(self) -> int:
        return len(self._locks)


class Runtime:
    """Drives conversations through the core with real ports.

    Embed it in your own task group::

        runtime = Runtime(bot=my_bot, agents=LiveAgentBackend(...), channel=my_channel)
        async with anyio.create_task_group() as tg:
            await tg.start(runtime.run)
            await runtime.user_said("conversation-1", "hello")

    or use ``async with runtime.running(): ...``.
    """

    def __init__(
        self,
        *,
        bot: BotPlatform,
        agents: AgentBackend | Mapping[str, AgentBackend],
        channel: UserChannel,
        store: SessionStore | None = None,
        policy: Policy = DEFAULT_POLICY,
        choose_backend: BackendChooser | None = None,
        clock: Callable[[], float] = time.time,
        effect_timeout: float = 60.0,
        instance_id: str | None = None,
    ) -> None:
        self.bot = bot
        if isinstance(agents, Mapping):
            self.agents = dict(agents)
        else:
            self.agents = {agents.name: agents}
        if not self.agents:
            raise ValueError("Runtime needs at least one agent backend")
        self.default_backend = next(iter(self.agents))
        self.channel = channel
        self.store: SessionStore = store if store is not None else MemoryStore()
        self.policy = policy
        self.choose_backend = choose_backend
        self.clock = clock
        self.effect_timeout = effect_timeout
        #: This runtime's name on the outbox leases it takes. Give each replica a stable one
        #: (e.g. its host name) so that after a restart it finishes its own interrupted steps at
        #: once instead of waiting for their leases to expire.
        self.instance_id = instance_id or uuid.uuid4().hex[:12]
        #: How often to look again at a conversation whose step another runtime is performing.
        self.lease_poll = 0.02
        #: Counters for monitoring: events, steps, dropped:<why>, rejected, effects, port_errors…
        self.stats: Counter[str] = Counter()
        self._locks = KeyedLocks()
        self._task_group: anyio.abc.TaskGroup | None = None
        self._pumps: dict[str, anyio.CancelScope] = {}
        self._timer_heap: list[tuple[float, str, str, ev.TimerKind]] = []
        self._timers: dict[str, float] = {}
        self._timer_wakeup = anyio.Event()

    # -- lifecycle --------------------------------------------------------------------------------

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[Runtime] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Run until cancelled: timers, backend event pumps, and resuming stored work."""
        async with anyio.create_task_group() as task_group:
            self._task_group = task_group
            task_group.start_soon(self._timer_loop)
            await self.resume()
            task_status.started(self)
            try:
                await anyio.sleep_forever()
            finally:
                self._task_group = None

    @asynccontextmanager
    async def running(self) -> AsyncIterator[Runtime]:
        async with anyio.create_task_group() as task_group:
            await task_group.start(self.run)
            try:
                yield self
            finally:
                task_group.cancel_scope.cancel()

    async def resume(self) -> None:
        """Finish interrupted steps, reattach to open agent sessions, re-arm timers."""
        async for stored in self.store.active():
            async with self._locks(stored.id):
                loaded = await self.store.load(stored.id)
                if loaded is None or self._leased_elsewhere(loaded):
                    continue  # another live runtime is on it
                conversation, followups = await self._settle(stored.id, loaded)
                if conversation is None:
                    continue
                for timer in conversation.timers:
                    self._arm(conversation.id, timer.timer_id, timer.kind, timer.fires_at)
                if (
                    conversation.agent_session
                    and conversation.agent_cursor is not None
                    and conversation.agent_session not in self._pumps
                ):
                    self._start_pump(
                        conversation, conversation.agent_session, conversation.agent_cursor
                    )
                await self._drain(conversation.id, followups)

    # -- the inbound API --------------------------------------------------------------------------

    async def start(
        self,
        conversation_id: str,
        *,
        language: str | None = None,
        user_name: str | None = None,
        prechat: Mapping[str, ev.Scalar] | None = None,
        bot: str | None = None,
    ) -> Conversation:
        """Create a conversation with its profile (optional: the first event creates one too)."""
        async with self._locks(conversation_id):
            existing = await self.store.load(conversation_id)
            if existing is not None:
                return existing
            conversation = Conversation.new(
                conversation_id, language=language, user_name=user_name, prechat=prechat, bot=bot
            )
            await self.store.save(conversation, expected_step=None)
            return conversation

    async def user_said(
        self, conversation_id: str, text: str, *, message_id: str | None = None
    ) -> Conversation | None:
        return await self.feed(
            conversation_id, ev.UserMessage(at=self.clock(), text=text, message_id=message_id)
        )

    async def user_typing(self, conversation_id: str, typing: bool) -> Conversation | None:
        return await self.feed(conversation_id, ev.UserTyping(at=self.clock(), typing=typing))

    async def user_left(self, conversation_id: str) -> Conversation | None:
        return await self.feed(conversation_id, ev.UserLeft(at=self.clock()))

    async def get(self, conversation_id: str) -> Conversation | None:
        return await self.store.load(conversation_id)

    async def feed(self, conversation_id: str, event: ev.Event) -> Conversation | None:
        """Apply ``event`` and everything it leads to; return the conversation afterwards.

        An event the core refuses (illegal in the current state) is logged and counted; the
        conversation stays as it was. Other conversations are never affected.
        """
        async with self._locks(conversation_id):
            await self._drain(conversation_id, [event])
            return await self.store.load(conversation_id)

    async def _feed_in_background(self, conversation_id: str, event: ev.Event) -> None:
        """``feed`` for the runtime's own tasks: a failure (a store outage) is logged and counted,
        and never takes the task group, and every other conversation, down with it."""
        try:
            await self.feed(conversation_id, event)
        except Exception:
            self.stats["background_errors"] += 1
            log.exception(
                "conversation %s: %s could not be applied", conversation_id, type(event).__name__
            )

    # -- one step ---------------------------------------------------------------------------------

    async def _drain(self, conversation_id: str, queue: list[ev.Event]) -> None:
        while queue:
            event = queue.pop(0)
            queue.extend(await self._step(conversation_id, event))

    async def _step(
        self, conversation_id: str, event: ev.Event, retries_left: int = 3
    ) -> list[ev.Event]:
        self.stats["events"] += 1
        stored, followups = await self._settle(
            conversation_id, await self.store.load(conversation_id)
        )
        conversation = stored or Conversation.new(conversation_id, language=None)
        try:
            step = handle(conversation, event, self.policy)
        except HandoffError as exc:
            self.stats["rejected"] += 1
            log.warning(
                "conversation %s: %s refused: %s",
                conversation_id,
                type(event).__name__,
                exc.message,
            )
            return [exc.hint, *followups] if exc.hint is not None else followups
        except Exception:
            # A bug, not bad input: keep the conversation as it was and everything else running.
            self.stats["core_errors"] += 1
            log.exception(
                "conversation %s: handling %s failed", conversation_id, type(event).__name__
            )
            return followups
        if step.dropped:
            self.stats[f"dropped:{step.dropped}"] += 1
            log.debug(
                "conversation %s: %s dropped (%s)",
                conversation_id,
                type(event).__name__,
                step.dropped,
            )
            return followups
        self.stats["steps"] += 1
        new = step.conversation
        if new.outbox:
            new = attrs.evolve(
                new, lease_owner=self.instance_id, lease_until=self._lease_end(new.outbox)
            )
        try:
            await self.store.save(new, expected_step=None if stored is None else stored.step)
        except StaleConversation:
            # Another process applied a step meanwhile (its lock is not ours): apply this event
            # again on top of what it stored.
            self.stats["stale_retries"] += 1
            if retries_left <= 0:
                raise
            return followups + await self._step(conversation_id, event, retries_left - 1)
        return followups + await self._perform(new)

    def _lease_end(self, outbox: Sequence[fx.Effect]) -> float:
        # Long enough for every effect to run into its timeout, plus a margin.
        return self.clock() + self.effect_timeout * len(outbox) + 5.0

    def _leased_elsewhere(self, conversation: Conversation) -> bool:
        return (
            bool(conversation.outbox)
            and conversation.lease_owner not in (None, self.instance_id)
            and (conversation.lease_until or 0.0) > self.clock()
        )

    async def _settle(
        self, conversation_id: str, stored: Conversation | None
    ) -> tuple[Conversation | None, list[ev.Event]]:
        """Clear the way for a new step: finish an outbox left by this runtime or by one that
        died (its lease expired); wait while a live runtime is still performing one."""
        followups: list[ev.Event] = []
        while stored is not None and stored.outbox:
            if self._leased_elsewhere(stored):
                self.stats["lease_waits"] += 1
                await anyio.sleep(self.lease_poll)
                stored = await self.store.load(conversation_id)
                continue
            # Ours, or its owner died: claim it atomically first, so that of two runtimes taking
            # over the same dead runtime's step only one performs it.
            claimed = await self.store.claim(
                conversation_id,
                step=stored.step,
                owner=self.instance_id,
                until=self._lease_end(stored.outbox),
                now=self.clock(),
            )
            if claimed is not None:
                self.stats["resumed_outboxes"] += 1
                followups += await self._perform(claimed)
            else:
                self.stats["lost_claims"] += 1
            stored = await self.store.load(conversation_id)
        return stored, followups

    async def _perform(self, conversation: Conversation) -> list[ev.Event]:
        """Run the outbox in order; mark each effect done; return the events they produced."""
        followups: list[ev.Event] = []
        local: list[str] = []
        for effect in conversation.outbox:
            self.stats["effects"] += 1
            if isinstance(effect, fx.ScheduleTimer | fx.CancelTimer):
                # In-process and idempotent (same timer id): repeating one after a crash is
                # harmless, so it is marked done with the next effect that reaches a peer.
                self._timer_effect(conversation, effect)
                local.append(effect.key)
                continue
            followups.extend(await self._execute(conversation, effect))
            await self.store.mark_done(conversation.id, [*local, effect.key])
            local.clear()
        if local:
            await self.store.mark_done(conversation.id, local)
        return followups

    def _timer_effect(self, conversation: Conversation, effect: fx.Effect) -> None:
        if isinstance(effect, fx.ScheduleTimer):
            self._arm(conversation.id, effect.timer_id, effect.timer, effect.set_at + effect.delay)
        elif isinstance(effect, fx.CancelTimer):
            self._timers.pop(effect.timer_id, None)

    # -- effects → ports --------------------------------------------------------------------------

    async def _execute(self, conversation: Conversation, effect: fx.Effect) -> list[ev.Event]:
        try:
            with anyio.fail_after(self.effect_timeout):
                return await self._dispatch(conversation, effect)
        except Exception as exc:  # a port failed: turn it into an event, never a crash
            self.stats["port_errors"] += 1
            description = _describe(exc)
            log.warning(
                "conversation %s: %s failed: %s",
                conversation.id,
                type(effect).__name__,
                description,
            )
            return self._failure_event(conversation, effect, description)

    async def _dispatch(self, conversation: Conversation, effect: fx.Effect) -> list[ev.Event]:
        match effect:
            case fx.DeliverToUser():
                await self.channel.deliver(conversation, effect)
            case fx.SetUserTyping():
                await self.channel.typing(conversation, effect)
            case fx.ForwardToBot():
                return list(await self.bot.send(conversation, effect))
            case fx.StartBotSession():
                return list(await self.bot.start_session(conversation, effect))
            case fx.ReportTransferOutcome():
                return list(await self.bot.report_transfer(conversation, effect))
            case fx.CheckAgentAvailability():
                name = self._choose(conversation, effect.targets)
                available = await self.agents[name].check_availability(conversation, effect)
                return [ev.AvailabilityChecked(at=self.clock(), available=available, backend=name)]
            case fx.OpenAgentSession():
                name = effect.backend or self._choose(conversation, effect.context.targets)
                cursor = await self.agents[name].open(conversation, effect)
                self._start_pump(conversation, effect.session, cursor, backend=name)
                return [
                    ev.AgentSessionOpened(
                        at=self.clock(), session=effect.session, backend=name, cursor=cursor
                    )
                ]
            case fx.ForwardToAgent():
                await self._backend(conversation).send(conversation, effect)
            case fx.SetAgentTyping():
                await self._backend(conversation).typing(conversation, effect)
            case fx.CloseAgentSession():
                scope = self._pumps.pop(effect.session, None)
                if scope is not None:
                    scope.cancel()
                # The session as it was: the record forgot it in the step that closed it.
                closing = attrs.evolve(
                    conversation, agent_session=effect.session, agent_cursor=effect.cursor
                )
                await self._backend(conversation).close(closing, effect)
            case fx.ScheduleTimer() | fx.CancelTimer():
                self._timer_effect(conversation, effect)
            case _:
                raise TypeError(f"unknown effect {type(effect).__name__}")
        return []

    def _failure_event(
        self, conversation: Conversation, effect: fx.Effect, description: str
    ) -> list[ev.Event]:
        now = self.clock()
        match effect:
            case fx.StartBotSession():
                # The conversation stays with the bot that asked for the transfer.
                return [
                    ev.BotTransferFailed(
                        at=now,
                        target_bot=effect.target_bot,
                        source_bot=effect.source_bot,
                        description=description,
                    )
                ]
            case fx.ForwardToBot() | fx.ReportTransferOutcome():
                return [ev.BotFailed(at=now, description=description)]
            case fx.CheckAgentAvailability() | fx.OpenAgentSession():
                session = conversation.agent_session
                if session is None:
                    return []
                return [
                    ev.TransferRejected(
                        at=now,
                        session=session,
                        reason=ev.RejectReason.ERROR,
                        description=description,
                    )
                ]
            case fx.ForwardToAgent():
                return [
                    ev.BackendSessionLost(at=now, session=effect.session, description=description)
                ]
        # Typing indicators, deliveries and closes: nothing the conversation can do; logged.
        return []

    def _choose(self, conversation: Conversation, targets: tuple[ev.EscalationTarget, ...]) -> str:
        if self.choose_backend is None:
            return self.default_backend
        name = self.choose_backend(conversation, targets)
        if name not in self.agents:
            raise HandoffError(f"choose_backend returned unknown backend {name!r}")
        return name

    def _backend(self, conversation: Conversation) -> AgentBackend:
        name = conversation.agent_backend or self.default_backend
        return self.agents[name]

    # -- agent event pumps ------------------------------------------------------------------------

    def _start_pump(
        self,
        conversation: Conversation,
        session: str,
        cursor: ev.Cursor,
        *,
        backend: str | None = None,
    ) -> None:
        if self._task_group is None:
            raise RuntimeError("Runtime is not running: use `await tg.start(runtime.run)`")
        scope = anyio.CancelScope()
        self._pumps[session] = scope
        agent = self.agents[backend or conversation.agent_backend or self.default_backend]
        self._task_group.start_soon(self._pump, scope, agent, conversation, session, cursor)

    async def _pump(
        self,
        scope: anyio.CancelScope,
        agent: AgentBackend,
        conversation: Conversation,
        session: str,
        cursor: ev.Cursor,
    ) -> None:
        description = "the agent event stream ended"
        with scope:
            try:
                async for event in agent.events(conversation, session, cursor):
                    # Never cancel a step half-way: a close arriving meanwhile waits for it.
                    with anyio.CancelScope(shield=True):
                        await self._feed_in_background(conversation.id, event)
            except Exception as exc:
                description = _describe(exc)
                log.warning(
                    "conversation %s: agent event stream failed: %s", conversation.id, description
                )
        if scope.cancel_called:
            return
        if self._pumps.get(session) is scope:
            del self._pumps[session]
        # The stream is gone while the core may still think the session lives: say so. The core
        # drops this as stale if the session already ended normally.
        with anyio.CancelScope(shield=True):
            await self._feed_in_background(
                conversation.id,
                ev.BackendSessionLost(at=self.clock(), session=session, description=description),
            )

    # -- timers -----------------------------------------------------------------------------------

    def _arm(
        self, conversation_id: str, timer_id: str, kind: ev.TimerKind, fires_at: float
    ) -> None:
        self._timers[timer_id] = fires_at
        heapq.heappush(self._timer_heap, (fires_at, timer_id, conversation_id, kind))
        self._timer_wakeup.set()

    async def _timer_loop(self) -> None:
        while True:
            now = self.clock()
            while self._timer_heap and self._timer_heap[0][0] <= now:
                fires_at, timer_id, conversation_id, kind = heapq.heappop(self._timer_heap)
                if self._timers.get(timer_id) != fires_at:
                    continue  # cancelled or re-armed
                del self._timers[timer_id]
                assert self._task_group is not None
                self._task_group.start_soon(self._fire, conversation_id, timer_id, kind)
            wait = self._timer_heap[0][0] - now if self._timer_heap else math.inf
            self._timer_wakeup = anyio.Event()
            with anyio.move_on_after(wait):
                await self._timer_wakeup.wait()

    async def _fire(self, conversation_id: str, timer_id: str, kind: ev.TimerKind) -> None:
        await self._feed_in_background(
            conversation_id, ev.TimerFired(at=self.clock(), timer=kind, timer_id=timer_id)
        )

    # -- introspection ----------------------------------------------------------------------------

    @property
    def open_sessions(self) -> int:
        return len(self._pumps)

    @property
    def pending_timers(self) -> int:
        return len(self._timers)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."
