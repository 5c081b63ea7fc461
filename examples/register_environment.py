#!/usr/bin/env python3
"""Registers an environment into a running empo2 learner, from Python.

Any gRPC server of empo2.env.v1.Environment can join a job while it runs: the ScienceWorld
bridge, the TextWorld Express bridge, or your own. Its tasks join the pool from the next lease.

    envs/python/setup.sh scienceworld              # a venv with grpcio and the empo2 stubs
    envs/python/serve-scienceworld.sh --listen 127.0.0.1:50062 &
    ~/.cache/empo2/venvs/scienceworld/bin/python examples/register_environment.py \
        --learner 127.0.0.1:50071 --name scienceworld --endpoint http://127.0.0.1:50062 \
        --task find-animal --task boil

Prints the tasks that joined, then the whole pool. Exits non-zero with the learner's status
(e.g. ALREADY_EXISTS, UNAVAILABLE) if the registration is refused.
"""

import argparse
import os
import sys

import grpc
from empo2 import learner_pb2, learner_pb2_grpc


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--learner", default="127.0.0.1:50071", help="learner host:port")
    parser.add_argument("--name", required=True, help="unique environment name")
    parser.add_argument("--endpoint", default="", help="the environment's gRPC endpoint")
    parser.add_argument("--builtin", default="", help="a built-in world instead (house)")
    parser.add_argument("--task", action="append", default=[], help="task to use (repeat; default all)")
    parser.add_argument("--weight", type=float, default=1.0, help="relative sampling weight")
    parser.add_argument(
        "--token",
        default=os.environ.get("EMPO2__TRAIN__AUTH_TOKEN"),
        help="the learner's bearer token, if it requires one (default: $EMPO2__TRAIN__AUTH_TOKEN)",
    )
    args = parser.parse_args()
    metadata = [("authorization", f"Bearer {args.token}")] if args.token else []

    target = args.learner.removeprefix("http://")
    with grpc.insecure_channel(target) as channel:
        learner = learner_pb2_grpc.LearnerStub(channel)
        request = learner_pb2.RegisterEnvironmentRequest(
            name=args.name,
            endpoint=args.endpoint,
            builtin=args.builtin,
            tasks=args.task,
            weight=args.weight,
        )
        try:
            response = learner.RegisterEnvironment(request, timeout=60, metadata=metadata)
        except grpc.RpcError as err:
            print(f"refused: {err.code().name}: {err.details()}", file=sys.stderr)
            return 1
        print(f"registered {args.name}: {len(response.tasks)} tasks")
        for task in response.tasks:
            print(
                f"  {task.name}: {len(task.train_variations)} train / "
                f"{len(task.test_variations)} test variations"
            )
        pool = learner.ListEnvironments(
            learner_pb2.ListEnvironmentsRequest(), timeout=60, metadata=metadata
        )
        print("pool:", ", ".join(f"{e.name} ({len(e.tasks)} tasks, weight {e.weight:g})" for e in pool.environments))
    return 0


if __name__ == "__main__":
    sys.exit(main())
