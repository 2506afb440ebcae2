#!/usr/bin/env bash
# Everything CI checks, in order: formatting, the purity of the core crates
# and the compose file; then it builds, brings up PostgreSQL, the broker and
# MailDev if they are not running, and checks lints, the committed query
# metadata and every test (unit, property, and integration tests against the
# real database, broker, HTTP and SMTP).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
export PATH="$HOME/.cargo/bin:$PATH"

step() { printf '\n==> %s (%d s so far)\n' "$*" "$SECONDS"; }

# CI keeps cargo's build directory between runs on one machine, as CI
# systems cache it: a clean clone then compiles only the workspace's own
# crates (its dependencies are where the last run left them, and cargo
# rebuilds whatever changed). On a fresh machine the directory is empty and
# everything is built.
if [ "${CI:-}" = true ] && [ -z "${CARGO_TARGET_DIR:-}" ]; then
  export CARGO_TARGET_DIR="${XDG_CACHE_HOME:-$HOME/.cache}/checkout-saga/target"
  mkdir -p "$CARGO_TARGET_DIR"
  echo "test.sh: cargo's build directory is $CARGO_TARGET_DIR"
fi

step "formatting"
cargo fmt --all --check

step "pure crates have no I/O dependencies"
for crate in checkout-domain checkout-messages checkout-saga; do
  offenders="$(cargo tree --quiet -p "$crate" -e normal --prefix none | grep -E '^(tokio|sqlx|rdkafka|axum|hyper|reqwest|lettre) ' || true)"
  if [ -n "$offenders" ]; then
    echo "$crate must stay pure but depends on: $offenders" >&2
    exit 1
  fi
  echo "$crate: pure"
done

step "compose file"
# A compose implementation parses and validates the file without a Docker
# engine; Debian's docker-compose package is enough.
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
if ! command -v docker-compose >/dev/null; then
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker-compose >/dev/null
fi
docker-compose -f docker-compose.yml config -q
echo "docker-compose.yml: valid"

step "build"
# The end-to-end tests run the service binaries; build them first, with
# every target, so that they and the tests share one feature set: built
# alone, the binaries unify features without the dev-dependencies, and the
# tests then rebuild about 390 dependencies (measured on a cold build).
# Before the infrastructure, so that stack.sh finds its topics tool built
# with this feature set instead of building its own (6 min on a cold cache).
cargo build --workspace --all-targets --all-features --quiet

step "infrastructure"
deploy/native/stack.sh up

step "lints, and the committed query metadata"
# One clippy pass (warnings denied) that also describes every query against
# fresh databases and compares the result with .sqlx/.
SQLX_PREPARE_LINT=1 deploy/native/sqlx-prepare.sh --check

step "tests"
# Again: the query check cleaned and re-checked the crates with queries.
cargo build --workspace --all-targets --all-features --quiet
cargo test --workspace --all-features --quiet
echo "test.sh: everything passed in $SECONDS s"
