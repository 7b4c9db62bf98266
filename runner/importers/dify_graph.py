"""A Dify workflow's canvas as a graph: its nodes (those inside an iteration or loop kept apart, with their
container), its edges with their branch handles, an order that follows the edges (and the canvas, left to right,
where the edges leave a choice), and which nodes surely ran before another. Pure."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

BRANCHING = {"if-else", "question-classifier"}
NOTE_TYPES = {"custom-note", "note"}
MARKERS = {"iteration-start", "loop-start", "loop-end"}  # canvas markers inside a container, not work


@dataclass
class Node:
    id: str
    data: dict[str, Any]
    x: float = 0.0
    y: float = 0.0
    parent: str | None = None  # the iteration or loop it is inside

    @property
    def type(self) -> str:
        return str(self.data.get("type") or "")

    @property
    def title(self) -> str:
        return str(self.data.get("title") or "")


@dataclass
class Edge:
    source: str
    target: str
    handle: str = "source"  # a branch: an if-else case id, 'true'/'false', a question class id


@dataclass
class Graph:
    nodes: dict[str, Node] = field(default_factory=dict)
    edges: list[Edge] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # sticky notes on the canvas: kept as comments

    def inside(self, container: str | None) -> list[Node]:
        """The work nodes directly inside `container` (None: the top level), in order."""
        members = {n.id for n in self.nodes.values() if n.parent == container and n.type not in MARKERS}
        return [self.nodes[i] for i in self.order(members)]

    def incoming(self, node: str) -> list[Edge]:
        return [e for e in self.edges if e.target == node and e.source in self.nodes]

    def outgoing(self, node: str) -> list[Edge]:
        return [e for e in self.edges if e.source == node and e.target in self.nodes]

    def order(self, members: set[str]) -> list[str]:
        """Kahn's order over the edges among `members`; ties go to the node further left, then higher up."""
        preds = {m: {e.source for e in self.incoming(m) if e.source in members} for m in members}
        done: list[str] = []
        ready = sorted((m for m in members if not preds[m]), key=self._place)
        while ready:
            node = ready.pop(0)
            done.append(node)
            for m in members:
                if node in preds[m]:
                    preds[m].discard(node)
                    if not preds[m] and m not in done and m not in ready:
                        ready.append(m)
            ready.sort(key=self._place)
        done += sorted((m for m in members if m not in done), key=self._place)  # a cycle: canvas order
        return done

    def _place(self, node: str) -> tuple[float, float]:
        return self.nodes[node].x, self.nodes[node].y

    def surely_before(self, source: str, reader: str) -> bool:
        """Whether every path from the entry to `reader` passes `source` (so its output is there to read)."""
        if source == reader:
            return True
        entries = [n for n in self.nodes if not self.incoming(n)]
        seen: set[str] = set()
        frontier = [n for n in entries if n != source]
        while frontier:
            node = frontier.pop()
            if node in seen:
                continue
            seen.add(node)
            if node == reader:
                return False
            frontier += [e.target for e in self.outgoing(node) if e.target != source]
        return True


def read_graph(workflow: dict[str, Any]) -> Graph:
    graph = Graph()
    raw = (workflow.get("graph") or {}) if isinstance(workflow, dict) else {}
    for item in raw.get("nodes") or []:
        if not isinstance(item, dict):
            continue
        data: dict[str, Any] = item["data"] if isinstance(item.get("data"), dict) else {}
        if item.get("type") in NOTE_TYPES or not data.get("type"):
            text = str(data.get("text") or "").strip()
            if text:
                graph.notes.append(_note_text(text))
            continue
        position = item.get("position") or {}
        parent = item.get("parentId") or data.get("iteration_id") or data.get("loop_id")
        graph.nodes[str(item["id"])] = Node(str(item["id"]), data, float(position.get("x") or 0),
                                            float(position.get("y") or 0), str(parent) if parent else None)
    for item in raw.get("edges") or []:
        if isinstance(item, dict) and "source" in item and "target" in item:
            graph.edges.append(Edge(str(item["source"]), str(item["target"]),
                                    str(item.get("sourceHandle") or "source")))
    return graph


def _note_text(text: str) -> str:
    """A note's words: Dify keeps them as a Lexical editor document in JSON."""
    import json

    try:
        doc = json.loads(text)
    except json.JSONDecodeError:
        return text
    words: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("text"), str):
                words.append(node["text"])
            for child in node.get("children") or []:
                walk(child)
            if node.get("type") == "paragraph":
                words.append("\n")
    walk(doc.get("root") if isinstance(doc, dict) else doc)
    return "".join(words).strip()
