#!/usr/bin/env bash
# Everything CI checks, in order: brings up PostgreSQL and the broker if they
# are not running, then formatting, lints, the purity of the core crates, the
# committed query metadata, and every test (unit, property, and integration
# tests against the real database, broker, HTTP and SMTP).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
export PATH="$HOME/.cargo/bin:$PATH"

step() { printf '\n==> %s\n' "$*"; }

step "infrastructure"
deploy/native/stack.sh up

step "formatting"
cargo fmt --all --check

step "lints"
cargo clippy --workspace --all-targets --all-features --quiet -- -D warnings

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

step "query metadata"
deploy/native/sqlx-prepare.sh --check

step "tests"
# The end-to-end tests run the service binaries; build them first.
cargo build --workspace --bins --quiet
cargo test --workspace --all-features --quiet
