"""The session-store conformance kit: what every :class:`~handoff_core.ports.SessionStore` must do.

In the spirit of ``trio.testing.check_two_way_stream``: give :func:`check_store` a factory that
opens an instance of your store on one underlying storage (a file, a database, a key prefix) and
it checks, on whichever event loop it runs:

* ``round_trip``: realistic conversations (driven through the real core: escalation, queue,
  agent join, with cursors, timers, buffered messages, transcript, audit and an outbox) load back
  equal, whatever characters their ids hold;
* ``unknown_id``: loading an id never saved gives ``None``;
* ``insert_refuses_existing``: ``save(expected_step=None)`` of an existing id raises
  :class:`~handoff_core.ports.StaleConversation` and changes nothing;
* ``stale_save``: ``save`` with any wrong expected step (lower, higher, or for an id that does
  not exist) raises ``StaleConversation`` and changes nothing;
* ``concurrent_saves``: many tasks, over several store instances, race to apply each step:
  exactly one wins per step and the stored record is the winner's;
* ``mark_done``: removes exactly the given effect keys (order kept, nothing else touched, the step
  unchanged), is idempotent, ignores unknown keys and unknown ids;
* ``active``: yields exactly the conversations with an outbox, an agent session or timers, as
  they are stored (also after ``mark_done`` empties an outbox);
* ``claim``: ``claim`` takes over only a free, own or expired lease, changes nothing but the
  lease, refuses a moved step or an empty outbox, and of many racing runtimes exactly one wins;
* ``reopen``: a fresh instance on the same storage sees every record, its step and its activity.

Typical use::

    report = await check_store(lambda: SqliteStore(tmp_path / "kit.sqlite3"))
    assert report.failures == []

``make_store`` is called several times and must return a *new* instance on the *same* storage each
time (for a purely in-process store such as ``MemoryStore``, return the one instance). Instances
with an ``aclose()`` are closed by the kit. Every run uses ids with a fresh random prefix, so a
storage may hold other records, and the kit may run twice on it.
"""

from __future__ import annotations

import inspect
import itertools
import time
import traceback
import uuid
from collections.abc import Awaitable, Callable, Iterable
from contextlib import AsyncExitStack
from typing import Any

import anyio
import anyio.lowlevel
import attrs

from handoff_core import events as ev
from handoff_core.conversation import Conversation, Timer, handle
from handoff_core.machine import State
from handoff_core.policy import Policy
from handoff_core.ports import SessionStore, StaleConversation

__all__ = [
    "STORE_CASES",
    "StoreCaseResult",
    "StoreFactory",
    "StoreReport",
    "check_store",
    "realistic_conversation",
]

#: Opens an instance of the store on the storage under test (sync or async).
StoreFactory = Callable[[], SessionStore | Awaitable[SessionStore]]

#: A store must answer each case within this many seconds.
CASE_TIMEOUT = 30.0

_T0 = 1_700_000_000.0
_POLICY = Policy(idle_timeout=900.0, queue_timeout=300.0)


@attrs.define(kw_only=True)
class StoreCaseResult:
    name: str
    passed: bool = False
    detail: str = ""
    seconds: float = 0.0


@attrs.define(kw_only=True)
class StoreReport:
    results: list[StoreCaseResult] = attrs.field(factory=list)

    def __getitem__(self, name: str) -> StoreCaseResult:
        for result in self.results:
            if result.name == name:
                return result
        raise KeyError(name)

    @property
    def failures(self) -> list[StoreCaseResult]:
        return [r for r in self.results if not r.passed]


class _CaseFailed(AssertionError):
    pass


def _expect(condition: bool, detail: str) -> None:
    if not condition:
        raise _CaseFailed(detail)


# -- realistic records, made by the core itself ---------------------------------------------------


def _drive(conversation: Conversation, *events: ev.Event) -> Conversation:
    """Apply events through the core; the last step's outbox stays (as the runtime saves it)."""
    for event in events:
        # The previous step's effects count as performed (the runtime marks them done).
        step = handle(attrs.evolve(conversation, outbox=()), event, _POLICY)
        if step.dropped:
            raise AssertionError(f"the core dropped {type(event).__name__}: {step.dropped}")
        conversation = step.conversation
    return conversation


