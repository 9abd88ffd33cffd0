"""Render the transition table as Mermaid, Graphviz DOT and a Markdown state x trigger table.

Pure text generation from :data:`handoff_core.machine.TRANSITIONS`: the diagrams are correct by
construction, and ``handoff diagrams --check`` fails when the committed files drift from them.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from handoff_core.machine import AGENT_TRIGGERS, TRANSITIONS, TRIGGERS, State

__all__ = ["dot", "markdown", "mermaid"]

_HEADER = "generated from handoff_core.machine.TRANSITIONS by `handoff diagrams`; do not edit"


def _guard(row: dict[str, Any]) -> str:
    guards = [*row.get("conditions", []), *(f"not {name}" for name in row.get("unless", []))]
    return " and ".join(guards)


def _edges() -> dict[tuple[State, State], list[str]]:
    """State-changing rows grouped by (source, dest), labelled ``trigger [guard]``."""
    edges: dict[tuple[State, State], list[str]] = defaultdict(list)
    for row in TRANSITIONS:
        dest = row["dest"]
        if dest is None:
            continue
        guard = _guard(row)
        label = f"{row['trigger']} [{guard}]" if guard else row["trigger"]
        for source in row["source"]:
            if source is not dest and label not in edges[(source, dest)]:
                edges[(source, dest)].append(label)
    return edges


def mermaid() -> str:
    lines = [f"%% {_HEADER}", "stateDiagram-v2", "    direction LR", "    [*] --> bot"]
    for (source, dest), labels in _edges().items():
        for label in labels:
            lines.append(f"    {source.value} --> {dest.value}: {label}")
    return "\n".join(lines) + "\n"


def dot() -> str:
    lines = [
        f"// {_HEADER}",
        "digraph conversation {",
        '    graph [rankdir=LR, fontname="Helvetica", nodesep=0.6, ranksep=1.1];',
        '    node [shape=box, style="rounded,filled", fillcolor="#f4f6fb", fontname="Helvetica"];',
        '    edge [fontname="Helvetica", fontsize=10];',
        '    start [shape=point, width=0.15, label=""];',
        "    start -> bot;",
    ]
    owners = {
        State.BOT: "#e3f2e1",
        State.USER_ENDED: "#e3f2e1",
        State.TRANSFER_FAILED: "#fbe3e1",
        State.AGENT_CONNECTED: "#e1ebfb",
    }
    for state in State:
        fill = owners.get(state, "#f4f6fb")
        lines.append(f'    {state.value} [fillcolor="{fill}"];')
    for (source, dest), labels in _edges().items():
        label = "\\n".join(labels)
        lines.append(f'    {source.value} -> {dest.value} [label="{label}"];')
    lines.append("}")
    return "\n".join(lines) + "\n"


def markdown() -> str:
    """The full table: every (state, trigger) cell, internal transitions included."""
    states = list(State)
    cells: dict[tuple[str, State], list[str]] = defaultdict(list)
    for row in TRANSITIONS:
        dest = row["dest"]
        guard = _guard(row)
        actions = ", ".join(row.get("after", [])) or "nothing"
        target = f"→ `{dest.value}`" if dest is not None else "stay"
        text = f"{target}{f' if {guard}' if guard else ''}: {actions}"
        for source in row["source"]:
            cells[(row["trigger"], source)].append(text)
    lines = [
        f"<!-- {_HEADER} -->",
        "# Conversation transitions",
        "",
        "Rows are triggers (one per event class), columns are states. In a cell, the first line "
        "whose guard holds fires; `stay` is an internal transition (actions run, state "
        "unchanged). An empty cell is illegal: the core raises `LocalProtocolError`, or "
        "`RemoteProtocolError` for agent-backend triggers (marked †), and changes nothing. "
        "Agent-backend events for a session the conversation no longer has, timers it no longer "
        "has, and repeated peer ids are dropped before the table is consulted.",
        "",
        "| trigger | " + " | ".join(f"`{s.value}`" for s in states) + " |",
        "| --- | " + " | ".join("---" for _ in states) + " |",
    ]
    for trigger in TRIGGERS:
        name = f"`{trigger}`{' †' if trigger in AGENT_TRIGGERS else ''}"
        row_cells = ["<br>".join(cells[(trigger, state)]) or " " for state in states]
        lines.append(f"| {name} | " + " | ".join(row_cells) + " |")
    lines.append("")
    return "\n".join(lines)
