"""Helpers shared by the simulators that run in a JVM through py4j (ScienceWorld, TWX)."""

from __future__ import annotations

import subprocess
from typing import Any

from .pool import Simulator


class JvmSimulator(Simulator):
    """A simulator whose Python wrapper `env` owns a py4j gateway to a JVM of its own.

    Both wrappers keep the gateway in `env._gateway` (private, but the only handle on the JVM
    process) and stop the JVM in `env.close()`.
    """

    env: Any

    def alive(self) -> bool:
        return self.env._gateway.java_process.poll() is None

    def close(self) -> None:
        """Shuts the gateway down and waits (up to 5 s, then kills) for the JVM to exit."""
        process = self.env._gateway.java_process
        try:
            self.env.close()
        finally:
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def strings(self, java_list: Any) -> list[str]:
        """A java.util.List of strings in one py4j call (joined in the JVM), not one per item."""
        joined = self.env._gateway.jvm.java.lang.String.join("\n", java_list)
        return joined.split("\n") if joined else []


def java_ints(java_list: Any) -> tuple[int, ...]:
    """A java.util.List of integers in one py4j call (its toString is "[0, 1, 2]")."""
    text = java_list.toString().strip("[] ")
    return tuple(int(x) for x in text.split(",")) if text else ()
