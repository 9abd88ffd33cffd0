"""Prometheus metrics: conversations by state, transfers by outcome, relay latency.

Each service has its own registry (two services in one process, as in tests, don't collide).
The numbers are observed at the ports, by thin wrappers, so the runtime and the adapters stay
unaware of metrics:

* ``handoff_conversations{state}``: what this process has seen saved (a gauge per state);
* ``handoff_transfers_total{outcome}``: ``Succeeded`` / ``NoAgentAvailable`` / ``Error``, counted
  when the core reports the outcome to the bot (exactly once per escalation);
* ``handoff_relay_latency_seconds{direction}``: from a message's event time to its delivery done
  (``user_to_agent``: ``AgentBackend.send`` returned; ``agent_to_user``: the channel delivered).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from handoff_core import effects as fx
from handoff_core import events as ev
from handoff_core.conversation import Conversation
from handoff_core.machine import State
from handoff_core.ports import AgentBackend, SessionStore, UserChannel

__all__ = ["MeteredBackend", "MeteredChannel", "MeteredStore", "Metrics"]

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.conversations = Gauge(
            "handoff_conversations",
            "Conversations by state (seen by this process)",
            ["state"],
            registry=self.registry,
        )
        for state in State:
            self.conversations.labels(state.value).set(0)
        self.transfers = Counter(
            "handoff_transfers",
            "Escalations by outcome reported to the bot",
            ["outcome"],
            registry=self.registry,
        )
        for outcome in fx.TransferOutcome:
            self.transfers.labels(outcome.value)
        self.relay_latency = Histogram(
            "handoff_relay_latency_seconds",
            "From a message's event time to its delivery to the other side",
            ["direction"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.webhooks = Counter(
            "handoff_webhooks",
            "Inbound webhooks by event and outcome",
            ["event", "outcome"],
            registry=self.registry,
        )


class MeteredStore:
    """A :class:`SessionStore` wrapper that counts states and transfer outcomes on save."""

    def __init__(self, store: SessionStore, metrics: Metrics) -> None:
        self.store = store
        self.metrics = metrics
        self._states: dict[str, State] = {}

    async def load(self, conversation_id: str) -> Conversation | None:
        return await self.store.load(conversation_id)

    async def save(self, conversation: Conversation, *, expected_step: int | None) -> None:
        await self.store.save(conversation, expected_step=expected_step)
        before = self._states.get(conversation.id)
        if before is not conversation.state:
            if before is not None:
                self.metrics.conversations.labels(before.value).dec()
            self.metrics.conversations.labels(conversation.state.value).inc()
            self._states[conversation.id] = conversation.state
        for effect in conversation.outbox:
            if isinstance(effect, fx.ReportTransferOutcome):
                self.metrics.transfers.labels(effect.outcome.value).inc()

    async def mark_done(self, conversation_id: str, effect_keys: Sequence[str]) -> None:
        await self.store.mark_done(conversation_id, effect_keys)

    async def claim(
        self, conversation_id: str, *, step: int, owner: str, until: float, now: float
    ) -> Conversation | None:
        return await self.store.claim(conversation_id, step=step, owner=owner, until=until, now=now)

    def active(self) -> AsyncIterator[Conversation]:
        return self.store.active()


def _sent_at(conversation: Conversation, sender: str, text: str) -> float | None:
    for entry in reversed(conversation.transcript):
        if entry.sender == sender and entry.text == text:
            return entry.at
    return None


class MeteredChannel:
    def __init__(
        self, channel: UserChannel, metrics: Metrics, clock: Callable[[], float] = time.time
    ) -> None:
        self.channel = channel
        self.metrics = metrics
        self.clock = clock

    async def deliver(self, conversation: Conversation, delivery: fx.DeliverToUser) -> None:
        await self.channel.deliver(conversation, delivery)
        if delivery.sender is fx.Sender.AGENT:
            at = _sent_at(conversation, "agent", delivery.text)
            if at is not None:
                self.metrics.relay_latency.labels("agent_to_user").observe(
                    max(0.0, self.clock() - at)
                )

    async def typing(self, conversation: Conversation, indicator: fx.SetUserTyping) -> None:
        await self.channel.typing(conversation, indicator)


class MeteredBackend:
    """An :class:`AgentBackend` wrapper timing user → agent relays."""

    def __init__(
        self, backend: AgentBackend, metrics: Metrics, clock: Callable[[], float] = time.time
    ) -> None:
        self.backend = backend
        self.name = backend.name
        self.metrics = metrics
        self.clock = clock

    async def check_availability(
        self, conversation: Conversation, request: fx.CheckAgentAvailability
    ) -> bool:
        return await self.backend.check_availability(conversation, request)

    async def open(self, conversation: Conversation, request: fx.OpenAgentSession) -> ev.Cursor:
        return await self.backend.open(conversation, request)

    def events(
        self, conversation: Conversation, session: str, cursor: ev.Cursor
    ) -> AsyncIterator[ev.AgentEvent]:
        return self.backend.events(conversation, session, cursor)

    async def send(self, conversation: Conversation, message: fx.ForwardToAgent) -> None:
        await self.backend.send(conversation, message)
        at = _sent_at(conversation, "user", message.text)
        if at is not None:
            self.metrics.relay_latency.labels("user_to_agent").observe(max(0.0, self.clock() - at))

    async def typing(self, conversation: Conversation, request: fx.SetAgentTyping) -> None:
        await self.backend.typing(conversation, request)

    async def close(self, conversation: Conversation, request: fx.CloseAgentSession) -> None:
        await self.backend.close(conversation, request)

    def __getattr__(self, name: str) -> Any:
        # Anything else the backend offers (aclose, simulators' helpers) is passed through.
        return getattr(self.backend, name)
