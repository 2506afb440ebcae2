#!/usr/bin/env bash
# The infrastructure the services need, on this machine, without Docker:
# PostgreSQL on 127.0.0.1:5432 and a Kafka-compatible broker on 127.0.0.1:9092
# with every topic and dead-letter topic created.
#
#   deploy/native/stack.sh up       start what is not running (installs what is missing)
#   deploy/native/stack.sh start    `up`, then build and start the five services and a mail catcher
#   deploy/native/stack.sh stop     stop the services and the mail catcher
#   deploy/native/stack.sh down     `stop`, then stop what `up` started
#   deploy/native/stack.sh status
#
# The broker is Tansu (Apache-2.0, from crates.io), with durable SQLite storage
# under .stack/broker/. Services only speak the Kafka protocol to it.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
STATE="${CHECKOUT_STACK_DIR:-$ROOT/.stack}"
BROKER_HOST=127.0.0.1
BROKER_PORT=9092
PARTITIONS="${CHECKOUT_TOPIC_PARTITIONS:-6}"
TANSU_VERSION=0.6.0
export PATH="$HOME/.cargo/bin:$PATH"

log() { printf 'stack: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

# wait_until <seconds> <description> <command...>
wait_until() {
  local seconds=$1 what=$2
  shift 2
  for _ in $(seq $((seconds * 5))); do
    if "$@"; then return 0; fi
    sleep 0.2
  done
  die "timed out after ${seconds}s waiting for $what"
}

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

postgres_ready() { pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; }

ensure_postgres() {
  if command -v pg_isready >/dev/null && postgres_ready; then
    log "postgres: running on 127.0.0.1:5432"
    return
  fi
  local fresh=0
  if ! compgen -G "/usr/lib/postgresql/*/bin/postgres" >/dev/null; then
    log "postgres: not installed; installing with apt"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    fresh=1
  fi
  local version
  version="$(ls /etc/postgresql | sort -V | tail -n 1)"
  if [ "$fresh" -eq 1 ]; then
    # A development database: trust local connections, as the services expect.
    as_root sed -i -E 's/^(host[[:space:]]+all[[:space:]]+all[[:space:]]+(127\.0\.0\.1\/32|::1\/128)[[:space:]]+)[^[:space:]]+/\1trust/' \
      "/etc/postgresql/$version/main/pg_hba.conf"
  fi
  log "postgres: starting cluster $version/main"
  as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  wait_until 30 "postgres to accept connections" postgres_ready
  touch "$STATE/started-postgres"
}

broker_ready() { port_open "$BROKER_HOST" "$BROKER_PORT"; }

topics_tool() { (cd "$ROOT" && cargo run --quiet -p checkout-kafka --bin checkout-topics -- "$@"); }

# The port can be open while the broker no longer serves requests (its
# storage task can die); ask it for metadata. `check` exits 3 for missing
# topics, which still proves the broker answers.
broker_answers() {
  local code=0
  topics_tool check >/dev/null 2>&1 || code=$?
  [ "$code" -eq 0 ] || [ "$code" -eq 3 ]
}

ensure_broker() {
  if broker_ready; then
    if broker_answers; then
      log "broker: running on $BROKER_HOST:$BROKER_PORT"
      return
    fi
    if [ -f "$STATE/broker.pid" ] && kill -0 "$(cat "$STATE/broker.pid")" 2>/dev/null; then
      log "broker: listening but not answering; restarting it (log: $STATE/broker.log)"
      stop_pidfile broker
    else
      die "something listens on $BROKER_HOST:$BROKER_PORT but does not answer as a Kafka broker; stop it first"
    fi
  fi
  if ! command -v tansu >/dev/null; then
    log "broker: installing tansu $TANSU_VERSION (builds from source; about 10 minutes the first time)"
    cargo install tansu --version "$TANSU_VERSION" --locked --features dynostore,libsql,postgres
  fi
  mkdir -p "$STATE/broker"
  log "broker: starting tansu on $BROKER_HOST:$BROKER_PORT (log: $STATE/broker.log)"
  # Tansu reads .env from its working directory and OTEL_* from the
  # environment; run it in its own directory without our telemetry settings.
  (
    cd "$STATE/broker"
    env -u OTEL_EXPORTER_OTLP_ENDPOINT nohup tansu broker \
      --listener-url "tcp://$BROKER_HOST:$BROKER_PORT" \
      --advertised-listener-url "tcp://$BROKER_HOST:$BROKER_PORT" \
      --storage-engine sqlite://tansu.db >"$STATE/broker.log" 2>&1 &
    echo $! >"$STATE/broker.pid"
  )
  wait_until 30 "the broker to listen (see $STATE/broker.log)" broker_ready
}

# Tansu 0.6 looks up each fetched record's headers by (topition, offset_id),
# a column pair its SQLite schema does not index: every fetch then scans all
# headers ever written and throughput falls as data accumulates (~5000 msg/s
# on a fresh store, ~150 msg/s after a few thousand records). The index
# keeps fetches constant-time.
index_broker_store() {
  local store="$STATE/broker/tansu.db"
  local sql="CREATE INDEX IF NOT EXISTS header_record ON header (topition, offset_id)"
  [ -f "$store" ] || return 0
  wait_until 30 "the broker schema" bash -c "sqlite_has_header_table '$store'"
  if command -v sqlite3 >/dev/null; then
    sqlite3 -cmd ".timeout 10000" "$store" "$sql"
  else
    python3 -c "import sqlite3,sys; c=sqlite3.connect(sys.argv[1], timeout=10); c.execute(sys.argv[2]); c.commit()" "$store" "$sql"
  fi
}

sqlite_has_header_table() {
  python3 -c "import sqlite3,sys; c=sqlite3.connect(sys.argv[1], timeout=10); sys.exit(0 if c.execute(\"select 1 from sqlite_master where name='header'\").fetchone() else 1)" "$1"
}
export -f sqlite_has_header_table

ensure_topics() {
  topics_tool create --partitions "$PARTITIONS"
}

stop_pidfile() {
  local name=$1 file="$STATE/$1.pid"
  [ -f "$file" ] || return 0
  local pid
  pid="$(cat "$file")"
  if kill -0 "$pid" 2>/dev/null; then
    log "$name: stopping (pid $pid)"
    kill "$pid"
    wait_until 20 "$name to stop" bash -c "! kill -0 $pid 2>/dev/null"
  fi
  rm -f "$file"
}

SERVICES="order orchestrator inventory payment notification"
PROFILE="${CHECKOUT_PROFILE:-release}"

port_of() {
  case "$1" in
    order) echo 8080 ;; orchestrator) echo 8081 ;; inventory) echo 8082 ;; payment) echo 8083 ;; notification) echo 8084 ;;
  esac
}

