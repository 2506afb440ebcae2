#!/usr/bin/env bash
# Our checkout against the same saga as a Restate workflow, on this machine,
# one after the other, with the same load generator (checkout-load) at the
# same rates. For each system:
#
#   1. a sweep (open loop, rising rates) to the saturation point: the highest
#      step whose p99 of POST → saga finished stayed under $P99_MS, with under
#      1 % failed and 90 % of the offered rate achieved; plotted to SVG;
#   2. one caller (closed loop, --clients 1);
#   3. an open loop at half of that system's own saturation rate;
#
# with the CPU time (utime + stime from /proc/<pid>/stat) of all the system's
# processes over each measured window, per saga finished in it. Ours: the
# five services, the Kafka broker's java process and every postgres process.
# Restate: restate-server and the workflow service.
#
#   bench/peers/restate/compare.sh [--quick] [--only checkout|restate]
#
# Ours is brought up as `deploy/native/stack.sh start` does (by running it);
# services this script started are stopped again at the end, PostgreSQL and
# the broker are left as they are. Restate is installed from npm into
# .work/ (gitignored) and started fresh (empty data directory), bound to
# 127.0.0.1 only, and stopped at the end. Results: a Markdown table in
# results/comparison.md (printed too), the sweep plots in results/, every
# run's JSON in .work/results/. With --only, the other system's column is
# from its last run, if any (the table's header says when each was measured).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../../.." && pwd)"
WORK="$HERE/.work"
RAW="$WORK/results"
OUT="$HERE/results"
STACK_DIR="${CHECKOUT_STACK_DIR:-$ROOT/.stack}"
export PATH="$HOME/.cargo/bin:$PATH"

RESTATE_VERSION="${RESTATE_VERSION:-1.7.12}"
INGRESS=http://127.0.0.1:18080
ADMIN=http://127.0.0.1:19070
SERVICE_ADDR=127.0.0.1:19080

# The same limits and rates for both systems.
P99_MS="${P99_MS:-1000}"
LATENCY=finished
FROM="${FROM:-10}"
MAX_RATE="${MAX_RATE:-2000}"
STEP_FACTOR=1.5 STEP_SECS=10 WARMUP=3 RUN_SECS=20 SETTLE=15
ONLY=""
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) STEP_FACTOR=2 STEP_SECS=4 WARMUP=2 RUN_SECS=8 SETTLE=8 ;;
    --only) ONLY="${2:?--only needs checkout or restate}"; shift ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "compare: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
case "$ONLY" in "" | checkout | restate) ;; *) echo "compare: --only checkout|restate" >&2; exit 2 ;; esac

log() { printf 'compare: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }
command -v jq >/dev/null || die "jq is needed (apt-get install jq)"
command -v curl >/dev/null || die "curl is needed"

port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }
answers() { curl -fsS -o /dev/null "$1" 2>/dev/null; }

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

