"""Interoperability test: data grants through the authorization code flow, driven by authlib.

A brand is played by **authlib**'s OAuth 2.0 client (`OAuth2Session`): it builds the
authorization request with PKCE (RFC 7636, S256) and RFC 9396 `authorization_details`, exchanges
the code, refreshes (with rotation), introspects (RFC 7662) and revokes (RFC 7009). **pyjwt**
verifies the access tokens against the vault's JWKS. The OAuth endpoints come from the RFC 8414
metadata only; the brand data API is found under the metadata's `vrm_resource`.

The owner's side is plain `requests` on the owner API: setup, records, an invitation, and the
consent step, done "by an HTTP client with the owner's session" instead of a browser: the test
reads the authorization endpoint's `Location` instead of following it, fetches the consent
request with the owner's bearer token and posts the decision. The redirect URI is a loopback URL
nobody serves: the test reads the `redirect_to` the vault answers instead of going there.

Three authorization rounds keep the checks apart:
  A. the main flow: consent narrowed to one field, code exchange, token verification, data reads,
     refresh with rotation, introspection, the owner revokes the grant;
  B. authorization code reuse revokes the grant issued from that code;
  C. the brand revokes its own tokens (RFC 7009);
and then the refusals: a wrong or missing PKCE verifier, an authorization request without PKCE
or with the `plain` method, an unregistered redirect URI, a denied consent.

Run through tests/interop/run.sh, or directly:

    VRM_VAULT_BIN=target/debug/vrm-vault python3 tests/interop/test_grants.py

The test starts its own server (vault_process.Server) and stops it at the end. Every HTTP call
has a timeout and the whole run is bounded by RUN_LIMIT_S.
"""

import json
import sys
from urllib.parse import parse_qs, urljoin, urlsplit

import jwt  # pyjwt
import requests
from authlib.common.security import generate_token
from authlib.integrations.base_client import OAuthError
from authlib.integrations.requests_client import OAuth2Session

from vault_process import HTTP_TIMEOUT_S, PASSPHRASE, WELL_KNOWN, VaultTestCase, run_bounded

RUN_LIMIT_S = 100  # the whole test, server start to stop

# Loopback, allowed over http (RFC 8252 §7.3); never served: the test reads the redirects.
REDIRECT_URI = "http://127.0.0.1:53682/cb"
DETAILS_TYPE = "urn:vrm-vault:data-access:v1"
PURPOSE = "dpv:ServiceProvision"
EMAIL = "ada.lovelace@example.org"
PHONE = "+44 20 7946 0958"
RECORDS = {
    "contact.email": (EMAIL, "pd:EmailAddress"),
    "contact.phone": (PHONE, "pd:TelephoneNumber"),
}


def query_of(url):
    """The query parameters of a URL, one value each."""
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query, keep_blank_values=True).items()}


