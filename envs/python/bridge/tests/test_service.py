"""Protocol tests of the service over a real gRPC channel, with a fake in-memory environment.

Run with a bridge venv (no JVM needed, ~1 s):
    PYTHONPATH=envs/python/bridge ~/.cache/empo2/venvs/textworld-express/bin/python \
        -m unittest discover -s envs/python/bridge/tests -v
"""

from __future__ import annotations

import logging
import threading
import unittest
from concurrent import futures
from typing import Mapping, Sequence

import grpc

from empo2_bridge.adapter import Adapter, Episode, Frame, OptionError, Task
from empo2_bridge.auth import BearerAuthInterceptor, bearer_credentials
from empo2_bridge.service import EnvironmentService, Limits
from empo2_bridge.stubs import pb, pb_grpc

Code = grpc.StatusCode
logging.getLogger("empo2_bridge").setLevel(logging.CRITICAL)  # expected tracebacks


class CountingEpisode(Episode):
    """Score +10 per action; "win" solves, "fail" fails, "boom" raises."""

    def __init__(self, adapter: "FakeAdapter") -> None:
        self.adapter = adapter
        self.score = 0.0

    def step(self, action: str) -> Frame:
        if action == "boom":
            raise RuntimeError("simulated crash")
        if action == "win":
            return self.frame(100.0, done=True, success=True)
        if action == "fail":
            return self.frame(-100.0, done=True)
        self.score += 10
        return self.frame(self.score)

    def frame(self, score: float, done: bool = False, success: bool = False) -> Frame:
        return Frame("text", "count", ["win", "b", "a", "b"], score, done, success)

    def gold_path(self) -> list[str]:
        return ["a", "win"]

    def close(self, broken: bool = False) -> None:
        self.adapter.closed.append(broken)


class FakeAdapter(Adapter):
    environment = "fake"
    options = {"mode": "x or y (y fails to start)"}

    def __init__(self) -> None:
        self.closed: list[bool] = []

    def tasks(self) -> Sequence[Task]:
        return [Task("count", "Counts.", (0, 1), (5,), max_steps=4)]

    def check_options(self, task: Task, options: Mapping[str, str]) -> None:
        if options.get("mode", "x") not in ("x", "y"):
            raise OptionError(f"bad mode '{options['mode']}'")

    def start(self, task, variation, seed, options):
        if options.get("mode") == "y":
            raise RuntimeError("cannot start")
        episode = CountingEpisode(self)
        return episode, episode.frame(0.0)