# Sum of utime + stime (clock ticks) of the processes in a comma list.
busy_ticks() {
  local total=0 pid stat rest
  for pid in ${1//,/ }; do
    stat="$(cat "/proc/$pid/stat" 2>/dev/null)" || continue
    rest="${stat##*) }"
    # shellcheck disable=SC2086
    set -- $rest
    total=$((total + ${12} + ${13}))
  done
  echo "$total"
}

# Waits (up to a minute) until the processes use under a fifth of a core,
# so that one run's backlog is not billed to the next.
wait_idle() {
  local pids=$1 hz before after
  hz="$(getconf CLK_TCK)"
  for _ in $(seq 30); do
    before="$(busy_ticks "$pids")"
    sleep 2
    after="$(busy_ticks "$pids")"
    [ $((after - before)) -lt $((hz * 2 / 5)) ] && return 0
  done
  log "still busy after a minute; going on"
}

LOAD="$ROOT/target/release/checkout-load"
build_load() {
  log "building checkout-load (release)"
  (cd "$ROOT" && cargo build --quiet --release -p checkout-load)
}

# measure <system> <pids> <checkout-load target arguments...>
# Runs the sweep, one caller and half saturation; leaves JSON in $RAW.
measure() {
  local system=$1 pids=$2
  shift 2
  local target=("$@") common=(--warmup "$WARMUP" --settle "$SETTLE" --cpu-pid "$pids")
  rm -f "$RAW/$system"-*.json "$RAW/$system"-*.txt
  log "$system: sweep from $FROM/s (x$STEP_FACTOR, ${STEP_SECS}s steps, p99 of POST → saga finished ≤ ${P99_MS} ms)"
  "$LOAD" "${target[@]}" "${common[@]}" --sweep --from "$FROM" --step-factor "$STEP_FACTOR" --max-rate "$MAX_RATE" \
    --step-duration "$STEP_SECS" --latency "$LATENCY" --until-p99 "$P99_MS" \
    --json "$RAW/$system-sweep.json" --plot "$OUT/$system-sweep.svg" | tee "$RAW/$system-sweep.txt"
  wait_idle "$pids"
  log "$system: one caller for ${RUN_SECS}s"
  "$LOAD" "${target[@]}" "${common[@]}" --clients 1 --duration "$RUN_SECS" --json "$RAW/$system-one.json" \
    | tail -n 12 | tee "$RAW/$system-one.txt"
  local saturation half
  saturation="$(jq -r '.saturation.rate // empty' "$RAW/$system-sweep.json")"
  if [ -z "$saturation" ]; then
    log "$system: no step held, so no half-saturation run"
    return
  fi
  half="$(awk -v r="$saturation" 'BEGIN { printf "%.2f", r / 2 }')"
  wait_idle "$pids"
  log "$system: open loop at half saturation, $half/s, for ${RUN_SECS}s"
  "$LOAD" "${target[@]}" "${common[@]}" --rate "$half" --duration "$RUN_SECS" --json "$RAW/$system-half.json" \
    | tail -n 12 | tee "$RAW/$system-half.txt"
}

# ---- Restate ---------------------------------------------------------------

RESTATE_BIN="$WORK/server/node_modules/@restatedev/restate-server-linux-x64/bin/restate-server"
SERVICE_BIN="$HERE/target/release/checkout-restate"

install_restate() {
  if [ -x "$RESTATE_BIN" ] && "$RESTATE_BIN" --version 2>/dev/null | grep -qF "$RESTATE_VERSION"; then return; fi
  command -v npm >/dev/null || die "npm is needed to install @restatedev/restate-server"
  log "restate: installing @restatedev/restate-server@$RESTATE_VERSION into $WORK/server"
  mkdir -p "$WORK/server"
  [ -f "$WORK/server/package.json" ] || echo '{ "private": true }' >"$WORK/server/package.json"
  npm install --prefix "$WORK/server" --no-audit --no-fund --loglevel=error \
    "@restatedev/restate-server@$RESTATE_VERSION" >"$WORK/npm.log" 2>&1 || die "npm install failed (see $WORK/npm.log)"
  [ -x "$RESTATE_BIN" ] || die "no restate-server binary at $RESTATE_BIN (is this linux-x64?)"
}

stop_pidfile() {
  local file=$1 pid
  [ -f "$file" ] || return 0
  pid="$(cat "$file")"
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid"
    wait_until 60 "pid $pid to stop" bash -c "! kill -0 $pid 2>/dev/null"
  fi
  rm -f "$file"
}

stop_restate() {
  stop_pidfile "$WORK/service.pid"
  stop_pidfile "$WORK/server.pid"
}

start_restate() {
  install_restate
  log "restate: building the workflow service (release)"
  cargo build --quiet --release --manifest-path "$HERE/Cargo.toml"
  stop_restate
  for port in 18080 19070 15122 19080; do
    port_open 127.0.0.1 "$port" && die "something already listens on 127.0.0.1:$port; stop it first"
  done
  rm -rf "$WORK/data"
  mkdir -p "$WORK/data"
  log "restate: starting restate-server $RESTATE_VERSION (ingress $INGRESS, admin $ADMIN; log $WORK/server.log)"
  # It asks GitHub for the latest release once at start; with no network it
  # logs the failure and goes on.
  nohup "$RESTATE_BIN" --config-file "$HERE/restate.toml" --base-dir "$WORK/data" --no-logo \
    >"$WORK/server.log" 2>&1 &
  echo $! >"$WORK/server.pid"
  wait_until 60 "restate-server's admin API (see $WORK/server.log)" answers "$ADMIN/health"
  wait_until 60 "restate-server's ingress" answers "$INGRESS/restate/health"
  CHECKOUT_RESTATE_ADDR="$SERVICE_ADDR" nohup "$SERVICE_BIN" >"$WORK/service.log" 2>&1 &
  echo $! >"$WORK/service.pid"
  wait_until 30 "the workflow service on $SERVICE_ADDR" port_open 127.0.0.1 "${SERVICE_ADDR##*:}"
  log "restate: registering http://$SERVICE_ADDR"
  wait_until 30 "the deployment to register" curl -fsS -o "$WORK/deployment.json" -X POST "$ADMIN/deployments" \
    -H 'content-type: application/json' -d "{\"uri\": \"http://$SERVICE_ADDR\", \"force\": true}"
  jq -e '.services[] | select(.name == "Checkout")' "$WORK/deployment.json" >/dev/null \
    || die "the deployment has no Checkout workflow (see $WORK/deployment.json)"
  local answer
  answer="$(curl -fsS -X POST "$INGRESS/Checkout/smoke-$(date +%s%N)/run" -H 'content-type: application/json' \
    -d '{"customer_id":"compare","email":"smoke@example.com","items":[{"sku":"LOAD-PLENTY-0","quantity":1}],"payment":{"card_token":"tok_visa"}}')"
  [ "$(jq -r .status <<<"$answer")" = confirmed ] || die "a smoke checkout answered $answer"
  log "restate: up (protocol $(jq -r '"v\(.min_protocol_version)–v\(.max_protocol_version)"' "$WORK/deployment.json")), smoke checkout confirmed"
}

run_restate() {
  start_restate
  local pids
  pids="$(cat "$WORK/server.pid"),$(cat "$WORK/service.pid")"
  measure restate "$pids" --target restate --restate-url "$INGRESS"
  stop_restate
}

# ---- ours ------------------------------------------------------------------

SERVICES="order orchestrator inventory payment notification"
STARTED_SERVICES=0

pid_listening_on() { ss -ltnpH "sport = :$1" 2>/dev/null | sed -n 's/.*pid=\([0-9]*\).*/\1/p' | head -n 1; }

checkout_pids() {
  local pids=() service broker
  for service in $SERVICES; do
    [ -f "$STACK_DIR/$service.pid" ] || die "$service: no $STACK_DIR/$service.pid"
    pids+=("$(cat "$STACK_DIR/$service.pid")")
  done
  broker="$(cat "$STACK_DIR/broker.pid" 2>/dev/null || true)"
  kill -0 "${broker:-0}" 2>/dev/null || broker="$(pid_listening_on 9092)"
  [ -n "$broker" ] || die "no Kafka broker process found on 127.0.0.1:9092"
  pids+=("$broker")
  # Every postgres process: the postmaster, its helpers and the backends.
  mapfile -t -O "${#pids[@]}" pids < <(pgrep -x postgres)
  local IFS=,
  echo "${pids[*]}"
}

run_checkout() {
  local ready=0 service
  for service in $SERVICES; do
    if [ -f "$STACK_DIR/$service.pid" ] && kill -0 "$(cat "$STACK_DIR/$service.pid")" 2>/dev/null; then
      ready=$((ready + 1))
    fi
  done
  [ "$ready" -eq 5 ] || STARTED_SERVICES=1
  log "checkout: bringing the native stack up (deploy/native/stack.sh start)"
  "$ROOT/deploy/native/stack.sh" start >"$RAW/stack-start.log" 2>&1 || die "stack.sh start failed (see $RAW/stack-start.log)"
  local pids
  pids="$(checkout_pids)"
  log "checkout: measuring the CPU of $(tr ',' '\n' <<<"$pids" | wc -l) processes"
  measure checkout "$pids" --target checkout
  if [ "$STARTED_SERVICES" -eq 1 ]; then
    log "checkout: stopping the services this script started"
    "$ROOT/deploy/native/stack.sh" stop >>"$RAW/stack-start.log" 2>&1 || true
  fi
}

# ---- the table -------------------------------------------------------------

# field <system> <run> <jq filter>: a number, or empty when there is none.
field() {
  local file="$RAW/$1-$2.json"
  [ -f "$file" ] || return 0
  jq -r "($3) // empty" "$file"
}

row() {
  local name=$1 ours=$2 theirs=$3 ratio="-"
  if [ -n "$ours" ] && [ -n "$theirs" ]; then
    ratio="$(awk -v a="$ours" -v b="$theirs" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }')"
  fi
  printf '| %s | %s | %s | %s |\n' "$name" "${ours:--}" "${theirs:--}" "$ratio"
}

fmt() { [ -z "$1" ] || awk -v v="$1" "BEGIN { printf \"$2\", v }"; }

other_load() {
  local sweep one half
  sweep="$(fmt "$(field "$1" sweep "[.steps[].summary | select(.cpu) | $2] | max")" %.0f)"
  one="$(fmt "$(field "$1" one "select(.cpu) | $2")" %.0f)"
  half="$(fmt "$(field "$1" half "select(.cpu) | $2")" %.0f)"
  echo "${sweep:--} / ${one:--} / ${half:--}"
}

half_rate() {
  local saturation
  saturation="$(field "$1" sweep '.saturation.rate')"
  if [ -n "$saturation" ]; then awk -v r="$saturation" 'BEGIN { printf "%.1f/s", r / 2 }'; else echo "-"; fi
}

table() {
  local at
  at="(at $(half_rate checkout) ours, $(half_rate restate) Restate)"
  echo "| measure | ours | Restate | ours / Restate |"
  echo "|---|---|---|---|"
  row "throughput at saturation (sagas/s, sweep)" \
    "$(fmt "$(field checkout sweep '.saturation.achieved_per_second')" %.1f)" \
    "$(fmt "$(field restate sweep '.saturation.achieved_per_second')" %.1f)"
  row "p50 at 1 caller (ms)" "$(fmt "$(field checkout one '.finished_ms.p50')" %.1f)" "$(fmt "$(field restate one '.finished_ms.p50')" %.1f)"
  row "p99 at 1 caller (ms)" "$(fmt "$(field checkout one '.finished_ms.p99')" %.1f)" "$(fmt "$(field restate one '.finished_ms.p99')" %.1f)"
  row "p50 at half saturation (ms) $at" "$(fmt "$(field checkout half '.finished_ms.p50')" %.1f)" "$(fmt "$(field restate half '.finished_ms.p50')" %.1f)"
  row "p99 at half saturation (ms)" "$(fmt "$(field checkout half '.finished_ms.p99')" %.1f)" "$(fmt "$(field restate half '.finished_ms.p99')" %.1f)"
  row "CPU ms per saga at half saturation" "$(fmt "$(field checkout half '.cpu.ms_per_checkout')" %.2f)" "$(fmt "$(field restate half '.cpu.ms_per_checkout')" %.2f)"
  row "CPU ms per saga at 1 caller" "$(fmt "$(field checkout one '.cpu.ms_per_checkout')" %.2f)" "$(fmt "$(field restate one '.cpu.ms_per_checkout')" %.2f)"
  # Whole machine less the system and the load generator: other work sharing
  # the cores, which skews every figure above when it is not near zero.
  local other='(.cpu.machine_cpu_ms - .cpu.cpu_ms - .cpu.generator_cpu_ms) / 10 / .measured_seconds'
  printf '| %s | %s | %s | %s |\n' "other load on the machine: sweep (worst step) / 1 caller / half saturation (% of a core)" \
    "$(other_load checkout "$other")" "$(other_load restate "$other")" "-"
}

mkdir -p "$RAW" "$OUT"
trap stop_restate EXIT
build_load
[ "$ONLY" = restate ] || run_checkout
[ "$ONLY" = checkout ] || run_restate

{
  echo "Measured $(date -u +%Y-%m-%d) on $(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo);"
  echo "checkout-load, the same rates for both; latency is POST → saga finished (Restate: the workflow call answered);"
  echo "sweep limits: p99 ≤ $P99_MS ms, errors ≤ 1 %, achieved ≥ 90 % of offered; steps x$STEP_FACTOR from $FROM/s, ${STEP_SECS}s each;"
  echo "runs ${RUN_SECS}s after ${WARMUP}s of warm-up; restate-server $RESTATE_VERSION, restate-sdk $(sed -n 's/^restate-sdk = "\(.*\)"/\1/p' "$HERE/Cargo.toml")."
  for system in checkout restate; do
    if [ -f "$RAW/$system-sweep.json" ]; then
      echo "$system: measured $(date -u -r "$RAW/$system-sweep.json" '+%Y-%m-%d %H:%M UTC')."
    else
      echo "$system: not measured."
    fi
  done
  echo
  table
} >"$OUT/comparison.md"
echo
cat "$OUT/comparison.md"
log "table: $OUT/comparison.md; plots: $OUT/*-sweep.svg; raw runs: $RAW"