class GrantsTest(VaultTestCase):
    """The steps share one server and run in order (unittest sorts methods by name)."""

    state = {}

    @classmethod
    def close_clients(cls):
        session = cls.state.get("session")
        if session is not None:
            session.close()

    # --- helpers ------------------------------------------------------------------------------

    def owner(self):
        (token,) = self.need("owner_token")
        return {"Authorization": "Bearer " + token}

    def details(self, fields):
        (meta,) = self.need("meta")
        return [
            {
                "type": DETAILS_TYPE,
                "fields": fields,
                "actions": ["read"],
                "purpose": PURPOSE,
                "locations": [meta["vrm_resource"]],
            }
        ]

    def authorization_url(self, fields, verifier, state, **extra):
        """authlib builds the request: PKCE S256 from `verifier` (none when None), the
        authorization details as URL-encoded JSON, the resource indicator."""
        meta, session = self.need("meta", "session")
        params = {
            "authorization_details": json.dumps(self.details(fields)),
            "resource": meta["vrm_resource"],
        }
        params.update(extra)
        url, returned_state = session.create_authorization_url(
            meta["authorization_endpoint"], state=state, code_verifier=verifier, **params
        )
        self.assertEqual(returned_state, state)
        query = query_of(url)
        self.assertEqual(query["response_type"], "code")
        self.assertEqual(query["redirect_uri"], REDIRECT_URI)
        if verifier is not None:
            self.assertEqual(query["code_challenge_method"], "S256")
        return url

    def authorize(self, url):
        """The user agent's first hop: GET the authorization URL, without following."""
        return self.http.get(url, allow_redirects=False, timeout=HTTP_TIMEOUT_S)

    def consent_request_id(self, resp):
        self.assertEqual(resp.status_code, 303, f"authorize: {resp.status_code} {resp.text[:500]}")
        location = urljoin(self.base + "/", resp.headers["Location"])
        self.assertEqual(urlsplit(location)[:3], urlsplit(self.base + "/consent")[:3], location)
        request_id = query_of(location).get("request")
        self.assertTrue(request_id, location)
        return request_id

    def consent(self, request_id):
        resp = self.http.get(
            f"{self.base}/api/v1/consent/{request_id}", headers=self.owner(), timeout=HTTP_TIMEOUT_S
        )
        return self.assert_json(resp, 200), resp

    def decide(self, request_id, body):
        resp = self.http.post(
            f"{self.base}/api/v1/consent/{request_id}",
            json=body,
            headers=self.owner(),
            timeout=HTTP_TIMEOUT_S,
        )
        redirect_to = self.assert_json(resp, 200)["redirect_to"]
        self.assertTrue(redirect_to.startswith(REDIRECT_URI + "?"), redirect_to)
        return redirect_to

    def code_round(self, fields, approve=None):
        """A whole authorization request and an approved consent: (redirect_to, verifier, state)."""
        verifier = generate_token(64)
        state = generate_token(24)
        request_id = self.consent_request_id(
            self.authorize(self.authorization_url(fields, verifier, state))
        )
        body = {"decision": "approve"}
        if approve is not None:
            body["fields"] = approve
        redirect_to = self.decide(request_id, body)
        query = query_of(redirect_to)
        self.assertIn("code", query, redirect_to)
        self.assertEqual(query.get("state"), state)
        return redirect_to, verifier, state

    def exchange(self, redirect_to, state, verifier):
        """authlib's code exchange: code (and state check) from the redirect, PKCE verifier."""
        meta, session = self.need("meta", "session")
        return session.fetch_token(
            meta["token_endpoint"],
            authorization_response=redirect_to,
            state=state,
            code_verifier=verifier,
        )

    def data_url(self, path=""):
        (meta,) = self.need("meta")
        return meta["vrm_resource"] + "/data" + (f"/{path}" if path else "")

    def read(self, access_token, path=""):
        return self.http.get(
            self.data_url(path),
            headers={"Authorization": "Bearer " + access_token},
            timeout=HTTP_TIMEOUT_S,
        )

    def assert_invalid_token(self, resp):
        self.assertEqual(resp.status_code, 401, f"{resp.url}: {resp.status_code} {resp.text[:500]}")
        challenge = resp.headers.get("WWW-Authenticate", "")
        self.assertTrue(challenge.startswith("Bearer"), challenge)
        self.assertIn('error="invalid_token"', challenge)

    def assert_invalid_grant(self, call):
        with self.assertRaises(OAuthError) as caught:
            call()
        self.assertEqual(caught.exception.error, "invalid_grant", caught.exception.description)

    def introspect(self, access_token):
        meta, session = self.need("meta", "session")
        resp = session.introspect_token(
            meta["introspection_endpoint"], token=access_token, token_type_hint="access_token"
        )
        return self.assert_json(resp, 200)

    def owner_grant(self, grant_id):
        resp = self.http.get(
            f"{self.base}/api/v1/grants/{grant_id}", headers=self.owner(), timeout=HTTP_TIMEOUT_S
        )
        return self.assert_json(resp, 200)

    # --- discovery ----------------------------------------------------------------------------

    def test_00_discovery(self):
        meta = self.assert_json(self.http.get(self.base + WELL_KNOWN, timeout=HTTP_TIMEOUT_S), 200)
        self.assertEqual(meta["issuer"], self.base)
        self.state["meta"] = meta
        self.assertEqual(urlsplit(meta["authorization_endpoint"])[:2], urlsplit(self.base)[:2])
        self.assertIn("code", meta["response_types_supported"])
        self.assertEqual(meta["code_challenge_methods_supported"], ["S256"])
        for grant_type in ("authorization_code", "refresh_token", "client_credentials"):
            self.assertIn(grant_type, meta["grant_types_supported"])
        self.assertIn(DETAILS_TYPE, meta["authorization_details_types_supported"])

    # --- owner setup, records, invitation -----------------------------------------------------

    def test_01_owner_setup(self):
        resp = self.http.post(
            self.base + "/api/v1/setup", json={"passphrase": PASSPHRASE}, timeout=HTTP_TIMEOUT_S
        )
        self.assertIn(resp.status_code, (200, 201), resp.text[:500])
        self.state["owner_token"] = resp.json()["token"]
        # The owner authenticates by bearer token from here on; without the session cookie the
        # setup left, no brand-side request below can pass on the owner's credentials.
        self.http.cookies.clear()

        for path, (value, category) in RECORDS.items():
            resp = self.http.put(
                f"{self.base}/api/v1/records/{path}",
                json={"value": value, "category": category},
                headers=self.owner(),
                timeout=HTTP_TIMEOUT_S,
            )
            self.assert_json(resp, 201)

        invitation = self.assert_json(
            self.http.post(
                self.base + "/api/v1/invitations",
                json={"max_uses": 1, "expires_in_hours": 1, "note": "authlib grants interop"},
                headers=self.owner(),
                timeout=HTTP_TIMEOUT_S,
            ),
            201,
        )
        self.state["initial_access_token"] = invitation["initial_access_token"]

    # --- the brand registers (RFC 7591) and accepts the terms ---------------------------------

    def test_02_register_and_accept(self):
        meta, iat = self.need("meta", "initial_access_token")
        resp = self.http.post(
            meta["registration_endpoint"],
            json={
                "client_name": "Interop Grants Brand",
                "token_endpoint_auth_method": "client_secret_basic",
                "grant_types": ["authorization_code", "refresh_token", "client_credentials"],
                "response_types": ["code"],
                "redirect_uris": [REDIRECT_URI],
                "client_uri": "https://grants.example",
            },
            headers={"Authorization": "Bearer " + iat},
            timeout=HTTP_TIMEOUT_S,
        )
        registration = self.assert_json(resp, 201)
        self.assertEqual(registration["redirect_uris"], [REDIRECT_URI])
        self.assertEqual(
            set(registration["grant_types"]),
            {"authorization_code", "refresh_token", "client_credentials"},
        )
        client_id, client_secret = registration["client_id"], registration["client_secret"]

        terms = self.assert_json(
            self.http.get(meta["vrm_terms_endpoint"], timeout=HTTP_TIMEOUT_S), 200
        )
        self.assert_json(
            self.http.post(
                meta["vrm_agreements_endpoint"],
                json={"terms_hash": terms["hash"]},
                auth=(client_id, client_secret),
                timeout=HTTP_TIMEOUT_S,
            ),
            201,
        )
        self.state["client_id"] = client_id
        self.state["session"] = OAuth2Session(
            client_id,
            client_secret,
            token_endpoint_auth_method="client_secret_basic",
            revocation_endpoint_auth_method="client_secret_basic",
            redirect_uri=REDIRECT_URI,
            code_challenge_method="S256",
            default_timeout=HTTP_TIMEOUT_S,
        )

    # --- round A: authorization request, the owner's consent ----------------------------------

    def test_03_authorize_and_consent(self):
        meta, client_id = self.need("meta", "client_id")
        verifier = generate_token(64)
        state = generate_token(24)
        url = self.authorization_url(["contact.email", "contact.phone"], verifier, state)
        self.assertEqual(
            json.loads(query_of(url)["authorization_details"]),
            self.details(["contact.email", "contact.phone"]),
        )
        request_id = self.consent_request_id(self.authorize(url))

        # The consent request is the owner's business only.
        anonymous = requests.get(f"{self.base}/api/v1/consent/{request_id}", timeout=HTTP_TIMEOUT_S)
        self.assertEqual(anonymous.status_code, 401, anonymous.text[:500])
        self.assertNotIn("masked_value", anonymous.text)

        view, raw = self.consent(request_id)
        self.assertEqual(view["request_id"], request_id)
        self.assertEqual(view["client_id"], client_id)
        self.assertEqual(view["client_name"], "Interop Grants Brand")
        self.assertEqual(view["client_uri"], "https://grants.example")
        self.assertEqual(view["redirect_uri"], REDIRECT_URI)
        self.assertEqual(view["purpose"], PURPOSE)
        self.assertEqual(view["actions"], ["read"])
        self.assertIs(view["decision"]["permitted"], True, view["decision"])
        fields = {f["field"]: f for f in view["fields"]}
        self.assertEqual(set(fields), set(RECORDS))
        for path, (value, category) in RECORDS.items():
            self.assertEqual(fields[path]["category"], category)
            self.assertIs(fields[path]["present"], True)
            self.assertTrue(fields[path]["masked_value"])
            self.assertNotEqual(fields[path]["masked_value"], value)
        # Masked: the values themselves are nowhere in the answer.
        self.assertNotIn(EMAIL, raw.text)
        self.assertNotIn(PHONE, raw.text)
        self.assertNotIn("lovelace", raw.text)
        self.assertTrue(0 < view["expires_in"] <= 600, view["expires_in"])

        # The owner narrows the request to the email address.
        redirect_to = self.decide(request_id, {"decision": "approve", "fields": ["contact.email"]})
        query = query_of(redirect_to)
        self.assertTrue(query.get("code"), redirect_to)
        self.assertEqual(query.get("state"), state)
        self.assertNotIn("error", query)

        # Single use.
        again = self.http.post(
            f"{self.base}/api/v1/consent/{request_id}",
            json={"decision": "approve"},
            headers=self.owner(),
            timeout=HTTP_TIMEOUT_S,
        )
        self.assertIn(again.status_code, (404, 409), again.text[:500])
        self.state["round_a"] = (redirect_to, verifier, state)

    # --- code exchange (authlib), the access token verified (pyjwt) ---------------------------

    def test_04_exchange_code(self):
        meta, client_id, (redirect_to, verifier, state) = self.need("meta", "client_id", "round_a")
        token = self.exchange(redirect_to, state, verifier)
        self.assertEqual(token["token_type"].lower(), "bearer")
        self.assertTrue(0 < token["expires_in"] <= 900, token["expires_in"])
        self.assertTrue(token["refresh_token"].startswith("vrmrt_"), token["refresh_token"])
        (details,) = token["authorization_details"]
        self.assertEqual(details["type"], DETAILS_TYPE)
        self.assertEqual(details["fields"], ["contact.email"])
        self.assertEqual(details["actions"], ["read"])
        self.assertEqual(details["purpose"], PURPOSE)
        self.assertTrue(details["grant_id"].startswith("g_"), details["grant_id"])

        access_token = token["access_token"]
        header = jwt.get_unverified_header(access_token)
        self.assertEqual((header["typ"], header["alg"]), ("at+jwt", "ES256"))
        jwks = jwt.PyJWKClient(meta["jwks_uri"], cache_keys=False, timeout=HTTP_TIMEOUT_S)
        claims = jwt.decode(
            access_token,
            jwks.get_signing_key_from_jwt(access_token),
            algorithms=["ES256"],
            audience=meta["vrm_resource"],
            issuer=meta["issuer"],
            options={"require": ["iss", "aud", "sub", "jti", "iat", "exp"]},
        )
        self.assertEqual(claims["client_id"], client_id)
        self.assertLessEqual(claims["exp"] - claims["iat"], 900)
        (claim_details,) = claims["authorization_details"]
        self.assertEqual(claim_details["type"], DETAILS_TYPE)
        self.assertEqual(claim_details["grant_id"], details["grant_id"])
        self.assertEqual(claim_details["fields"], ["contact.email"])

        grant = self.owner_grant(details["grant_id"])
        self.assertEqual(grant["status"], "active")
        self.assertEqual(grant["origin"], "consent")
        self.assertEqual(grant["client_id"], client_id)
        self.assertEqual(grant["fields"], ["contact.email"])
        self.assertEqual(grant["purpose"], PURPOSE)

        self.state["grant_id"] = details["grant_id"]
        self.state["token_a"] = dict(token)

    # --- the brand data API: only what was granted --------------------------------------------

    def test_05_read_data(self):
        grant_id, token, session = self.need("grant_id", "token_a", "session")
        # authlib's session carries the token it fetched (Authorization: Bearer).
        resp = session.get(self.data_url())
        data = self.assert_json(resp, 200)
        self.assertEqual(data["grant_id"], grant_id)
        self.assertEqual(data["purpose"], PURPOSE)
        self.assertEqual(data["fields"], {"contact.email": EMAIL})
        self.assertNotIn(PHONE, resp.text)

        one = self.assert_json(self.read(token["access_token"], "contact.email"), 200)
        self.assertEqual((one["path"], one["value"]), ("contact.email", EMAIL))
        self.assertEqual(one["category"], "pd:EmailAddress")

        refused = self.read(token["access_token"], "contact.phone")
        self.assertEqual(self.assert_json(refused, 403)["error"], "not_granted")
        self.assertNotIn(PHONE, refused.text)

        # The brand's view of its grant.
        (meta,) = self.need("meta")
        view = self.assert_json(
            self.http.get(
                f"{meta['vrm_resource']}/grants/{grant_id}",
                headers={"Authorization": "Bearer " + token["access_token"]},
                timeout=HTTP_TIMEOUT_S,
            ),
            200,
        )
        self.assertEqual(view["id"], grant_id)
        self.assertEqual(view["status"], "active")
        self.assertEqual(view["fields"], ["contact.email"])
        self.assertEqual(view["purpose"], PURPOSE)

    # --- refresh: rotation, the old refresh token refused -------------------------------------

    def test_06_refresh(self):
        meta, grant_id, token, session = self.need("meta", "grant_id", "token_a", "session")
        old_refresh = token["refresh_token"]
        new = dict(session.refresh_token(meta["token_endpoint"], refresh_token=old_refresh))
        self.assertNotEqual(new["access_token"], token["access_token"])
        self.assertTrue(new["refresh_token"].startswith("vrmrt_"), new["refresh_token"])
        self.assertNotEqual(new["refresh_token"], old_refresh)
        self.assertEqual(new["authorization_details"][0]["grant_id"], grant_id)
        data = self.assert_json(self.read(new["access_token"]), 200)
        self.assertEqual(data["fields"], {"contact.email": EMAIL})
        self.state["token_a2"] = new

        # The old refresh token is spent (grant_type=refresh_token through fetch_token too).
        self.assert_invalid_grant(
            lambda: session.fetch_token(
                meta["token_endpoint"], grant_type="refresh_token", refresh_token=old_refresh
            )
        )
        # Its reuse looks like a replay: the grant's refresh tokens die, the new one too.
        self.assert_invalid_grant(
            lambda: session.refresh_token(
                meta["token_endpoint"], refresh_token=new["refresh_token"]
            )
        )

    # --- introspection, the owner revokes the grant -------------------------------------------

    def test_07_introspect_and_owner_revokes(self):
        grant_id, token = self.need("grant_id", "token_a2")
        access_token = token["access_token"]
        info = self.introspect(access_token)
        self.assertIs(info["active"], True, info)
        self.assertEqual(info["authorization_details"][0]["grant_id"], grant_id)
        self.assertEqual(info["authorization_details"][0]["fields"], ["contact.email"])

        revoked = self.assert_json(
            self.http.delete(
                f"{self.base}/api/v1/grants/{grant_id}",
                headers=self.owner(),
                timeout=HTTP_TIMEOUT_S,
            ),
            200,
        )
        self.assertEqual(revoked["status"], "revoked")
        # Effective on the brand's very next request.
        self.assert_invalid_token(self.read(access_token))
        self.assertEqual(self.introspect(access_token), {"active": False})

    # --- round B: reusing a code revokes the grant issued from it -----------------------------

    def test_08_code_reuse_revokes_grant(self):
        meta, session = self.need("meta", "session")
        fields = ["contact.email", "contact.phone"]
        redirect_to, verifier, state = self.code_round(fields)
        token = dict(self.exchange(redirect_to, state, verifier))
        grant_id = token["authorization_details"][0]["grant_id"]
        self.assertNotEqual(grant_id, self.state.get("grant_id"))
        data = self.assert_json(self.read(token["access_token"]), 200)
        self.assertEqual(data["fields"], {"contact.email": EMAIL, "contact.phone": PHONE})

        self.assert_invalid_grant(lambda: self.exchange(redirect_to, state, verifier))
        self.assert_invalid_token(self.read(token["access_token"]))
        self.assertEqual(self.introspect(token["access_token"]), {"active": False})
        # Refresh tokens die with the grant.
        self.assert_invalid_grant(
            lambda: session.refresh_token(
                meta["token_endpoint"], refresh_token=token["refresh_token"]
            )
        )
        self.assertEqual(self.owner_grant(grant_id)["status"], "revoked")

    # --- round C: the brand revokes its own tokens (RFC 7009) ---------------------------------

    def test_09_brand_revokes_tokens(self):
        meta, session = self.need("meta", "session")
        redirect_to, verifier, state = self.code_round(["contact.email"])
        token = dict(self.exchange(redirect_to, state, verifier))

        # The access token: inactive at once, refused by the data API.
        resp = session.revoke_token(
            meta["revocation_endpoint"],
            token=token["access_token"],
            token_type_hint="access_token",
        )
        self.assertEqual(resp.status_code, 200, resp.text[:500])
        self.assertEqual(self.introspect(token["access_token"]), {"active": False})
        self.assert_invalid_token(self.read(token["access_token"]))

        # The refresh token (RFC 7009 §2: revoking refresh tokens MUST be supported).
        resp = session.revoke_token(
            meta["revocation_endpoint"],
            token=token["refresh_token"],
            token_type_hint="refresh_token",
        )
        self.assertEqual(resp.status_code, 200, resp.text[:500])
        with self.assertRaises(OAuthError, msg="a revoked refresh token still refreshes") as caught:
            session.refresh_token(meta["token_endpoint"], refresh_token=token["refresh_token"])
        self.assertEqual(caught.exception.error, "invalid_grant", caught.exception.description)

    # --- PKCE and authorization request refusals ----------------------------------------------

    def test_10_pkce_verifier_refused(self):
        # A well-formed wrong verifier, then (with a code of its own) none at all.
        redirect_to, _, state = self.code_round(["contact.email"])
        self.assert_invalid_grant(lambda: self.exchange(redirect_to, state, generate_token(64)))
        redirect_to, _, state = self.code_round(["contact.email"])
        self.assert_invalid_grant(lambda: self.exchange(redirect_to, state, None))

    def test_11_authorize_refusals(self):
        meta, session = self.need("meta", "session")

        def redirected_error(resp, state):
            self.assertEqual(resp.status_code, 303, resp.text[:500])
            location = resp.headers["Location"]
            self.assertTrue(location.startswith(REDIRECT_URI + "?"), location)
            query = query_of(location)
            self.assertEqual(query.get("state"), state, location)
            self.assertNotIn("code", query)
            return query["error"]

        # No PKCE at all (authlib adds none without a verifier).
        state = generate_token(24)
        url = self.authorization_url(["contact.email"], None, state)
        self.assertNotIn("code_challenge", query_of(url))
        self.assertEqual(redirected_error(self.authorize(url), state), "invalid_request")

        # PKCE with the plain method.
        state = generate_token(24)
        plain = generate_token(64)
        url = self.authorization_url(
            ["contact.email"], None, state, code_challenge=plain, code_challenge_method="plain"
        )
        self.assertEqual(redirected_error(self.authorize(url), state), "invalid_request")

        # A redirect URI the brand did not register: answered here, never redirected.
        state = generate_token(24)
        url, _ = session.create_authorization_url(
            meta["authorization_endpoint"],
            state=state,
            code_verifier=generate_token(64),
            redirect_uri="http://127.0.0.1:53683/elsewhere",
            authorization_details=json.dumps(self.details(["contact.email"])),
        )
        resp = self.authorize(url)
        self.assertEqual(resp.status_code, 400, resp.text[:500])
        self.assertNotIn("Location", resp.headers)

        # The owner says no: access_denied back to the brand, with its state.
        state = generate_token(24)
        request_id = self.consent_request_id(
            self.authorize(self.authorization_url(["contact.email"], generate_token(64), state))
        )
        query = query_of(self.decide(request_id, {"decision": "deny"}))
        self.assertEqual(query.get("error"), "access_denied")
        self.assertEqual(query.get("state"), state)
        self.assertNotIn("code", query)


def main():
    return run_bounded(GrantsTest, RUN_LIMIT_S, "interop (test_grants.py)")


if __name__ == "__main__":
    sys.exit(main())