def realistic_conversation(conversation_id: str, *, joined: bool = True) -> Conversation:
    """A conversation driven through escalation to an agent, with everything a store must keep.

    ``joined=False`` stops while queued: a queue timer, two buffered user messages. Otherwise the
    agent has joined and talked, an idle timer runs, and the last step's outbox (a forward to the
    agent, the idle timer) is pending. Cursors hold secret-looking values, like real ones.
    """
    at = _T0
    conversation = Conversation.new(
        conversation_id,
        language="fr",
        user_name="Zoé O'Brien",
        prechat={"email": "zoe@example.com", "vip": True, "visits": 3, "score": 0.25, "note": None},
    )
    conversation = _drive(
        conversation,
        ev.UserMessage(
            at=at,
            text="bonjour",
            message_id="u-1",
            cursor={"reply_url": "https://channel.example/r/1", "token": "chan-SECRET"},
        ),
        ev.BotReplied(
            at=at + 1,
            text="Bonjour ! Comment puis-je vous aider ?",
            peer_id="b-1",
            cursor={"session_id": "bot-session-1", "sequence": 1},
        ),
        ev.BotEscalated(
            at=at + 2,
            targets=(ev.EscalationTarget(kind="queue", value="billing", label="Facturation"),),
            variables={"order": "A-1", "amount": 12.5, "express": False},
            message_id="esc-1",
            end_keyword="fin",
            peer_id="b-2",
        ),
    )
    session = conversation.agent_session
    if session is None:  # pragma: no cover - the core always names the session it opens
        raise AssertionError("the core opened no agent session")
    cursor: ev.Cursor = {
        "conversation_id": "6a1f0e52-3c1d-4b7e-9d1a-1f2e3d4c5b6a",
        "access_token": "eyJhbGciOiJSUzI1NiJ9.SECRET.SIGNATURE",
        "last_event_id": "0",
    }
    conversation = _drive(
        conversation,
        ev.AgentSessionOpened(at=at + 3, session=session, backend="miaw", cursor=cursor),
        ev.AgentAccepted(
            at=at + 4,
            session=session,
            queue_position=3,
            estimated_wait=120.0,
            peer_id="e-1",
            cursor={**cursor, "last_event_id": "e-1"},
        ),
        ev.UserMessage(at=at + 5, text="vous êtes là ?", message_id="u-2"),
        ev.UserMessage(at=at + 6, text='ma commande "A-1" 💡', message_id="u-3"),
    )
    if not joined:
        return conversation
    return _drive(
        conversation,
        ev.AgentJoined(
            at=at + 7,
            session=session,
            agent_name="Ada",
            peer_id="e-2",
            cursor={**cursor, "last_event_id": "e-2"},
        ),
        ev.AgentMessage(
            at=at + 8,
            session=session,
            text="Bonjour Zoé, je regarde votre commande.",
            peer_id="e-3",
            cursor={**cursor, "last_event_id": "e-3"},
        ),
        ev.UserMessage(at=at + 9, text="merci !", message_id="u-4"),
    )


def _in_bot_with_outbox(conversation_id: str) -> Conversation:
    """With the bot, a forward to the bot pending: active through its outbox only."""
    return _drive(Conversation.new(conversation_id), ev.UserMessage(at=_T0, text="hello"))


def _just_joined(conversation_id: str) -> Conversation:
    """The agent has just joined: the outbox holds that step's seven effects, none done yet."""
    queued = realistic_conversation(conversation_id, joined=False)
    session = queued.agent_session or ""
    return _drive(queued, ev.AgentJoined(at=_T0 + 7, session=session, agent_name="Ada"))


def _is_active(conversation: Conversation) -> bool:
    return bool(conversation.outbox or conversation.agent_session or conversation.timers)


# -- the cases ------------------------------------------------------------------------------------


