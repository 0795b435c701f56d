"""Interoperability test: third-party OAuth 2.0 / JOSE libraries against a real vrm-vault.

A brand here is played by Python's **authlib** (OAuth 2.0 client, RFC 7523 client assertions,
RFC 7009 revocation, RFC 7662 introspection) and **pyjwt** (verifying the vault's ES256 access
tokens and agreement receipts against its published JWKS). Nothing in this file knows the vault's
OAuth or brand endpoint paths: they all come from the RFC 8414 metadata at
/.well-known/oauth-authorization-server. Only the owner's own steps (setup, invitation) use the
owner API's paths, with plain `requests`.

Run through tests/interop/run.sh (virtualenv with the pinned requirements), or directly:

    VRM_VAULT_BIN=target/debug/vrm-vault python3 tests/interop/test_oauth.py

The test starts the server itself on 127.0.0.1:0 with a fresh temporary data directory and stops
it at the end. Every HTTP call has a timeout and the whole run is bounded by RUN_LIMIT_S.
"""

import json
import sys
import uuid
from urllib.parse import urlsplit

import jwt  # pyjwt
import rfc8785
from authlib.integrations.base_client import OAuthError
from authlib.integrations.requests_client import OAuth2Session
from authlib.oauth2.rfc7523 import PrivateKeyJWT, private_key_jwt_sign
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from joserfc.jwk import RSAKey  # authlib's own JOSE library

from vault_process import (
    HTTP_TIMEOUT_S,
    PASSPHRASE,
    WELL_KNOWN,
    VaultTestCase,
    b64url,
    run_bounded,
)

RUN_LIMIT_S = 110  # the whole test, server start to stop

SCOPE = "intents:read offers:write agreements:read"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


class Brand:
    """What one brand knows about itself: registration answer, its key (private_key_jwt), tokens."""

    def __init__(self, name, method):
        self.name = name
        self.method = method
        self.registration = None
        self.client_id = None
        self.client_secret = None
        self.private_key = None  # joserfc RSAKey, as authlib's RFC 7523 helpers take it
        self.kid = None
        self.session = None  # authlib OAuth2Session
        self.receipt_response = None
        self.token = None
        self.claims = None


