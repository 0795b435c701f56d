"""Interoperability test: the vault's side of the intent relay, read with Python's **jwcrypto**.

A small fake relay (Python's http.server on 127.0.0.1:0) stands for `vrm-vault relay`: it takes
the vault's published intent, serves one offer whose acceptance a brand signed with jwcrypto
(ES256), publishes the brand's keys (a jwcrypto P-256 signing key and encryption key), and
records the messages the vault sends. Then:

* the published intent carries a location cut to geohash precision 5, the person's terms and
  their hash (`sha256:` of the RFC 8785 form, recomputed with the rfc8785 package), and the
  intent's public key, and no `disclose`;
* the vault shows the offer, verified, with `via` and the brand's published name;
* accepting with `disclose: ["contact.email"]` sends an `accepted` message whose receipt
  jwcrypto verifies with the intent's public key (and whose `acceptance` is the brand's, byte
  for byte), and whose JWE jwcrypto decrypts with the brand's encryption key to exactly
  `{"fields": {"contact.email": ...}}`.

Run through tests/interop/run.sh, or directly:

    VRM_VAULT_BIN=target/debug/vrm-vault python3 tests/interop/test_relay_jwe.py
"""

import hashlib
import http.server
import json
import sys
import threading
import time
from datetime import datetime, timedelta, timezone

import rfc8785
from jwcrypto import jwe, jwk, jws

from vault_process import HTTP_TIMEOUT_S, PASSPHRASE, VaultTestCase, b64url, run_bounded

RUN_LIMIT_S = 90
EMAIL = "ana@example.org"


def rfc3339(moment):
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


class FakeRelay:
    """Serves what the test puts in `offers` and `brand`; keeps what the vault sends."""

    def __init__(self):
        self.lock = threading.Lock()
        self.published = []
        self.offers = []
        self.messages = []
        self.brand = {}
        relay = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _answer(self, status, body):
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _body(self):
                length = int(self.headers.get("Content-Length") or 0)
                return json.loads(self.rfile.read(length) or b"null")

            def do_POST(self):  # noqa: N802 (http.server's naming)
                body = self._body()
                with relay.lock:
                    if self.path == "/relay/v1/intents":
                        relay.published.append(body)
                        return self._answer(201, {"id": "ri_py"})
                    if self.path == "/relay/v1/intents/ri_py/messages":
                        relay.messages.append(body)
                        return self._answer(201, {"id": f"rm_{len(relay.messages)}"})
                self._answer(404, {"error": "not_found", "message": "no such route"})

            def do_GET(self):  # noqa: N802
                with relay.lock:
                    if self.path.startswith("/relay/v1/intents/ri_py/offers"):
                        return self._answer(200, {"offers": relay.offers, "next_after": len(relay.offers)})
                    if self.path == "/relay/v1/brands/rb_py":
                        return self._answer(200, relay.brand)
                self._answer(404, {"error": "not_found", "message": "no such route"})

            def log_message(self, format, *args):  # quiet
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def wait_until(predicate, timeout_s, what):
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.1)