ensure_databases() {
  for service in $SERVICES; do
    if ! psql -h 127.0.0.1 -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'checkout_$service'" | grep -q 1; then
      log "postgres: creating database checkout_$service"
      psql -h 127.0.0.1 -U postgres -qc "CREATE DATABASE checkout_$service"
    fi
  done
}

# A local stand-in for Mailpit: MailDev from npm (SMTP on 1025, web UI on 1080).
ensure_mail_catcher() {
  if port_open 127.0.0.1 1025; then
    log "mail: an SMTP server already listens on 127.0.0.1:1025"
    return
  fi
  if ! command -v npx >/dev/null; then
    log "mail: no SMTP server on 127.0.0.1:1025 and no npx to start MailDev; emails will be retried until one appears"
    return
  fi
  log "mail: starting MailDev (SMTP 127.0.0.1:1025, web UI http://127.0.0.1:1080)"
  nohup npx --yes maildev@3 --ip 127.0.0.1 --smtp 1025 --web 1080 >"$STATE/logs/maildev.log" 2>&1 &
  echo $! >"$STATE/maildev.pid"
  wait_until 180 "MailDev to accept SMTP connections (see $STATE/logs/maildev.log)" port_open 127.0.0.1 1025
}

service_ready() { curl -fsS "http://127.0.0.1:$1/readyz" >/dev/null 2>&1; }

start_services() {
  local flag=()
  [ "$PROFILE" = release ] && flag=(--release)
  log "services: building ($PROFILE)"
  (cd "$ROOT" && cargo build --quiet --bins "${flag[@]}")
  mkdir -p "$STATE/logs"
  for service in $SERVICES; do
    local port
    port="$(port_of "$service")"
    if [ -f "$STATE/$service.pid" ] && kill -0 "$(cat "$STATE/$service.pid")" 2>/dev/null; then
      log "$service: already running"
      continue
    fi
    env -u OTEL_EXPORTER_OTLP_ENDPOINT \
      HTTP_ADDR="127.0.0.1:$port" \
      DATABASE_URL="postgres://postgres@127.0.0.1:5432/checkout_$service" \
      KAFKA_BOOTSTRAP_SERVERS="$BROKER_HOST:$BROKER_PORT" \
      LOG_FORMAT="${LOG_FORMAT:-text}" \
      OTEL_EXPORTER_OTLP_ENDPOINT="${CHECKOUT_OTLP_ENDPOINT:-}" \
      nohup "$ROOT/target/$PROFILE/$service" >"$STATE/logs/$service.log" 2>&1 &
    echo $! >"$STATE/$service.pid"
  done
  for service in $SERVICES; do
    wait_until 90 "$service to be ready (see $STATE/logs/$service.log)" service_ready "$(port_of "$service")"
    log "$service: ready on http://127.0.0.1:$(port_of "$service")"
  done
}

stop_services() {
  for service in $SERVICES; do stop_pidfile "$service"; done
  stop_pidfile maildev
}

cmd="${1:-up}"
mkdir -p "$STATE"
case "$cmd" in
  up)
    ensure_postgres
    ensure_broker
    index_broker_store
    ensure_topics
    ;;
  start)
    mkdir -p "$STATE/logs"
    ensure_postgres
    ensure_broker
    index_broker_store
    ensure_topics
    ensure_databases
    ensure_mail_catcher
    start_services
    cat <<EOF

The checkout is open:
  orders        http://127.0.0.1:8080/orders   (OpenAPI: http://127.0.0.1:8080/openapi.json)
  sagas         http://127.0.0.1:8081/sagas
  products      http://127.0.0.1:8082/products
  payments      http://127.0.0.1:8083/payments/{order_id}
  emails        http://127.0.0.1:1080          (MailDev)
Logs in $STATE/logs; stop with: deploy/native/stack.sh stop
EOF
    ;;
  stop)
    stop_services
    ;;
  down)
    stop_services
    stop_pidfile broker
    if [ -f "$STATE/started-postgres" ]; then
      log "postgres: stopping the cluster this script started"
      as_root pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -n 1)" main stop || true
      rm -f "$STATE/started-postgres"
    fi
    ;;
  status)
    if postgres_ready; then echo "postgres: up (127.0.0.1:5432)"; else echo "postgres: down"; fi
    for service in $SERVICES; do
      if service_ready "$(port_of "$service")"; then echo "$service: ready"; else echo "$service: not running"; fi
    done
    if ! broker_ready; then
      echo "broker:   down"
    elif broker_answers; then
      echo "broker:   up ($BROKER_HOST:$BROKER_PORT)"
    else
      echo "broker:   listening on $BROKER_HOST:$BROKER_PORT but not answering"
    fi
    ;;
  *)
    die "usage: $0 up|start|stop|down|status"
    ;;
esac
