"""Interoperability test: the intent relay end to end (DESIGN §11), brands written with ordinary
Python libraries.

One nats-server with JetStream, one `vrm-vault relay`, two vaults started with `--relay`, three
brands. Each brand is plain Python: `requests` for HTTP, **joserfc** (authlib's JOSE) for its keys,
its `private_key_jwt` assertion, its acceptance JWS, the receipt's verification and the JWE's
decryption, **standardwebhooks** and the **cloudevents** SDK for the webhooks it receives
(intent_support.Receiver), and **rfc8785** for the offer digest. Then:

* a relayed intent reaches only the matching brands (category prefix × area), by webhook, with
  the relay as `source`, a location no finer than geohash precision 5 and no disclosed field;
* each matching brand answers with an offer and its signed acceptance of the person's terms; a
  forged acceptance and an oversized offer are refused in the vault's JSON error shape;
* each owner sees the relayed offers with the relay and the brand's verified name, accepts one
  sharing exactly one field and declines another;
* the accepted brand decrypts exactly that field and verifies the receipt with the intent's key;
  the declined brand learns only "declined", a withdrawn intent's brand only "withdrawn";
* the relay's JetStream store holds no record value in the clear (the store directory is
  scanned byte for byte);
* two intents of one vault share no identifier a brand or the relay can see;
* "delete everything" reaches the brands that got one of the vault's relayed intents.

Run through tests/interop/run.sh, or directly:

    VRM_VAULT_BIN=target/debug/vrm-vault NATS_SERVER_BIN=$(bash tests/nats/install.sh) \\
        python3 tests/interop/test_relay_e2e.py

Everything binds 127.0.0.1; every HTTP call has a timeout and the run is bounded (RUN_LIMIT_S).
"""

import base64
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import uuid

import re

import requests
import rfc8785
from joserfc import jwe, jws, jwt
from joserfc.jwk import ECKey

from intent_support import Receiver, check, in_a_day, publish_intent_terms, wait_until
from vault_process import HTTP_TIMEOUT_S, PASSPHRASE, SERVER_BIN, Server, run_bounded

RUN_LIMIT_S = 120  # the whole test, processes started to stopped
DELIVERY_WAIT_S = 20  # until an expected webhook or offer arrived
START_S = 20  # until nats-server or the relay accepts connections
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)")
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

EMAIL = "ada.lovelace@example.org"
PHONE = "+44 20 7946 0958"

# Paris centre is geohash u09tvw0 (precision 7: about 150 m); the relay never sees finer than 5.
PARIS_FINE = "u09tvw0"
SUBSCRIPTIONS = {
    "Bistro Lilas": {"categories": ["food.lunch"], "areas": [{"geohash": "u09t"}]},
    "Deli Anywhere": {"categories": ["food"]},
    "Hotel Seine": {"categories": ["travel"], "areas": [{"geohash": "u09t"}]},
}


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port, what, log):
    deadline = time.monotonic() + START_S
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not accept connections on 127.0.0.1:{port}\n{log()}")


class Nats:
    """`nats-server -js` on a free loopback port with a temporary store directory."""

    def __init__(self):
        binary = os.environ.get("NATS_SERVER_BIN")
        if not binary or not os.access(binary, os.X_OK):
            raise RuntimeError(
                "NATS_SERVER_BIN is not set to a nats-server binary: "
                "export NATS_SERVER_BIN=$(bash tests/nats/install.sh) (bash .ci/run does this)"
            )
        self.store = tempfile.mkdtemp(prefix="vrm-relay-nats-")
        self.port = free_port()
        self.log = tempfile.TemporaryFile(mode="a+b")
        self.proc = subprocess.Popen(
            [binary, "-js", "-a", "127.0.0.1", "-p", str(self.port), "-sd", self.store],
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=self.log,
        )
        wait_for_port(self.port, "nats-server", self.tail)
        self.url = f"nats://127.0.0.1:{self.port}"

    def tail(self):
        self.log.seek(0)
        return "nats-server log (tail):\n" + self.log.read().decode("utf-8", "replace")[-3000:]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.log.close()
        shutil.rmtree(self.store, ignore_errors=True)


