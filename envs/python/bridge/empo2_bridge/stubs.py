"""The gRPC stubs generated from proto/empo2/env.proto by setup.sh (in the venv, not in git)."""

try:
    from empo2 import env_pb2 as pb  # noqa: F401
    from empo2 import env_pb2_grpc as pb_grpc  # noqa: F401
except ImportError as err:  # pragma: no cover - only without setup.sh
    raise ImportError(
        "the empo2.env.v1 stubs are missing; run envs/python/setup.sh <environment> "
        "and use the venv it creates"
    ) from err

__all__ = ["pb", "pb_grpc"]
