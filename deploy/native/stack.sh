#!/usr/bin/env bash
# The infrastructure the services need, on this machine, without Docker:
# PostgreSQL on 127.0.0.1:5432, Apache Kafka on 127.0.0.1:9092 with every
# topic and dead-letter topic created, and a mail catcher (MailDev: SMTP on
# 127.0.0.1:1025, web UI on http://127.0.0.1:1080).
#
#   deploy/native/stack.sh up       start what is not running (installs what is missing)
#   deploy/native/stack.sh start    `up`, then build and start the five services
#   deploy/native/stack.sh stop     stop the services
#   deploy/native/stack.sh down     `stop`, then stop what `up` started (the broker with a controlled shutdown)
#   deploy/native/stack.sh status
#
# Kafka is the broker users run (the apache/kafka image in docker-compose.yml),
# here from Maven Central jars (deploy/kafka/pom.xml, copied once to
# .stack/kafka/libs/): a single KRaft node, broker and controller, with its
# data under .stack/kafka/data/. Services only speak the Kafka protocol to it.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
STATE="${CHECKOUT_STACK_DIR:-$ROOT/.stack}"
BROKER_HOST=127.0.0.1
BROKER_PORT=9092
CONTROLLER_PORT=9093
PARTITIONS="${CHECKOUT_TOPIC_PARTITIONS:-6}"
# The same id as CLUSTER_ID in docker-compose.yml: base64url of 16 bytes.
KAFKA_CLUSTER_ID=Y2hlY2tvdXQtc2FnYS0wMQ
KAFKA_DIR="$STATE/kafka"
KAFKA_HEAP="${CHECKOUT_KAFKA_HEAP:-512m}"
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
    ensure_server_settings "$(ls /etc/postgresql | sort -V | tail -n 1)"
    return
  fi
  if ! compgen -G "/usr/lib/postgresql/*/bin/postgres" >/dev/null; then
    log "postgres: not installed; installing with apt"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  fi
  local version hba
  version="$(ls /etc/postgresql | sort -V | tail -n 1)"
  hba="/etc/postgresql/$version/main/pg_hba.conf"
  # A development database: the services and tests connect as postgres over
  # loopback without a password. Debian's default asks for one.
  if grep -Eq '^host[[:space:]]+all[[:space:]]+all[[:space:]]+(127\.0\.0\.1/32|::1/128)[[:space:]]+[^t]' "$hba"; then
    log "postgres: trusting loopback connections in $hba"
    as_root sed -i -E 's/^(host[[:space:]]+all[[:space:]]+all[[:space:]]+(127\.0\.0\.1\/32|::1\/128)[[:space:]]+)[^[:space:]]+/\1trust/' "$hba"
  fi
  log "postgres: starting cluster $version/main"
  as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  # The package may have started the cluster itself before pg_hba.conf was
  # changed: make the running server read it.
  as_root pg_ctlcluster --skip-systemctl-redirect "$version" main reload || true
  wait_until 30 "postgres to accept connections" postgres_ready
  ensure_server_settings "$version"
  touch "$STATE/started-postgres"
}

# Two server settings, set once (ALTER SYSTEM persists) at the cost of one
# restart:
# - pg_stat_statements counts each database's statements: the budget test
#   (tests/budgets) reads it, and so can whoever profiles the stack;
# - max_connections covers every pool the stack may open. The chaos suite runs
#   ten service processes (two of each), each with a pool of
#   DATABASE_MAX_CONNECTIONS (10), one or two listener connections and a relay connection: about
#   130, over PostgreSQL's default of 100. Past the limit a pool's connects are
#   refused ("too many clients") until its acquire times out, so a service
#   whose neighbours hold the connections stalls although its own database
#   shows few.
MAX_CONNECTIONS=300
ensure_server_settings() {
  local settings
  # A server at its connection limit passes pg_isready but refuses psql;
  # wait for a query to be answered rather than read "not set" from a refusal.
  wait_until 60 "postgres to answer a query (it may be at its connection limit)" postgres_answers
  settings="$(psql -h 127.0.0.1 -U postgres -qAtc \
    "SELECT current_setting('shared_preload_libraries') || ' ' || current_setting('max_connections')")"
  if [[ "$settings" == *pg_stat_statements* ]] && [ "${settings##* }" -ge "$MAX_CONNECTIONS" ]; then
    return
  fi
  log "postgres: loading pg_stat_statements, max_connections $MAX_CONNECTIONS (one restart)"
  psql -h 127.0.0.1 -U postgres -qc "ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'" >/dev/null
  psql -h 127.0.0.1 -U postgres -qc "ALTER SYSTEM SET max_connections = $MAX_CONNECTIONS" >/dev/null
  as_root pg_ctlcluster --skip-systemctl-redirect "$1" main restart
  wait_until 30 "postgres to accept connections" postgres_ready
}

