"""The adapter interface: what an environment must provide to be served by the bridge.

The gRPC layer (`service.py`) owns everything protocol-shaped: request validation, sessions,
step counting, the step limit, rewards and error statuses. An adapter only knows its
environment: which tasks exist, how to start an episode and how to play one action.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Mapping, Sequence


@dataclass(frozen=True)
class Task:
    """One task with its variation splits (mirrors `TaskInfo` in env.proto)."""

    name: str
    description: str
    train_variations: tuple[int, ...]
    test_variations: tuple[int, ...]
    max_steps: int

    _known: frozenset[int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        known = frozenset(self.train_variations) | frozenset(self.test_variations)
        object.__setattr__(self, "_known", known)

    def has_variation(self, variation: int) -> bool:
        """True if `variation` is one of the task's train or test variations."""
        return variation in self._known


@dataclass
class Frame:
    """The environment's state after a reset or an action, in the protocol's units.

    `score` is on ScienceWorld's scale: 100 is solved, negative values mean failure.
    `done`/`success` are the environment's own verdicts; the step limit is applied on top by
    the service.
    """

    text: str
    task_description: str
    valid_actions: list[str] = field(default_factory=list)
    score: float = 0.0
    done: bool = False
    success: bool = False


class OptionError(ValueError):
    """A Reset option (key or value) the environment does not accept: INVALID_ARGUMENT."""


class Episode(abc.ABC):
    """One running episode, owned by one session. Calls never overlap (the session locks)."""

    @abc.abstractmethod
    def step(self, action: str) -> Frame:
        """Plays one (non-empty, length-checked) action."""

    @abc.abstractmethod
    def gold_path(self) -> list[str]:
        """Actions that solve this episode when played from its reset state."""

    @abc.abstractmethod
    def close(self, broken: bool = False) -> None:
        """Frees the episode's resources; `broken` after an error (do not reuse them)."""


class Adapter(abc.ABC):
    """An environment: its task list and a way to start episodes."""

    #: Environment name reported by ListTasks, e.g. "scienceworld".
    environment: str = ""
    #: Accepted Reset option keys and a one-line help text for each.
    options: Mapping[str, str] = {}

    @abc.abstractmethod
    def tasks(self) -> Sequence[Task]:
        """The tasks, computed once (the service caches the result)."""

    def check_options(self, task: Task, options: Mapping[str, str]) -> None:
        """Validates option values (keys are already known); raises OptionError."""
        return None

    @abc.abstractmethod
    def start(
        self, task: Task, variation: int, seed: int, options: Mapping[str, str]
    ) -> tuple[Episode, Frame]:
        """Starts an episode of a known task variation; returns it and its first frame."""

    def close(self) -> None:
        """Releases everything (called once at shutdown)."""
        return None


def describe_ids(ids: Sequence[int]) -> str:
    """Compact text for a set of ids: [0, 1, 2, 5, 7, 8] -> "0-2, 5, 7-8"."""
    parts: list[str] = []
    ordered = sorted(set(ids))
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        parts.append(str(ordered[i]) if i == j else f"{ordered[i]}-{ordered[j]}")
        i = j + 1
    return ", ".join(parts) if parts else "none"
