"""Bearer-token authentication for the bridge, as the Rust servers do it: with a token
configured, every call must carry `authorization: Bearer <token>` (the scheme name in any
case) except gRPC health checks, or it fails with UNAUTHENTICATED. Tokens are compared in
constant time."""

from __future__ import annotations

import hmac
from typing import Callable

import grpc

HEALTH_PREFIX = "/grpc.health.v1.Health/"


def bearer_credentials(value: str) -> str | None:
    """The credentials of an `authorization` value in the Bearer scheme, else None."""
    scheme, _, credentials = value.partition(" ")
    if not credentials or scheme.lower() != "bearer":
        return None
    return credentials.lstrip(" ")


class BearerAuthInterceptor(grpc.ServerInterceptor):
    """Refuses calls without the configured bearer token (health checks excepted)."""

    def __init__(self, token: str) -> None:
        if not token or not token.isprintable() or not token.isascii():
            raise ValueError("the bearer token must be non-empty printable ASCII")
        self._token = token.encode()

        def deny(_request, context: grpc.ServicerContext):
            context.abort(
                grpc.StatusCode.UNAUTHENTICATED,
                "missing or wrong bearer token in `authorization`",
            )

        self._deny = deny

    def allows(self, method: str, metadata: tuple[tuple[str, str], ...]) -> bool:
        if method.startswith(HEALTH_PREFIX):
            return True
        for key, value in metadata:
            if key == "authorization" and isinstance(value, str):
                given = bearer_credentials(value)
                if given is not None and hmac.compare_digest(given.encode(), self._token):
                    return True
        return False

    def intercept_service(
        self, continuation: Callable, handler_call_details: grpc.HandlerCallDetails
    ):
        if self.allows(handler_call_details.method, handler_call_details.invocation_metadata):
            return continuation(handler_call_details)
        return grpc.unary_unary_rpc_method_handler(self._deny)