postgres_answers() { psql -h 127.0.0.1 -U postgres -qAtc 'SELECT 1' >/dev/null 2>&1; }

broker_ready() { port_open "$BROKER_HOST" "$BROKER_PORT"; }

TOPICS_TOOL="${CARGO_TARGET_DIR:-$ROOT/target}/debug/checkout-topics"
# Built before anything waits on it, so a rebuild never counts as broker start time.
build_topics_tool() {
  if [ ! -x "$TOPICS_TOOL" ] || [ -n "$(find "$ROOT/shared" -newer "$TOPICS_TOOL" -name '*.rs' -print -quit)" ]; then
    log "building checkout-topics"
    (cd "$ROOT" && cargo build --quiet -p checkout-kafka --bin checkout-topics)
  fi
}
topics_tool() { KAFKA_BOOTSTRAP_SERVERS="$BROKER_HOST:$BROKER_PORT" "$TOPICS_TOOL" "$@"; }

# Ready means it answers a metadata request, not that a port is open or a log
# line was written. `check` exits 3 for missing topics, which still proves
# the broker answers.
broker_answers() {
  local code=0
  topics_tool check >/dev/null 2>&1 || code=$?
  [ "$code" -eq 0 ] || [ "$code" -eq 3 ]
}

# The broker's jars, copied from Maven Central by the pinned pom once; a
# changed pom copies them again.
ensure_kafka_jars() {
  local pom="$ROOT/deploy/kafka/pom.xml" stamp
  stamp="$KAFKA_DIR/libs/.pom-$(sha256sum "$pom" | cut -c1-16)"
  [ -f "$stamp" ] && return 0
  command -v mvn >/dev/null || die "broker: Maven is needed to fetch Apache Kafka (apt-get install maven)"
  command -v java >/dev/null || die "broker: a Java 17+ runtime is needed for Apache Kafka"
  log "broker: fetching Apache Kafka $(kafka_version) from Maven Central"
  rm -rf "$KAFKA_DIR/libs"
  mkdir -p "$STATE/logs"
  mvn -B -q -f "$pom" dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$KAFKA_DIR/libs" \
    >"$STATE/logs/kafka-fetch.log" 2>&1 || die "broker: fetching the jars failed (see $STATE/logs/kafka-fetch.log)"
  touch "$stamp"
}

