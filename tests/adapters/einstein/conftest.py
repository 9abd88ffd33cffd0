"""Fixtures: the simulator on loopback, a client whose every exchange is validated against the
official OpenAPI spec at the end of the test."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import attrs
import pytest

from handoff_adapters._http import HttpClients
from handoff_adapters._serve import serve
from handoff_adapters.einstein import EinsteinBot, EinsteinConfig, StaticToken
from handoff_adapters.einstein.simulator import DEFAULT_ORG_ID, MAIN_BOT_ID, EinsteinSimulator
from tests.adapters.einstein.openapi import RecordingTransport, SpecValidator

TOKEN = "test-token"


@attrs.define
class Env:
    simulator: EinsteinSimulator
    base_url: str
    transport: RecordingTransport
    http: HttpClients
    bot: EinsteinBot

    def client(self, **config: object) -> EinsteinBot:
        """Another client on the same recorded transport (e.g. with other settings)."""
        settings: dict[str, object] = {
            "runtime_url": self.base_url,
            "org_id": DEFAULT_ORG_ID,
            "bot_id": MAIN_BOT_ID,
            "force_endpoint": "https://simulated.my.salesforce.com/",
            "retry_base": 0.01,
            "max_retry_wait": 0.2,
        }
        settings.update(config)
        return EinsteinBot(
            EinsteinConfig(**settings),
            StaticToken(TOKEN),  # type: ignore[arg-type]
            http=self.http,
        )


@pytest.fixture
async def einstein() -> AsyncIterator[Env]:
    async with einstein_env() as env:
        yield env


@asynccontextmanager
async def einstein_env() -> AsyncIterator[Env]:
    """The simulator served on loopback and a client; on exit, every exchange is validated."""
    simulator = EinsteinSimulator(tokens={TOKEN})
    transport = RecordingTransport()
    async with serve(simulator.app) as base_url, HttpClients(transport=transport) as http:
        env = Env(simulator, base_url, transport, http, bot=None)  # type: ignore[arg-type]
        env.bot = env.client()
        yield env
    checked = SpecValidator().check(transport.exchanges)
    # A test that talked to the runtime API must have had its traffic validated.
    assert checked == sum(
        1
        for e in transport.exchanges
        if e.request.url.path.startswith(("/v5.3.0/", "/status", "/versions"))
    )
