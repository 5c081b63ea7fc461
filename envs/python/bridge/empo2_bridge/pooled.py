"""An adapter built from pooled `Simulator` instances: the shared part of the JVM adapters.

A session takes an instance from the pool at Reset and gives it back at Close (or drops it
after an error). Gold paths are computed on a separate, borrowed instance so that the
session's own game is never disturbed, and cached.
"""

from __future__ import annotations

import collections
import threading
from typing import Mapping

from .adapter import Adapter, Episode, Frame, OptionError, Task
from .pool import InstancePool, Simulator

#: (task, variation, seed, sorted options) — everything that determines an episode.
EpisodeKey = tuple[str, int, int, tuple[tuple[str, str], ...]]


class PooledAdapter(Adapter):
    """Starts episodes on instances from `pool`; subclasses provide tasks and options."""

    gold_cache_size = 1024

    def __init__(self, pool: InstancePool) -> None:
        self.pool = pool
        self._gold_lock = threading.Lock()
        self._gold_cache: collections.OrderedDict[EpisodeKey, list[str]] = collections.OrderedDict()

    def start(
        self, task: Task, variation: int, seed: int, options: Mapping[str, str]
    ) -> tuple[Episode, Frame]:
        key: EpisodeKey = (task.name, variation, seed, tuple(sorted(options.items())))
        sim = self.pool.acquire()
        try:
            frame = sim.load(task.name, variation, seed, options, gold=False)
        except OptionError:
            self.pool.release(sim)
            raise
        except BaseException:
            self.pool.discard(sim)
            raise
        return PooledEpisode(self, sim, key), frame

    def gold_path(self, key: EpisodeKey) -> list[str]:
        """The (cached) gold path of an episode, computed one at a time on a borrowed instance."""
        with self._gold_lock:
            if key in self._gold_cache:
                self._gold_cache.move_to_end(key)
                return list(self._gold_cache[key])
            with self.pool.borrow() as sim:
                actions = solve(sim, key)
            self._gold_cache[key] = actions
            if len(self._gold_cache) > self.gold_cache_size:
                self._gold_cache.popitem(last=False)
            return list(actions)

    def close(self) -> None:
        self.pool.close()


class PooledEpisode(Episode):
    """An episode played on one pooled instance."""

    def __init__(self, adapter: PooledAdapter, sim: Simulator, key: EpisodeKey) -> None:
        self._adapter = adapter
        self._sim: Simulator | None = sim
        self._key = key

    def step(self, action: str) -> Frame:
        if self._sim is None:
            raise RuntimeError("episode already closed")
        return self._sim.act(action)

    def gold_path(self) -> list[str]:
        return self._adapter.gold_path(self._key)

    def close(self, broken: bool = False) -> None:
        sim, self._sim = self._sim, None
        if sim is None:
            return
        if broken:
            self._adapter.pool.discard(sim)
        else:
            self._adapter.pool.release(sim)


def solve(sim: Simulator, key: EpisodeKey) -> list[str]:
    """The environment's gold path for `key`, generated on `sim`.

    Returned as the environment gives it: it may go on after the goal is reached (e.g.
    ScienceWorld appends `wait1`/`look around`, and how many ticks a ScienceWorld process
    takes varies slightly from run to run), so players stop at `done`. Trimming it to the
    steps one replay needed would make it too short for another.
    """
    task, variation, seed, options = key
    sim.load(task, variation, seed, dict(options), gold=True)
    actions = [a for a in sim.gold_actions() if a.strip()]
    if not actions or actions[0].startswith("ERROR"):
        raise RuntimeError(f"no gold path for {task} variation {variation}: {actions[:1]}")
    return actions
