"""Property-based test of the whole HTTP API against its own OpenAPI document, with schemathesis.

The test starts a real vrm-vault (vault_process.Server, `--allow-loopback-webhooks`), sets it up
as a person and a brand would (owner, records, an invitation, a brand registered with it and
bound by the terms, a data grant offered by the owner and the brand's access token carrying it:
schemathesis_hooks.Keeper), then runs `schemathesis run` on the served /openapi.json with these
checks on every response:

  not_a_server_error, status_code_conformance, content_type_conformance,
  response_headers_conformance, response_schema_conformance

Each case carries the credential its operation's `security` requirement in the document names,
open operations none; in about half of the cases that need a value no generator guesses (the
owner's passphrase, a time within the next hour, the brand's client id) the hooks put it in (see
schemathesis_hooks.py).

Phases, one `schemathesis run` each, in this order:
  generated  every operation but the two below: examples from the document, coverage (boundary
             and invalid values, missing credentials), then random cases (fuzzing);
  stateful   the same operations in sequences linked by the values of earlier answers (links
             inferred from the document and from Location headers);
  logout     DELETE /api/v1/session, kept out of the phases above because it ends the owner
             session every other owner case uses (the hooks log in again on the next 401); run on
             a restarted server (SIGTERM, then the same data directory: the owner's login unseals
             it), whose login back-off the fuzzer's wrong passphrases have not filled yet;
  lock       POST /api/v1/vault/lock, kept out for the same reason (it seals the running vault,
             so every other case would meet 503 until the hooks unlock it again), with one worker
             so that no case is sent while the vault is locked;
  delete     DELETE /api/v1/vault, last because it deletes everything: after each deletion that
             succeeds (the real passphrase and confirmation), the hooks set up a new vault.
Credentials the fuzzer breaks along the way (a removed or suspended brand, a revoked grant or
token, an ended agreement, new terms) are repaired by the hooks on the 401 that follows.

Bounded: MAX_EXAMPLES cases per operation and phase, a time budget per phase (schemathesis's
--max-time, with a kill as backstop), and RUN_LIMIT_S for the whole file. Run through
tests/interop/run.sh, or directly:

    VRM_VAULT_BIN=target/debug/vrm-vault tests/interop/.venv/bin/python \\
        tests/interop/test_schemathesis.py

VRM_ST_SEED picks another seed (the default is fixed, so two runs generate the same cases).
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET

from schemathesis_hooks import Keeper
from vault_process import PASSPHRASE, Server

# VRM_ST_SCALE multiplies the time budgets and the whole run's limit, VRM_ST_EXAMPLES sets the
# cases per operation: `VRM_ST_SCALE=6 VRM_ST_EXAMPLES=200` is a run of about a quarter hour.
SCALE = float(os.environ.get("VRM_ST_SCALE", "1"))
RUN_LIMIT_S = int(190 * SCALE)  # the whole test, server start to stop
MAX_EXAMPLES = int(os.environ.get("VRM_ST_EXAMPLES", "25"))  # per operation and phase
# Two: generating cases costs more CPU than answering them, and the machine has two cores.
WORKERS = 2
CHECKS = ",".join(
    (
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_headers_conformance",
        "response_schema_conformance",
    )
)
LOGOUT = "DELETE /api/v1/session"
DELETE_VAULT = "DELETE /api/v1/vault"
LOCK = "POST /api/v1/vault/lock"
EVERY_OTHER = ["--exclude-name", LOGOUT, "--exclude-name", DELETE_VAULT, "--exclude-name", LOCK]
# Phases whose cases must not overlap: locking seals the vault until the hooks unlock it.
ONE_WORKER = {"lock"}
# (name, schemathesis phases, time budget in seconds, operation filters, restart the server first)
PHASES = (
    ("generated", "examples,coverage,fuzzing", int(65 * SCALE), EVERY_OTHER, False),
    ("stateful", "stateful", int(40 * SCALE), EVERY_OTHER, False),
    ("logout", "examples,coverage,fuzzing", int(10 * SCALE), ["--include-name", LOGOUT], True),
    ("lock", "examples,coverage,fuzzing", int(8 * SCALE), ["--include-name", LOCK], False),
    ("delete", "examples,coverage,fuzzing", int(10 * SCALE), ["--include-name", DELETE_VAULT], False),
)
SEED = os.environ.get("VRM_ST_SEED", "20261123")

HERE = os.path.dirname(os.path.abspath(__file__))
SCHEMATHESIS = os.path.join(os.path.dirname(sys.executable), "schemathesis")


def run_phase(base, workdir, name, phases, budget, filters):
    """One `schemathesis run`; returns (exit status, junit report path, calls path)."""
    junit = os.path.join(workdir, f"{name}.xml")
    calls = os.path.join(workdir, f"{name}-calls.json")
    command = [
        SCHEMATHESIS,
        "--no-color",
        "run",
        f"{base}/openapi.json",
        "--phases",
        phases,
        "--checks",
        CHECKS,
        "--max-examples",
        str(MAX_EXAMPLES),
        "--max-time",
        str(budget),
        "--seed",
        SEED,
        "--workers",
        str(1 if name in ONE_WORKER else WORKERS),
        "--request-timeout",
        "10",
        "--continue-on-failure",
        "--generation-database",
        "none",
        "--report",
        "junit",
        "--report-junit-path",
        junit,
        *filters,
    ]
    env = dict(
        os.environ,
        SCHEMATHESIS_HOOKS=os.path.join(HERE, "schemathesis_hooks.py"),
        VRM_ST_STATE=os.path.join(workdir, "credentials.json"),
        VRM_ST_CALLS=calls,
        VRM_ST_SEED=SEED,
        PYTHONDONTWRITEBYTECODE="1",
    )
    print(f"== schemathesis, phase {name} ({phases}; {budget} s)", flush=True)
    started = time.monotonic()
    # Its own process group, so that it is stopped with anything it started when it overruns
    # its budget or the whole test is stopped (RUN_LIMIT_S, SIGTERM).
    proc = subprocess.Popen(command, cwd=workdir, env=env, start_new_session=True)
    try:
        status = proc.wait(budget + 30)
    except subprocess.TimeoutExpired:
        status = "killed"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    print(f"== phase {name}: exit {status} after {time.monotonic() - started:.1f} s", flush=True)
    return status, junit, calls


def restart_server(server, state):
    """Stops the server cleanly and starts it again on the same data directory and port, and
    the owner logs in, which unseals the vault. The last phases need the owner to log in again
    and again, and by now the fuzzer's wrong passphrases have earned every address the global
    login back-off of the running process."""
    server.proc.terminate()
    status = server.proc.wait(15)
    if status != 0:
        raise RuntimeError(f"the server stopped with status {status} on SIGTERM")
    server.start()
    keeper = Keeper.load(state)
    keeper.heal_owner()
    keeper.save()
    print("== server restarted, vault unsealed", flush=True)


def tally(junit):
    """(passed, failed) test cases of a junit report: operations, or stateful scenarios."""
    if not os.path.exists(junit):
        return 0, 0
    passed = failed = 0
    for case in ET.parse(junit).getroot().iter("testcase"):
        if case.find("failure") is not None or case.find("error") is not None:
            failed += 1
        elif case.find("skipped") is None:
            passed += 1
    return passed, failed


def coverage_summary(calls_files):
    """What the run reached: requests per operation by status class, and the operations that
    never got a successful answer (worth a look: their happy path went unchecked)."""
    calls = {}
    for path in calls_files:
        if os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                for label, statuses in json.load(f).items():
                    into = calls.setdefault(label, {})
                    for status, count in statuses.items():
                        into[int(status)] = into.get(int(status), 0) + count
    total = sum(sum(s.values()) for s in calls.values())
    no_success = sorted(
        label for label, s in calls.items() if not any(200 <= code < 400 for code in s)
    )
    print(f"requests: {total} to {len(calls)} operations")
    for label in sorted(calls):
        counts = " ".join(f"{code}:{n}" for code, n in sorted(calls[label].items()))
        print(f"  {label:<48} {counts}")
    print(f"operations without a 2xx/3xx answer: {', '.join(no_success) or 'none'}")


def main():
    def out_of_time(signum, frame):
        raise TimeoutError(f"test_schemathesis.py exceeded {RUN_LIMIT_S} s")

    signal.signal(signal.SIGALRM, out_of_time)
    # run.sh's `timeout` sends SIGTERM: stop through the `finally`s, which stop what was started.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    signal.alarm(RUN_LIMIT_S)
    started = time.monotonic()
    workdir = tempfile.mkdtemp(prefix="vrm-schemathesis-")
    # Loopback is the only proxy: the hooks name the client in X-Forwarded-For (see
    # schemathesis_hooks.KEEPER_ADDRESS).
    server = Server(["--allow-loopback-webhooks", "--trusted-proxy", "127.0.0.1"])
    passed = failed = 0
    calls_files = []
    try:
        base = server.start()
        state = os.path.join(workdir, "credentials.json")
        Keeper(state, base=base, passphrase=PASSPHRASE).bootstrap()
        for name, phases, budget, filters, restart in PHASES:
            if restart:
                restart_server(server, state)
            status, junit, calls = run_phase(base, workdir, name, phases, budget, filters)
            calls_files.append(calls)
            ok, bad = tally(junit)
            if status != 0 and bad == 0:
                bad = 1  # schemathesis itself failed (an error, or killed): count it
            passed, failed = passed + ok, failed + bad
        if server.proc.poll() is not None:
            print(f"the server exited during the run (status {server.proc.returncode})")
            failed += 1
        coverage_summary(calls_files)
        if failed:
            sys.stderr.write("\n" + server.stderr_tail() + "\n")
    except Exception as e:  # reported as a failure, with the server's log
        print(f"error: {e!r}")
        sys.stderr.write("\n" + server.stderr_tail() + "\n")
        failed += 1
    finally:
        signal.alarm(0)
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"({time.monotonic() - started:.1f} s)")
    print(f"test_schemathesis.py: {passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
