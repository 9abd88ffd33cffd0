"""The service's metrics wrapper is a complete SessionStore: it passes the store kit."""

from __future__ import annotations

import pytest

from handoff_adapters.service.metrics import MeteredStore, Metrics
from handoff_adapters.testing import STORE_CASES, check_store
from handoff_core.runtime import MemoryStore

pytestmark = pytest.mark.anyio


async def test_metered_store_passes_the_store_kit() -> None:
    store = MeteredStore(MemoryStore(serialize=True), Metrics())
    report = await check_store(lambda: store)
    assert [r.name for r in report.results] == list(STORE_CASES)
    assert report.failures == [], "\n".join(f"{r.name}: {r.detail}" for r in report.failures)
