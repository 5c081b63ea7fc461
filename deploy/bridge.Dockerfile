# The ScienceWorld bridge: serves ScienceWorld (PyPI `scienceworld`, a JVM per episode) over
# the empo2.env.v1.Environment gRPC protocol (envs/python/bridge).
#
#   docker build -f deploy/bridge.Dockerfile -t empo2-bridge:latest .
#   docker run --rm -p 127.0.0.1:50062:50062 empo2-bridge:latest            # serves on 50062
#   docker run --rm empo2-bridge:latest scienceworld --help                 # every flag
#
# The same pins and stub generation as envs/python/setup.sh: the packages of
# envs/python/scienceworld/requirements.txt, and the Python stubs of proto/empo2/env.proto and
# learner.proto generated at build time into /opt/empo2/stubs (on PYTHONPATH with the bridge).

FROM python:3.11-slim-bookworm

# Java 17 runs ScienceWorld's simulator (the man directory is missing in slim images, and the
# JRE's post-install script needs it).
RUN mkdir -p /usr/share/man/man1 \
 && apt-get update \
 && apt-get install -y --no-install-recommends openjdk-17-jre-headless \
 && rm -rf /var/lib/apt/lists/*

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore

COPY envs/python/scienceworld/requirements.txt /opt/empo2/requirements.txt
RUN pip install --no-input -r /opt/empo2/requirements.txt

COPY proto/empo2/env.proto proto/empo2/learner.proto /opt/empo2/proto/empo2/
RUN mkdir -p /opt/empo2/stubs \
 && python -m grpc_tools.protoc -I /opt/empo2/proto \
      --python_out=/opt/empo2/stubs --grpc_python_out=/opt/empo2/stubs \
      /opt/empo2/proto/empo2/env.proto /opt/empo2/proto/empo2/learner.proto

COPY envs/python/bridge/empo2_bridge /opt/empo2/bridge/empo2_bridge
ENV PYTHONPATH=/opt/empo2/bridge:/opt/empo2/stubs \
    EMPO2_BRIDGE_HEALTH=127.0.0.1:50062

RUN groupadd --system --gid 10001 empo2 \
 && useradd --system --uid 10001 --gid 10001 --home-dir /home/empo2 --create-home \
      --shell /usr/sbin/nologin empo2
WORKDIR /home/empo2
USER 10001:10001

EXPOSE 50062
# grpc.health.v1 of the server as a whole (EMPO2_BRIDGE_HEALTH: set it if you change --listen's
# port). ScienceWorld lists its 30 tasks at startup (~3 s, more on a busy machine).
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import os, sys, grpc; from grpc_health.v1 import health_pb2 as h, health_pb2_grpc as g; s = g.HealthStub(grpc.insecure_channel(os.environ['EMPO2_BRIDGE_HEALTH'])).Check(h.HealthCheckRequest(), timeout=4).status; sys.exit(0 if s == h.HealthCheckResponse.SERVING else 1)"]

ENTRYPOINT ["python", "-m", "empo2_bridge"]
CMD ["scienceworld", "--listen", "0.0.0.0:50062"]
