"""THE table: states, triggers, guards and actions of a conversation.

If a transition is not in :data:`TRANSITIONS`, it does not exist. The diagrams in ``diagrams/`` are
generated from this table (``handoff diagrams``) and CI fails when they drift.

The table is interpreted by one module-level ``transitions.Machine`` shared by every
conversation (no per-conversation machine: that costs milliseconds and tens of KiB each). The
machine never holds a model: :mod:`handoff_core.conversation` fires an event on a short-lived step
object whose methods are the guards and actions named here. Actions only compute effects; they
never perform IO.

Rules the table keeps (and the tests check):

* every (state, trigger) pair is either listed — ending in an unguarded row, so some row always
  fires — or illegal, raising :class:`~handoff_core.errors.LocalProtocolError` (our side's events)
  or :class:`~handoff_core.errors.RemoteProtocolError` (the agent backend's);
* no state is a dead end: ``user_ended`` and ``transfer_failed`` give the next user message to
  the bot (or escalate again);
* every way out of ``escalating``/``queued``/``agent_connected`` closes the agent session and
  cancels its timers.
"""

from __future__ import annotations

import enum
import logging
from typing import Any, Final

from transitions import Machine

__all__ = [
    "AGENT_TRIGGERS",
    "ROW_OF_TRANSITION",
    "MACHINE",
    "TRANSITIONS",
    "TRIGGERS",
    "State",
]


class State(enum.Enum):
    #: The bot owns the conversation.
    BOT = "bot"
    #: Asking the agent backend for an agent (availability check, opening the session).
    ESCALATING = "escalating"
    #: The backend accepted the request; waiting in its queue for an agent.
    QUEUED = "queued"
    #: A human agent owns the conversation.
    AGENT_CONNECTED = "agent_connected"
    #: The user ended the agent chat (keyword, or left); the bot owns the conversation again.
    USER_ENDED = "user_ended"
    #: No agent could take the conversation; the bot was told why and owns it again.
    TRANSFER_FAILED = "transfer_failed"


B, E, Q, A, U, F = (
    State.BOT,
    State.ESCALATING,
    State.QUEUED,
    State.AGENT_CONNECTED,
    State.USER_ENDED,
    State.TRANSFER_FAILED,
)
#: States in which the bot owns the conversation.
BOT_OWNS: Final = [B, U, F]
#: States in which we wait for an agent.
WAITING: Final = [E, Q]
#: States in which an agent session exists.
WITH_SESSION: Final = [E, Q, A]


def _row(
    trigger: str,
    source: list[State] | State,
    dest: State | None,
    *,
    conditions: list[str] | str | None = None,
    unless: list[str] | str | None = None,
    after: list[str] | str | None = None,
) -> dict[str, Any]:
    row: dict[str, Any] = {
        "trigger": trigger,
        "source": source if isinstance(source, list) else [source],
        "dest": dest,  # None: an internal transition (actions run, state unchanged)
    }
    for key, value in (("conditions", conditions), ("unless", unless), ("after", after)):
        if value:
            row[key] = [value] if isinstance(value, str) else value
    return row


