"""Kore.ai XO Platform: a BotKit-compatible endpoint (webhooks in, platform callbacks out).

* :mod:`.webhooks` — the inbound routes (``{prefix}/sdk/bots/{botId}/{eventName}``) → core events;
* :mod:`.client` — :class:`KoreBotKit`, the ``BotPlatform`` + ``UserChannel`` that answers through
  the platform's callback URLs;
* :mod:`.auth` — the BotKit JWTs; :mod:`.wire` — the payload models;
* :mod:`.simulator` — the platform side, for tests and the demo (``handoff simulate kore``).
"""

from handoff_adapters.kore.auth import AuthError, KoreApp, KoreApps
from handoff_adapters.kore.client import KoreBotKit
from handoff_adapters.kore.webhooks import KoreWebhooks, conversation_id

__all__ = ["AuthError", "KoreApp", "KoreApps", "KoreBotKit", "KoreWebhooks", "conversation_id"]
