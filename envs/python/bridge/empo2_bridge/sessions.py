"""Sessions: the open episodes of a server, each with its own lock and counters."""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass, field

from .adapter import Episode, Task


@dataclass
class Session:
    """One episode being played. Mutable fields are guarded by `lock`."""

    id: str
    task: Task
    variation: int
    episode: Episode
    score: float
    steps: int = 0
    done: bool = False
    closed: bool = False
    last_used: float = field(default_factory=time.monotonic)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)


class SessionLimitError(Exception):
    """No room for another session."""


class SessionTable:
    """Open sessions by id, with a cap on how many may exist (including ones being started)."""

    def __init__(self, max_sessions: int) -> None:
        self.max_sessions = max_sessions
        self._sessions: dict[str, Session] = {}
        self._starting = 0
        self._lock = threading.Lock()

    def reserve(self) -> None:
        """Claims room for a session about to be started; raises SessionLimitError if full."""
        with self._lock:
            in_use = len(self._sessions) + self._starting
            if in_use >= self.max_sessions:
                raise SessionLimitError(
                    f"too many sessions: {in_use} open, the limit is {self.max_sessions} "
                    "(--max-sessions); close finished sessions first"
                )
            self._starting += 1

    def unreserve(self) -> None:
        """Gives back a reservation whose session failed to start."""
        with self._lock:
            self._starting -= 1

    def add(self, session: Session) -> None:
        """Registers a started session, using up one reservation."""
        with self._lock:
            self._starting -= 1
            self._sessions[session.id] = session

    def get(self, session_id: str) -> Session | None:
        with self._lock:
            return self._sessions.get(session_id)

    def pop(self, session_id: str) -> Session | None:
        with self._lock:
            return self._sessions.pop(session_id, None)

    def idle(self, older_than: float) -> list[Session]:
        """Sessions whose last use was before the monotonic time `older_than`."""
        with self._lock:
            return [s for s in self._sessions.values() if s.last_used < older_than]

    def pop_all(self) -> list[Session]:
        with self._lock:
            sessions = list(self._sessions.values())
            self._sessions.clear()
            return sessions

    def __len__(self) -> int:
        with self._lock:
            return len(self._sessions)


def new_session_id() -> str:
    """A random, unguessable session id."""
    return secrets.token_hex(12)
