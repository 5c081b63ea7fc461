"""The empo2.env.v1.Environment servicer: validation, sessions, steps and status codes.

Every failure is a precise gRPC status (see README.md); no exception escapes to kill the
server. An exception from the environment while stepping becomes INTERNAL and drops only
that session (its simulator instance is discarded, not reused).
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from dataclasses import dataclass
from typing import Callable, Mapping

import grpc

from .adapter import Adapter, Frame, OptionError, Task, describe_ids
from .sessions import Session, SessionLimitError, SessionTable, new_session_id
from .stubs import pb, pb_grpc

log = logging.getLogger(__name__)

#: Longest message text returned in a status (long Java stack traces are cut).
MAX_MESSAGE_CHARS = 400


@dataclass(frozen=True)
class Limits:
    """Protocol limits enforced by the service."""

    max_sessions: int = 8
    max_action_bytes: int = 1024


class Fail(Exception):
    """Ends an RPC with a status code and message."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = clip(message)


def clip(text: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    """`text` cut to `limit` characters (marked with an ellipsis)."""
    text = " ".join(text.split()) if "\n" in text else text
    return text if len(text) <= limit else text[: limit - 1] + "…"


def rpc(method: Callable) -> Callable:
    """Turns Fail into its status and any other exception into INTERNAL."""

    @functools.wraps(method)
    def handler(self: "EnvironmentService", request, context: grpc.ServicerContext):
        try:
            return method(self, request)
        except Fail as fail:
            log.debug("%s: %s %s", method.__name__, fail.code.name, fail.message)
            context.abort(fail.code, fail.message)
        except Exception as err:
            log.exception("%s failed", method.__name__)
            context.abort(grpc.StatusCode.INTERNAL, clip(f"{type(err).__name__}: {err}"))

    return handler


class EnvironmentService(pb_grpc.EnvironmentServicer):
    """Serves one adapter's tasks as sessions."""

    def __init__(self, adapter: Adapter, limits: Limits = Limits()) -> None:
        self.adapter = adapter
        self.limits = limits
        self.tasks: dict[str, Task] = {t.name: t for t in adapter.tasks()}
        self.sessions = SessionTable(limits.max_sessions)
        self._task_list = pb.ListTasksResponse(
            environment=adapter.environment,
            tasks=[
                pb.TaskInfo(
                    name=t.name,
                    description=t.description,
                    train_variations=t.train_variations,
                    test_variations=t.test_variations,
                    max_steps=t.max_steps,
                )
                for t in self.tasks.values()
            ],
        )

    # -- RPCs ------------------------------------------------------------------------------

    @rpc
    def ListTasks(self, request: pb.ListTasksRequest) -> pb.ListTasksResponse:
        return self._task_list

    @rpc
    def Reset(self, request: pb.ResetRequest) -> pb.ResetResponse:
        task = self._task(request.task)
        if not task.has_variation(request.variation):
            raise Fail(
                grpc.StatusCode.NOT_FOUND,
                f"unknown variation {request.variation} of task '{task.name}'; known: "
                f"train {describe_ids(task.train_variations)}; "
                f"test {describe_ids(task.test_variations)}",
            )
        options = dict(request.options)
        self._check_options(task, options)
        try:
            self.sessions.reserve()
        except SessionLimitError as err:
            raise Fail(grpc.StatusCode.RESOURCE_EXHAUSTED, str(err)) from None
        started = time.monotonic()
        try:
            episode, frame = self.adapter.start(task, request.variation, request.seed, options)
        except OptionError as err:
            self.sessions.unreserve()
            raise Fail(grpc.StatusCode.INVALID_ARGUMENT, str(err)) from None
        except Exception as err:
            self.sessions.unreserve()
            log.exception("starting %s variation %d failed", task.name, request.variation)
            raise Fail(
                grpc.StatusCode.INTERNAL,
                f"environment error while starting {task.name} variation "
                f"{request.variation}: {type(err).__name__}: {err}",
            ) from None
        session = Session(
            id=new_session_id(),
            task=task,
            variation=request.variation,
            episode=episode,
            score=frame.score,
        )
        self.sessions.add(session)
        log.info(
            "reset %s: %s variation %d in %.2fs (%d open)",
            session.id,
            task.name,
            request.variation,
            time.monotonic() - started,
            len(self.sessions),
        )
        return pb.ResetResponse(
            session=session.id, observation=observation(frame), score=frame.score
        )

    @rpc
    def Step(self, request: pb.StepRequest) -> pb.StepResponse:
        action = self._check_action(request.action)
        session = self._session(request.session)
        with session.lock:
            if session.closed:
                raise Fail(grpc.StatusCode.NOT_FOUND, f"unknown session '{session.id}'")
            if session.done:
                raise Fail(
                    grpc.StatusCode.FAILED_PRECONDITION,
                    f"the episode of session '{session.id}' is over (done after "
                    f"{session.steps} steps); Reset to play again",
                )
            session.last_used = time.monotonic()
            try:
                frame = session.episode.step(action)
            except Exception as err:
                log.exception("step failed in session %s; dropping it", session.id)
                self._drop(session, broken=True)
                raise Fail(
                    grpc.StatusCode.INTERNAL,
                    f"environment error in session '{session.id}' (now closed): "
                    f"{type(err).__name__}: {err}",
                ) from None
            session.steps += 1
            reward = frame.score - session.score
            session.score = frame.score
            out_of_steps = 0 < session.task.max_steps <= session.steps
            session.done = frame.done or out_of_steps
            session.last_used = time.monotonic()
            return pb.StepResponse(
                observation=observation(frame),
                reward=reward,
                score=frame.score,
                done=session.done,
                success=frame.success,
                steps=session.steps,
            )

    @rpc
    def Close(self, request: pb.CloseRequest) -> pb.CloseResponse:
        session = self.sessions.pop(request.session)
        if session is None:
            raise Fail(grpc.StatusCode.NOT_FOUND, f"unknown session '{request.session}'")
        with session.lock:
            self._drop(session, broken=False)
        log.info(
            "closed %s after %d steps (%d open)", session.id, session.steps, len(self.sessions)
        )
        return pb.CloseResponse()

    @rpc
    def GoldPath(self, request: pb.GoldPathRequest) -> pb.GoldPathResponse:
        session = self._session(request.session)
        try:
            actions = session.episode.gold_path()
        except NotImplementedError:
            raise Fail(
                grpc.StatusCode.UNIMPLEMENTED,
                f"{self.adapter.environment} has no gold paths",
            ) from None
        except Exception as err:
            # The gold path is computed apart from the session's game: the session stays.
            log.exception("gold path failed for session %s", session.id)
            raise Fail(
                grpc.StatusCode.INTERNAL,
                f"environment error while computing the gold path: {type(err).__name__}: {err}",
            ) from None
        return pb.GoldPathResponse(actions=actions)

    # -- housekeeping ----------------------------------------------------------------------

    def reap_idle(self, idle_seconds: float) -> int:
        """Closes sessions unused for `idle_seconds`; returns how many."""
        reaped = 0
        for session in self.sessions.idle(time.monotonic() - idle_seconds):
            if self.sessions.pop(session.id) is None:
                continue
            with session.lock:
                self._drop(session, broken=False)
            log.info("closed %s: idle for more than %.0fs", session.id, idle_seconds)
            reaped += 1
        return reaped

    def close_all(self) -> None:
        """Closes every session (at shutdown)."""
        for session in self.sessions.pop_all():
            # Do not wait for a step in progress: shutting down anyway.
            if session.lock.acquire(timeout=5):
                try:
                    self._drop(session, broken=False)
                finally:
                    session.lock.release()

    # -- helpers ---------------------------------------------------------------------------

    def _task(self, name: str) -> Task:
        task = self.tasks.get(name)
        if task is None:
            known = ", ".join(self.tasks)
            raise Fail(
                grpc.StatusCode.NOT_FOUND,
                clip(f"unknown task '{name}'; known: {known}", MAX_MESSAGE_CHARS - 20)
                + f" ({len(self.tasks)} tasks)",
            )
        return task

    def _check_options(self, task: Task, options: Mapping[str, str]) -> None:
        unknown = sorted(set(options) - set(self.adapter.options))
        if unknown:
            known = ", ".join(sorted(self.adapter.options)) or "none"
            raise Fail(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"unknown option {', '.join(repr(k) for k in unknown)}; known: {known}",
            )
        try:
            self.adapter.check_options(task, options)
        except OptionError as err:
            raise Fail(grpc.StatusCode.INVALID_ARGUMENT, str(err)) from None

    def _check_action(self, action: str) -> str:
        size = len(action.encode("utf-8"))
        if size > self.limits.max_action_bytes:
            raise Fail(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"action is {size} bytes; the limit is {self.limits.max_action_bytes}",
            )
        action = action.strip()
        if not action:
            raise Fail(grpc.StatusCode.INVALID_ARGUMENT, "action is empty")
        return action

    def _session(self, session_id: str) -> Session:
        session = self.sessions.get(session_id)
        if session is None:
            raise Fail(grpc.StatusCode.NOT_FOUND, f"unknown session '{session_id}'")
        return session

    def _drop(self, session: Session, broken: bool) -> None:
        """Closes a session's episode (caller holds its lock) and forgets the session."""
        self.sessions.pop(session.id)
        session.closed = True
        try:
            session.episode.close(broken=broken)
        except Exception:
            log.exception("closing the episode of session %s failed", session.id)


def observation(frame: Frame) -> pb.Observation:
    """The protocol observation of a frame; valid actions deduplicated and sorted."""
    return pb.Observation(
        text=frame.text,
        task_description=frame.task_description,
        valid_actions=sorted(set(frame.valid_actions)),
    )


def start_reaper(service: EnvironmentService, idle_seconds: float) -> threading.Event:
    """Closes idle sessions in the background; set the returned event to stop it."""
    stop = threading.Event()
    period = max(1.0, min(60.0, idle_seconds / 4))

    def run() -> None:
        while not stop.wait(period):
            try:
                service.reap_idle(idle_seconds)
            except Exception:
                log.exception("reaping idle sessions failed")

    threading.Thread(target=run, name="session-reaper", daemon=True).start()
    return stop
