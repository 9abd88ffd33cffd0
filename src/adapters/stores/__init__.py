"""Persistent :class:`~handoff_core.ports.SessionStore` implementations.

The in-process one is :class:`handoff_core.runtime.MemoryStore`. Each store here passes
:func:`handoff_adapters.testing.check_store`.
"""

from handoff_adapters.stores.redis import RedisStore, RedisStoreError
from handoff_adapters.stores.sqlite import SqliteStore, SqliteStoreError

__all__ = ["RedisStore", "RedisStoreError", "SqliteStore", "SqliteStoreError"]
