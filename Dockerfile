# The health-adapter container image.
#
#   podman build --format docker -t health-adapter .     # or: docker build -t health-adapter .
#
# BASE_IMAGE, the build stage, is any image with python3 (3.11 or later) and its
# venv module. RUNTIME_IMAGE, the image's own base, needs the same python3 at the
# same path, /bin/sh and /usr/bin/env; it defaults to BASE_IMAGE. The official
# slim image is the default; a closed network, or anyone after the small image
# (about 76 MB instead of about 150), passes the two that
# scripts/build-base-image.sh makes from Debian packages:
#   --build-arg BASE_IMAGE=localhost/health-adapter-base:bookworm
#   --build-arg RUNTIME_IMAGE=localhost/health-adapter-base:bookworm-slim
# (or :bookworm-full, with the monitoring plugins for exec checks: see docs/kubernetes.md).
# (--format docker keeps the HEALTHCHECK, which the OCI image format has no field for.)
ARG BASE_IMAGE=python:3.12-slim
ARG RUNTIME_IMAGE=${BASE_IMAGE}

# --- builder: wheels for the project and its dependencies, installed into a venv
FROM ${BASE_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
RUN python3 -m venv /opt/build && /opt/build/bin/pip install --quiet "setuptools>=68" wheel
WORKDIR /src
# Optional extras to include, comma-separated: --build-arg EXTRAS=grpc adds the gRPC probe.
ARG EXTRAS=""
# The dependencies come from setup.cfg alone, so a change to the code reuses this layer.
# Binary wheels only: no compiler is needed, and aiohttp keeps its C extensions
# (from source without a compiler it would silently fall back to pure Python).
COPY setup.cfg ./
RUN python3 -c "import configparser, os; c = configparser.ConfigParser(); c.read('setup.cfg'); \
print(c['options']['install_requires']); \
[print(c['options.extras_require'][x]) for x in os.environ['EXTRAS'].split(',') if x]" \
        > requirements.txt \
 && /opt/build/bin/pip wheel --quiet --only-binary=:all: --wheel-dir /wheels -r requirements.txt
COPY pyproject.toml README.md ./
COPY adapter adapter
COPY probes probes
# The runtime venv gets the wheels and nothing else: no pip, no setuptools, no
# build files; pip compiles the bytecode, since the root filesystem is read-only
# at run time. Sources of the C extensions (Cython .pyx/.pxd, .c, .h) are not
# needed to run them and go.
RUN /opt/build/bin/pip wheel --quiet --no-deps --no-build-isolation --wheel-dir /wheels . \
 && python3 -m venv --without-pip /opt/health-adapter \
 && /opt/build/bin/pip --python /opt/health-adapter/bin/python install --quiet \
        --no-index --find-links /wheels "health-adapter${EXTRAS:+[$EXTRAS]}" \
 && find /opt/health-adapter/lib \( -name '*.pyx' -o -name '*.pxd' -o -name '*.c' -o -name '*.h' \) -delete

# --- the image: the runtime base, the venv, the trust store, the default config,
# a fixed non-root user
FROM ${RUNTIME_IMAGE}
LABEL org.opencontainers.image.title="health-adapter" \
      org.opencontainers.image.description="Pluggable health probes behind one uniform /health endpoint" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN echo "health-adapter:x:10001:10001:health-adapter:/nonexistent:/usr/sbin/nologin" >> /etc/passwd \
 && echo "health-adapter:x:10001:" >> /etc/group
# The build stage's trust store (Debian's ca-certificates, or the bundle
# build-base-image.sh put there) for https checks; a runtime base may have none.
COPY --from=builder /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=builder /opt/health-adapter /opt/health-adapter
COPY deploy/image/config.yaml /etc/health-adapter/config.yaml
COPY deploy/image/alive.py /opt/health-adapter/bin/health-adapter-alive
ENV PATH=/opt/health-adapter/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HEALTH_ADAPTER_CONFIG=/etc/health-adapter/config.yaml
USER 10001:10001
EXPOSE 9180
# Whether the adapter answers at all; the verdict on the application is its answer.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["health-adapter-alive"]
ENTRYPOINT ["health-adapter", "serve"]
