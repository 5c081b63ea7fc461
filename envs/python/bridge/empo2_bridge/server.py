"""Command line: `python -m empo2_bridge <environment> [flags]` serves one environment.

Binds first (so a taken port fails at once), builds the adapter (ScienceWorld lists its tasks
here, a few seconds), starts serving, and then prints exactly one line to stdout:
`listening on HOST:PORT` with the actual port (useful with `--listen 127.0.0.1:0`). Everything
else — logs, JVM chatter, stray prints — goes to stderr. SIGTERM or SIGINT stops the server
cleanly (in-flight calls get 2 s, then every session and JVM is closed) with exit status 0.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import signal
import sys
import threading
import time
from concurrent import futures

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from .auth import BearerAuthInterceptor
from .service import EnvironmentService, Limits, start_reaper
from .stubs import pb_grpc

log = logging.getLogger("empo2_bridge")

#: Environment name -> adapter module (imported only when chosen: each lives in its own venv).
ADAPTERS = {
    "scienceworld": "empo2_bridge.scienceworld_adapter",
    "textworld-express": "empo2_bridge.textworld_express_adapter",
}

SERVICE_NAME = "empo2.env.v1.Environment"


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, object]:
    """Parses the command line; returns the flags and the chosen adapter module."""
    first = argparse.ArgumentParser(add_help=False)
    first.add_argument("environment", nargs="?", choices=sorted(ADAPTERS))
    known, _ = first.parse_known_args(argv)
    module = importlib.import_module(ADAPTERS[known.environment]) if known.environment else None

    parser = argparse.ArgumentParser(
        prog="python -m empo2_bridge",
        description="Serve a text environment over the empo2.env.v1.Environment gRPC protocol.",
    )
    parser.add_argument("environment", choices=sorted(ADAPTERS))
    parser.add_argument(
        "--listen",
        default="127.0.0.1:50061",
        metavar="HOST:PORT",
        help="address to serve on; port 0 picks a free port (default %(default)s)",
    )
    parser.add_argument(
        "--max-sessions",
        type=int,
        default=8,
        help="most sessions open at once; more Resets are RESOURCE_EXHAUSTED (default %(default)s)",
    )
    parser.add_argument(
        "--max-steps",
        type=int,
        default=100,
        help="steps after which an episode ends (done, not success); 0 = no limit "
        "(default %(default)s)",
    )
    parser.add_argument(
        "--max-action-bytes",
        type=int,
        default=1024,
        help="longest action in UTF-8 bytes (default %(default)s)",
    )
    parser.add_argument(
        "--max-message-bytes",
        type=int,
        default=1 << 20,
        help="largest request message accepted (default %(default)s)",
    )
    parser.add_argument(
        "--idle-timeout",
        type=float,
        default=3600,
        metavar="SECONDS",
        help="close sessions unused for this long; 0 = never (default %(default)s)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=0,
        help="gRPC worker threads (default: 2 x max-sessions + 4)",
    )
    parser.add_argument(
        "--auth-token",
        default=os.environ.get("EMPO2__ENV__AUTH_TOKEN") or None,
        metavar="TOKEN",
        help="require `authorization: Bearer TOKEN` on every call but health checks "
        "(default: $EMPO2__ENV__AUTH_TOKEN, the token empo2 actors and learners send)",
    )
    parser.add_argument(
        "--tls-cert",
        metavar="PEM",
        help="serve TLS with this certificate chain (needs --tls-key)",
    )
    parser.add_argument("--tls-key", metavar="PEM", help="the private key of --tls-cert")
    parser.add_argument(
        "--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"]
    )
    if module is not None:
        module.add_arguments(parser)
    args = parser.parse_args(argv)
    if args.max_sessions < 1:
        parser.error("--max-sessions must be at least 1")
    if bool(args.tls_cert) != bool(args.tls_key):
        parser.error("--tls-cert and --tls-key go together")
    return args, module


def bind(server: grpc.Server, address: str, args: argparse.Namespace) -> int:
    """Binds `address` (with TLS when configured); exits with status 2 if that fails (e.g.
    the port is taken)."""
    try:
        if args.tls_cert:
            with open(args.tls_cert, "rb") as cert, open(args.tls_key, "rb") as key:
                credentials = grpc.ssl_server_credentials([(key.read(), cert.read())])
            port = server.add_secure_port(address, credentials)
        else:
            port = server.add_insecure_port(address)
    except (RuntimeError, OSError) as err:
        log.error("cannot listen on %s: %s", address, err)
        sys.exit(2)
    if not port:
        log.error("cannot listen on %s", address)
        sys.exit(2)
    return port


def main(argv: list[str] | None = None) -> None:
    # stdout carries only the `listening on` line; anything else printed goes to stderr.
    stdout, sys.stdout = sys.stdout, sys.stderr
    args, module = parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(
        stream=sys.stderr,
        level=args.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("py4j").setLevel(logging.WARNING)
    started = time.monotonic()
    # From here on SIGTERM/SIGINT only ask for a clean stop (honoured once startup is done).
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, _frame: stop.set())

    workers = args.workers or 2 * args.max_sessions + 4
    try:
        interceptors = [BearerAuthInterceptor(args.auth_token)] if args.auth_token else []
    except ValueError as err:
        log.error("--auth-token: %s", err)
        sys.exit(2)
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="rpc"),
        interceptors=interceptors,
        options=[
            ("grpc.max_receive_message_length", args.max_message_bytes),
            ("grpc.so_reuseport", 0),
        ],
    )
    port = bind(server, args.listen, args)

    adapter = module.create(args)
    service = EnvironmentService(
        adapter,
        Limits(max_sessions=args.max_sessions, max_action_bytes=args.max_action_bytes),
    )
    pb_grpc.add_EnvironmentServicer_to_server(service, server)
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    for name in ("", SERVICE_NAME):
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    server.start()
    reaper = start_reaper(service, args.idle_timeout) if args.idle_timeout > 0 else None

    host = args.listen.rsplit(":", 1)[0]
    log.info(
        "%s: %d tasks, ready in %.1fs, max %d sessions, auth %s, tls %s",
        adapter.environment,
        len(service.tasks),
        time.monotonic() - started,
        args.max_sessions,
        "on" if args.auth_token else "off",
        "on" if args.tls_cert else "off",
    )
    print(f"listening on {host}:{port}", file=stdout, flush=True)

    while not stop.wait(0.5):
        pass

    log.info("shutting down")
    health_servicer.enter_graceful_shutdown()
    if reaper is not None:
        reaper.set()
    server.stop(grace=2).wait()
    service.close_all()
    adapter.close()
    log.info("stopped")