def serve(test: unittest.TestCase, service: EnvironmentService, interceptors=()) -> None:
    """Serves `service` on a free loopback port for `test` (stopped in its cleanup); sets
    `test.address` and `test.env`, a stub on a channel to it."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8), interceptors=interceptors)
    pb_grpc.add_EnvironmentServicer_to_server(service, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    test.addCleanup(server.stop, None)
    test.addCleanup(channel.close)
    test.address = f"127.0.0.1:{port}"
    test.env = pb_grpc.EnvironmentStub(channel)


class ServiceTest(unittest.TestCase):
    def setUp(self) -> None:
        self.adapter = FakeAdapter()
        self.service = EnvironmentService(self.adapter, Limits(max_sessions=2))
        serve(self, self.service)

    def reset(self, **kw) -> pb.ResetResponse:
        kw.setdefault("task", "count")
        return self.env.Reset(pb.ResetRequest(**kw))

    def step(self, session: str, action: str) -> pb.StepResponse:
        return self.env.Step(pb.StepRequest(session=session, action=action))

    def assertStatus(self, code: grpc.StatusCode, call, *args, contains: str = "", **kw) -> str:
        with self.assertRaises(grpc.RpcError) as caught:
            call(*args, **kw)
        self.assertEqual(caught.exception.code(), code, caught.exception.details())
        self.assertIn(contains, caught.exception.details())
        return caught.exception.details()

    def test_list_tasks(self) -> None:
        listing = self.env.ListTasks(pb.ListTasksRequest())
        self.assertEqual(listing.environment, "fake")
        (task,) = listing.tasks
        self.assertEqual(
            (task.name, list(task.train_variations), list(task.test_variations)),
            ("count", [0, 1], [5]),
        )
        self.assertEqual(task.max_steps, 4)

    def test_play_reward_done_success(self) -> None:
        reset = self.reset(variation=5)
        self.assertEqual(list(reset.observation.valid_actions), ["a", "b", "win"])
        first = self.step(reset.session, "  a  ")
        self.assertEqual((first.reward, first.score, first.done, first.steps), (10, 10, False, 1))
        won = self.step(reset.session, "win")
        self.assertEqual(
            (won.reward, won.score, won.done, won.success, won.steps), (90, 100, True, True, 2)
        )
        self.assertStatus(
            Code.FAILED_PRECONDITION, self.step, reset.session, "a", contains="is over"
        )
        self.assertEqual(
            list(self.env.GoldPath(pb.GoldPathRequest(session=reset.session)).actions), ["a", "win"]
        )
        self.env.Close(pb.CloseRequest(session=reset.session))
        self.assertEqual(self.adapter.closed, [False])

    def test_failure_and_step_limit(self) -> None:
        session = self.reset().session
        failed = self.step(session, "fail")
        self.assertEqual((failed.done, failed.success, failed.reward), (True, False, -100))
        session = self.reset(variation=1).session
        for i in range(1, 5):
            out = self.step(session, "a")
            self.assertEqual((out.steps, out.done, out.success), (i, i == 4, False))
        self.assertStatus(Code.FAILED_PRECONDITION, self.step, session, "a")

    def test_validation(self) -> None:
        self.assertStatus(
            Code.NOT_FOUND, self.reset, task="nope", contains="unknown task 'nope'; known: count"
        )
        self.assertStatus(
            Code.NOT_FOUND,
            self.reset,
            variation=2,
            contains="unknown variation 2 of task 'count'; known: train 0-1; test 5",
        )
        self.assertStatus(
            Code.INVALID_ARGUMENT,
            self.reset,
            options={"bogus": "1"},
            contains="unknown option 'bogus'; known: mode",
        )
        self.assertStatus(
            Code.INVALID_ARGUMENT, self.reset, options={"mode": "z"}, contains="bad mode"
        )
        session = self.reset(options={"mode": "x"}).session
        self.assertStatus(Code.INVALID_ARGUMENT, self.step, session, "", contains="empty")
        self.assertStatus(Code.INVALID_ARGUMENT, self.step, session, " \n ", contains="empty")
        self.assertStatus(
            Code.INVALID_ARGUMENT,
            self.step,
            session,
            "é" * 513,
            contains="1026 bytes; the limit is 1024",
        )
        self.assertEqual(self.step(session, "x" * 1024).steps, 1)
        for call, request in [
            (self.env.Step, pb.StepRequest(session="nope", action="a")),
            (self.env.Close, pb.CloseRequest(session="nope")),
            (self.env.GoldPath, pb.GoldPathRequest(session="nope")),
        ]:
            self.assertStatus(Code.NOT_FOUND, call, request, contains="unknown session 'nope'")
        self.env.Close(pb.CloseRequest(session=session))
        self.assertStatus(Code.NOT_FOUND, self.step, session, "a")
        self.assertStatus(Code.NOT_FOUND, self.env.Close, pb.CloseRequest(session=session))

    def test_session_limit(self) -> None:
        first = self.reset().session
        self.reset()
        self.assertStatus(Code.RESOURCE_EXHAUSTED, self.reset, contains="limit is 2")
        self.env.Close(pb.CloseRequest(session=first))
        self.reset()

    def test_adapter_errors_drop_only_their_session(self) -> None:
        self.assertStatus(Code.INTERNAL, self.reset, options={"mode": "y"}, contains="cannot start")
        good, bad = self.reset().session, self.reset().session  # the failed start freed its slot
        self.assertStatus(Code.INTERNAL, self.step, bad, "boom", contains="simulated crash")
        self.assertEqual(self.adapter.closed, [True])
        self.assertStatus(Code.NOT_FOUND, self.step, bad, "a")
        self.assertEqual(self.step(good, "a").score, 10)
        self.reset()  # the dropped session's slot is free again

    def test_concurrent_sessions(self) -> None:
        sessions = [self.reset().session for _ in range(2)]
        errors: list[Exception] = []

        def play(session: str) -> None:
            try:
                with grpc.insecure_channel(self.address) as channel:
                    env = pb_grpc.EnvironmentStub(channel)
                    for i in range(3):
                        out = env.Step(pb.StepRequest(session=session, action="a"))
                        assert out.score == 10 * (i + 1), out
            except Exception as err:  # reported below
                errors.append(err)

        threads = [threading.Thread(target=play, args=(s,)) for s in sessions]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(errors, [])

    def test_idle_reaping(self) -> None:
        session = self.reset().session
        self.assertEqual(self.service.reap_idle(3600), 0)
        self.assertEqual(self.service.reap_idle(0), 1)
        self.assertStatus(Code.NOT_FOUND, self.step, session, "a")


class AuthTest(unittest.TestCase):
    """The bridge with a token: calls without it are UNAUTHENTICATED, with it they work."""

    def setUp(self) -> None:
        service = EnvironmentService(FakeAdapter(), Limits(max_sessions=2))
        serve(self, service, [BearerAuthInterceptor("s3cret")])

    def test_a_call_needs_the_token(self) -> None:
        for metadata in [(), (("authorization", "Bearer wrong"),), (("authorization", "s3cret"),)]:
            with self.assertRaises(grpc.RpcError) as caught:
                self.env.ListTasks(pb.ListTasksRequest(), metadata=metadata)
            self.assertEqual(caught.exception.code(), Code.UNAUTHENTICATED)
        for scheme in ["Bearer", "bearer", "BEARER"]:
            tasks = self.env.ListTasks(
                pb.ListTasksRequest(), metadata=(("authorization", f"{scheme} s3cret"),)
            )
            self.assertEqual(tasks.environment, "fake")

    def test_credentials(self) -> None:
        self.assertEqual(bearer_credentials("Bearer t"), "t")
        self.assertEqual(bearer_credentials("bearer  t"), "t")
        self.assertIsNone(bearer_credentials("Basic t"))
        self.assertIsNone(bearer_credentials("t"))
        with self.assertRaises(ValueError):
            BearerAuthInterceptor("bad\ntoken")


if __name__ == "__main__":
    unittest.main()
