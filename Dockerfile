# quoter: the RFQ market maker as a container.
#
#   docker build -t quoter .
#   docker run --rm -v quoter-state:/var/lib/quoter \
#     -v ~/.kalshi/demo-key.pem:/run/secrets/kalshi-key.pem:ro \
#     -e QUOTER_API_KEY_ID=<key id> -p 127.0.0.1:9108:9108 quoter \
#     quoter run --config config/demo.yaml --mode shadow --view none
#
# Runs as an unprivileged user; the private key is mounted read-only (never baked in); all
# state (SQLite store, recordings, control token, logs) lives on the /var/lib/quoter volume.
# /shared exists (owned by the service user) so a volume mounted there is writable: the
# compose file's simulator leaves its demo key and env file in it for the quoter container.
# /metrics and /healthz listen on 0.0.0.0:9108 for a scraper; the control API stays on the
# container's loopback (use `docker exec <c> quoter status` to reach it).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN groupadd --system --gid 10001 quoter \
 && useradd --system --uid 10001 --gid quoter --home-dir /var/lib/quoter --shell /usr/sbin/nologin quoter

WORKDIR /opt/quoter
# The lockfile first: the dependency layer is rebuilt only when the pins change.
COPY requirements.lock pyproject.toml README.md ./
COPY quoter ./quoter
COPY strategies ./strategies
COPY backtests ./backtests
COPY config ./config
RUN pip install -c requirements.lock . \
 && mkdir -p /var/lib/quoter /shared && chown quoter:quoter /var/lib/quoter /shared

# Paths only (where the mounted key and the token file are), never a secret value.
# hadolint ignore=DL3064
ENV QUOTER_DB_PATH=/var/lib/quoter/quoter.db \
    QUOTER_RECORD_DIR=/var/lib/quoter/recordings \
    QUOTER_CONTROL_TOKEN_FILE=/var/lib/quoter/control.token \
    QUOTER_PRIVATE_KEY_PATH=/run/secrets/kalshi-key.pem \
    QUOTER_METRICS_HOST=0.0.0.0 \
    QUOTER_METRICS_PORT=9108 \
    QUOTER_LOG_FORMAT=json

VOLUME ["/var/lib/quoter"]
EXPOSE 9108
USER 10001:10001
WORKDIR /var/lib/quoter

HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:9108/healthz', timeout=2); sys.exit(0)"]

# SIGTERM is an orderly shutdown: stop quoting, cancel open quotes, flush, close.
STOPSIGNAL SIGTERM
CMD ["quoter", "run", "--config", "/opt/quoter/config/demo.yaml", "--mode", "shadow", "--view", "none"]