class _Kit:
    def __init__(self, make_store: StoreFactory, stack: AsyncExitStack) -> None:
        self._make_store = make_store
        self._stack = stack
        self.prefix = f"kit-{uuid.uuid4().hex[:10]}:"

    def id(self, name: str) -> str:
        return self.prefix + name

    async def open(self) -> SessionStore:
        made = self._make_store()
        store: SessionStore = await made if inspect.isawaitable(made) else made
        closer = getattr(store, "aclose", None)
        if closer is not None:
            self._stack.push_async_callback(closer)
        return store

    async def close(self, store: SessionStore) -> None:
        """Close an instance now (the kit's stack closes it again: ``aclose`` is idempotent)."""
        closer = getattr(store, "aclose", None)
        if closer is not None:
            await closer()

    async def round_trip(self) -> None:
        store = await self.open()
        samples = [
            realistic_conversation(self.id("joined")),
            realistic_conversation(self.id("queued"), joined=False),
            _in_bot_with_outbox(self.id("bot")),
            Conversation.new(self.id("new")),
            # Ids are opaque text: quotes, SQL, separators and non-ASCII must all be kept.
            realistic_conversation(self.id("x'); DROP TABLE conversations; --/ü 💬 \"*?")),
        ]
        queued = samples[1]
        _expect(queued.state is State.QUEUED, f"sample: queued is {queued.state}")
        _expect(len(queued.pending) == 2 and bool(queued.timers), "sample: queued lacks data")
        joined = samples[0]
        _expect(joined.state is State.AGENT_CONNECTED, f"sample: joined is {joined.state}")
        _expect(bool(joined.outbox and joined.timers and joined.audit), "sample: joined lacks data")
        for sample in samples:
            await store.save(sample, expected_step=None)
        for sample in samples:
            loaded = await store.load(sample.id)
            _expect(loaded is not None, f"{sample.id!r}: saved, then load gave None")
            _expect(loaded == sample, f"{sample.id!r}: loaded record differs from the saved one")
        # Each step of a real conversation, saved conditionally in turn, reads back each time.
        steps = [realistic_conversation(self.id("stepwise"), joined=False)]
        steps.append(
            _drive(steps[0], ev.AgentJoined(at=_T0 + 7, session=steps[0].agent_session or ""))
        )
        steps.append(_drive(steps[1], ev.UserMessage(at=_T0 + 8, text="encore moi")))
        await store.save(steps[0], expected_step=None)
        for before, after in itertools.pairwise(steps):
            await store.save(after, expected_step=before.step)
            _expect(await store.load(after.id) == after, f"step {after.step}: differs on load")

    async def unknown_id(self) -> None:
        store = await self.open()
        _expect(await store.load(self.id("never-saved")) is None, "unknown id: not None")
        _expect(await store.load("") is None, "empty id: not None")

    async def insert_refuses_existing(self) -> None:
        store = await self.open()
        original = realistic_conversation(self.id("existing"))
        await store.save(original, expected_step=None)
        other = attrs.evolve(original, user_name="Mallory", step=original.step + 1)
        for candidate in (original, other):
            try:
                await store.save(candidate, expected_step=None)
            except StaleConversation:
                pass
            else:
                raise _CaseFailed("save(expected_step=None) of an existing id succeeded")
        _expect(await store.load(original.id) == original, "a refused insert changed the record")

    async def stale_save(self) -> None:
        store = await self.open()
        original = realistic_conversation(self.id("stale"))
        await store.save(original, expected_step=None)
        changed = attrs.evolve(original, user_name="Mallory", step=original.step + 1)
        for wrong in (original.step - 1, original.step + 1, original.step + 100, 0):
            try:
                await store.save(changed, expected_step=wrong)
            except StaleConversation:
                pass
            else:
                raise _CaseFailed(f"save with expected_step={wrong} (stored {original.step}) won")
            _expect(
                await store.load(original.id) == original,
                f"a refused save (expected_step={wrong}) changed the record",
            )
        missing = attrs.evolve(original, id=self.id("stale-missing"))
        try:
            await store.save(missing, expected_step=missing.step - 1)
        except StaleConversation:
            pass
        else:
            raise _CaseFailed("a conditional save of an id never stored succeeded")
        _expect(await store.load(missing.id) is None, "a refused save created the record")

    async def concurrent_saves(self) -> None:
        stores = [await self.open() for _ in range(3)]
        base = realistic_conversation(self.id("race"))
        await stores[0].save(base, expected_step=None)
        current = base
        for _ in range(5):
            current = await _race(stores, current, contenders=24)
            for store in stores:
                _expect(await store.load(base.id) == current, "the stored record is not the winner")

    async def claim(self) -> None:
        stores = [await self.open() for _ in range(3)]
        now = 1_000_000.0
        live = attrs.evolve(
            realistic_conversation(self.id("claim")), lease_owner="a", lease_until=now + 60
        )
        _expect(bool(live.outbox), "the sample needs an outbox")
        await stores[0].save(live, expected_step=None)
        step = live.step

        async def claim(store: SessionStore, owner: str, **changes: Any) -> Conversation | None:
            options: dict[str, Any] = {"step": step, "until": now + 30, "now": now, **changes}
            return await store.claim(live.id, owner=owner, **options)

        _expect(await claim(stores[1], "b") is None, "claimed another owner's live lease")
        _expect(await claim(stores[1], "a", step=step + 1) is None, "claimed a step not stored")
        _expect(
            await stores[0].claim(self.id("nobody"), step=0, owner="a", until=now, now=now) is None,
            "claimed an unknown conversation",
        )
        renewed = await claim(stores[2], "a", until=now + 90)
        _expect(
            renewed == attrs.evolve(live, lease_until=now + 90),
            "the owner could not renew its own lease, or the claim changed more than the lease",
        )
        # The owner died: its lease expired. Many runtimes race to take the step over.
        later = now + 120
        wins: list[str] = []

        async def contend(n: int) -> None:
            owner = f"runtime-{n}"
            if await claim(stores[n % len(stores)], owner, now=later, until=later + 30):
                wins.append(owner)

        async with anyio.create_task_group() as group:
            for n in range(12):
                group.start_soon(contend, n)
        _expect(len(wins) == 1, f"{len(wins)} runtimes took over the same expired lease, not one")
        stored = await stores[0].load(live.id)
        _expect(
            stored is not None and stored.lease_owner == wins[0] and stored.step == step,
            "the stored lease is not the winner's, or the claim moved the step",
        )
        await stores[0].mark_done(live.id, [effect.key for effect in live.outbox])
        _expect(await claim(stores[1], wins[0], now=later) is None, "claimed a step with no outbox")

    async def mark_done(self) -> None:
        store = await self.open()
        conversation = _just_joined(self.id("outbox"))
        effects = conversation.outbox
        _expect(len(effects) >= 4, f"sample: outbox of {len(effects)} effects")
        await store.save(conversation, expected_step=None)
        done = [effects[1].key, effects[3].key]
        rest = tuple(e for e in effects if e.key not in done)
        expected = attrs.evolve(conversation, outbox=rest)
        for _ in range(2):  # the second time: idempotent
            await store.mark_done(conversation.id, done)
            _expect(
                await store.load(conversation.id) == expected,
                "mark_done did not remove exactly the given effects (in order, nothing else)",
            )
        await store.mark_done(conversation.id, ["no-such-effect-key"])
        _expect(await store.load(conversation.id) == expected, "mark_done of an unknown key")
        await store.mark_done(self.id("no-such-conversation"), done)
        _expect(
            await store.load(self.id("no-such-conversation")) is None,
            "mark_done created a conversation",
        )
        await store.mark_done(conversation.id, [e.key for e in rest])
        emptied = attrs.evolve(conversation, outbox=())
        _expect(await store.load(conversation.id) == emptied, "mark_done of every key")
        # mark_done is no step: the next conditional save still expects the same step.
        following = attrs.evolve(emptied, step=conversation.step + 1)
        await store.save(following, expected_step=conversation.step)
        _expect(await store.load(conversation.id) == following, "save after mark_done")

    async def active(self) -> None:
        store = await self.open()
        joined = realistic_conversation(self.id("a-joined"))
        bot_outbox = _in_bot_with_outbox(self.id("a-outbox"))
        session_only = attrs.evolve(joined, id=self.id("a-session"), outbox=(), timers=())
        timers_only = attrs.evolve(
            Conversation.new(self.id("a-timer")),
            timers=(Timer(kind=ev.TimerKind.IDLE_TIMEOUT, timer_id="t-1", set_at=_T0, delay=60.0),),
        )
        idle = attrs.evolve(bot_outbox, id=self.id("a-idle"), outbox=())
        finishing = attrs.evolve(bot_outbox, id=self.id("a-finishing"))
        waking = Conversation.new(self.id("a-waking"))
        everything = [joined, bot_outbox, session_only, timers_only, idle, finishing, waking]
        for conversation in everything:
            await store.save(conversation, expected_step=None)
        await store.mark_done(finishing.id, [e.key for e in finishing.outbox])
        woken = attrs.evolve(joined, id=waking.id, step=waking.step + 1)
        await store.save(woken, expected_step=waking.step)
        expected = {joined.id, bot_outbox.id, session_only.id, timers_only.id, waking.id}
        await self._check_active(store, expected, everything)

    async def _check_active(
        self, store: SessionStore, expected: set[str], ours: Iterable[Conversation]
    ) -> None:
        ids = {c.id for c in ours}
        yielded: dict[str, Conversation] = {}
        for conversation in await _all_active(store):
            _expect(
                _is_active(conversation),
                f"active() yielded {conversation.id!r}: no outbox, agent session or timers",
            )
            if conversation.id in ids:
                _expect(conversation.id not in yielded, f"active() twice: {conversation.id!r}")
                yielded[conversation.id] = conversation
        _expect(
            set(yielded) == expected,
            f"active(): missing {sorted(expected - set(yielded))}, "
            f"extra {sorted(set(yielded) - expected)}",
        )
        for conversation_id, conversation in yielded.items():
            _expect(
                conversation == await store.load(conversation_id),
                f"active() yielded {conversation_id!r} unlike the stored record",
            )

    async def reopen(self) -> None:
        first = await self.open()
        samples = [
            realistic_conversation(self.id("r-joined")),
            realistic_conversation(self.id("r-queued"), joined=False),
            attrs.evolve(_in_bot_with_outbox(self.id("r-idle")), outbox=()),
        ]
        for sample in samples:
            await first.save(sample, expected_step=None)
        done = samples[0].outbox[0].key
        await first.mark_done(samples[0].id, [done])
        samples[0] = attrs.evolve(samples[0], outbox=samples[0].outbox[1:])
        await self.close(first)
        second = await self.open()
        for sample in samples:
            _expect(await second.load(sample.id) == sample, f"{sample.id!r}: differs after reopen")
        await self._check_active(second, {samples[0].id, samples[1].id}, samples)
        moved = attrs.evolve(samples[1], step=samples[1].step + 1)
        try:
            await second.save(moved, expected_step=samples[1].step - 1)
        except StaleConversation:
            pass
        else:
            raise _CaseFailed("after reopen, a save with a stale expected step won")
        await second.save(moved, expected_step=samples[1].step)
        _expect(await second.load(moved.id) == moved, "after reopen, a conditional save")


