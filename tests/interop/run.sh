#!/usr/bin/env bash
# Interoperability tests: third-party libraries against a real vrm-vault server.
#   test_oauth.py           authlib (OAuth 2.0 client) and pyjwt (JWT/JWS verification):
#                           registration, terms, client credentials, receipts;
#   test_grants.py          data grants: authorization code + PKCE, consent, refresh;
#   test_intents.py         intentcasting: webhook receivers verifying with standardwebhooks and
#                           parsing with the cloudevents SDK, polling, SSE resumed with
#                           Last-Event-ID;
#   test_delivery_faults.py webhook deliveries through failing and hanging receivers, a vault
#                           killed with SIGKILL mid-delivery, then restarted, a suspended brand
#                           and a paused one (reached after a minute of failures: ~65 s);
#   test_relay_jwe.py       jwcrypto: through a fake intent relay, the vault's receipt verifies
#                           and its JWE decrypts to exactly the field the person disclosed;
#   test_mcp.py             the official MCP Python SDK (`mcp`) as the person's assistant: discovery
#                           from the 401, registration, approval, tools, a wish a brand receives by
#                           webhook, offers, a proposal the person confirms, refusals;
#   test_schemathesis.py    schemathesis: every operation of /openapi.json with generated cases,
#                           owner and brand credentials, checking for 5xx answers and answers the
#                           document does not describe (status, content type, headers, schema);
#                           four phases, ~140 s;
#   test_relay_e2e.py       the intent relay: nats-server, a relay, two vaults with --relay and
#                           three brands written with requests, joserfc, standardwebhooks,
#                           cloudevents and rfc8785 (needs NATS_SERVER_BIN, as .ci/run sets).
# Builds nothing: pass the server binary in VRM_VAULT_BIN (default: target/debug/vrm-vault of
# this repository).
#
#   VRM_VAULT_BIN=target/debug/vrm-vault bash tests/interop/run.sh
#
# Makes a virtualenv in tests/interop/.venv (git-ignored) with the exact versions of
# tests/interop/requirements.txt from PyPI, reusing it while the requirements and the Python
# interpreter are unchanged. Installs Debian's python3-venv first when `python3 -m venv` lacks it.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
venv="$here/.venv"

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

command -v python3 >/dev/null 2>&1 || { echo "python3 (>= 3.9) is required for the interop test" >&2; exit 1; }

# Debian's python3 ships venv without ensurepip; python3-venv adds it.
if ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq python3-venv >/dev/null
fi

stamp_want="$(cat "$here/requirements.txt" <(python3 -c 'import sys; print(sys.version, sys.executable)') | sha256sum | cut -d' ' -f1)"
stamp_file="$venv/.requirements.sha256"
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp_file" 2>/dev/null || true)" != "$stamp_want" ] \
    || ! "$venv/bin/python" -c 'import sys' >/dev/null 2>&1; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
    --requirement "$here/requirements.txt"
  echo "$stamp_want" >"$stamp_file"
fi

export VRM_VAULT_BIN="${VRM_VAULT_BIN:-$repo/target/debug/vrm-vault}"
# Each test file starts its own server on 127.0.0.1 and bounds itself (RUN_LIMIT_S: 90-110 s,
# 190 s for test_schemathesis.py); `timeout` is the backstop. All run even when one fails; the
# run fails when any did.
failed=()
for test in test_oauth.py test_grants.py test_intents.py test_delivery_faults.py test_mcp.py \
    test_relay_jwe.py test_schemathesis.py test_relay_e2e.py; do
  limit=150
  [ "$test" = test_schemathesis.py ] && limit=215
  echo "== interop: $test"
  PYTHONDONTWRITEBYTECODE=1 timeout --kill-after=10 "$limit" "$venv/bin/python" "$here/$test" \
    || failed+=("$test")
done
if [ "${#failed[@]}" -gt 0 ]; then
  echo "interop: failed: ${failed[*]}" >&2
  exit 1
fi