class Relay:
    """`vrm-vault relay` on 127.0.0.1:0 over `nats`; the first stdout line is its address."""

    PREFIX = "vrm-vault relay listening on "

    def __init__(self, nats):
        self.log = tempfile.TemporaryFile(mode="a+b")
        self.proc = subprocess.Popen(
            [SERVER_BIN, "relay", "--nats", nats.url, "--listen", "127.0.0.1:0", "--allow-loopback-webhooks"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self.log,
            env=dict(os.environ, NO_COLOR="1"),
        )
        first = []
        got = threading.Event()

        def drain():
            for raw in self.proc.stdout:
                if not got.is_set():
                    first.append(raw.decode("utf-8", "replace").strip())
                    got.set()
            got.set()

        threading.Thread(target=drain, daemon=True).start()
        if not got.wait(START_S) or not first or not first[0].startswith(self.PREFIX):
            raise RuntimeError(f"the relay did not start: {first!r}\n{self.tail()}")
        self.base = first[0][len(self.PREFIX):].rstrip("/")

    def tail(self):
        self.log.seek(0)
        return "relay stderr (tail):\n" + self.log.read().decode("utf-8", "replace")[-4000:]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.log.close()


class RelayBrand:
    """A brand at the relay: a P-256 signing key and a P-256 encryption key (joserfc), admitted by
    the operator's command, relay tokens by `private_key_jwt`, a webhook receiver."""

    def __init__(self, name, http, relay, nats):
        self.name = name
        self.http = http
        self.relay = relay
        slug = name.lower().replace(" ", "-")
        self.signing = ECKey.generate_key(
            "P-256", parameters={"kid": f"{slug}-sig", "use": "sig", "alg": "ES256"}, private=True
        )
        self.encryption = ECKey.generate_key(
            "P-256", parameters={"kid": f"{slug}-enc", "use": "enc", "alg": "ECDH-ES"}, private=True
        )
        jwks = {"keys": [self.signing.as_dict(private=False), self.encryption.as_dict(private=False)]}
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            json.dump(jwks, f)
            path = f.name
        try:
            out = subprocess.run(
                [SERVER_BIN, "relay", "admit", "--nats", nats.url, "--name", name, "--jwks", path],
                capture_output=True,
                timeout=30,
                check=False,
            )
        finally:
            os.unlink(path)
        if out.returncode != 0:
            raise AssertionError(f"relay admit failed: {out.stderr.decode()}")
        self.client_id = json.loads(out.stdout)["client_id"]
        self.receiver = Receiver(slug)
        self.token = None
        self.acceptances = {}  # offer id -> the acceptance JWS this brand signed

    def fetch_token(self, token_endpoint):
        now = int(time.time())
        assertion = jwt.encode(
            {"alg": "ES256", "kid": self.signing.kid},
            {
                "iss": self.client_id,
                "sub": self.client_id,
                "aud": token_endpoint,
                "jti": str(uuid.uuid4()),
                "iat": now,
                "exp": now + 120,
            },
            self.signing,
        )
        resp = self.http.post(
            token_endpoint,
            data={
                "grant_type": "client_credentials",
                "client_assertion_type": ASSERTION_TYPE,
                "client_assertion": assertion,
            },
            timeout=HTTP_TIMEOUT_S,
        )
        self.token = check(resp, 200).json()["access_token"]

    def auth(self):
        return {"Authorization": f"Bearer {self.token}"}

    def acceptance(self, intent, offer, key=None):
        """The compact JWS (ES256) over {intent_id, terms_hash, offer_sha256, iat}."""
        digest = b64url(hashlib.sha256(rfc8785.dumps(offer)).digest())
        payload = {
            "intent_id": intent["id"],
            "terms_hash": intent["terms_hash"],
            "offer_sha256": digest,
            "iat": int(time.time()),
        }
        return jws.serialize_compact(
            {"alg": "ES256", "kid": self.signing.kid},
            json.dumps(payload).encode(),
            key or self.signing,
        )

    def offer(self, intent, offer, key=None):
        acceptance = self.acceptance(intent, offer, key)
        resp = self.http.post(
            f"{self.relay.base}/relay/v1/intents/{intent['id']}/offers",
            json=dict(offer, acceptance=acceptance),
            headers=self.auth(),
            timeout=HTTP_TIMEOUT_S,
        )
        return resp, acceptance

    def events(self, kind=None):
        """The CloudEvents this brand accepted by webhook (de-duplicated by id), in order."""
        events = [a.event for a in self.receiver.accepted().values() if a.event]
        return [e for e in events if kind is None or e["type"] == kind]


def an_offer(name, data_requested):
    return {
        "name": name,
        "price": {"amount": "13.50", "currency": "EUR"},
        "valid_until": in_a_day(),
        "data_requested": data_requested,
    }


def strings(value):
    """Every string value in a JSON value (not the member names)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from strings(v)


class RelayEndToEnd(unittest.TestCase):
    state = {}

    @classmethod
    def setUpClass(cls):
        cls.started = []
        try:
            cls.nats = Nats()
            cls.started.append(cls.nats)
            cls.relay = Relay(cls.nats)
            cls.started.append(cls.relay)
            cls.vaults = []
            for _ in range(2):
                vault = Server(["--relay", cls.relay.base, "--allow-loopback-webhooks"])
                cls.started.append(vault)
                vault.start()
                cls.vaults.append(vault)
        except BaseException:
            cls.stop_all()
            raise
        cls.http = requests.Session()

    @classmethod
    def stop_all(cls):
        for brand in cls.state.get("brands", {}).values():
            brand.receiver.close()
        for process in reversed(cls.started):
            process.stop()

    @classmethod
    def tearDownClass(cls):
        cls.http.close()
        cls.stop_all()

    def run(self, result=None):
        before = (len(result.failures), len(result.errors)) if result is not None else (0, 0)
        outcome = super().run(result)
        if result is not None and (len(result.failures), len(result.errors)) != before:
            sys.stderr.write("\n" + self.relay.tail() + "\n")
            for vault in self.vaults:
                sys.stderr.write("\n" + vault.stderr_tail() + "\n")
        return outcome

    def need(self, *keys):
        missing = [k for k in keys if k not in self.state]
        if missing:
            self.fail(f"an earlier step failed (missing {', '.join(missing)})")
        return [self.state[k] for k in keys]

    def owner(self, n):
        return {"Authorization": f"Bearer {self.state['owners'][n]}"}

    def vault(self, n):
        return self.vaults[n].base

    def assert_error_shape(self, resp, status):
        self.assertEqual(resp.status_code, status, f"{resp.url}: {resp.status_code} {resp.text[:500]}")
        body = resp.json()
        self.assertIsInstance(body.get("error"), str, body)
        self.assertIsInstance(body.get("message"), str, body)
        return body

    def wait_events(self, brand, kind, count, what):
        wait_until(lambda: len(brand.events(kind)) >= count, DELIVERY_WAIT_S, what)
        return brand.events(kind)

    # --- set-up -----------------------------------------------------------------------------

    def test_00_vaults_set_up_with_records_and_terms(self):
        owners = []
        terms = []
        for vault in self.vaults:
            resp = self.http.post(
                vault.base + "/api/v1/setup", json={"passphrase": PASSPHRASE}, timeout=HTTP_TIMEOUT_S
            )
            self.assertIn(resp.status_code, (200, 201), resp.text[:500])
            owner = {"Authorization": f"Bearer {resp.json()['token']}"}
            self.http.cookies.clear()
            for path, value, category in (
                ("contact.email", EMAIL, "pd:EmailAddress"),
                ("contact.phone", PHONE, "pd:TelephoneNumber"),
            ):
                check(
                    self.http.put(
                        f"{vault.base}/api/v1/records/{path}",
                        json={"value": value, "category": category},
                        headers=owner,
                        timeout=HTTP_TIMEOUT_S,
                    ),
                    201,
                )
            terms.append(publish_intent_terms(self.http, vault.base, owner)["hash"])
            owners.append(owner["Authorization"].split(" ", 1)[1])
            relays = check(self.http.get(vault.base + "/api/v1/relays", headers=owner, timeout=HTTP_TIMEOUT_S), 200).json()
            self.assertEqual([r["url"] for r in relays["relays"]], [self.relay.base], relays)
        self.state["owners"] = owners
        self.state["terms_hashes"] = terms

    def test_01_brands_admitted_get_tokens_and_subscribe(self):
        meta = check(
            self.http.get(self.relay.base + "/.well-known/oauth-authorization-server", timeout=HTTP_TIMEOUT_S), 200
        ).json()
        self.assertIn("private_key_jwt", meta["token_endpoint_auth_methods_supported"])
        brands = {}
        self.state["brands"] = brands
        for name, subscription in SUBSCRIPTIONS.items():
            brand = RelayBrand(name, self.http, self.relay, self.nats)
            brands[name] = brand
            brand.fetch_token(meta["token_endpoint"])
            answer = check(
                self.http.put(
                    self.relay.base + "/relay/v1/subscription",
                    json=dict(subscription, webhook_url=brand.receiver.url),
                    headers=brand.auth(),
                    timeout=HTTP_TIMEOUT_S,
                ),
                200,
            ).json()
            self.assertTrue(answer["webhook_secret"].startswith("whsec_"), answer)
            brand.receiver.secret = answer["webhook_secret"]
            # The relay publishes the brand's name and public keys, nothing private.
            published = check(
                self.http.get(f"{self.relay.base}/relay/v1/brands/{brand.client_id}", timeout=HTTP_TIMEOUT_S), 200
            ).json()
            self.assertEqual(published["name"], name)
            kids = {k["kid"] for k in published["jwks"]["keys"]}
            self.assertEqual(kids, {brand.signing.kid, brand.encryption.kid})
            self.assertFalse(any("d" in k for k in published["jwks"]["keys"]), published)

    # --- intents ----------------------------------------------------------------------------

    def post_relayed(self, n, body):
        body = dict(body, relay=True, expires_at=in_a_day())
        resp = self.http.post(self.vault(n) + "/api/v1/intents", json=body, headers=self.owner(n), timeout=HTTP_TIMEOUT_S)
        return check(resp, 201).json()

    def test_02_relayed_intents_reach_only_the_matching_brands(self):
        (brands,) = self.need("brands")
        lunch = self.post_relayed(
            0,
            {
                "category": "food.lunch",
                "text": "lunch nearby for two",
                "location": {"geohash": PARIS_FINE, "radius_m": 500},
                "price_max": {"amount": "15.00", "currency": "EUR"},
                "party_size": 2,
            },
        )
        dinner = self.post_relayed(0, {"category": "food.dinner", "text": "dinner, anywhere"})
        hotel = self.post_relayed(
            1, {"category": "travel.hotel", "text": "a quiet room", "location": {"geohash": PARIS_FINE, "radius_m": 1000}}
        )
        for view in (lunch, dinner, hotel):
            wait_until(
                lambda view=view: self.intent_relay_status(view) == "published",
                DELIVERY_WAIT_S,
                f"intent {view['id']} published to the relay",
            )
        expected = {"Bistro Lilas": 1, "Deli Anywhere": 2, "Hotel Seine": 1}
        relayed = {}
        for name, count in expected.items():
            events = self.wait_events(brands[name], "vrm.intent.created.v1", count, f"{name} got {count} intents")
            time.sleep(0.3)  # anything extra would come now
            events = brands[name].events("vrm.intent.created.v1")
            self.assertEqual(len(events), count, f"{name}: {[e['data']['intent']['category'] for e in events]}")
            for event in events:
                self.assertEqual(event["source"], self.relay.base, event)
                intent = event["data"]["intent"]
                self.assertNotIn("disclose", intent)
                location = intent.get("location")
                if location:
                    self.assertLessEqual(len(location["geohash"]), 5, location)
                    self.assertTrue(PARIS_FINE.startswith(location["geohash"]), location)
                relayed.setdefault(intent["category"], []).append((name, event))
        self.assertEqual(sorted(n for n, _ in relayed["food.lunch"]), ["Bistro Lilas", "Deli Anywhere"])
        self.assertEqual([n for n, _ in relayed["food.dinner"]], ["Deli Anywhere"])
        self.assertEqual([n for n, _ in relayed["travel.hotel"]], ["Hotel Seine"])
        self.assertEqual(brands["Hotel Seine"].receiver.errors(), [])
        for brand in brands.values():
            self.assertEqual(brand.receiver.errors(), [], brand.name)
        self.state["views"] = {"lunch": lunch, "dinner": dinner, "hotel": hotel}
        self.state["relayed"] = {
            "lunch": relayed["food.lunch"][0][1]["data"]["intent"],
            "dinner": relayed["food.dinner"][0][1]["data"]["intent"],
            "hotel": relayed["travel.hotel"][0][1]["data"]["intent"],
        }
        self.state["lunch_events"] = [e for _, e in relayed["food.lunch"]]
        self.state["dinner_event"] = relayed["food.dinner"][0][1]

    def intent_relay_status(self, view):
        n = 0 if view["category"].startswith("food") else 1
        got = check(
            self.http.get(f"{self.vault(n)}/api/v1/intents/{view['id']}", headers=self.owner(n), timeout=HTTP_TIMEOUT_S),
            200,
        ).json()
        return (got.get("relay") or {}).get("status")

    def test_03_two_intents_of_one_vault_share_no_identifier(self):
        lunch_events, dinner_event, relayed = self.need("lunch_events", "dinner_event", "relayed")
        lunch_event = next(e for e in lunch_events)
        lunch, dinner = relayed["lunch"], relayed["dinner"]
        self.assertNotEqual(lunch["id"], dinner["id"])
        self.assertNotEqual((lunch["jwk"]["x"], lunch["jwk"]["y"]), (dinner["jwk"]["x"], dinner["jwk"]["y"]))

        def identifiers(event):
            # Everything a brand sees, but the person's terms: the same terms go with every intent
            # (a documented limit: custom terms can link intents; shipped templates are shared).
            event = dict(event)
            data = json.loads(json.dumps(event["data"]))
            data["intent"].pop("terms", None)
            data["intent"].pop("terms_hash", None)
            event["data"] = data
            # Times are left out: two intents sent together are linkable by timing anyway (a
            # documented limit, like the network address).
            return {s for s in strings(event) if len(s) >= 12 and not TIMESTAMP.fullmatch(s)}

        shared = identifiers(lunch_event) & identifiers(dinner_event)
        # What both events legitimately share: the relay's own URL and the event type.
        shared -= {self.relay.base, "vrm.intent.created.v1", "application/json"}
        self.assertEqual(shared, set(), "two intents of one vault share these values")

    # --- offers -----------------------------------------------------------------------------

    def test_04_brands_answer(self):
        brands, relayed = self.need("brands", "relayed")
        bistro, deli, hotel = brands["Bistro Lilas"], brands["Deli Anywhere"], brands["Hotel Seine"]
        offers = {}
        for brand, intent, offer in (
            (bistro, relayed["lunch"], an_offer("Menu du jour", ["contact.email"])),
            (deli, relayed["lunch"], an_offer("Two sandwiches", ["contact.email", "contact.phone"])),
            (hotel, relayed["hotel"], an_offer("Room with a view", ["contact.email"])),
        ):
            resp, acceptance = brand.offer(intent, offer)
            self.assertEqual(resp.status_code, 201, resp.text[:500])
            offer_id = resp.json()["id"]
            brand.acceptances[offer_id] = acceptance
            offers[brand.name] = offer_id
        self.state["relay_offers"] = offers

    def test_05_forgeries_strangers_and_oversized_bodies_are_refused(self):
        brands, relayed = self.need("brands", "relayed")
        bistro = brands["Bistro Lilas"]
        lunch = relayed["lunch"]
        # A forged acceptance: signed by a key that is not the brand's published one.
        stranger = ECKey.generate_key("P-256", parameters={"kid": bistro.signing.kid}, private=True)
        resp, _ = bistro.offer(lunch, an_offer("Menu du jour", ["contact.email"]), key=stranger)
        self.assertIn(resp.status_code, (400, 401, 422), resp.text[:300])
        self.assert_error_shape(resp, resp.status_code)
        # An acceptance of another offer than the one sent.
        good = bistro.acceptance(lunch, an_offer("Menu du jour", ["contact.email"]))
        resp = self.http.post(
            f"{self.relay.base}/relay/v1/intents/{lunch['id']}/offers",
            json=dict(an_offer("Something else", ["contact.email"]), acceptance=good),
            headers=bistro.auth(),
            timeout=HTTP_TIMEOUT_S,
        )
        self.assertIn(resp.status_code, (400, 422), resp.text[:300])
        self.assert_error_shape(resp, resp.status_code)
        # An offer on an intent the brand was never sent (another vault's hotel intent).
        resp, _ = bistro.offer(relayed["hotel"], an_offer("Lunch at the hotel", []))
        self.assertIn(resp.status_code, (403, 404), resp.text[:300])
        self.assert_error_shape(resp, resp.status_code)
        # An oversized body.
        huge = an_offer("Menu du jour", ["contact.email"])
        huge["description"] = "x" * (2 * 1024 * 1024)
        resp = requests.post(  # a fresh connection: the relay closes one whose body it refused
            f"{self.relay.base}/relay/v1/intents/{lunch['id']}/offers",
            data=json.dumps(dict(huge, acceptance=good)),
            headers=dict(bistro.auth(), **{"Content-Type": "application/json"}),
            timeout=HTTP_TIMEOUT_S,
        )
        self.assert_error_shape(resp, 413)

    def owner_offers(self, n, view):
        return check(
            self.http.get(
                f"{self.vault(n)}/api/v1/intents/{view['id']}/offers", headers=self.owner(n), timeout=HTTP_TIMEOUT_S
            ),
            200,
        ).json()["offers"]

    def test_06_owners_see_verified_relayed_offers(self):
        views, brands, _ = self.need("views", "brands", "relay_offers")
        wait_until(lambda: len(self.owner_offers(0, views["lunch"])) >= 2, DELIVERY_WAIT_S, "vault 1 got both offers")
        wait_until(lambda: len(self.owner_offers(1, views["hotel"])) >= 1, DELIVERY_WAIT_S, "vault 2 got its offer")
        lunch_offers = self.owner_offers(0, views["lunch"])
        self.assertEqual(len(lunch_offers), 2, lunch_offers)  # the forged ones never show
        by_brand = {}
        for offer in lunch_offers:
            self.assertEqual(offer["via"], self.relay.base, offer)
            self.assertTrue(offer["brand"]["verified"], offer)
            by_brand[offer["brand"]["name"]] = offer
            self.assertEqual(offer["brand"]["client_id"], brands[offer["brand"]["name"]].client_id)
        self.assertEqual(set(by_brand), {"Bistro Lilas", "Deli Anywhere"})
        (hotel_offer,) = self.owner_offers(1, views["hotel"])
        self.assertEqual(hotel_offer["brand"]["name"], "Hotel Seine")
        self.state["owner_offers"] = {
            "Bistro Lilas": by_brand["Bistro Lilas"],
            "Deli Anywhere": by_brand["Deli Anywhere"],
            "Hotel Seine": hotel_offer,
        }

    def test_07_accepting_sends_the_receipt_and_exactly_the_disclosed_field(self):
        owner_offers, brands, relayed = self.need("owner_offers", "brands", "relayed")
        bistro, deli = brands["Bistro Lilas"], brands["Deli Anywhere"]
        accepted = check(
            self.http.post(
                f"{self.vault(0)}/api/v1/offers/{owner_offers['Bistro Lilas']['id']}/accept",
                json={"disclose": ["contact.email"]},
                headers=self.owner(0),
                timeout=HTTP_TIMEOUT_S,
            ),
            200,
        ).json()
        self.assertEqual(accepted["status"], "accepted", accepted)
        check(
            self.http.post(
                f"{self.vault(0)}/api/v1/offers/{owner_offers['Deli Anywhere']['id']}/decline",
                headers=self.owner(0),
                timeout=HTTP_TIMEOUT_S,
            ),
            200,
        )
        (event,) = self.wait_events(bistro, "vrm.offer.accepted.v1", 1, "Bistro Lilas told it was accepted")
        data = event["data"]
        self.assertEqual(event["source"], self.relay.base)
        self.assertEqual(data["intent_id"], relayed["lunch"]["id"])
        # The JWE opens with the brand's own encryption key, and holds exactly the chosen field.
        opened = jwe.decrypt_compact(data["jwe"], bistro.encryption)
        self.assertEqual(opened.protected.get("kid"), bistro.encryption.kid)
        self.assertIn(opened.protected["alg"], ("ECDH-ES", "ECDH-ES+A256KW"))
        self.assertEqual(opened.protected["enc"], "A256GCM")
        self.assertEqual(json.loads(opened.plaintext), {"fields": {"contact.email": EMAIL}})
        # The receipt is the brand's acceptance countersigned by the intent's key.
        intent_key = ECKey.import_key(relayed["lunch"]["jwk"])
        receipt = jws.deserialize_compact(data["receipt"], intent_key)
        self.assertEqual(receipt.protected["alg"], "ES256")
        payload = json.loads(receipt.payload)
        self.assertEqual(payload["acceptance"], bistro.acceptances[data["offer_id"]])
        self.assertIsInstance(payload["accepted_at"], int)
        # The declined brand learns only that.
        (declined,) = self.wait_events(deli, "vrm.offer.declined.v1", 1, "Deli Anywhere told it was declined")
        self.assertNotIn("jwe", declined["data"])
        self.assertNotIn("receipt", declined["data"])
        self.assertEqual(deli.events("vrm.offer.accepted.v1"), [])
        for value in (EMAIL, PHONE):
            self.assertNotIn(value, json.dumps(deli.events()))

    def test_08_a_withdrawn_intent_reaches_its_brand_as_withdrawn(self):
        views, brands, relayed = self.need("views", "brands", "relayed")
        hotel = brands["Hotel Seine"]
        check(
            self.http.delete(
                f"{self.vault(1)}/api/v1/intents/{views['hotel']['id']}", headers=self.owner(1), timeout=HTTP_TIMEOUT_S
            ),
            200,
        )
        (event,) = self.wait_events(hotel, "vrm.intent.withdrawn.v1", 1, "Hotel Seine told of the withdrawal")
        self.assertEqual(event["data"]["intent"]["id"], relayed["hotel"]["id"])
        self.assertEqual(hotel.events("vrm.offer.accepted.v1"), [])

    def test_09_the_relay_store_holds_no_record_value_in_the_clear(self):
        self.need("owner_offers")
        needles = []
        for value in (EMAIL, PHONE):
            needles += [value.encode(), json.dumps(value).encode(), b64url(value.encode()).encode()]
        found = []
        scanned = 0
        for root, _, files in os.walk(self.nats.store):
            for name in files:
                with open(os.path.join(root, name), "rb") as f:
                    content = f.read()
                scanned += len(content)
                found += [(name, n) for n in needles if n in content]
        self.assertGreater(scanned, 0, "the JetStream store is empty: nothing was scanned")
        self.assertEqual(found, [], "record values in the relay's store")

    def test_10_delete_everything_reaches_the_relayed_brands(self):
        brands, relayed = self.need("brands", "relayed")
        check(
            self.http.request(
                "DELETE",
                f"{self.vault(0)}/api/v1/vault",
                json={"passphrase": PASSPHRASE, "confirm": "delete everything"},
                headers=self.owner(0),
                timeout=HTTP_TIMEOUT_S,
            ),
            200,
        )
        erasure = "vrm.erasure.requested.v1"
        deli = brands["Deli Anywhere"]
        # The dinner intent was still open: the brand it reached is asked to erase.
        self.wait_events(deli, erasure, 1, "Deli Anywhere asked to erase")
        asked = {e["data"]["intent"]["id"] for e in deli.events(erasure)}
        self.assertIn(relayed["dinner"]["id"], asked)
        # The brand that was given a field is asked too.
        self.wait_events(brands["Bistro Lilas"], erasure, 1, "Bistro Lilas asked to erase")
        # The other vault's brand hears nothing of this vault.
        self.assertEqual(brands["Hotel Seine"].events(erasure), [])


if __name__ == "__main__":
    sys.exit(run_bounded(RelayEndToEnd, RUN_LIMIT_S, "relay end to end"))