kafka_version() { sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$ROOT/deploy/kafka/pom.xml"; }

kafka_java() {
  java -cp "$KAFKA_DIR/libs/*" -Dlog4j2.configurationFile="$ROOT/deploy/kafka/log4j2.properties" "$@"
}

broker_started() {
  kill -0 "$(cat "$STATE/broker.pid")" 2>/dev/null || die "broker: exited during start (see $STATE/logs/kafka.log)"
  broker_answers
}

ensure_broker() {
  if broker_ready; then
    # A broker that was just killed may hold its port for a moment while its
    # threads exit: wait for the port to close before calling it a stranger.
    for _ in $(seq 50); do
      broker_ready || break
      if broker_answers; then
        log "broker: running on $BROKER_HOST:$BROKER_PORT"
        return
      fi
      sleep 0.2
    done
    broker_ready && die "something listens on $BROKER_HOST:$BROKER_PORT but does not answer as a Kafka broker; stop it first"
  fi
  port_open "$BROKER_HOST" "$CONTROLLER_PORT" && die "something listens on $BROKER_HOST:$CONTROLLER_PORT (the controller's port); stop it first"
  ensure_kafka_jars
  mkdir -p "$KAFKA_DIR/data" "$STATE/logs"
  sed "s|@DATA_DIR@|$KAFKA_DIR/data|" "$ROOT/deploy/kafka/server.properties" >"$KAFKA_DIR/server.properties"
  # Formatting writes the cluster id and the initial metadata; a formatted
  # directory is left alone, so data survives restarts.
  kafka_java kafka.tools.StorageTool format --ignore-formatted \
    --cluster-id "$KAFKA_CLUSTER_ID" --config "$KAFKA_DIR/server.properties" >"$STATE/logs/kafka-format.log" 2>&1 \
    || die "broker: formatting $KAFKA_DIR/data failed (see $STATE/logs/kafka-format.log)"
  log "broker: starting Apache Kafka $(kafka_version) on $BROKER_HOST:$BROKER_PORT (log: $STATE/logs/kafka.log)"
  local started=$SECONDS
  (
    cd "$KAFKA_DIR"
    # OTEL_* would be read by nothing here, but keep the broker's environment plain.
    env -u OTEL_EXPORTER_OTLP_ENDPOINT nohup java \
      -Xms"$KAFKA_HEAP" -Xmx"$KAFKA_HEAP" -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:+ExitOnOutOfMemoryError \
      -Djava.awt.headless=true -Dlog4j2.configurationFile="$ROOT/deploy/kafka/log4j2.properties" \
      -cp "$KAFKA_DIR/libs/*" kafka.Kafka "$KAFKA_DIR/server.properties" >>"$STATE/logs/kafka.log" 2>&1 &
    echo $! >"$STATE/broker.pid"
  )
  wait_until 60 "the broker to answer metadata requests (see $STATE/logs/kafka.log)" broker_started
  log "broker: ready in $((SECONDS - started))s"
}

ensure_topics() {
  topics_tool create --partitions "$PARTITIONS"
}

# stop_pidfile <name> [seconds]: SIGTERM, then wait for the process to exit.
stop_pidfile() {
  local name=$1 file="$STATE/$1.pid" seconds=${2:-20}
  [ -f "$file" ] || return 0
  local pid
  pid="$(cat "$file")"
  if kill -0 "$pid" 2>/dev/null; then
    log "$name: stopping (pid $pid)"
    kill "$pid"
    wait_until "$seconds" "$name to stop" bash -c "! kill -0 $pid 2>/dev/null"
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

# The mail catcher, a local stand-in for Mailpit: MailDev from npm, installed
# into .stack/maildev/, with SMTP on 127.0.0.1:1025 and on 127.0.0.1:1080 its
# web UI (at /) and JSON API (/email, /config). Pinned: MailDev 3 pulls in
# packages that want Node 22, answers its page at / only to a client that asks
# for HTML (anything else gets {"error":"Not found"}) and moved the API under
# /api; 2.2.1 runs on Node 18 and later and serves its page to every client.
MAILDEV_VERSION=2.2.1
MAILDEV_DIR="$STATE/maildev"

# The version of the MailDev answering on 127.0.0.1:1080 (2.x says it at
# /config, 3.x at /api/config); empty when none answers.
maildev_running_version() {
  local path
  for path in /config /api/config; do
    curl -fsS --max-time 2 "http://127.0.0.1:1080$path" 2>/dev/null | sed -n 's/.*"version":"\([^"]*\)".*/\1/p' | grep . && return
  done
  return 0
}

maildev_installed_version() {
  local package="$MAILDEV_DIR/node_modules/maildev/package.json"
  [ -f "$package" ] && node -p 'require(process.argv[1]).version' "$package"
  return 0
}

maildev_started() {
  kill -0 "$(cat "$STATE/maildev.pid")" 2>/dev/null || die "mail: MailDev exited during start (see $STATE/logs/maildev.log)"
  port_open 127.0.0.1 1025 && [ "$(maildev_running_version)" = "$MAILDEV_VERSION" ]
}

# A pid and its descendants: a MailDev started through npx (before the pin)
# runs two processes below the pid that was recorded.
process_tree() {
  local child
  echo "$1"
  for child in $(ps -o pid= --ppid "$1"); do process_tree "$child"; done
}

all_exited() {
  local pid
  for pid in "$@"; do kill -0 "$pid" 2>/dev/null && return 1; done
  return 0
}

stop_mail_catcher() {
  local file="$STATE/maildev.pid" pids
  [ -f "$file" ] || return 0
  mapfile -t pids < <(process_tree "$(cat "$file")")
  if ! all_exited "${pids[@]}"; then
    log "mail: stopping MailDev (pids ${pids[*]})"
    kill "${pids[@]}" 2>/dev/null || true
    wait_until 20 "MailDev to stop" all_exited "${pids[@]}"
  fi
  rm -f "$file"
}

ensure_mail_catcher() {
  if port_open 127.0.0.1 1025; then
    local running
    running="$(maildev_running_version)"
    if [ "$running" = "$MAILDEV_VERSION" ]; then
      log "mail: MailDev $running running (SMTP 127.0.0.1:1025, web UI http://127.0.0.1:1080)"
      return
    fi
    if ! { [ -f "$STATE/maildev.pid" ] && kill -0 "$(cat "$STATE/maildev.pid")" 2>/dev/null; }; then
      log "mail: an SMTP server this script did not start listens on 127.0.0.1:1025 (${running:+MailDev $running, }not MailDev $MAILDEV_VERSION); leaving it"
      return
    fi
    log "mail: MailDev ${running:-of an unknown version} runs, $MAILDEV_VERSION is pinned: restarting it"
    stop_mail_catcher
  fi
  if ! command -v npm >/dev/null; then
    log "mail: no SMTP server on 127.0.0.1:1025 and no npm to install MailDev; emails will be retried until one appears"
    return
  fi
  mkdir -p "$STATE/logs"
  if [ "$(maildev_installed_version)" != "$MAILDEV_VERSION" ]; then
    log "mail: installing MailDev $MAILDEV_VERSION from npm into $MAILDEV_DIR"
    npm install --prefix "$MAILDEV_DIR" --save-exact --no-audit --no-fund "maildev@$MAILDEV_VERSION" \
      >"$STATE/logs/maildev-install.log" 2>&1 || die "mail: installing MailDev failed (see $STATE/logs/maildev-install.log)"
  fi
  log "mail: starting MailDev $MAILDEV_VERSION (SMTP 127.0.0.1:1025, web UI http://127.0.0.1:1080)"
  nohup node "$MAILDEV_DIR/node_modules/maildev/bin/maildev" --ip 127.0.0.1 --smtp 1025 --web 1080 \
    >"$STATE/logs/maildev.log" 2>&1 &
  echo $! >"$STATE/maildev.pid"
  wait_until 60 "MailDev to answer on 127.0.0.1:1025 and :1080 (see $STATE/logs/maildev.log)" maildev_started
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
      OPERATOR_TOKENS="${OPERATOR_TOKENS:-operator=local-operator-token}" \
      OTEL_EXPORTER_OTLP_ENDPOINT="${CHECKOUT_OTLP_ENDPOINT:-}" \
      nohup "${CARGO_TARGET_DIR:-$ROOT/target}/$PROFILE/$service" >"$STATE/logs/$service.log" 2>&1 &
    echo $! >"$STATE/$service.pid"
  done
  for service in $SERVICES; do
    wait_until 90 "$service to be ready (see $STATE/logs/$service.log)" service_ready "$(port_of "$service")"
    log "$service: ready on http://127.0.0.1:$(port_of "$service")"
  done
}

stop_services() {
  for service in $SERVICES; do stop_pidfile "$service"; done
}

cmd="${1:-up}"
mkdir -p "$STATE"
case "$cmd" in up | start | status) build_topics_tool ;; esac
case "$cmd" in
  up)
    ensure_postgres
    ensure_broker
    ensure_topics
    ensure_mail_catcher
    ;;
  start)
    mkdir -p "$STATE/logs"
    ensure_postgres
    ensure_broker
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
    stop_mail_catcher
    # SIGTERM is a controlled shutdown: the log is flushed and closed cleanly,
    # so the next start needs no recovery.
    stop_pidfile broker 60
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
    mail_version="$(maildev_running_version)"
    if [ -n "$mail_version" ]; then
      echo "mail:     MailDev $mail_version (SMTP 127.0.0.1:1025, web UI http://127.0.0.1:1080)"
    elif port_open 127.0.0.1 1025; then
      echo "mail:     an SMTP server on 127.0.0.1:1025, no MailDev on :1080"
    else
      echo "mail:     down"
    fi
    ;;
  *)
    die "usage: $0 up|start|stop|down|status"
    ;;
esac
