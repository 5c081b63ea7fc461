"""ScienceWorld (PyPI `scienceworld`) as an empo2 environment.

- Tasks: all of `get_task_names()` (30 in 1.2.3); train/test variations are ScienceWorld's
  own `get_variations_train()` / `get_variations_test()` (dev variations are not served).
  The listing is computed once at startup by loading every task (~3 s with the JVM start).
- Options: {"simplifications": "easy"} or a comma-separated list of ScienceWorld
  simplifications (teleportAction, openDoors, ...), passed to `load`.
- Score: ScienceWorld's 0..100 score (rounded like its Python API; -100 on failure).
  Done when the task is completed or failed; success when completed.
- Valid actions: `getValidActionObjectCombinations()` of the current state (deduplicated and
  sorted by the service; ~400-8000 strings depending on task and room).
- Seed: ignored: a ScienceWorld episode is determined by its variation (and simplifications).
- Gold path: `get_gold_action_sequence()` after loading the variation with
  generateGoldPath=True, computed on another pooled instance (see pooled.py).

Each `ScienceWorldEnv` starts its own JVM (~1 s, ~250 MB); instances are pooled and reused.
"""

from __future__ import annotations

import argparse
from typing import Mapping, Sequence

from scienceworld import ScienceWorldEnv
from scienceworld.constants import TASKS
from scienceworld.utils import infer_task

from .adapter import Frame, OptionError, Task
from .jvm import JvmSimulator, java_ints
from .pool import InstancePool
from .pooled import PooledAdapter

#: ScienceWorld's own step limit is disabled: the service enforces --max-steps.
NO_LIMIT = 2**31 - 1
#: Tasks that need electrical actions (ScienceWorld refuses noElectricalAction for them).
ELECTRICAL = ("power-component", "conductivity")


class ScienceWorldSimulator(JvmSimulator):
    """One ScienceWorld JVM. Talks to the Java side directly through `env.server` (the Python
    wrapper's `step` also fetches look/inventory text on every step, which we do not need)."""

    def __init__(self) -> None:
        self.env = ScienceWorldEnv("", envStepLimit=NO_LIMIT)
        self._java = self.env.server
        self._task_description = ""

    def load(
        self, task: str, variation: int, seed: int, options: Mapping[str, str], gold: bool
    ) -> Frame:
        error = self._java.load(task, variation, options.get("simplifications", ""), gold)
        if error:
            raise RuntimeError(error)
        self._task_description = self._java.getTaskDescription()
        return Frame(
            text=self._java.freeActionLook(),
            task_description=self._task_description,
            valid_actions=self._valid_actions(),
            score=self._score(),
        )

    def act(self, action: str) -> Frame:
        text = self._java.step(action)
        score = self._score()
        completed = bool(self._java.getCompleted())
        return Frame(
            text=text,
            task_description=self._task_description,
            valid_actions=self._valid_actions(),
            score=score,
            done=completed or score < 0,
            success=completed and score >= 0,
        )

    def gold_actions(self) -> list[str]:
        return self.strings(self._java.getGoldActionSequence())

    def _score(self) -> float:
        # Same conversion as ScienceWorldEnv.step: 0..1 (or -1) to a whole 0..100 (or -100).
        return float(round(100 * self._java.getScore()))

    def _valid_actions(self) -> list[str]:
        return self.strings(self._java.getValidActionObjectCombinations())


class ScienceWorldAdapter(PooledAdapter):
    """All ScienceWorld tasks over a pool of ScienceWorld JVMs."""

    environment = "scienceworld"
    options = {
        "simplifications": "comma-separated ScienceWorld simplifications, e.g. 'easy' or "
        "'teleportAction,openDoors'",
    }

    def __init__(self, max_steps: int, max_idle: int) -> None:
        first = ScienceWorldSimulator()
        self._simplifications = ["easy"] + first.env.get_possible_simplifications()
        self._tasks = list_tasks(first.env, max_steps)
        pool = InstancePool(ScienceWorldSimulator, max_idle=max_idle)
        pool.add_idle(first)
        super().__init__(pool)

    def tasks(self) -> Sequence[Task]:
        return self._tasks

    def check_options(self, task: Task, options: Mapping[str, str]) -> None:
        chosen = [s for s in options.get("simplifications", "").split(",") if s]
        for name in chosen:
            if name not in self._simplifications:
                raise OptionError(
                    f"unknown simplification '{name}'; known: {', '.join(self._simplifications)}"
                )
        if "noElectricalAction" in chosen and any(e in task.name for e in ELECTRICAL):
            raise OptionError(f"task '{task.name}' needs electrical actions: noElectricalAction")


def list_tasks(env: ScienceWorldEnv, max_steps: int) -> list[Task]:
    """Every task with its train/test variations (loads each task once)."""
    descriptions = {infer_task(t["task_name"]): f"{t['topic']}: {t['task']}" for t in TASKS}
    tasks = []
    for name in env.get_task_names():
        error = env.server.load(name, 0, "", False)
        if error:
            raise RuntimeError(error)
        tasks.append(
            Task(
                name=name,
                description=descriptions.get(name, name),
                train_variations=java_ints(env.server.getVariationsTrain()),
                test_variations=java_ints(env.server.getVariationsTest()),
                max_steps=max_steps,
            )
        )
    return tasks


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """ScienceWorld-specific flags (none so far; the common ones cover it)."""


def create(args: argparse.Namespace) -> ScienceWorldAdapter:
    """The adapter for the parsed command line."""
    return ScienceWorldAdapter(max_steps=args.max_steps, max_idle=args.max_sessions + 1)
