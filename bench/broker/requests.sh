#!/usr/bin/env bash
# The native broker's requests per second by API over a window: what each
# kind of client request costs the broker is mostly per request (its request
# metrics and two thread handoffs), so this is where to look first.
#
#   bench/broker/requests.sh [SECONDS]              idle or whatever runs meanwhile (default 10 s)
#   bench/broker/requests.sh -- COMMAND [ARGS...]   over the run of COMMAND (a load, say)
#
# It opens the broker's JMX agent on 127.0.0.1:${BROKER_JMX_PORT:-9999} (with
# `jcmd ManagementAgent.start`, no authentication, loopback only) if it is not
# open yet; it stays open until the broker stops.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
PORT="${BROKER_JMX_PORT:-9999}"
URL="service:jmx:rmi:///jndi/rmi://127.0.0.1:$PORT/jmxrmi"

pid="$(cat "${CHECKOUT_STACK_DIR:-$ROOT/.stack}/broker.pid" 2>/dev/null || true)"
kill -0 "$pid" 2>/dev/null || { echo "requests.sh: no broker running (deploy/native/stack.sh up)" >&2; exit 1; }
if ! (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
  jcmd "$pid" ManagementAgent.start "jmxremote.port=$PORT" jmxremote.host=127.0.0.1 \
    jmxremote.authenticate=false jmxremote.ssl=false >/dev/null
fi
counts() { java "$HERE/BrokerRequests.java" "$URL"; }

before="$(counts)"
started=$(date +%s.%N)
if [ "${1:-}" = "--" ]; then
  shift
  "$@"
else
  sleep "${1:-10}"
fi
after="$(counts)"
seconds=$(awk -v a="$started" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
echo "broker requests per second over $seconds s:"
# By name, not with join(1): its collation need not be Java's sort order.
awk -v s="$seconds" 'NR == FNR { before[$1] = $2; next }
  $2 > before[$1] { printf "  %-28s %8.1f/s\n", $1, ($2 - before[$1]) / s }' <(echo "$before") <(echo "$after")