class InteropTest(VaultTestCase):
    """The steps share one server and run in order (unittest sorts methods by name)."""

    state = {}

    @classmethod
    def close_clients(cls):
        for brand in cls.state.get("brands", {}).values():
            if brand.session is not None:
                brand.session.close()

    # --- helpers ----------------------------------------------------------------------------

    def oauth_session(self, brand, meta):
        """authlib's requests client for one brand, configured from the metadata only."""
        if brand.method == "client_secret_basic":
            session = OAuth2Session(
                brand.client_id,
                brand.client_secret,
                token_endpoint_auth_method="client_secret_basic",
                revocation_endpoint_auth_method="client_secret_basic",
                scope=SCOPE,
                default_timeout=HTTP_TIMEOUT_S,
            )
        else:
            session = OAuth2Session(
                brand.client_id,
                brand.private_key,
                token_endpoint_auth_method="private_key_jwt",
                revocation_endpoint_auth_method="private_key_jwt",
                scope=SCOPE,
                default_timeout=HTTP_TIMEOUT_S,
            )
            # RFC 7523 §3: aud = the token endpoint, for the revocation and introspection calls
            # too, as the vault's contract says (without it authlib puts the URL being called).
            session.register_client_auth_method(
                PrivateKeyJWT(meta["token_endpoint"], headers={"kid": brand.kid}, alg="RS256")
            )
        return session

    def jwks_client(self):
        (meta,) = self.need("meta")
        if "jwks_client" not in self.state:
            self.state["jwks_client"] = jwt.PyJWKClient(
                meta["jwks_uri"], cache_keys=False, timeout=HTTP_TIMEOUT_S
            )
        return self.state["jwks_client"]

    # --- 1. discovery -----------------------------------------------------------------------

    def test_1_discovery(self):
        resp = self.http.get(self.base + WELL_KNOWN, timeout=HTTP_TIMEOUT_S)
        meta = self.assert_json(resp, 200)
        self.assertEqual(meta["issuer"], self.base)
        issuer_origin = urlsplit(meta["issuer"])[:2]
        for field in (
            "token_endpoint",
            "registration_endpoint",
            "jwks_uri",
            "revocation_endpoint",
            "introspection_endpoint",
            "vrm_terms_endpoint",
            "vrm_agreements_endpoint",
            "vrm_resource",
        ):
            self.assertIn(field, meta)
            self.assertEqual(urlsplit(meta[field])[:2], issuer_origin, field)
        self.assertIn("client_credentials", meta["grant_types_supported"])
        for method in ("client_secret_basic", "private_key_jwt"):
            self.assertIn(method, meta["token_endpoint_auth_methods_supported"])
        algs = meta.get("token_endpoint_auth_signing_alg_values_supported")
        if algs is not None:
            self.assertIn("RS256", algs)
        for scope in SCOPE.split():
            self.assertIn(scope, meta["scopes_supported"])
        self.state["meta"] = meta


    # --- 2. owner invites, brands register (RFC 7591) ---------------------------------------

    def test_2_register_brands(self):
        (meta,) = self.need("meta")
        # Owner steps, plain requests on the owner API.
        resp = self.http.post(
            self.base + "/api/v1/setup", json={"passphrase": PASSPHRASE}, timeout=HTTP_TIMEOUT_S
        )
        self.assertIn(resp.status_code, (200, 201), resp.text[:500])
        owner = {"Authorization": "Bearer " + resp.json()["token"]}
        invitation = self.assert_json(
            self.http.post(
                self.base + "/api/v1/invitations",
                json={"max_uses": 2, "expires_in_hours": 1, "note": "authlib interop"},
                headers=owner,
                timeout=HTTP_TIMEOUT_S,
            ),
            201,
        )
        iat = invitation["initial_access_token"]
        self.assertEqual(invitation["registration_endpoint"], meta["registration_endpoint"])

        # The JWKS (there once the vault is set up: its signing key is made at setup) holds the
        # vault's ES256 public keys only.
        jwks = self.assert_json(self.http.get(meta["jwks_uri"], timeout=HTTP_TIMEOUT_S), 200)
        self.assertTrue(jwks["keys"])
        for key in jwks["keys"]:
            self.assertEqual((key["kty"], key["crv"], key["alg"]), ("EC", "P-256", "ES256"))
            self.assertIn("kid", key)
            self.assertNotIn("d", key)

        # authlib has no RFC 7591 *client* (only the server side), so the registration request
        # is the RFC 7591 JSON POSTed with requests, the initial access token as a Bearer token.
        no_token = self.http.post(
            meta["registration_endpoint"],
            json={"client_name": "No Invitation", "token_endpoint_auth_method": "client_secret_basic"},
            timeout=HTTP_TIMEOUT_S,
        )
        self.assertEqual(self.assert_json(no_token, 401)["error"], "invalid_token")

        basic = Brand("Interop Basic Brand", "client_secret_basic")
        resp = self.http.post(
            meta["registration_endpoint"],
            json={
                "client_name": basic.name,
                "token_endpoint_auth_method": basic.method,
                "grant_types": ["client_credentials"],
                "scope": SCOPE,
                "client_uri": "https://basic.example",
            },
            headers={"Authorization": "Bearer " + iat},
            timeout=HTTP_TIMEOUT_S,
        )
        basic.registration = self.assert_json(resp, 201)
        basic.client_id = basic.registration["client_id"]
        basic.client_secret = basic.registration["client_secret"]
        self.assertEqual(basic.registration["client_secret_expires_at"], 0)
        self.assertIsInstance(basic.registration["client_id_issued_at"], int)
        self.assertEqual(basic.registration["token_endpoint_auth_method"], basic.method)

        # private_key_jwt: a fresh RSA key; only its public JWK goes to the vault.
        pkjwt = Brand("Interop Key Brand", "private_key_jwt")
        private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pkjwt.private_key = RSAKey.import_key(
            private_key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        public_jwk = jwt.algorithms.RSAAlgorithm.to_jwk(private_key.public_key(), as_dict=True)
        pkjwt.kid = "interop-" + uuid.uuid4().hex[:12]
        public_jwk.update({"kid": pkjwt.kid, "use": "sig", "alg": "RS256"})
        resp = self.http.post(
            meta["registration_endpoint"],
            json={
                "client_name": pkjwt.name,
                "token_endpoint_auth_method": pkjwt.method,
                "jwks": {"keys": [public_jwk]},
                "grant_types": ["client_credentials"],
                "scope": SCOPE,
            },
            headers={"Authorization": "Bearer " + iat},
            timeout=HTTP_TIMEOUT_S,
        )
        pkjwt.registration = self.assert_json(resp, 201)
        pkjwt.client_id = pkjwt.registration["client_id"]
        self.assertNotIn("client_secret", pkjwt.registration)
        self.assertEqual(pkjwt.registration["token_endpoint_auth_method"], pkjwt.method)
        self.assertNotEqual(basic.client_id, pkjwt.client_id)

        # max_uses 2: the invitation is spent now.
        spent = self.http.post(
            meta["registration_endpoint"],
            json={"client_name": "Third Brand", "token_endpoint_auth_method": "client_secret_basic"},
            headers={"Authorization": "Bearer " + iat},
            timeout=HTTP_TIMEOUT_S,
        )
        self.assertEqual(self.assert_json(spent, 401)["error"], "invalid_token")

        for brand in (basic, pkjwt):
            brand.session = self.oauth_session(brand, meta)
        self.state["brands"] = {"basic": basic, "pkjwt": pkjwt}

    # --- 3. no token before the terms are accepted -------------------------------------------

    def test_3_token_refused_before_terms(self):
        meta, brands = self.need("meta", "brands")
        for brand in brands.values():
            with self.subTest(brand=brand.method):
                with self.assertRaises(OAuthError) as caught:
                    brand.session.fetch_token(
                        meta["token_endpoint"], grant_type="client_credentials"
                    )
                self.assertEqual(caught.exception.error, "unauthorized_client")

        # The raw answer also says which terms to accept.
        terms = self.assert_json(
            self.http.get(meta["vrm_terms_endpoint"], timeout=HTTP_TIMEOUT_S), 200
        )
        basic = brands["basic"]
        raw = self.http.post(
            meta["token_endpoint"],
            data={"grant_type": "client_credentials"},
            auth=(basic.client_id, basic.client_secret),
            timeout=HTTP_TIMEOUT_S,
        )
        body = self.assert_json(raw, 400)
        self.assertEqual(body["error"], "unauthorized_client")
        self.assertEqual(body["terms_hash"], terms["hash"])

        # Wrong secret: invalid_client, through authlib too.
        wrong = OAuth2Session(
            basic.client_id, "not-the-secret", scope=SCOPE, default_timeout=HTTP_TIMEOUT_S
        )
        try:
            with self.assertRaises(OAuthError) as caught:
                wrong.fetch_token(meta["token_endpoint"], grant_type="client_credentials")
            self.assertEqual(caught.exception.error, "invalid_client")
        finally:
            wrong.close()

    # --- 4. accept the terms -----------------------------------------------------------------

    def test_4_accept_terms(self):
        meta, brands = self.need("meta", "brands")
        terms = self.assert_json(
            self.http.get(meta["vrm_terms_endpoint"], timeout=HTTP_TIMEOUT_S), 200
        )
        self.assertTrue(terms["hash"].startswith("sha256:"), terms["hash"])
        self.assertIsInstance(terms["version"], int)

        basic, pkjwt = brands["basic"], brands["pkjwt"]
        # client_secret_basic brand: HTTP Basic.
        resp = self.http.post(
            meta["vrm_agreements_endpoint"],
            json={"terms_hash": terms["hash"]},
            auth=(basic.client_id, basic.client_secret),
            timeout=HTTP_TIMEOUT_S,
        )
        self.assert_json(resp, 201)
        basic.receipt_response = resp

        # private_key_jwt brand: the client assertion in the JSON body, signed with authlib's
        # RFC 7523 helper, aud = the token endpoint.
        assertion = private_key_jwt_sign(
            pkjwt.private_key,
            client_id=pkjwt.client_id,
            token_endpoint=meta["token_endpoint"],
            alg="RS256",
            header={"kid": pkjwt.kid},
        )
        resp = self.http.post(
            meta["vrm_agreements_endpoint"],
            json={
                "terms_hash": terms["hash"],
                "client_assertion_type": ASSERTION_TYPE,
                "client_assertion": assertion,
            },
            timeout=HTTP_TIMEOUT_S,
        )
        self.assert_json(resp, 201)
        pkjwt.receipt_response = resp

        for brand in (basic, pkjwt):
            with self.subTest(brand=brand.method):
                resp = brand.receipt_response
                self.assertTrue(
                    resp.headers.get("Content-Type", "").startswith("application/json"),
                    resp.headers.get("Content-Type"),
                )
                doc = resp.json()
                receipt = doc["receipt"]
                self.assertEqual(receipt["issuer"], meta["issuer"])
                self.assertEqual(receipt["terms"]["hash"], terms["hash"])
                self.assertEqual(receipt["terms"]["version"], terms["version"])
                self.assertEqual(receipt["parties"]["brand"], brand.client_id)
                self.assertEqual(receipt["parties"]["brand_name"], brand.name)
                self.assertEqual(receipt["events"][-1]["type"], "accepted")
                self.assertEqual(receipt["status"], "accepted")
                # The body is RFC 8785 canonical JSON as sent.
                self.assertEqual(resp.content, rfc8785.dumps(doc))
        self.assertNotEqual(
            basic.receipt_response.json()["receipt"]["agreement_id"],
            pkjwt.receipt_response.json()["receipt"]["agreement_id"],
        )
        self.assertNotEqual(
            basic.receipt_response.json()["receipt"]["parties"]["person"],
            pkjwt.receipt_response.json()["receipt"]["parties"]["person"],
        )
        self.state["terms"] = terms
        self.state["accepted"] = True

    # --- 5. client_credentials tokens --------------------------------------------------------

    def test_5_client_credentials(self):
        meta, brands, _ = self.need("meta", "brands", "accepted")
        for brand in brands.values():
            with self.subTest(brand=brand.method):
                token = brand.session.fetch_token(
                    meta["token_endpoint"], grant_type="client_credentials"
                )
                self.assertEqual(token["token_type"].lower(), "bearer")
                self.assertIsInstance(token["expires_in"], int)
                self.assertTrue(0 < token["expires_in"] <= 900, token["expires_in"])
                self.assertEqual(set(token["scope"].split()), set(SCOPE.split()))
                self.assertNotIn("refresh_token", token)
                brand.token = token
        self.state["tokens"] = True

    # --- 6. access tokens verified with pyjwt from metadata + JWKS only ----------------------

    def test_6_verify_access_tokens(self):
        meta, brands, _ = self.need("meta", "brands", "tokens")
        jwks = self.jwks_client()
        for brand in brands.values():
            with self.subTest(brand=brand.method):
                access_token = brand.token["access_token"]
                header = jwt.get_unverified_header(access_token)
                self.assertEqual(header["typ"], "at+jwt")
                self.assertEqual(header["alg"], "ES256")
                self.assertIn("kid", header)
                key = jwks.get_signing_key_from_jwt(access_token)
                claims = jwt.decode(
                    access_token,
                    key,
                    algorithms=["ES256"],
                    audience=meta["vrm_resource"],
                    issuer=meta["issuer"],
                    options={"require": ["iss", "aud", "sub", "jti", "iat", "exp"]},
                )
                for claim in ("sub", "client_id", "jti", "scope", "exp"):
                    self.assertIn(claim, claims)
                self.assertEqual(claims["client_id"], brand.client_id)
                self.assertEqual(set(claims["scope"].split()), set(SCOPE.split()))
                self.assertNotEqual(claims["sub"], brand.client_id)
                self.assertLessEqual(claims["exp"] - claims["iat"], 900)
                # The same pseudonym the agreement receipt names as the person.
                receipt = brand.receipt_response.json()["receipt"]
                self.assertEqual(claims["sub"], receipt["parties"]["person"])
                brand.claims = claims
        # Pairwise pseudonyms: the two brands cannot correlate the person by `sub`.
        self.assertNotEqual(brands["basic"].claims["sub"], brands["pkjwt"].claims["sub"])
        self.assertNotEqual(brands["basic"].claims["jti"], brands["pkjwt"].claims["jti"])

    # --- 7. agreement receipts: detached JWS over the JCS bytes ------------------------------

    def test_7_verify_receipts(self):
        meta, brands, _ = self.need("meta", "brands", "accepted")
        jwks = self.jwks_client()
        for brand in brands.values():
            with self.subTest(brand=brand.method):
                doc = brand.receipt_response.json()
                receipt = doc["receipt"]
                protected, detached, signature = doc["signature"].split(".")
                self.assertEqual(detached, "", "the payload must be detached")
                # RFC 8785 canonical bytes of the `receipt` object, with the rfc8785 package
                # (full JCS, numbers included), put back between the two dots.
                payload = rfc8785.dumps(receipt)
                compact = f"{protected}.{b64url(payload)}.{signature}"
                header = jwt.get_unverified_header(compact)
                self.assertEqual(header["alg"], "ES256")
                # The payload is no JWT claims set, hence "+jws".
                self.assertEqual(header["typ"], "vrm-receipt+jws")
                key = jwks.get_signing_key_from_jwt(compact)
                verified = jwt.api_jws.decode(compact, key, algorithms=["ES256"])
                self.assertEqual(verified, payload)
                # One changed byte and the signature no longer holds.
                forged = dict(receipt, status="withdrawn")
                forged_compact = f"{protected}.{b64url(rfc8785.dumps(forged))}.{signature}"
                with self.assertRaises(jwt.InvalidSignatureError):
                    jwt.api_jws.decode(forged_compact, key, algorithms=["ES256"])
                # The event chain: each event's `prev` is the hash of the one before it.
                events = receipt["events"]
                for before, after in zip(events, events[1:]):
                    self.assertEqual(after["prev"], before["hash"])

    # --- 8. introspection and revocation -----------------------------------------------------

    def test_8_introspect_and_revoke(self):
        meta, brands, _ = self.need("meta", "brands", "tokens")
        for brand in brands.values():
            with self.subTest(brand=brand.method):
                access_token = brand.token["access_token"]
                bearer = {"Authorization": "Bearer " + access_token}

                resp = brand.session.introspect_token(
                    meta["introspection_endpoint"],
                    token=access_token,
                    token_type_hint="access_token",
                )
                info = self.assert_json(resp, 200)
                self.assertIs(info["active"], True)
                self.assertEqual(info["client_id"], brand.client_id)
                self.assertEqual(set(info["scope"].split()), set(SCOPE.split()))
                if brand.claims is not None:
                    self.assertEqual(info["sub"], brand.claims["sub"])
                    self.assertEqual(info["jti"], brand.claims["jti"])
                self.assertEqual(info["iss"], meta["issuer"])

                # The token works on the brand API (agreements:read) before revocation.
                listing = self.assert_json(
                    self.http.get(
                        meta["vrm_agreements_endpoint"], headers=bearer, timeout=HTTP_TIMEOUT_S
                    ),
                    200,
                )
                self.assertIn("agreements", listing)
                if brand.receipt_response is not None:
                    agreement_id = brand.receipt_response.json()["receipt"]["agreement_id"]
                    self.assertIn(agreement_id, json.dumps(listing))
                    again = self.http.get(
                        meta["vrm_agreements_endpoint"] + "/" + agreement_id,
                        headers=bearer,
                        timeout=HTTP_TIMEOUT_S,
                    )
                    self.assert_json(again, 200)
                    self.assertEqual(again.content, brand.receipt_response.content)

                resp = brand.session.revoke_token(
                    meta["revocation_endpoint"],
                    token=access_token,
                    token_type_hint="access_token",
                )
                self.assertEqual(resp.status_code, 200, resp.text[:500])

                resp = brand.session.introspect_token(
                    meta["introspection_endpoint"],
                    token=access_token,
                    token_type_hint="access_token",
                )
                self.assertEqual(self.assert_json(resp, 200), {"active": False})

                refused = self.http.get(
                    meta["vrm_agreements_endpoint"], headers=bearer, timeout=HTTP_TIMEOUT_S
                )
                self.assertEqual(refused.status_code, 401, refused.text[:500])
                challenge = refused.headers.get("WWW-Authenticate", "")
                self.assertTrue(challenge.startswith("Bearer"), challenge)
                self.assertIn('error="invalid_token"', challenge)


def main():
    return run_bounded(InteropTest, RUN_LIMIT_S, "interop (test_oauth.py)")


if __name__ == "__main__":
    sys.exit(main())
