"""TextWorld Express (PyPI `textworld-express`) as an empo2 environment.

- Tasks: the games of `getGameNames()` (1.1.0: cookingworld, twc, coin, mapreader,
  arithmetic, sorting, simonsays, peckingorder).
- Variations: TWX generates a game from (fold, seed). Variation v < N is the train fold's
  v-th seed (`getSeedsTrain()[v]`, = v); variation N + i is the test fold's i-th seed
  (`getSeedsTest()[i]`, = 20000 + i). N = --train-variations (default 100), M =
  --test-variations (default 50), each at most the fold's 1000 seeds.
- Options: {"params": "numLocations=5,includeDoors=0"}: TWX game parameters (key=integer
  pairs, checked by TWX), passed to `load`.
- Score: TWX's normalised score (1 = solved, negative on failure) times 100, to share
  ScienceWorld's range. Done on task success, task failure or a full score, as TWX's Python
  API decides; success on task success or a full score.
- Valid actions: the `validActions` of each step.
- Seed: ignored: the game is fixed by the variation (its fold and seed).
- Gold path: `getGoldActionSequence()` after generating the game with generateGoldPath=True.

Each `TextWorldExpressEnv` starts its own JVM (~0.4 s); instances are pooled and reused.
"""

from __future__ import annotations

import argparse
import json
import re
from dataclasses import dataclass
from typing import Mapping, Sequence

from textworld_express import TextWorldExpressEnv

from .adapter import Frame, OptionError, Task
from .jvm import JvmSimulator, java_ints
from .pool import InstancePool
from .pooled import PooledAdapter

#: TWX's own step limit is disabled: the service enforces --max-steps.
NO_LIMIT = 2**31 - 1

DESCRIPTIONS = {
    "cookingworld": "Gather ingredients, prepare them as the cookbook says, eat the meal.",
    "twc": "TextWorld Commonsense: put objects away in their usual places.",
    "coin": "Search the house for a coin and take it.",
    "mapreader": "Use a map to fetch a coin from a given room and bring it to a box.",
    "arithmetic": "Solve a math problem, then put the item with that quantity in a box.",
    "sorting": "Put the objects in a box in order of increasing quantity.",
    "simonsays": "Do exactly what Simon says.",
    "peckingorder": "Read an instructions book and follow its steps in order.",
}

PARAMS = re.compile(r"^\w+=-?\d+(,\w+=-?\d+)*$")


@dataclass(frozen=True)
class Variations:
    """Variation ids <-> (fold, TWX seed): train ids 0..N-1, then test ids N..N+M-1."""

    train_seeds: tuple[int, ...]
    test_seeds: tuple[int, ...]

    @property
    def train_ids(self) -> tuple[int, ...]:
        return tuple(range(len(self.train_seeds)))

    @property
    def test_ids(self) -> tuple[int, ...]:
        n = len(self.train_seeds)
        return tuple(range(n, n + len(self.test_seeds)))

    def resolve(self, variation: int) -> tuple[str, int]:
        """(fold, seed) of a variation id (known to be valid)."""
        n = len(self.train_seeds)
        if variation < n:
            return "train", self.train_seeds[variation]
        return "test", self.test_seeds[variation - n]


class TextWorldExpressSimulator(JvmSimulator):
    """One TWX JVM, driven through its JSON interface (`env.server`).

    `variations` maps variation ids to games; it may be set after construction (the first
    instance lists the seeds that define it).
    """

    def __init__(self, variations: Variations | None = None) -> None:
        self.env = TextWorldExpressEnv(envStepLimit=NO_LIMIT)
        self._java = self.env.server
        self.variations = variations
        self._loaded: tuple[str, str] | None = None
        self._task_description = ""

    def load(
        self, task: str, variation: int, seed: int, options: Mapping[str, str], gold: bool
    ) -> Frame:
        params = options.get("params", "")
        if self._loaded != (task, params):
            self._loaded = None
            error = self._java.load(task, params)
            if error:
                raise OptionError(f"TextWorld Express rejects params '{params}': {error.strip()}")
            self._loaded = (task, params)
        fold, game_seed = self.variations.resolve(variation)
        info = json.loads(self._java.generateNewGameJSON(game_seed, fold, gold))
        if info["observation"].startswith("ERROR:"):
            self._loaded = None
            raise RuntimeError(info["observation"])
        self._task_description = self._java.getTaskDescription()
        return self._frame(info)

    def act(self, action: str) -> Frame:
        return self._frame(json.loads(self._java.stepJSON(action)))

    def gold_actions(self) -> list[str]:
        return self.strings(self._java.getGoldActionSequence())

    def _frame(self, info: dict) -> Frame:
        solved = bool(info["tasksuccess"]) or info["score"] >= 1.0
        return Frame(
            text=info["observation"],
            task_description=self._task_description,
            valid_actions=list(info["validActions"]),
            score=100.0 * info["score"],
            done=solved or bool(info["taskfailure"]),
            success=solved,
        )


class TextWorldExpressAdapter(PooledAdapter):
    """The TWX games over a pool of TWX JVMs."""

    environment = "textworld-express"
    options = {"params": "TWX game parameters, e.g. 'numLocations=5,includeDoors=0'"}

    def __init__(self, max_steps: int, train: int, test: int, max_idle: int) -> None:
        first = TextWorldExpressSimulator()
        games = list(first.env.getGameNames())
        # The seed lists are the same for every game; read them from the first.
        first.env.load(games[0], "")
        train_seeds = java_ints(first.env.server.getSeedsTrain())
        test_seeds = java_ints(first.env.server.getSeedsTest())
        if not (1 <= train <= len(train_seeds) and 0 <= test <= len(test_seeds)):
            first.close()
            raise SystemExit(
                f"--train-variations must be 1..{len(train_seeds)} and --test-variations "
                f"0..{len(test_seeds)}; got {train} and {test}"
            )
        self.variations = Variations(train_seeds[:train], test_seeds[:test])
        first.variations = self.variations
        self._tasks = [
            Task(
                name=game,
                description=DESCRIPTIONS.get(game, game),
                train_variations=self.variations.train_ids,
                test_variations=self.variations.test_ids,
                max_steps=max_steps,
            )
            for game in games
        ]
        pool = InstancePool(lambda: TextWorldExpressSimulator(self.variations), max_idle)
        pool.add_idle(first)
        super().__init__(pool)

    def tasks(self) -> Sequence[Task]:
        return self._tasks

    def check_options(self, task: Task, options: Mapping[str, str]) -> None:
        params = options.get("params", "")
        if params and not PARAMS.match(params):
            raise OptionError(
                f"params must be comma-separated key=integer pairs, e.g. "
                f"'numLocations=5,includeDoors=0'; got '{params}'"
            )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """TWX-specific flags: how many train and test variations each game offers."""
    parser.add_argument(
        "--train-variations",
        type=int,
        default=100,
        metavar="N",
        help="train variations 0..N-1 = train-fold seeds (default %(default)s, at most 1000)",
    )
    parser.add_argument(
        "--test-variations",
        type=int,
        default=50,
        metavar="M",
        help="test variations N..N+M-1 = test-fold seeds (default %(default)s, at most 1000)",
    )


def create(args: argparse.Namespace) -> TextWorldExpressAdapter:
    """The adapter for the parsed command line."""
    return TextWorldExpressAdapter(
        max_steps=args.max_steps,
        train=args.train_variations,
        test=args.test_variations,
        max_idle=args.max_sessions + 1,
    )
