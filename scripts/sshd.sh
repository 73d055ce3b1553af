#!/usr/bin/env bash
# Start/stop a throwaway OpenSSH server (SFTP only in practice) for tests, on loopback only.
#
#   scripts/sshd.sh start DIR   create (if needed) host and client keys and a config in DIR,
#                               start sshd on a free 127.0.0.1 port, wait until it answers,
#                               print its URL (the only line on stdout; when already running,
#                               prints it again):
#                                 sftp://USER@127.0.0.1:PORT
#                               and write DIR/env (KEY=VALUE lines, sourceable):
#                                 WORKBENCH_TEST_SFTP_URL=sftp://USER@127.0.0.1:PORT
#                                 WORKBENCH_TEST_SFTP_KEY=/abs/DIR/client_ed25519   (private key)
#                                 WORKBENCH_TEST_SFTP_ROOT=/abs/DIR/export          (export dir)
#   scripts/sshd.sh stop DIR    stop it (and its per-connection children); fine when not running
#   scripts/sshd.sh status DIR  exit 0 when running (and print the URL), 3 when not
#
# USER is the current OS user (root in CI); only that user may log in, with the client key
# only (no passwords). Paths over SFTP are the server's real paths (no chroot): files go
# under DIR/export, which is also the SFTP session's starting directory.
# Layout of DIR: sshd_config, host_ed25519_key, client_ed25519(.pub), authorized_keys,
# export/, sshd.pid, port, log (server log), env. Test use only.
set -euo pipefail

usage() {
  echo "usage: $0 start|stop|status DIR" >&2
  exit 2
}
[ "$#" -eq 2 ] || usage
ACTION="$1"
mkdir -p "$2"
DIR="$(cd "$2" && pwd -P)"

log() { printf 'sshd.sh: %s\n' "$*" >&2; }
die() {
  log "ERROR: $*"
  exit 1
}

CONFIG="$DIR/sshd_config"
HOST_KEY="$DIR/host_ed25519_key"
CLIENT_KEY="$DIR/client_ed25519"
AUTH_KEYS="$DIR/authorized_keys"
EXPORT="$DIR/export"
PIDFILE="$DIR/sshd.pid"
PORTFILE="$DIR/port"
LOGFILE="$DIR/log"
ENVFILE="$DIR/env"

USER_NAME="$(id -un)"

url() { echo "sftp://$USER_NAME@127.0.0.1:$1"; }

# --- binaries ----------------------------------------------------------------
find_bin() {
  local name="$1" d
  for d in /usr/sbin /usr/bin /usr/local/sbin /usr/local/bin; do
    if [ -x "$d/$name" ]; then
      echo "$d/$name"
      return 0
    fi
  done
  command -v "$name" 2>/dev/null || return 1
}

# --- state -------------------------------------------------------------------
running_pid() {
  # the pid in DIR/sshd.pid, when that process is alive and is an sshd using DIR's config
  local pid
  pid="$(cat "$PIDFILE" 2>/dev/null || true)"
  case "$pid" in '' | *[!0-9]*) return 1 ;; esac
  kill -0 "$pid" 2>/dev/null || return 1
  if [ -r "/proc/$pid/cmdline" ]; then
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$CONFIG" || return 1
  fi
  echo "$pid"
}

is_running() { running_pid >/dev/null; }

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

# True when 127.0.0.1:PORT accepts a connection and greets like an SSH server.
answers() {
  local port="$1" banner
  banner="$(timeout 3 bash -c "exec 3<>/dev/tcp/127.0.0.1/$port && head -c 4 <&3" 2>/dev/null || true)"
  [ "$banner" = "SSH-" ]
}

wait_ready() {
  local port="$1" _
  for _ in $(seq 1 60); do
    if answers "$port"; then
      return 0
    fi
    sleep 0.5
  done
  log "last lines of $LOGFILE:"
  tail -n 20 "$LOGFILE" >&2 || true
  die "sshd did not answer on 127.0.0.1:$port within 30 s"
}

# --- keys and config ---------------------------------------------------------
make_keys() {
  local keygen
  keygen="$(find_bin ssh-keygen)" \
    || die "ssh-keygen not found (install the Debian package 'openssh-server': make setup)"
  if [ ! -s "$HOST_KEY" ] || [ ! -s "$HOST_KEY.pub" ]; then
    rm -f "$HOST_KEY" "$HOST_KEY.pub"
    log "generating host key $HOST_KEY"
    "$keygen" -q -t ed25519 -N '' -C "workbench-test-sshd-host" -f "$HOST_KEY" >&2
  fi
  if [ ! -s "$CLIENT_KEY" ] || [ ! -s "$CLIENT_KEY.pub" ]; then
    rm -f "$CLIENT_KEY" "$CLIENT_KEY.pub"
    log "generating client key $CLIENT_KEY"
    "$keygen" -q -t ed25519 -N '' -C "workbench-test-client" -f "$CLIENT_KEY" >&2
  fi
  chmod 600 "$HOST_KEY" "$CLIENT_KEY"
  cp "$CLIENT_KEY.pub" "$AUTH_KEYS"
  chmod 600 "$AUTH_KEYS"
  mkdir -p "$EXPORT"
}

