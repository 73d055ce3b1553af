#!/usr/bin/env bash
# What `make test` runs after `make setup`: start the services the tests need,
# lint, run pytest (extra arguments are passed to pytest), stop the services.
#
#   scripts/test.sh                  # everything
#   scripts/test.sh -m "not slow"    # what `make test-fast` runs
#
# Exits non-zero when ruff or pytest fails, or when pytest collected no tests.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

VENV=.venv
STATE=.ci/state
mkdir -p "$STATE"

log() { printf 'test: %s\n' "$*" >&2; }

# --- PostgreSQL --------------------------------------------------------------
# One shared cluster in .ci/state/pg; a concurrent run in the same tree (which
# would otherwise stop the server under the first one) gets a private cluster.
PG_DIR="$STATE/pg"
PG_PRIVATE=0
if command -v flock >/dev/null 2>&1; then
  exec 9>"$STATE/pg.lock"
  if ! flock -n 9; then
    PG_DIR="$STATE/pg-$$"
    PG_PRIVATE=1
    log "another test run holds $STATE/pg: using a private cluster in $PG_DIR"
  fi
fi
# sshd for the sftp:// tests (scripts/sshd.sh) follows the same lock: shared .ci/state/sshd,
# or a private one when another run holds it.
SSHD_DIR="$STATE/sshd"
if [ "$PG_PRIVATE" -eq 1 ]; then SSHD_DIR="$STATE/sshd-$$"; fi

# shellcheck disable=SC2317  # invoked by the EXIT trap
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  scripts/pg.sh stop "$PG_DIR" 9>&- >/dev/null || log "WARNING: could not stop PostgreSQL in $PG_DIR"
  bash scripts/sshd.sh stop "$SSHD_DIR" 9>&- >/dev/null || log "WARNING: could not stop sshd in $SSHD_DIR"
  if [ "$PG_PRIVATE" -eq 1 ]; then rm -rf "$PG_DIR" "$SSHD_DIR"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if PG_URL="$(scripts/pg.sh start "$PG_DIR" 9>&-)"; then
  export WORKBENCH_TEST_POSTGRES_URL="$PG_URL"
  log "PostgreSQL: $PG_URL"
else
  unset WORKBENCH_TEST_POSTGRES_URL
  log "WARNING: PostgreSQL did not start: tests that need it will fail in CI, skip elsewhere"
fi

# --- sshd (SFTP) -------------------------------------------------------------
if SFTP_URL="$(bash scripts/sshd.sh start "$SSHD_DIR" 9>&-)"; then
  export WORKBENCH_TEST_SFTP_URL="$SFTP_URL"
  WORKBENCH_TEST_SFTP_KEY="$(sed -n 's/^WORKBENCH_TEST_SFTP_KEY=//p' "$SSHD_DIR/env")"
  WORKBENCH_TEST_SFTP_ROOT="$(sed -n 's/^WORKBENCH_TEST_SFTP_ROOT=//p' "$SSHD_DIR/env")"
  export WORKBENCH_TEST_SFTP_KEY WORKBENCH_TEST_SFTP_ROOT
  log "sshd: $SFTP_URL (export dir: $WORKBENCH_TEST_SFTP_ROOT)"
else
  unset WORKBENCH_TEST_SFTP_URL WORKBENCH_TEST_SFTP_KEY WORKBENCH_TEST_SFTP_ROOT
  log "WARNING: sshd did not start: tests that need it will fail in CI, skip elsewhere"
fi

status=0

# --- lint --------------------------------------------------------------------
lint_paths=()
for p in workbench tests bench; do
  if [ -e "$p" ]; then lint_paths+=("$p"); fi
done
log "ruff check ${lint_paths[*]}"
if ! "$VENV/bin/ruff" check "${lint_paths[@]}"; then
  log "FAILED: ruff check"
  status=1
fi

# --- tests -------------------------------------------------------------------
log "pytest $*"
rc=0
"$VENV/bin/python" -m pytest "$@" 9>&- || rc=$?
if [ "$rc" -eq 5 ]; then
  log "FAILED: pytest collected no tests (exit 5)"
  status=1
elif [ "$rc" -ne 0 ]; then
  log "FAILED: pytest exited $rc"
  status=1
fi

if [ "$status" -eq 0 ]; then log "all passed"; fi
exit "$status"