async def _all_active(store: SessionStore) -> list[Conversation]:
    """Everything ``active()`` yields, its generator closed even when it fails half-way."""
    found: list[Conversation] = []
    iterator = store.active()
    try:
        async for conversation in iterator:
            found.append(conversation)
    finally:
        closer = getattr(iterator, "aclose", None)
        if closer is not None:
            await closer()
    return found


async def _race(
    stores: list[SessionStore], current: Conversation, *, contenders: int
) -> Conversation:
    """All contenders save the next step at once, spread over the stores; return the winner's."""
    step = current.step + 1
    candidates = [
        attrs.evolve(current, step=step, variables={**current.variables, "by": n})
        for n in range(contenders)
    ]
    wins: list[int] = []
    stale: list[int] = []
    errors: list[str] = []
    ready = anyio.Event()

    async def contend(n: int) -> None:
        await ready.wait()
        try:
            await stores[n % len(stores)].save(candidates[n], expected_step=current.step)
        except StaleConversation:
            stale.append(n)
        except Exception as exc:
            errors.append(f"{type(exc).__name__}: {exc}")
        else:
            wins.append(n)

    async with anyio.create_task_group() as group:
        for n in range(contenders):
            group.start_soon(contend, n)
        await anyio.lowlevel.checkpoint()
        ready.set()
    _expect(not errors, f"step {step}: saves failed otherwise: {errors[:3]}")
    _expect(len(wins) == 1, f"step {step}: {len(wins)} saves won, not one")
    _expect(len(stale) == contenders - 1, f"step {step}: a loser did not raise StaleConversation")
    return candidates[wins[0]]