# `UsePAM no` (PAM wants root and /etc/pam.d/sshd) makes sshd itself refuse an account whose
# shadow password starts with "!" ("account is locked"), as root is in some images; only PAM
# lets such an account log in with a key.
use_pam() {
  local hash
  if [ "$(id -u)" -eq 0 ] && [ -e /etc/pam.d/sshd ]; then
    hash="$(getent shadow "$USER_NAME" 2>/dev/null | cut -d: -f2 || true)"
    case "$hash" in '!'*)
      echo yes
      return 0
      ;;
    esac
  fi
  echo no
}

write_config() {
  local port="$1" sftp="internal-sftp"
  # start SFTP sessions in the export dir (sshd re-splits the line: not for odd paths)
  case "$EXPORT" in *[[:space:]%\"\']*) ;; *) sftp="internal-sftp -d $EXPORT" ;; esac
  cat >"$CONFIG" <<CONF
# written by scripts/sshd.sh: a throwaway SFTP server for tests
ListenAddress 127.0.0.1:$port
HostKey "$HOST_KEY"
PidFile "$PIDFILE"
AuthorizedKeysFile "$AUTH_KEYS"
AllowUsers $USER_NAME
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM $(use_pam)
StrictModes no
AllowAgentForwarding no
AllowTcpForwarding no
X11Forwarding no
PrintMotd no
MaxStartups 100
MaxSessions 100
Subsystem sftp $sftp
CONF
}

# sshd as root needs its privilege separation directory (Debian: /run/sshd, made by the
# service unit, which never ran in a container).
privsep_dir() {
  [ "$(id -u)" -eq 0 ] || return 0
  local d
  for d in /run/sshd /var/run/sshd; do
    if [ -d "$(dirname "$d")" ] && [ ! -d "$d" ]; then
      mkdir -p "$d"
      chmod 755 "$d"
    fi
  done
}

start() {
  SSHD="$(find_bin sshd)" \
    || die "sshd not found (install the Debian package 'openssh-server': make setup)"
  local pid port
  if pid="$(running_pid)" && port="$(cat "$PORTFILE" 2>/dev/null)"; then
    wait_ready "$port"
  else
    [ -z "${pid:-}" ] || stop
    make_keys
    privsep_dir
    local attempt ok=0
    for attempt in 1 2 3; do
      port="$(free_port)"
      write_config "$port"
      echo "$port" >"$PORTFILE"
      rm -f "$PIDFILE"
      log "starting sshd on 127.0.0.1:$port (log: $LOGFILE)"
      # listens before it daemonizes: a taken port or a bad config fails here
      if "$SSHD" -f "$CONFIG" -E "$LOGFILE" </dev/null >&2; then
        ok=1
        break
      fi
      log "start attempt $attempt failed"
    done
    if [ "$ok" -ne 1 ]; then
      tail -n 20 "$LOGFILE" >&2 || true
      die "could not start sshd (see $LOGFILE)"
    fi
    wait_ready "$port"
  fi
  {
    echo "WORKBENCH_TEST_SFTP_URL=$(url "$port")"
    echo "WORKBENCH_TEST_SFTP_KEY=$CLIENT_KEY"
    echo "WORKBENCH_TEST_SFTP_ROOT=$EXPORT"
  } >"$ENVFILE"
  url "$port"
}

stop() {
  local pid children _
  if ! pid="$(running_pid)"; then
    log "sshd in $DIR is not running"
    rm -f "$PIDFILE"
    return 0
  fi
  log "stopping sshd in $DIR (pid $pid)"
  # per-connection processes first: they outlive the listener
  children="$(pgrep -P "$pid" 2>/dev/null || true)"
  # shellcheck disable=SC2086  # a list of pids
  [ -z "$children" ] || kill -TERM $children 2>/dev/null || true
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 50); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "sshd (pid $pid) ignored SIGTERM: SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$PIDFILE"
}

case "$ACTION" in
  start) start ;;
  stop) stop ;;
  status)
    if is_running; then url "$(cat "$PORTFILE")"; else exit 3; fi
    ;;
  *) usage ;;
esac
