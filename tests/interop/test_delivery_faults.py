"""Interoperability fault test: webhook deliveries survive failing receivers, a hanging receiver,
a vault killed with SIGKILL in the middle of it all, a suspended brand and a paused brand.

The delivery policy under test (src/service/delivery.rs): a failed delivery is retried after 1 s,
then 2 s, 4 s ... (each with up to 50 % jitter); a brand is `failing` after a failure and `paused`
only after PAUSE_AFTER_FAILURES (8) consecutive failures spread over at least
PAUSE_AFTER_FAILING_FOR (60 s); a paused brand still gets one delivery at a time, as a probe, and
is `ok` again on the first success; re-subscribing (PUT /brand/v1/subscription) makes its queued
deliveries due at once; a suspended brand's deliveries wait (nothing is sent) until it is resumed.

Five brands, each with its own receiver (intent_support.Receiver: every request verified with
**standardwebhooks** and parsed with the **cloudevents** SDK):

* flaky   — answers 500 to the first two requests of every webhook-id, then 204;
* hang    — the very first request it gets hangs 12 s (past the vault's 10 s delivery timeout),
            then answers; every other request is answered at once;
* holder  — holds its first request for the batch-2 travel intent open until the vault has been
            killed (the vault dies in the middle of that delivery);
* broken  — answers 500 to everything until the test "fixes" it, well after the restart;
* sleeper — refuses its first deliveries (500), is suspended by the owner while they wait for
            their retry, would accept everything from then on, and is resumed.

Timeline: batch 1 of intents → the vault times out on the hanging request (its audit log says
so) → batch 2 → once the flaky brand's batch-2 deliveries are in retry, the holder's request is
open and the broken brand is `failing` (with at least 8 failures, but for less than 60 s: not
paused), SIGKILL → restart on the same data directory and port → the owner logs in (POST
/api/v1/session unseals; the delivery worker starts): the broken brand is still `failing` with
all its deliveries queued → flaky, hang and holder get everything → the sleeper: two intents
refused once, then suspended: nothing reaches it for a while although its deliveries are due,
then resumed: they arrive → 61 s after the broken brand's first failure, one more intent for it
fails and pauses it → its receiver is fixed: the probe succeeds, the brand is `ok` again without
re-subscribing → it re-subscribes: its queue drains at once.

In the end every intent reached every matching receiver at least once, and exactly once after
de-duplication by webhook-id (one event per intent and brand, no event for an intent a brand does
not match); redeliveries carry the same webhook-id and the same event; every signature verified;
the vault has nothing pending; polling returns the same events as the webhooks.

Run through tests/interop/run.sh, or directly:

    VRM_VAULT_BIN=target/debug/vrm-vault python3 tests/interop/test_delivery_faults.py

Every HTTP call has a timeout and the whole run is bounded by RUN_LIMIT_S. Reaching `paused`
sets the pace: the run takes ~65-70 s.
"""

import sys
import threading
import time

import jwt  # pyjwt
import requests

from intent_support import (
    Brand,
    Receiver,
    check,
    invitation,
    owner_brands,
    owner_id,
    post_intent,
    publish_intent_terms,
    wait_for_receivers,
    wait_until,
)
from vault_process import HTTP_TIMEOUT_S, PASSPHRASE, WELL_KNOWN, VaultTestCase, run_bounded

