#!/usr/bin/env bash
# Idempotent set-up of a development / CI machine for Audience Workbench.
#
#   1. Debian packages the tests need (installed only when missing).
#   2. A virtualenv in .venv with `pip install -e '.[dev]'`, redone only when
#      pyproject.toml changed since the last install (stamp file in .venv).
#
# A second run with nothing to do takes about a second.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

# Debian packages the project needs (later issues add e.g. chromium here).
APT_PACKAGES=(
  postgresql     # server + client: scripts/pg.sh starts a throwaway cluster for tests
  openssh-server # sshd on loopback for the sftp:// destination tests
  chromium       # headless browser for the notebook-widget and dashboard tests (Playwright)
)

VENV=.venv

log() { printf 'setup: %s\n' "$*" >&2; }

# --- 1. Debian packages ------------------------------------------------------
install_apt_packages() {
  if ! command -v dpkg >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1; then
    log "no dpkg/apt-get here: install these yourself: ${APT_PACKAGES[*]}"
    return 0
  fi

  local missing=() pkg
  for pkg in "${APT_PACKAGES[@]}"; do
    if ! dpkg -s "$pkg" 2>/dev/null | grep -q '^Status: install ok installed$'; then
      missing+=("$pkg")
    fi
  done
  if [ "${#missing[@]}" -eq 0 ]; then
    log "system packages: ok (${APT_PACKAGES[*]})"
    return 0
  fi

  local sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    if ! command -v sudo >/dev/null 2>&1; then
      log "WARNING: missing system packages: ${missing[*]}"
      log "WARNING: not root and no sudo: install them yourself; tests that need them will say so"
      return 0
    fi
    # -n: never wait for a password without a terminal (CI has no stdin).
    if [ -t 0 ]; then sudo=(sudo); else sudo=(sudo -n); fi
  fi

  log "installing system packages: ${missing[*]} (apt-get; a minute or two)"
  local aptlog
  aptlog="$(mktemp)"
  if ! { "${sudo[@]}" apt-get update -q \
    && "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
      apt-get install -y -q --no-install-recommends "${missing[@]}"; } >"$aptlog" 2>&1; then
    tail -n 30 "$aptlog" >&2
    rm -f "$aptlog"
    if [ "${#sudo[@]}" -gt 0 ]; then
      log "WARNING: could not install ${missing[*]} with sudo; tests that need them will say so"
      return 0
    fi
    log "ERROR: apt-get install ${missing[*]} failed"
    return 1
  fi
  rm -f "$aptlog"
  log "system packages: installed ${missing[*]}"
}

# --- 2. virtualenv + editable install ---------------------------------------
find_python() {
  local py
  for py in python3.11 python3; do
    if command -v "$py" >/dev/null 2>&1 \
      && "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      echo "$py"
      return 0
    fi
  done
  log "ERROR: Python >= 3.11 not found (tried python3.11, python3)"
  return 1
}

setup_venv() {
  if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c 'import sys' 2>/dev/null; then
    :
  else
    local py
    py="$(find_python)"
    log "creating $VENV with $py"
    rm -rf "$VENV"
    "$py" -m venv "$VENV"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip >&2
  fi

  local sha stamp
  sha="$(sha256sum pyproject.toml | cut -d' ' -f1)"
  stamp="$VENV/.installed-$sha"
  if [ -e "$stamp" ]; then
    log "python packages: ok ($VENV up to date with pyproject.toml)"
    return 0
  fi

  log "installing python packages: pip install -e '.[dev]' (pyproject.toml changed)"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check --progress-bar off \
    -e '.[dev]' >&2
  rm -f "$VENV"/.installed-*
  touch "$stamp"
  log "python packages: installed"
}

install_apt_packages
setup_venv