#: The transition table. Rows are tried in order; the first whose guards pass fires.
TRANSITIONS: Final[list[dict[str, Any]]] = [
    # -- the user ---------------------------------------------------------------------------------
    _row("user_message", WITH_SESSION, U, conditions="is_end_keyword", after="end_by_user"),
    _row("user_message", WAITING, None, after="buffer_for_agent"),
    _row("user_message", A, None, after="forward_to_agent"),
    _row("user_message", BOT_OWNS, E, conditions="asks_for_agent", after="escalate_for_user"),
    _row("user_message", [U, F], B, after="forward_to_bot"),
    _row("user_message", B, None, after="forward_to_bot"),
    _row("user_typing", A, None, after="forward_typing_to_agent"),
    _row("user_typing", [B, E, Q, U, F], None),
    _row("user_left", WITH_SESSION, U, after="end_because_user_left"),
    _row("user_left", BOT_OWNS, None),
    # -- the bot ----------------------------------------------------------------------------------
    _row(
        "bot_replied",
        BOT_OWNS,
        E,
        conditions="too_many_not_understood",
        after=["deliver_bot_reply", "escalate_not_understood"],
    ),
    _row("bot_replied", [B, U, F, E, Q], None, after="deliver_bot_reply"),
    _row("bot_replied", A, None, after="drop_bot_reply"),
    _row("bot_failed", BOT_OWNS, E, conditions="too_many_bot_errors", after="escalate_bot_errors"),
    _row("bot_failed", BOT_OWNS, None, after="apologise_for_bot"),
    _row("bot_failed", WITH_SESSION, None),
    _row("bot_escalated", BOT_OWNS, E, after="escalate_for_bot"),
    _row("bot_escalated", WITH_SESSION, None, after="ignore_repeated_escalation"),
    _row("bot_transfer_requested", BOT_OWNS, B, after="transfer_to_bot"),
    _row("bot_transfer_failed", BOT_OWNS, None, after="stay_with_source_bot"),
    # -- the availability check (our runtime's answer to CheckAgentAvailability) ------------------
    _row(
        "availability_checked",
        E,
        F,
        conditions="awaiting_availability",
        unless="is_available",
        after="fail_unavailable",
    ),
    _row(
        "availability_checked",
        E,
        None,
        conditions="awaiting_availability",
        after="open_agent_session",
    ),
    # -- the agent backend ------------------------------------------------------------------------
    _row("agent_session_opened", WAITING, None, after="remember_backend"),
    _row("agent_cursor_advanced", WITH_SESSION, None),
    _row("agent_accepted", E, Q, after="announce_queue"),
    _row("agent_accepted", [Q, A], None, after="announce_queue"),
    _row("queue_updated", E, Q, after="announce_queue"),
    _row("queue_updated", [Q, A], None, after="announce_queue"),
    _row("agent_joined", WAITING, A, after="connect_agent"),
    _row("agent_joined", A, None, after="announce_new_agent"),
    _row("agent_message", WITH_SESSION, None, after="deliver_agent_message"),
    _row("agent_typing", A, None, after="show_agent_typing"),
    _row("agent_typing", WAITING, None),
    _row("agent_transferred", A, None, after="announce_transfer"),
    _row("agent_ended", A, B, after="close_by_agent"),
    _row("agent_ended", WAITING, F, after="fail_ended_before_join"),
    _row("transfer_rejected", WAITING, F, after="fail_rejected"),
    _row("backend_session_lost", WAITING, F, after="fail_session_lost"),
    _row("backend_session_lost", A, B, after="close_lost_session"),
    # -- timers -----------------------------------------------------------------------------------
    _row("timer_fired", WAITING, F, conditions="is_queue_timer", after="fail_queue_timeout"),
    _row(
        "timer_fired",
        A,
        U,
        conditions=["is_idle_timer", "idle_expired"],
        after="end_idle_chat",
    ),
    _row("timer_fired", A, None, conditions="is_idle_timer", after="rearm_idle_timer"),
]

#: Every trigger, in table order.
TRIGGERS: Final[tuple[str, ...]] = tuple(dict.fromkeys(row["trigger"] for row in TRANSITIONS))
#: Triggers fired by the agent backend: an illegal one is the peer's fault (RemoteProtocolError).
AGENT_TRIGGERS: Final[frozenset[str]] = frozenset(
    {
        "agent_session_opened",
        "agent_cursor_advanced",
        "agent_accepted",
        "queue_updated",
        "agent_joined",
        "agent_message",
        "agent_typing",
        "agent_transferred",
        "agent_ended",
        "transfer_rejected",
        "backend_session_lost",
    }
)

# transitions logs every callback and state change at INFO: for thousands of conversations that is
# noise, not information. Quiet it unless the application configured that logger itself.
_transitions_log = logging.getLogger("transitions.core")
if _transitions_log.level == logging.NOTSET:
    _transitions_log.setLevel(logging.WARNING)

#: The one machine. ``model=None``: conversations are never added to it (see module docstring).
MACHINE: Final = Machine(
    model=None,
    states=State,
    transitions=TRANSITIONS,
    initial=None,
    auto_transitions=False,
    send_event=True,
    queued=False,
    ignore_invalid_triggers=False,
    # Lets the step know which row fired (for the audit trail, tests and diagnostics).
    before_state_change="note_transition",
)


def _rows_by_transition() -> dict[int, int]:
    """Map each ``transitions.Transition`` the machine built back to its row in the table."""
    rows: dict[int, int] = {}
    seen: dict[tuple[str, str], int] = {}
    for index, row in enumerate(TRANSITIONS):
        for source in row["source"]:
            built = MACHINE.events[row["trigger"]].transitions[source.name]
            position = seen.get((row["trigger"], source.name), 0)
            seen[(row["trigger"], source.name)] = position + 1
            rows[id(built[position])] = index
    return rows


#: id(Transition) → index in :data:`TRANSITIONS`.
ROW_OF_TRANSITION: Final = _rows_by_transition()


def row_label(index: int) -> str:
    """A readable name for a table row: ``user_message: bot -> escalating [asks_for_agent]``."""
    row = TRANSITIONS[index]
    sources = ",".join(s.value for s in row["source"])
    dest = row["dest"].value if row["dest"] is not None else "(stay)"
    guards = [*row.get("conditions", []), *(f"not {u}" for u in row.get("unless", []))]
    suffix = f" [{' and '.join(guards)}]" if guards else ""
    return f"{row['trigger']}: {sources} -> {dest}{suffix}"


def legal_triggers(state: State) -> frozenset[str]:
    """The triggers that have at least one row from ``state``."""
    return frozenset(row["trigger"] for row in TRANSITIONS if state in row["source"])