#: The cases, in the order they run.
STORE_CASES: tuple[str, ...] = (
    "round_trip",
    "unknown_id",
    "insert_refuses_existing",
    "stale_save",
    "concurrent_saves",
    "claim",
    "mark_done",
    "active",
    "reopen",
)


async def check_store(
    make_store: StoreFactory, *, cases: Iterable[str] = STORE_CASES
) -> StoreReport:
    """Run the conformance cases against stores from ``make_store``; report each case.

    A case fails on a wrong answer, an unexpected exception or a timeout; the others still run.
    """
    report = StoreReport()
    for name in cases:
        if name not in STORE_CASES:
            raise ValueError(f"unknown case {name!r}; known: {', '.join(STORE_CASES)}")
        result = StoreCaseResult(name=name)
        started = time.perf_counter()
        try:
            with anyio.fail_after(CASE_TIMEOUT):
                async with AsyncExitStack() as stack:
                    await getattr(_Kit(make_store, stack), name)()
        except _CaseFailed as exc:
            result.detail = str(exc)
        except TimeoutError:
            result.detail = f"timed out after {CASE_TIMEOUT:.0f} s"
        except Exception as exc:
            frames = traceback.format_exception(exc, limit=-3)
            result.detail = f"{type(exc).__name__}: {exc}\n" + "".join(frames[-3:])
        else:
            result.passed = True
        result.seconds = time.perf_counter() - started
        report.results.append(result)
    return report
