#!/usr/bin/env bash
# Start/stop a throwaway PostgreSQL server for tests, on loopback only.
#
#   scripts/pg.sh start DIR   create (if needed) a cluster in DIR, start it on a free
#                             127.0.0.1 port, wait until ready, print its URL:
#                               postgresql://postgres@127.0.0.1:PORT/postgres
#                             (the only line on stdout; when already running, prints it again)
#   scripts/pg.sh stop DIR    stop it (pg_ctl -m fast); fine when not running
#   scripts/pg.sh status DIR  exit 0 when running (and print the URL), 3 when not
#
# Layout of DIR: data/ (the cluster), log (server log), the unix socket.
# Auth is trust for local and 127.0.0.1 connections, fsync is off: test use only.
# As root the server runs as the `postgres` OS user (postgres refuses to run as root).
# When that user cannot reach DIR (e.g. a repo under /root), or DIR is too long for
# a unix socket path, the cluster lives in /tmp/workbench-pg-<hash of DIR> instead.
set -euo pipefail

usage() {
  echo "usage: $0 start|stop|status DIR" >&2
  exit 2
}
[ "$#" -eq 2 ] || usage
ACTION="$1"
mkdir -p "$2"
DIR="$(cd "$2" && pwd -P)"

log() { printf 'pg.sh: %s\n' "$*" >&2; }
die() {
  log "ERROR: $*"
  exit 1
}

# --- binaries: the highest installed major version ---------------------------
BINDIR="$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -type d -name bin 2>/dev/null \
  | sort -V | tail -n 1 || true)"
if [ -z "$BINDIR" ] && command -v pg_ctl >/dev/null 2>&1; then
  BINDIR="$(dirname "$(command -v pg_ctl)")"
fi
if [ -z "$BINDIR" ] || [ ! -x "$BINDIR/initdb" ]; then
  die "PostgreSQL server binaries not found (install the Debian package 'postgresql': make setup)"
fi

# --- who runs the server -----------------------------------------------------
AS_ROOT=0
if [ "$(id -u)" -eq 0 ]; then
  AS_ROOT=1
  id postgres >/dev/null 2>&1 || die "running as root but there is no 'postgres' OS user"
fi

# Run a command as the server's OS user, from / (postgres may not be able to read our cwd).
as_pg() {
  if [ "$AS_ROOT" -eq 1 ]; then
    (cd / && runuser -u postgres -- "$@")
  else
    (cd / && "$@")
  fi
}

# --- where the cluster lives -------------------------------------------------
HOME_DIR="$DIR"
use_tmp_home() {
  HOME_DIR="${TMPDIR:-/tmp}/workbench-pg-$(printf '%s' "$DIR" | sha256sum | cut -c1-12)"
  mkdir -p "$HOME_DIR"
}
# unix socket paths are limited to ~107 bytes
if [ "$(printf '%s' "$DIR/.s.PGSQL.65535" | wc -c)" -gt 100 ]; then
  use_tmp_home
fi
if [ "$AS_ROOT" -eq 1 ]; then
  chown postgres: "$HOME_DIR"
  if ! runuser -u postgres -- test -w "$HOME_DIR" -a -x "$HOME_DIR"; then
    use_tmp_home
    chown postgres: "$HOME_DIR"
  fi
  chmod 700 "$HOME_DIR"
fi
[ "$HOME_DIR" = "$DIR" ] || log "cluster for $DIR lives in $HOME_DIR"

DATA="$HOME_DIR/data"
LOGFILE="$HOME_DIR/log"
PORTFILE="$HOME_DIR/port"

url() { echo "postgresql://postgres@127.0.0.1:$1/postgres"; }

is_running() { [ -f "$DATA/PG_VERSION" ] && as_pg "$BINDIR/pg_ctl" -D "$DATA" status >/dev/null 2>&1; }

running_port() {
  # line 4 of postmaster.pid is the port
  sed -n 4p "$DATA/postmaster.pid" 2>/dev/null || cat "$PORTFILE"
}

free_port() {
  local py
  for py in python3.11 python3 python; do
    if command -v "$py" >/dev/null 2>&1; then
      "$py" -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
      return 0
    fi
  done
  die "python not found (needed to pick a free port)"
}

init_cluster() {
  local want
  want="$("$BINDIR/pg_ctl" --version | sed -E 's/.* ([0-9]+)(\.[0-9]+)?.*/\1/')"
  if [ -f "$DATA/PG_VERSION" ] && [ "$(cat "$DATA/PG_VERSION")" != "$want" ]; then
    log "cluster in $DATA is version $(cat "$DATA/PG_VERSION"), server is $want: recreating"
    rm -rf "$DATA"
  fi
  if [ ! -f "$DATA/PG_VERSION" ]; then
    rm -rf "$DATA"
    log "initdb $DATA (PostgreSQL $want)"
    if ! as_pg "$BINDIR/initdb" -D "$DATA" -U postgres --auth=trust --no-locale -E UTF8 \
      --no-sync >"$HOME_DIR/initdb.log" 2>&1; then
      cat "$HOME_DIR/initdb.log" >&2
      die "initdb failed"
    fi
    printf "\ninclude_if_exists = 'workbench.conf'\n" >>"$DATA/postgresql.conf"
  fi
}

write_conf() {
  local port="$1" sock="${HOME_DIR//\'/\'\'}"
  cat >"$DATA/workbench.conf" <<CONF
# written by scripts/pg.sh: a throwaway server for tests
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$sock'
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 200
CONF
  [ "$AS_ROOT" -eq 0 ] || chown postgres: "$DATA/workbench.conf"
}

wait_ready() {
  local port="$1" _
  for _ in $(seq 1 60); do
    if "$BINDIR/pg_isready" -q -h 127.0.0.1 -p "$port" -U postgres -d postgres; then
      return 0
    fi
    sleep 0.5
  done
  log "last lines of $LOGFILE:"
  tail -n 20 "$LOGFILE" >&2 || true
  die "PostgreSQL did not become ready on 127.0.0.1:$port within 30 s"
}

start() {
  if is_running; then
    local port
    port="$(running_port)"
    wait_ready "$port"
    url "$port"
    return 0
  fi
  init_cluster
  local attempt port
  for attempt in 1 2 3; do
    port="$(free_port)"
    write_conf "$port"
    echo "$port" >"$PORTFILE"
    log "starting PostgreSQL on 127.0.0.1:$port (log: $LOGFILE)"
    if as_pg "$BINDIR/pg_ctl" -D "$DATA" -l "$LOGFILE" -w -t 30 start >&2; then
      wait_ready "$port"
      url "$port"
      return 0
    fi
    log "start attempt $attempt failed"
  done
  tail -n 20 "$LOGFILE" >&2 || true
  die "could not start PostgreSQL (see $LOGFILE)"
}

stop() {
  if is_running; then
    log "stopping PostgreSQL in $DATA"
    as_pg "$BINDIR/pg_ctl" -D "$DATA" -m fast -w -t 30 stop >&2
  else
    log "PostgreSQL in $DATA is not running"
  fi
}

case "$ACTION" in
  start) start ;;
  stop) stop ;;
  status)
    if is_running; then url "$(running_port)"; else exit 3; fi
    ;;
  *) usage ;;
esac
