"""``handoff serve``: the ASGI service around one runtime.

* :mod:`.app` — :class:`~handoff_adapters.service.app.HandoffService` (Starlette app, mountable,
  with ``lifespan()``): Kore webhooks, the generic channel API, ``/healthz``, ``/readyz``,
  ``/metrics``;
* :mod:`.config` — ``handoff.toml`` (tomllib + cattrs, strict, secrets from the environment);
* :mod:`.registry` — bots and agent backends by ``type``; :mod:`.channels` — channel API,
  channel router, backend routing; :mod:`.metrics` — Prometheus;
* :mod:`.cli` — ``handoff serve`` and ``handoff chat``.

Kept import-light on purpose: the Kore adapter imports :mod:`.problems` from here.
"""