RUN_LIMIT_S = 100  # the whole test, server start to stop
VAULT_DELIVERY_TIMEOUT_S = 10  # src/webhooks.rs DELIVERY_TIMEOUT
PAUSE_AFTER_FAILURES = 8  # src/service/delivery.rs
PAUSE_AFTER_FAILING_FOR_S = 60  # src/service/delivery.rs PAUSE_AFTER_FAILING_FOR
# The vault keeps time in whole seconds; the extra second keeps "60 s since the first failure"
# true by its clock too.
PAUSE_TRIGGER_AFTER_S = PAUSE_AFTER_FAILING_FOR_S + 1.0
HANG_S = VAULT_DELIVERY_TIMEOUT_S + 2
HOLD_MAX_S = 20  # the holder never holds longer, whatever happens
RECOVER_S = 20  # after the restart, until flaky, hang and holder have everything
# How long the sleeper stays suspended: well past its deliveries' first retry (1-1.5 s after the
# failure by the vault's clock, which counts whole seconds: due at most 2 s after it, and the
# worker wakes at each entry's deadline), so a vault that ignored the suspension would send them
# in that time.
SUSPENDED_S = 4.0
# A delivery whose brand check passed just before the suspension was committed may still reach
# the receiver right after: the suspend request returned. Anything later is a delivery to a
# suspended brand.
IN_FLIGHT_GRACE_S = 0.25
PROMPT_S = 5  # a resumed or re-subscribed brand's due deliveries arrive within this

SUBSCRIPTIONS = {
    "flaky": {"categories": ["food"]},
    "hang": {"categories": ["food", "travel"]},
    "holder": {"categories": ["travel"]},
    "broken": {"categories": ["food", "travel", "shopping"]},
    "sleeper": {"categories": ["home"]},
}
BATCH_1 = [
    {"category": "food.lunch", "text": "lunch for one"},
    {"category": "travel.hotel", "text": "a room for tonight"},
]
HELD_CATEGORY = "travel.train"
BATCH_2 = [
    {"category": "food.dinner", "text": "dinner for four", "party_size": 4},
    {"category": HELD_CATEGORY, "text": "a train to Lyon tomorrow"},
    {"category": "food.breakfast", "text": "breakfast delivered"},
    {"category": "leisure.sport", "text": "a tennis court"},  # matches nobody
]
SLEEPER_INTENTS = [
    {"category": "home.cleaning", "text": "a cleaner on Friday"},
    {"category": "home.repair.plumbing", "text": "a dripping tap"},
]
PAUSE_TRIGGER = {"category": "shopping.books", "text": "a book on sailing"}  # broken only


def matching(category):
    """The brands whose categories are a segment-prefix of `category`."""
    return {
        name
        for name, sub in SUBSCRIPTIONS.items()
        if any(category == c or category.startswith(c + ".") for c in sub["categories"])
    }


def accepted_status(status):
    return status is not None and 200 <= status < 300


class Behaviours:
    """What each receiver answers; shared state lives here."""

    def __init__(self):
        self.lock = threading.Lock()
        self.hung = None  # the webhook-id of the hanging request
        self.held = threading.Event()  # the holder holds a request open
        self.held_id = None
        self.release = threading.Event()  # set once the vault was killed
        self.broken = True
        self.sleeper_ok = False

    def flaky(self, receiver, attempt):
        return (500, 0) if attempt.number <= 2 else (204, 0)

    def hang(self, receiver, attempt):
        with self.lock:
            first = self.hung is None
            if first:
                self.hung = attempt.webhook_id
        return (204, HANG_S) if first else (204, 0)

    def holder(self, receiver, attempt):
        event = attempt.event or {}
        category = ((event.get("data") or {}).get("intent") or {}).get("category")
        if category == HELD_CATEGORY and attempt.number == 1:
            self.held_id = attempt.webhook_id
            self.held.set()
            self.release.wait(HOLD_MAX_S)
        return (204, 0)

    def broken_brand(self, receiver, attempt):
        return (500, 0) if self.broken else (204, 0)

    def sleeper(self, receiver, attempt):
        return (204, 0) if self.sleeper_ok else (500, 0)