class RelayJweTest(VaultTestCase):
    state = {}

    @classmethod
    def setUpClass(cls):
        cls.relay = FakeRelay()
        cls.server_args = ("--relay", cls.relay.url)
        cls.sig = jwk.JWK.generate(kty="EC", crv="P-256", kid="py-sig", use="sig", alg="ES256")
        cls.enc = jwk.JWK.generate(kty="EC", crv="P-256", kid="py-enc", use="enc")
        cls.relay.brand = {
            "client_id": "rb_py",
            "name": "Python Bistro",
            "jwks": {"keys": [cls.sig.export_public(as_dict=True), cls.enc.export_public(as_dict=True)]},
        }
        super().setUpClass()

    @classmethod
    def close_clients(cls):
        cls.relay.close()

    def owner(self):
        (token,) = self.need("token")
        return {"Authorization": f"Bearer {token}"}

    def test_01_setup_terms_and_an_email_address(self):
        resp = self.http.post(self.base + "/api/v1/setup", json={"passphrase": PASSPHRASE}, timeout=HTTP_TIMEOUT_S)
        self.state["token"] = self.assert_json(resp, 201)["token"]
        owner = self.owner()
        templates = self.assert_json(
            self.http.get(self.base + "/api/v1/terms/templates", headers=owner, timeout=HTTP_TIMEOUT_S), 200
        )["templates"]
        template = next(t for t in templates if t["id"] == "pdc-intent")
        self.assert_json(
            self.http.put(self.base + "/api/v1/terms", json={"terms": template["terms"]}, headers=owner, timeout=HTTP_TIMEOUT_S),
            201,
        )
        resp = self.http.put(
            self.base + "/api/v1/records/contact.email",
            json={"value": EMAIL, "category": "pd:EmailAddress"},
            headers=owner,
            timeout=HTTP_TIMEOUT_S,
        )
        self.assertIn(resp.status_code, (200, 201), resp.text[:300])

    def test_02_the_relay_receives_a_coarse_intent_with_terms_and_key(self):
        owner = self.owner()
        body = {
            "category": "food.lunch",
            "text": "Lunch for two",
            "expires_at": rfc3339(datetime.now(timezone.utc) + timedelta(hours=2)),
            "location": {"geohash": "u09tvw0", "radius_m": 800},
            "relay": True,
        }
        created = self.assert_json(
            self.http.post(self.base + "/api/v1/intents", json=body, headers=owner, timeout=HTTP_TIMEOUT_S), 201
        )
        self.state["intent"] = created["id"]
        published = wait_until(lambda: list(self.relay.published), 20, "the publication")[0]
        self.assertEqual(published["location"]["geohash"], "u09tv")
        self.assertNotIn("disclose", published)
        self.assertNotIn("relay", published)
        digest = hashlib.sha256(rfc8785.dumps(published["terms"])).hexdigest()
        self.assertEqual(published["terms_hash"], f"sha256:{digest}")
        self.assertNotIn("d", published["jwk"])
        self.state["published"] = published

    def test_03_a_signed_offer_is_shown_verified(self):
        (published, intent) = self.need("published", "intent")
        offer = {
            "name": "Menu du jour",
            "price": {"amount": "14.50", "currency": "EUR"},
            "valid_until": rfc3339(datetime.now(timezone.utc) + timedelta(hours=1)),
            "data_requested": ["contact.email"],
        }
        claims = {
            "intent_id": "ri_py",
            "terms_hash": published["terms_hash"],
            "offer_sha256": b64url(hashlib.sha256(rfc8785.dumps(offer)).digest()),
            "iat": int(time.time()),
        }
        token = jws.JWS(json.dumps(claims).encode())
        token.add_signature(self.sig, alg="ES256", protected=json.dumps({"alg": "ES256", "kid": "py-sig"}))
        acceptance = token.serialize(compact=True)
        with self.relay.lock:
            self.relay.offers = [
                {
                    "n": 1,
                    "id": "ro_py",
                    "intent_id": "ri_py",
                    "brand": {"client_id": "rb_py", "name": "Python Bistro"},
                    "offer": offer,
                    "acceptance": acceptance,
                }
            ]
        owner = self.owner()

        def listed():
            resp = self.http.get(f"{self.base}/api/v1/intents/{intent}/offers", headers=owner, timeout=HTTP_TIMEOUT_S)
            return self.assert_json(resp, 200)["offers"]

        shown = wait_until(listed, 30, "the offer in the vault")[0]
        self.assertEqual(shown["via"], self.relay.url)
        self.assertEqual(shown["brand"], {"client_id": "rb_py", "name": "Python Bistro", "verified": True})
        self.state["offer"] = shown["id"]
        self.state["acceptance"] = acceptance

    def test_04_jwcrypto_verifies_the_receipt_and_decrypts_exactly_the_disclosed_field(self):
        (offer, published, acceptance) = self.need("offer", "published", "acceptance")
        owner = self.owner()
        accepted = self.assert_json(
            self.http.post(
                f"{self.base}/api/v1/offers/{offer}/accept",
                json={"disclose": ["contact.email"]},
                headers=owner,
                timeout=HTTP_TIMEOUT_S,
            ),
            200,
        )
        self.assertEqual(accepted["sent"]["disclosed"], ["contact.email"])
        message = wait_until(lambda: list(self.relay.messages), 20, "the accepted message")[0]
        self.assertEqual(message["type"], "accepted")
        self.assertEqual(message["offer_id"], "ro_py")

        receipt = jws.JWS()
        receipt.deserialize(message["receipt"])
        receipt.verify(jwk.JWK(**published["jwk"]), alg="ES256")
        claims = json.loads(receipt.payload)
        self.assertEqual(claims["acceptance"], acceptance)
        self.assertEqual(claims["intent_id"], "ri_py")
        self.assertEqual(claims["offer_id"], "ro_py")
        self.assertIsInstance(claims["accepted_at"], int)

        token = jwe.JWE()
        token.deserialize(message["jwe"], key=self.enc)
        header = json.loads(token.objects["protected"])
        self.assertEqual((header["alg"], header["enc"], header["kid"]), ("ECDH-ES", "A256GCM", "py-enc"))
        self.assertEqual(json.loads(token.payload), {"fields": {"contact.email": EMAIL}})
        self.assertNotIn(EMAIL, message["jwe"])


if __name__ == "__main__":
    sys.exit(run_bounded(RelayJweTest, RUN_LIMIT_S, "interop (test_relay_jwe.py)"))
