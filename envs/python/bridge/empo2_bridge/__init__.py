"""empo2_bridge: serves Python text environments over the empo2.env.v1.Environment gRPC protocol.

Modules: `adapter` (the interface an environment implements), `pool`/`pooled` (reusable
JVM-backed simulator instances), `sessions` and `service` (the protocol: validation, sessions,
steps, rewards, status codes), `server` (the command line), and one adapter module per
environment (`scienceworld_adapter`, `textworld_express_adapter`).
"""

__version__ = "0.1.0"
