"""The store conformance kit on the in-process ``MemoryStore``, as objects and as plain data."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

import attrs
import pytest

from handoff_adapters.testing import STORE_CASES, check_store
from handoff_core.conversation import Conversation
from handoff_core.runtime import MemoryStore

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("serialize", [False, True])
async def test_memory_store_passes_the_kit(serialize: bool) -> None:
    store = MemoryStore(serialize=serialize)
    # One instance is the storage: "reopening" an in-process store is using it again.
    report = await check_store(lambda: store)
    assert [r.name for r in report.results] == list(STORE_CASES)
    assert report.failures == [], "\n".join(f"{r.name}: {r.detail}" for r in report.failures)
    assert len(store) >= 10  # the kit really stored its records here


class _UnconditionalStore(MemoryStore):
    """Broken on purpose: saves whatever step is stored."""

    async def save(self, conversation: Conversation, *, expected_step: int | None) -> None:
        self._store(conversation)


class _GreedyMarkDone(MemoryStore):
    """Broken on purpose: mark_done empties the whole outbox."""

    async def mark_done(self, conversation_id: str, effect_keys: Sequence[str]) -> None:
        current = await self.load(conversation_id)
        if current is not None:
            self._store(attrs.evolve(current, outbox=()))


class _EverythingActive(MemoryStore):
    """Broken on purpose: active() yields every conversation."""

    async def active(self) -> AsyncIterator[Conversation]:
        for conversation_id in list(self._records):
            conversation = await self.load(conversation_id)
            if conversation is not None:
                yield conversation


class _LeaseBlindClaim(MemoryStore):
    """Broken on purpose: claim ignores whose lease it is and whether it expired."""

    async def claim(
        self, conversation_id: str, *, step: int, owner: str, until: float, now: float
    ) -> Conversation | None:
        current = await self.load(conversation_id)
        if current is None or current.step != step or not current.outbox:
            return None
        claimed = attrs.evolve(current, lease_owner=owner, lease_until=until)
        self._store(claimed)
        return claimed


@pytest.mark.parametrize(
    ("broken", "failing"),
    [
        (
            _UnconditionalStore,
            {"insert_refuses_existing", "stale_save", "concurrent_saves", "reopen"},
        ),
        (_GreedyMarkDone, {"mark_done"}),
        (_EverythingActive, {"active", "reopen"}),
        (_LeaseBlindClaim, {"claim"}),
    ],
)
async def test_the_kit_catches_broken_stores(broken: type[MemoryStore], failing: set[str]) -> None:
    store = broken(serialize=True)
    report = await check_store(lambda: store)
    assert {r.name for r in report.failures} == failing
