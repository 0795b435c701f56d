"""What the interoperability tests share: the server process and the bounded test runner.

Each test file (test_oauth.py, test_grants.py, test_intents.py, test_delivery_faults.py) starts
its own `vrm-vault serve` on 127.0.0.1:0 in a fresh temporary data directory and stops it at the
end; every HTTP call has a timeout (HTTP_TIMEOUT_S) and each whole run is bounded (`run_bounded`).
A server can also be killed (SIGKILL, no clean shutdown) and started again on the same data
directory and the same port, so that its issuer URL and the brands' tokens stay valid.
"""

import base64
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest

import requests

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
SERVER_BIN = os.path.abspath(
    os.environ.get("VRM_VAULT_BIN") or os.path.join(REPO, "target", "debug", "vrm-vault")
)

HTTP_TIMEOUT_S = 10  # every single HTTP call
SERVER_START_S = 20  # until the server printed its address
SERVER_STOP_S = 5  # per stage: SIGTERM, then SIGKILL

PASSPHRASE = "plum orbit lantern seventy"
WELL_KNOWN = "/.well-known/oauth-authorization-server"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class Server:
    """`vrm-vault serve` on 127.0.0.1:0 in a temporary data directory, with `args` added to its
    command line (e.g. `--allow-loopback-webhooks`)."""

    def __init__(self, args=()):
        self.args = list(args)
        self.data_dir = tempfile.mkdtemp(prefix="vrm-interop-")
        # stderr of every process started (restarts append), shown when something fails. Append
        # mode: reading it (which moves the shared file offset) never makes the server overwrite.
        self.log = tempfile.TemporaryFile(mode="a+b")
        self.proc = None
        self.base = None
        self.listen = "127.0.0.1:0"  # the first start picks a port; restarts keep it
        self.starts = 0

    def start(self):
        """Starts the server; after `kill`, starts it again on the same data directory and the
        same port (a restarted vault is sealed until the owner logs in)."""
        if not os.access(SERVER_BIN, os.X_OK):
            raise RuntimeError(f"no server binary at {SERVER_BIN}: build it or set VRM_VAULT_BIN")
        if self.proc is not None and self.proc.poll() is None:
            raise RuntimeError("the server is already running")
        self.starts += 1
        if self.starts > 1:
            self.log.write(f"\n----- start #{self.starts} (same data directory) -----\n".encode())
            self.log.flush()
        env = dict(os.environ, NO_COLOR="1")
        self.proc = subprocess.Popen(
            [SERVER_BIN, "serve", "--listen", self.listen, "--data-dir", self.data_dir, *self.args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self.log,
            env=env,
        )
        first_line = []
        got_line = threading.Event()

        def drain():
            # The first line is the address; keep reading afterwards so a full pipe never blocks
            # the server.
            for raw in self.proc.stdout:
                if not got_line.is_set():
                    first_line.append(raw.decode("utf-8", "replace").strip())
                    got_line.set()
            got_line.set()

        threading.Thread(target=drain, daemon=True).start()
        if not got_line.wait(SERVER_START_S) or not first_line:
            raise RuntimeError(
                f"vrm-vault printed no address within {SERVER_START_S} s\n{self.stderr_tail()}"
            )
        prefix = "vrm-vault listening on "
        if not first_line[0].startswith(prefix):
            raise RuntimeError(f"unexpected first line {first_line[0]!r}\n{self.stderr_tail()}")
        base = first_line[0][len(prefix):].rstrip("/")
        if self.base is not None and base != self.base:
            raise RuntimeError(f"restarted on {base}, not on {self.base}")
        self.base = base
        self.listen = base[len("http://"):]
        return self.base

    def kill(self):
        """SIGKILL: no clean shutdown, no final flush; the data directory stays for `start`."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(SERVER_STOP_S)

    def stderr_tail(self, limit=4000):
        self.log.seek(0)
        text = self.log.read().decode("utf-8", "replace")
        return "server stderr (tail):\n" + text[-limit:]

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(SERVER_STOP_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(SERVER_STOP_S)
        self.log.close()
        shutil.rmtree(self.data_dir, ignore_errors=True)


class VaultTestCase(unittest.TestCase):
    """Steps sharing one server, run in order (unittest sorts methods by name), passing what they
    made to later steps through `state`. Subclasses set `state = {}` of their own."""

    server = None
    state = {}
    server_args = ()  # added to `vrm-vault serve`'s command line

    @classmethod
    def setUpClass(cls):
        cls.server = Server(cls.server_args)
        try:
            cls.base = cls.server.start()
        except BaseException:
            cls.server.stop()
            raise
        cls.http = requests.Session()

    @classmethod
    def tearDownClass(cls):
        cls.close_clients()
        cls.http.close()
        cls.server.stop()

    @classmethod
    def close_clients(cls):
        """Subclasses close the clients they made here."""

    def run(self, result=None):
        # Show the server's log next to any failure: the cause is usually there.
        before = (len(result.failures), len(result.errors)) if result is not None else (0, 0)
        outcome = super().run(result)
        if result is not None and (len(result.failures), len(result.errors)) != before:
            sys.stderr.write("\n" + self.server.stderr_tail() + "\n")
        return outcome

    def need(self, *keys):
        """Skip a step whose input an earlier (failed) step should have produced."""
        missing = [k for k in keys if k not in self.state]
        if missing:
            self.skipTest(f"an earlier step failed (missing {', '.join(missing)})")
        return [self.state[k] for k in keys]

    def assert_json(self, resp, status):
        self.assertEqual(
            resp.status_code,
            status,
            f"{resp.request.method} {resp.url}: expected {status}, got {resp.status_code}: "
            f"{resp.text[:500]}",
        )
        return resp.json() if resp.content else None


def run_bounded(case, limit_s, name):
    """Runs the steps of `case` in order within `limit_s` seconds; returns the exit status."""

    def out_of_time(signum, frame):
        raise TimeoutError(f"{name} exceeded {limit_s} s")

    signal.signal(signal.SIGALRM, out_of_time)
    signal.alarm(limit_s)
    started = time.monotonic()
    suite = unittest.defaultTestLoader.loadTestsFromTestCase(case)
    result = unittest.TextTestRunner(verbosity=2, stream=sys.stdout).run(suite)
    signal.alarm(0)
    failed = len(result.failures) + len(result.errors) + len(result.unexpectedSuccesses)
    skipped = len(result.skipped)
    passed = max(0, result.testsRun - failed - skipped)
    print(f"({time.monotonic() - started:.1f} s)")
    print(f"{name}: {passed} passed, {failed} failed, {skipped} skipped")
    return 0 if result.wasSuccessful() and failed == 0 and skipped == 0 else 1