class DeliveryFaultsTest(VaultTestCase):
    """The steps share one server and run in order (unittest sorts methods by name)."""

    state = {}
    server_args = ("--allow-loopback-webhooks",)

    @classmethod
    def close_clients(cls):
        behaviours = cls.state.get("behaviours")
        if behaviours is not None:
            behaviours.release.set()
        for brand in cls.state.get("brands", {}).values():
            if brand.receiver is not None:
                brand.receiver.close()

    def owner(self):
        (token,) = self.need("owner_token")
        return {"Authorization": "Bearer " + token}

    def views(self):
        """client name -> the owner's view of that brand."""
        (brands,) = self.need("brands")
        views = owner_brands(self.http, self.base, self.owner())
        return {name: views[b.client_id] for name, b in brands.items()}

    def deliveries(self):
        """client name -> the owner's view of deliveries to it."""
        return {name: view["delivery"] for name, view in self.views().items()}

    def audit(self):
        """The whole audit log, oldest first."""
        entries, before = [], None
        for _ in range(100):
            params = {"limit": 200}
            if before is not None:
                params["before"] = before
            resp = self.http.get(
                self.base + "/api/v1/audit", params=params, headers=self.owner(), timeout=HTTP_TIMEOUT_S
            )
            page = check(resp, 200).json()
            entries.extend(page["entries"])
            before = page["next_before"]
            if before is None:
                return sorted(entries, key=lambda e: e["seq"])
        raise AssertionError("the audit log never ended")

    def owner_action(self, name, action):
        (brands,) = self.need("brands")
        resp = self.http.post(
            f"{self.base}/api/v1/brands/{brands[name].client_id}/{action}",
            headers=self.owner(),
            timeout=HTTP_TIMEOUT_S,
        )
        return check(resp, 200).json()

    def refusals(self, name):
        """Requests the brand's receiver answered 500 so far."""
        attempts, _ = self.state["brands"][name].receiver.snapshot()
        return sum(1 for a in attempts if a.status == 500)

    def since(self):
        return f"t+{time.monotonic() - self.state['t0']:.1f}s"

    def log(self, text):
        print(f"\n  [{self.since()}] {text}", end="", flush=True)

    def post(self, bodies):
        """Posts intents; returns their ids."""
        posted = self.state.setdefault("posted", {})
        ids = []
        for body in bodies:
            view = post_intent(self.http, self.base, self.owner(), body)
            recipients = matching(body["category"])
            self.assertEqual(view["recipients_count"], len(recipients), body)
            posted[view["id"]] = (body, recipients)
            ids.append(view["id"])
        return ids

    def expected(self):
        result = {name: set() for name in SUBSCRIPTIONS}
        for intent_id, (_, recipients) in self.state["posted"].items():
            for name in recipients:
                result[name].add(intent_id)
        return result

    # --- setup ----------------------------------------------------------------------------------

    def test_00_setup(self):
        self.state["t0"] = time.monotonic()
        meta = self.assert_json(self.http.get(self.base + WELL_KNOWN, timeout=HTTP_TIMEOUT_S), 200)
        self.state["meta"] = meta
        resp = self.http.post(
            self.base + "/api/v1/setup", json={"passphrase": PASSPHRASE}, timeout=HTTP_TIMEOUT_S
        )
        self.assertIn(resp.status_code, (200, 201), resp.text[:500])
        self.state["owner_token"] = resp.json()["token"]
        self.http.cookies.clear()
        publish_intent_terms(self.http, self.base, self.owner())
        iat = invitation(self.http, self.base, self.owner(), len(SUBSCRIPTIONS), "faults interop")
        jwks = jwt.PyJWKClient(meta["jwks_uri"], cache_keys=False, timeout=HTTP_TIMEOUT_S)

        behaviours = Behaviours()
        self.state["behaviours"] = behaviours
        answers = {
            "flaky": behaviours.flaky,
            "hang": behaviours.hang,
            "holder": behaviours.holder,
            "broken": behaviours.broken_brand,
            "sleeper": behaviours.sleeper,
        }
        brands = {}
        self.state["brands"] = brands
        for name, subscription in SUBSCRIPTIONS.items():
            brand = Brand(name, self.http, meta)
            brand.receiver = Receiver(name, answers[name])
            brands[name] = brand
            brand.register(iat)
            brand.accept_terms()
            brand.fetch_token(jwks)
            answer = brand.subscribe(dict(subscription, webhook_url=brand.receiver.url))
            self.assertTrue(answer["webhook_secret"].startswith("whsec_"), answer)

    # --- before the crash -----------------------------------------------------------------------

    def test_01_batch_1_and_a_delivery_timeout(self):
        brands, behaviours = self.need("brands", "behaviours")
        self.state["t_batch1"] = time.monotonic()
        self.post(BATCH_1)
        self.log("batch 1 posted")
        # The vault gives up on the hanging request after its delivery timeout and records the
        # failure. (Its retry comes 1-2 s later and succeeds, so the owner's view may show
        # `failing` only for a moment: the audit log is the lasting record.)
        hang_id = brands["hang"].client_id

        def timed_out():
            if behaviours.hung is None:
                return None
            return next(
                (
                    e
                    for e in self.audit()
                    if e["action"] == "delivery.failed"
                    and e["target"] == hang_id
                    and (e["detail"] or {}).get("event") == behaviours.hung
                ),
                None,
            )

        entry = wait_until(
            timed_out,
            VAULT_DELIVERY_TIMEOUT_S + 6,
            "the vault to record the hanging delivery as failed",
            interval_s=0.2,
        )
        self.log(f"hang brand, audit: {entry['action']} {entry['detail']}")
        self.assertEqual(entry["detail"]["error"], "timed out")
        self.assertEqual(entry["detail"]["attempt"], 1)
        elapsed = time.monotonic() - self.state["t_batch1"]
        self.assertGreaterEqual(elapsed, VAULT_DELIVERY_TIMEOUT_S - 0.5)

    def test_02_batch_2_then_sigkill_mid_delivery(self):
        brands, behaviours = self.need("brands", "behaviours")
        self.post(BATCH_2)
        self.log("batch 2 posted")
        batch_2_food = {
            i for i, (body, _) in self.state["posted"].items()
            if body in BATCH_2 and "flaky" in matching(body["category"])
        }

        def flaky_in_retry():
            attempts, _ = brands["flaky"].receiver.snapshot()
            failed = {owner_id(a.event["subject"]) for a in attempts if a.status == 500 and a.event}
            return batch_2_food <= failed

        wait_until(flaky_in_retry, 8, "the flaky brand to refuse its batch-2 deliveries")
        self.assertTrue(behaviours.held.wait(8), "the holder never got its batch-2 travel intent")
        # The broken brand failed often enough to be paused, but for less than a minute: a burst
        # of failures during a short outage leaves it `failing`.
        wait_until(
            lambda: self.refusals("broken") >= PAUSE_AFTER_FAILURES,
            5,
            f"the broken brand to refuse {PAUSE_AFTER_FAILURES} deliveries",
        )
        broken_pending = len(self.expected()["broken"])
        wait_until(
            lambda: self.deliveries()["broken"]["pending"] == broken_pending,
            2,
            "the owner's view to count every delivery to the broken brand as pending",
        )
        before = self.deliveries()
        self.log(f"before SIGKILL: {before}; the broken brand refused {self.refusals('broken')}")
        self.assertEqual(before["broken"]["status"], "failing")
        self.assertEqual(before["broken"]["last_error"], "answered 500")
        self.assertGreaterEqual(before["flaky"]["pending"], len(batch_2_food))
        self.assertGreaterEqual(before["holder"]["pending"], 1)
        self.state["broken_pending"] = before["broken"]["pending"]

        self.server.kill()  # in the middle of the holder's delivery; retries pending
        self.log("vault killed (SIGKILL)")
        self.state["killed"] = True
        behaviours.release.set()  # the holder answers 204 to a dead connection

    # --- after the crash ------------------------------------------------------------------------

    def test_03_restart_and_unlock(self):
        self.need("killed")
        self.server.start()
        self.log(f"vault restarted on {self.server.base}")
        type(self).http.close()
        type(self).http = requests.Session()
        for brand in self.state["brands"].values():
            brand.http = self.http
        # Sealed: no owner API yet.
        resp = self.http.get(self.base + "/api/v1/brands", timeout=HTTP_TIMEOUT_S)
        self.assertGreaterEqual(resp.status_code, 400, resp.text[:300])
        resp = self.http.post(
            self.base + "/api/v1/session", json={"passphrase": PASSPHRASE}, timeout=HTTP_TIMEOUT_S
        )
        self.assertEqual(resp.status_code, 201, resp.text[:500])
        self.state["owner_token"] = resp.json()["token"]
        self.http.cookies.clear()
        self.log("unlocked")
        after = self.deliveries()
        self.log(f"after restart: {after}")
        # The broken brand's state survived the crash, and nothing was lost from its queue.
        self.assertEqual(after["broken"]["status"], "failing")
        self.assertEqual(after["broken"]["last_error"], "answered 500")
        self.assertEqual(after["broken"]["pending"], self.state["broken_pending"])
        self.state["unlocked"] = True

    def test_04_the_other_brands_recover(self):
        brands, _ = self.need("brands", "unlocked")
        expected = self.expected()
        names = ("flaky", "hang", "holder")
        wait_for_receivers(
            {n: brands[n].receiver for n in names}, {n: expected[n] for n in names}, RECOVER_S
        )
        self.log("flaky, hang and holder have everything")
        # The broken brand keeps being retried (same webhook-ids) and stays `failing`.
        broken = self.deliveries()["broken"]
        self.assertEqual(broken["status"], "failing")
        self.assertEqual(broken["pending"], len(expected["broken"]))

    def test_05_a_suspended_brand_gets_nothing_until_resumed(self):
        brands, behaviours, _ = self.need("brands", "behaviours", "unlocked")
        sleeper = brands["sleeper"].receiver
        ids = set(self.post(SLEEPER_INTENTS))
        self.log("sleeper's intents posted")

        def all_refused():
            attempts, _ = sleeper.snapshot()
            return ids <= {owner_id(a.event["subject"]) for a in attempts if a.status == 500 and a.event}

        wait_until(all_refused, 5, "the sleeper to refuse its first deliveries")
        view = self.owner_action("sleeper", "suspend")
        t_suspended = time.monotonic()
        self.state["t_suspended"] = t_suspended
        self.log(f"sleeper suspended: {view['status']}, {view['delivery']}")
        try:
            self.assertEqual(view["status"], "suspended")
            self.assertEqual(view["delivery"]["pending"], len(ids))
            # From now on the receiver would accept anything; the vault must send nothing.
            time.sleep(IN_FLIGHT_GRACE_S)
            behaviours.sleeper_ok = True
            time.sleep(SUSPENDED_S)
            view = self.views()["sleeper"]
            attempts, _ = sleeper.snapshot()
            late = [
                (a.webhook_id, a.number, f"+{a.received_at - t_suspended:.2f}s", a.status)
                for a in attempts
                if a.received_at > t_suspended + IN_FLIGHT_GRACE_S
            ]
            self.assertEqual(late, [], "the vault sent to a suspended brand (after its suspension)")
            self.assertEqual(view["status"], "suspended")
            self.assertEqual(
                view["delivery"]["pending"], len(ids), "deliveries of a suspended brand lost"
            )
        finally:
            # Resumed whatever happened, so that the last step checks the rest on its own.
            t_resumed = time.monotonic()
            self.state["t_resumed"] = t_resumed
            view = self.owner_action("sleeper", "resume")
            self.log("sleeper resumed")
        self.assertEqual(view["status"], "active")
        wait_until(lambda: sleeper.accepted_subjects() >= ids, PROMPT_S, "the resumed sleeper's deliveries")
        wait_until(
            lambda: self.deliveries()["sleeper"]["pending"] == 0, 2, "no pending deliveries to the sleeper"
        )
        self.log("sleeper got its deliveries")
        # The vault's own record agrees: no delivery succeeded between suspension and resumption.
        client_id = brands["sleeper"].client_id
        log = self.audit()
        suspended = max(
            e["seq"] for e in log if e["action"] == "brand.suspended" and e["target"] == client_id
        )
        resumed = max(
            e["seq"] for e in log if e["action"] == "brand.resumed" and e["target"] == client_id
        )
        while_suspended = [
            e for e in log
            if suspended < e["seq"] < resumed
            and e["action"] == "delivery.succeeded"
            and e["target"] == client_id
        ]
        self.assertEqual(while_suspended, [], "the audit log shows deliveries to a suspended brand")
        for a in sleeper.accepted().values():
            self.assertGreaterEqual(a.received_at, t_resumed, "a delivery accepted before resuming")
        self.state["sleeper_done"] = True

    def test_06_paused_brand_is_probed_then_resubscribes(self):
        brands, behaviours, _ = self.need("brands", "behaviours", "unlocked")
        broken = brands["broken"]
        receiver = broken.receiver
        first_failure = receiver.snapshot()[0][0].received_at
        wait_s = first_failure + PAUSE_TRIGGER_AFTER_S - time.monotonic()
        self.log(f"waiting {max(0.0, wait_s):.1f} s: {PAUSE_AFTER_FAILING_FOR_S} s since its first failure")
        time.sleep(max(0.0, wait_s))
        self.assertGreaterEqual(self.refusals("broken"), PAUSE_AFTER_FAILURES)
        self.assertIn(self.deliveries()["broken"]["status"], ("failing", "paused"))
        # One more failure, now that it has been failing for more than a minute, pauses it (unless
        # a retry did so already).
        self.post([PAUSE_TRIGGER])
        paused = wait_until(
            lambda: (d := self.deliveries()["broken"])["status"] == "paused" and d,
            5,
            "the vault to pause the broken brand",
            interval_s=0.1,
        )
        self.log(f"broken brand: {paused}")
        self.assertEqual(paused["last_error"], "answered 500")
        self.assertEqual(paused["pending"], len(self.expected()["broken"]), "lost while failing")

        # Fixed: a paused brand is not silent; the vault's probe succeeds and the brand is `ok`
        # again, without re-subscribing.
        t_fixed = time.monotonic()
        self.state["t_fixed"] = t_fixed
        behaviours.broken = False
        self.log("broken receiver fixed")
        probed = wait_until(
            lambda: (d := self.deliveries()["broken"])["status"] == "ok" and d,
            PROMPT_S + 3,
            "a probe to the paused brand to succeed",
            interval_s=0.1,
        )
        self.log(f"broken brand after the probe: {probed}")
        self.assertIsNone(probed["last_error"])
        self.assertLess(probed["pending"], paused["pending"])
        self.assertGreaterEqual(len(receiver.accepted()), 1)

        # Re-subscribing makes what is still queued (waiting out its backoff) due at once.
        answer = broken.subscribe(dict(SUBSCRIPTIONS["broken"], webhook_url=receiver.url))
        t_resubscribed = time.monotonic()
        self.assertNotIn("webhook_secret", answer)  # the secret stays; only rotation changes it
        self.assertEqual(answer["delivery_status"], "ok")
        self.log("broken brand resubscribed")
        wait_for_receivers({"broken": receiver}, {"broken": self.expected()["broken"]}, PROMPT_S)
        wait_until(
            lambda: self.deliveries()["broken"]["pending"] == 0, 2, "no pending deliveries to broken"
        )
        self.log(f"broken brand drained {time.monotonic() - t_resubscribed:.1f} s after re-subscribing")
        self.state["broken_done"] = True

    def test_07_everything_delivered_exactly_once_after_dedup(self):
        brands, behaviours, _ = self.need("brands", "behaviours", "unlocked")
        expected = self.expected()
        receivers = {name: brand.receiver for name, brand in brands.items()}
        wait_for_receivers(receivers, expected, PROMPT_S, interval_s=0.1)
        wait_until(
            lambda: all(d["pending"] == 0 for d in self.deliveries().values()),
            5,
            "no pending deliveries",
            interval_s=0.2,
        )
        self.log("all delivered")
        for name, view in self.views().items():
            self.assertEqual(view["status"], "active", name)
            self.assertEqual(view["delivery"]["status"], "ok", name)
            self.assertIsNone(view["delivery"]["last_error"], name)

        for name, brand in brands.items():
            receiver = brand.receiver
            self.assertEqual(receiver.errors(), [], f"{name}: deliveries that did not check out")
            attempts, per_id = receiver.snapshot()
            self.assertTrue(attempts and all(a.verified for a in attempts), name)
            accepted = receiver.accepted()
            # Exactly once after de-duplication: one event id per matching intent, no others.
            subjects = sorted(owner_id(a.event["subject"]) for a in accepted.values())
            self.assertEqual(subjects, sorted(expected[name]), f"{name}: intents after de-dup")
            self.assertEqual(set(per_id), set(accepted), f"{name}: an event never accepted")
            for webhook_id, tries in per_id.items():
                # Redeliveries: same webhook-id (they are grouped by it), same event, each signed.
                for other in tries:
                    self.assertEqual(other.body, tries[0].body, f"{name}: redelivery of {webhook_id} differs")
                    self.assertEqual(other.event["id"], webhook_id)
                    self.assertEqual(other.event["data"]["person"], brand.sub)
            tries = {
                a.event["data"]["intent"]["category"]: " ".join(
                    f"{t.status}@{t.received_at - self.state['t0']:.1f}s" for t in per_id[k]
                )
                for k, a in accepted.items()
            }
            print(
                f"\n  {name}: {len(attempts)} requests, {len(accepted)} distinct, "
                f"{receiver.duplicates()} duplicate(s) (2xx twice for one webhook-id); "
                f"answers per intent: {tries}",
                end="",
            )
            # Polling holds the same events.
            events, _ = brand.poll_all()
            self.assertEqual({e["id"] for e in events}, set(accepted), f"{name}: polling differs")
            self.assertEqual(len(events), len(accepted), name)

        # The vault resends only what it has not seen succeed: a brand that answered 2xx
        # promptly (while the vault was up) never gets the same event twice.
        for name in ("flaky", "broken", "sleeper"):
            self.assertEqual(brands[name].receiver.duplicates(), 0, f"{name}: resent after a 2xx")
        # Each fault did happen, and was recovered from with the same webhook-id.
        _, flaky_ids = brands["flaky"].receiver.snapshot()
        self.assertTrue(all(len(t) >= 3 for t in flaky_ids.values()), "flaky: fewer than 3 tries")
        _, hang_ids = brands["hang"].receiver.snapshot()
        self.assertGreaterEqual(len(hang_ids[behaviours.hung]), 2, "hang: no redelivery")
        _, holder_ids = brands["holder"].receiver.snapshot()
        self.assertGreaterEqual(
            len(holder_ids[behaviours.held_id]), 2, "holder: the delivery cut by SIGKILL was not resent"
        )
        if "broken_done" in self.state:
            # Every delivery to the broken brand was refused at least once, and accepted only
            # once it was fixed.
            _, broken_ids = brands["broken"].receiver.snapshot()
            for webhook_id, tries in broken_ids.items():
                self.assertEqual(tries[0].status, 500, f"broken: {webhook_id} accepted at once")
            for a in brands["broken"].receiver.accepted().values():
                self.assertGreaterEqual(a.received_at, self.state["t_fixed"])
        if "sleeper_done" in self.state:
            _, sleeper_ids = brands["sleeper"].receiver.snapshot()
            for webhook_id, tries in sleeper_ids.items():
                self.assertEqual(tries[0].status, 500, f"sleeper: {webhook_id} accepted at once")
        print(f"\n  total {self.since()}", flush=True)


if __name__ == "__main__":
    sys.exit(run_bounded(DeliveryFaultsTest, RUN_LIMIT_S, "interop (test_delivery_faults.py)"))
