#!/usr/bin/env bash
# Regenerates .sqlx/, the query metadata that lets every crate build with no
# database (SQLX_OFFLINE=true, set in .cargo/config.toml): each crate with a
# sqlx.toml gets a fresh database with its migrations, and the query macros
# describe their queries against it.
#
#   deploy/native/sqlx-prepare.sh           rewrite .sqlx/
#   deploy/native/sqlx-prepare.sh --check   fail if .sqlx/ is stale
#
# With SQLX_PREPARE_LINT=1 the crates are compiled by clippy (warnings
# denied) instead of `cargo check`: CI lints and describes the queries in
# one pass over the workspace instead of two.
#
# Needs PostgreSQL (deploy/native/stack.sh up). Crates that embed the outbox
# get its migrations first, as at run time.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
SERVER="${PREPARE_DATABASE_SERVER:-postgres://postgres@127.0.0.1:5432}"
export PGOPTIONS="--client-min-messages=warning"
mode="${1:-write}"
cd "$ROOT"

out="$(mktemp -d)"
databases=()
cleanup() {
  rm -rf "$out"
  for db in "${databases[@]}"; do
    psql "$SERVER/postgres" -q -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
  done
}
trap cleanup EXIT

packages=()
for config in $(git ls-files --cached --others --exclude-standard '*sqlx.toml'); do
  dir="$(dirname "$config")"
  var="$(sed -n 's/^database-url-var = "\(.*\)"/\1/p' "$config")"
  package="$(sed -n 's/^name = "\(.*\)"/\1/p' "$dir/Cargo.toml" | head -n 1)"
  # Named for this run (its pid): a run on the same server at the same time
  # (CI's lint step beside someone's prepare) must not drop this one's.
  db="sqlx_prepare_$(echo "$package" | tr '-' '_')_$$"
  psql "$SERVER/postgres" -q -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db" >/dev/null
  databases+=("$db")
  migrations=(shared/outbox/migrations/*.sql)
  if [ "$dir" != shared/outbox ] && [ -d "$dir/migrations" ]; then
    migrations+=("$dir"/migrations/*.sql)
  fi
  for migration in "${migrations[@]}"; do
    psql "$SERVER/$db" -q -v ON_ERROR_STOP=1 -f "$migration" >/dev/null
  done
  export "$var=$SERVER/$db"
  packages+=("$package")
done

# The macros only run when their crate compiles; make sure each one does.
for package in "${packages[@]}"; do
  cargo clean --quiet -p "$package"
done
if [ "${SQLX_PREPARE_LINT:-0}" = 1 ]; then
  SQLX_OFFLINE=false SQLX_OFFLINE_DIR="$out" \
    cargo clippy --quiet --workspace --all-targets --all-features -- -D warnings
else
  SQLX_OFFLINE=false SQLX_OFFLINE_DIR="$out" cargo check --quiet --workspace --all-targets --all-features
fi

if [ "$mode" = --check ]; then
  if ! diff -r "$out" .sqlx >/dev/null 2>&1; then
    diff -r "$out" .sqlx || true
    echo "sqlx-prepare: .sqlx/ is stale; run deploy/native/sqlx-prepare.sh and commit the result" >&2
    exit 1
  fi
  echo "sqlx-prepare: .sqlx/ is up to date"
else
  rm -rf .sqlx
  cp -r "$out" .sqlx
  echo "sqlx-prepare: wrote $(ls .sqlx | wc -l) query descriptions to .sqlx/"
fi
