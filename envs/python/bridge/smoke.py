"""End-to-end smoke test of a bridge, started as a real process through its serve script.

    V=~/.cache/empo2/venvs
    $V/scienceworld/bin/python envs/python/bridge/smoke.py scienceworld
    $V/scienceworld/bin/python envs/python/bridge/smoke.py scienceworld \
        --gold-tasks all --max-steps 1000 --skip-checks
    $V/textworld-express/bin/python envs/python/bridge/smoke.py textworld-express

Checks the `listening on` line, health, ListTasks, gold paths played to a score of 100, every
error status, the session limit, the step limit, concurrent sessions, a killed JVM, an
oversized message and a clean SIGTERM exit; prints timings (startup, Step p50/p99) and
valid-action list sizes. Exits non-zero if any check fails.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import signal
import statistics
import subprocess
import sys
import threading
import time
from typing import Callable

import grpc
from empo2 import env_pb2 as pb
from empo2 import env_pb2_grpc as pb_grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

HERE = pathlib.Path(__file__).resolve().parent
SCRIPTS = HERE.parent
DEFAULT_GOLD_TASKS = {
    "scienceworld": "boil,find-animal,chemistry-mix,power-component,lifespan-longest-lived",
    "textworld-express": "all",
}
BAD_OPTION_VALUE = {
    "scienceworld": ("simplifications", "nope"),
    "textworld-express": ("params", "numLocations"),
}

failures: list[str] = []


def check(ok: bool, what: str) -> None:
    """Records and prints one check."""
    print(f"  [{'ok' if ok else 'FAIL'}] {what}", flush=True)
    if not ok:
        failures.append(what)


def expect_status(code: grpc.StatusCode, call: Callable, what: str) -> str:
    """Runs `call`, expecting it to fail with `code`; returns the status message."""
    try:
        call()
    except grpc.RpcError as err:
        check(err.code() == code, f"{what}: {err.code().name} {err.details()!r}")
        return err.details()
    check(False, f"{what}: succeeded, expected {code.name}")
    return ""


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Server:
    """The bridge server as a child process."""

    def __init__(self, environment: str, flags: list[str]) -> None:
        script = SCRIPTS / f"serve-{environment}.sh"
        started = time.monotonic()
        self.proc = subprocess.Popen(
            [str(script), "--listen", "127.0.0.1:0", *flags],
            stdout=subprocess.PIPE,
            stderr=open(os.environ.get("SMOKE_SERVER_LOG", os.devnull), "w"),
            text=True,
        )
        self.line = self.proc.stdout.readline().strip()
        self.startup = time.monotonic() - started
        self.address = self.line.removeprefix("listening on ")

    def java_children(self) -> set[int]:
        """The JVMs the server started."""
        pids = set()
        for stat in pathlib.Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().split(") ")
            except OSError:
                continue
            comm = fields[0].split(" (", 1)[1]
            ppid = int(fields[1].split()[1])
            if ppid == self.proc.pid and comm == "java":
                pids.add(int(stat.parent.name))
        return pids

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return -9


class Client:
    def __init__(self, address: str) -> None:
        self.channel = grpc.insecure_channel(address)
        self.env = pb_grpc.EnvironmentStub(self.channel)

    def reset(self, task: str, variation: int, **options: str) -> pb.ResetResponse:
        return self.env.Reset(pb.ResetRequest(task=task, variation=variation, options=options))

    def step(self, session: str, action: str) -> pb.StepResponse:
        return self.env.Step(pb.StepRequest(session=session, action=action))

    def close(self, session: str) -> None:
        self.env.Close(pb.CloseRequest(session=session))

    def gold(self, session: str) -> list[str]:
        return list(self.env.GoldPath(pb.GoldPathRequest(session=session)).actions)


def play_gold(client: Client, task: str, variation: int, stats: dict) -> None:
    """Reset, GoldPath, play it; checks the episode ends solved at 100."""
    t0 = time.monotonic()
    reset = client.reset(task, variation)
    t1 = time.monotonic()
    gold = client.gold(reset.session)
    t2 = time.monotonic()
    sizes = [len(reset.observation.valid_actions)]
    valid = set(reset.observation.valid_actions)
    unlisted: list[str] = []  # gold actions missing from the valid actions before them
    out = None
    for action in gold:
        if action not in valid:
            unlisted.append(action)
        started = time.monotonic()
        out = client.step(reset.session, action)
        stats["step_ms"].append(1000 * (time.monotonic() - started))
        sizes.append(len(out.observation.valid_actions))
        valid = set(out.observation.valid_actions)
        if out.done:
            break
    client.close(reset.session)
    solved = out is not None and out.done and out.success and out.score == 100
    stats["sizes"].extend(sizes)
    steps, score, success = (out.steps, out.score, out.success) if out else (0, 0.0, False)
    check(
        solved and steps <= len(gold),
        f"gold {task} v{variation}: {len(gold)} actions, done after {steps}: score {score:g} "
        f"success={success} | reset {t1 - t0:.2f}s gold {t2 - t1:.2f}s | valid actions "
        f"{min(sizes)}-{max(sizes)} (median {statistics.median(sizes):.0f})"
        + (f" | not in valid actions: {sorted(set(unlisted))}" if unlisted else ""),
    )


def check_errors(client: Client, environment: str, task: pb.TaskInfo, max_actions: int) -> None:
    code = grpc.StatusCode
    v0 = task.train_variations[0]
    expect_status(code.NOT_FOUND, lambda: client.reset("nosuch", 0), "unknown task")
    expect_status(code.NOT_FOUND, lambda: client.reset(task.name, 10**6), "unknown variation")
    expect_status(
        code.INVALID_ARGUMENT, lambda: client.reset(task.name, v0, bogus="1"), "unknown option"
    )
    key, value = BAD_OPTION_VALUE[environment]
    expect_status(
        code.INVALID_ARGUMENT,
        lambda: client.reset(task.name, v0, **{key: value}),
        "bad option value",
    )
    session = client.reset(task.name, v0).session
    expect_status(code.INVALID_ARGUMENT, lambda: client.step(session, ""), "empty action")
    expect_status(
        code.INVALID_ARGUMENT,
        lambda: client.step(session, "x" * (max_actions + 1)),
        "action over the byte limit",
    )
    out = client.step(session, "x" * max_actions)
    check(out.steps == 1, f"action at the byte limit is played: {out.observation.text[:60]!r}")
    expect_status(
        code.RESOURCE_EXHAUSTED,
        lambda: client.step(session, "x" * (2 << 20)),
        "2 MiB request over the message limit",
    )
    for name, call in [
        ("Step", lambda: client.step("nosuch", "look around")),
        ("Close", lambda: client.close("nosuch")),
        ("GoldPath", lambda: client.gold("nosuch")),
    ]:
        expect_status(code.NOT_FOUND, call, f"{name} on an unknown session")
    client.close(session)
    expect_status(
        code.NOT_FOUND, lambda: client.step(session, "look around"), "Step on a closed session"
    )
    expect_status(code.NOT_FOUND, lambda: client.close(session), "Close twice")


def check_step_limit(client: Client, task: pb.TaskInfo, action: str) -> list[float]:
    """Plays `action` until the step limit; returns the Step latencies (ms)."""
    session = client.reset(task.name, task.train_variations[0]).session
    latencies, out = [], None
    for _ in range(task.max_steps):
        started = time.monotonic()
        out = client.step(session, action)
        latencies.append(1000 * (time.monotonic() - started))
        if out.done:
            break
    check(
        out.done and not out.success and out.steps == task.max_steps,
        f"step limit: done={out.done} success={out.success} after {out.steps} steps",
    )
    expect_status(
        grpc.StatusCode.FAILED_PRECONDITION, lambda: client.step(session, action), "Step after done"
    )
    client.close(session)
    return latencies


def check_session_limit(client: Client, task: pb.TaskInfo, limit: int) -> None:
    sessions = [client.reset(task.name, task.train_variations[0]).session for _ in range(limit)]
    expect_status(
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        lambda: client.reset(task.name, task.train_variations[0]),
        f"Reset beyond --max-sessions {limit}",
    )
    client.close(sessions.pop())
    sessions.append(client.reset(task.name, task.train_variations[0]).session)
    check(True, "Reset works again after a Close")
    for session in sessions:
        client.close(session)


def check_concurrency(address: str, tasks: list[tuple[str, int]]) -> None:
    """Plays gold paths of several sessions at once, one connection each."""
    results: dict[str, str] = {}

    def run(task: str, variation: int) -> None:
        client = Client(address)
        try:
            reset = client.reset(task, variation)
            gold = client.gold(reset.session)
            out = None
            for action in gold:
                out = client.step(reset.session, action)
                if out.done:
                    break
            client.close(reset.session)
            results[task] = f"score {out.score:g} success={out.success}"
        except grpc.RpcError as err:
            results[task] = f"{err.code().name} {err.details()}"

    threads = [threading.Thread(target=run, args=t) for t in tasks]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for task, result in results.items():
        check(result == "score 100 success=True", f"concurrent session {task}: {result}")


def check_jvm_kill(server: Server, client: Client, task: pb.TaskInfo, action: str) -> None:
    """Kills the JVM of one session; only that session fails."""
    v0 = task.train_variations[0]
    a = client.reset(task.name, v0).session
    before = server.java_children()
    b = client.reset(task.name, v0).session
    new = server.java_children() - before
    if len(new) != 1:
        check(False, f"JVM kill: could not tell session B's JVM ({new})")
        return
    os.kill(new.pop(), signal.SIGKILL)
    time.sleep(0.5)
    expect_status(
        grpc.StatusCode.INTERNAL, lambda: client.step(b, action), "Step after its JVM was killed"
    )
    expect_status(
        grpc.StatusCode.NOT_FOUND, lambda: client.step(b, action), "that session is dropped"
    )
    check(client.step(a, action).steps == 1, "the other session still plays")
    c = client.reset(task.name, v0).session
    check(client.step(c, action).steps == 1, "a new session starts and plays")
    for session in (a, c):
        client.close(session)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("environment", choices=sorted(DEFAULT_GOLD_TASKS))
    parser.add_argument("--gold-tasks", help="comma-separated tasks, or 'all'")
    parser.add_argument("--max-steps", type=int, default=100, help="passed to the server")
    parser.add_argument("--max-sessions", type=int, default=4, help="passed to the server")
    parser.add_argument(
        "--skip-checks", action="store_true", help="only play the gold paths (for --gold-tasks all)"
    )
    args = parser.parse_args()
    env = args.environment
    idle_action = "look around"

    server = Server(
        env, ["--max-steps", str(args.max_steps), "--max-sessions", str(args.max_sessions)]
    )
    print(f"{env}: first stdout line {server.line!r} after {server.startup:.2f}s")
    check(
        server.line.startswith("listening on 127.0.0.1:") and not server.address.endswith(":0"),
        "listening line with the actual port",
    )
    client = Client(server.address)
    health = health_pb2_grpc.HealthStub(client.channel).Check(
        health_pb2.HealthCheckRequest(service="empo2.env.v1.Environment")
    )
    check(health.status == health_pb2.HealthCheckResponse.SERVING, "health: SERVING")

    started = time.monotonic()
    listing = client.env.ListTasks(pb.ListTasksRequest())
    tasks = {t.name: t for t in listing.tasks}
    disjoint = all(not set(t.train_variations) & set(t.test_variations) for t in listing.tasks)
    check(
        listing.environment == env and tasks and disjoint,
        f"ListTasks: {len(tasks)} tasks in {1000 * (time.monotonic() - started):.1f} ms, "
        f"train/test disjoint, max_steps {listing.tasks[0].max_steps}",
    )
    for t in listing.tasks:
        print(
            f"    {t.name}: train {len(t.train_variations)} test {len(t.test_variations)}"
            f" — {t.description}"
        )
    first = listing.tasks[0]

    if not args.skip_checks:
        print("JVM kill:")
        check_jvm_kill(server, client, first, idle_action)

    print("gold paths:")
    stats: dict[str, list] = {"step_ms": [], "sizes": []}
    gold_tasks = args.gold_tasks or DEFAULT_GOLD_TASKS[env]
    names = list(tasks) if gold_tasks == "all" else gold_tasks.split(",")
    for name in names:
        variations = [tasks[name].train_variations[0]]
        if env == "textworld-express":
            variations.append(tasks[name].test_variations[0])
        for variation in variations:
            try:
                play_gold(client, name, variation, stats)
            except grpc.RpcError as err:
                check(False, f"gold {name} v{variation}: {err.code().name} {err.details()}")

    if not args.skip_checks:
        print("errors:")
        check_errors(client, env, first, 1024)
        print("limits:")
        latencies = check_step_limit(client, first, idle_action)
        check_session_limit(client, first, args.max_sessions)
        print("concurrency:")
        check_concurrency(server.address, [(n, tasks[n].train_variations[0]) for n in names[:2]])
        print(
            f"Step latency, {len(latencies)} x {idle_action!r} in {first.name}: "
            f"p50 {percentile(latencies, 0.5):.1f} ms, p99 {percentile(latencies, 0.99):.1f} ms"
        )

    steps = stats["step_ms"]
    if steps:
        print(
            f"Step latency over the gold paths ({len(steps)} steps): "
            f"p50 {percentile(steps, 0.5):.1f} ms, p99 {percentile(steps, 0.99):.1f} ms"
        )
        sizes = stats["sizes"]
        print(
            f"valid actions per observation: min {min(sizes)}, median "
            f"{statistics.median(sizes):.0f}, max {max(sizes)}"
        )

    client.channel.close()
    jvms = server.java_children()
    code = server.stop()
    alive = [pid for pid in jvms if pathlib.Path(f"/proc/{pid}").exists()]
    check(
        code == 0 and not alive,
        f"SIGTERM: exit status {code}, {len(jvms)} JVMs before, {len(alive)} left",
    )
    print(f"{len(failures)} failed checks" if failures else "all checks passed")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
