"""QueryHistory: undo/redo over immutable Query states, and its JSON form."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import QueryError
from .query import FORMAT_VERSION, Query


@dataclass
class QueryHistory:
    """Undo/redo over immutable Query states: `states[position]` is the current query."""

    states: list[Query] = field(default_factory=lambda: [Query()])
    position: int = 0
    limit: int = 10_000
    """Oldest states are dropped beyond this many."""

    def __post_init__(self):
        if not self.states:
            self.states = [Query()]
        if not 0 <= self.position < len(self.states):
            raise QueryError(f"history position {self.position} outside 0..{len(self.states) - 1}")

    @property
    def current(self) -> Query:
        """The current query."""
        return self.states[self.position]

    @property
    def can_undo(self) -> bool:
        """Whether there is a state before the current one."""
        return self.position > 0

    @property
    def can_redo(self) -> bool:
        """Whether an undone state can be re-applied."""
        return self.position < len(self.states) - 1

    def push(self, query: Query) -> Query:
        """Make `query` current; drops the redo branch. A state equal to the current is not pushed."""
        if query == self.current:
            return self.current
        del self.states[self.position + 1:]
        self.states.append(query)
        if len(self.states) > self.limit:
            del self.states[: len(self.states) - self.limit]
        self.position = len(self.states) - 1
        return query

    def undo(self) -> bool:
        """Go back one state; False when there is none."""
        if not self.can_undo:
            return False
        self.position -= 1
        return True

    def redo(self) -> bool:
        """Go forward one state; False when there is none."""
        if not self.can_redo:
            return False
        self.position += 1
        return True

    def to_dict(self) -> dict:
        """JSON form: {"format": 1, "position": i, "history": [query, ...]}."""
        return {"format": FORMAT_VERSION, "position": self.position, "history": [q.to_dict() for q in self.states]}

    @classmethod
    def from_dict(cls, data: object) -> "QueryHistory":
        """Parse the JSON form (raises QueryError)."""
        if not isinstance(data, dict) or not isinstance(data.get("history"), list) or not data["history"]:
            raise QueryError("a query history must be a JSON object with a non-empty 'history' list")
        position = data.get("position", len(data["history"]) - 1)
        if isinstance(position, bool) or not isinstance(position, int):
            raise QueryError(f"history position must be an integer, not {position!r}")
        return cls([Query.from_dict(q) for q in data["history"]], position)
