"""Schemathesis hooks for test_schemathesis.py: which credential each case carries, the values a
generator cannot guess, and the guard rails that keep a fuzzed vault usable and its traffic on
this machine.

The `schemathesis run` processes that test_schemathesis.py starts load this module through
SCHEMATHESIS_HOOKS. `Keeper` holds the credentials the test made (a JSON file named by
VRM_ST_STATE) and keeps them working: the fuzzer may, with identifiers it found in earlier
answers, remove, suspend or erase the test's brand, revoke its grant or token, end its agreement,
publish new terms or log the owner out. When a call that carried one of these credentials answers
401, schemathesis asks for the credential again (its reactive re-authentication); `Keeper.heal`
probes it, rebuilds what is missing, and the call is replayed once. The file is rewritten after
every change, so that the next phase (another process) starts from working credentials.

Credentials follow the operation's `security` requirement in /openapi.json: `owner_token` (the
owner's session token), `brand_token` (a client-credentials access token with every brand scope
and a data grant, so that the brand data API answers too), `initial_access_token` (an invitation)
and `client_secret_basic` (the brand's client id and secret); where an operation takes several,
each case picks one. `owner_cookie` and `private_key_jwt` are alternatives the test does not use:
the cookie is the browser's way (with the CSRF header), the assertion is test_oauth.py's.

In about half of the cases of some operations the hooks put in what a generator cannot guess: the
owner's passphrase (login, recovery key, passphrase change, deleting the vault), a category and a
time within the next hour (intents, offers), the brand's client id (grants). After a successful
deletion of the vault they set up a new one. Webhook URLs are pointed at loopback, and every case
names its client in X-Forwarded-For (see KEEPER_ADDRESS).
"""

import atexit
import json
import os
import random
import threading
from datetime import datetime, timedelta, timezone

import requests

HTTP_TIMEOUT_S = 10
DETAILS_TYPE = "urn:vrm-vault:data-access:v1"
PURPOSE = "dpv:ServiceProvision"
REDIRECT_URI = "http://127.0.0.1:53682/cb"
# Where a fuzzed webhook subscription is pointed instead: loopback (the vault runs with
# --allow-loopback-webhooks), a port on which nothing listens. Deliveries fail and are retried;
# no request leaves this machine.
LOOPBACK_WEBHOOK = "http://127.0.0.1:9/vrm-schemathesis"
# The credentials this module can supply, in order of preference when an operation accepts
# several.
SUPPLIED = ("owner_token", "brand_token", "client_secret_basic", "initial_access_token")
RECORDS = {
    "contact.email": ("ada.lovelace@example.org", "pd:EmailAddress"),
    "contact.phone": ("+44 20 7946 0958", "pd:TelephoneNumber"),
}
GRANT_FIELDS = ["contact.email", "contact.phone"]
# The vault runs with --trusted-proxy 127.0.0.1, so X-Forwarded-For names the client whose
# failures its back-offs count (login, registration, client authentication). The keeper is one
# client; the fuzzer plays FUZZER_CLIENTS others, a case each in turn. One shared address would
# be locked out after a few of the fuzzer's bad passwords and secrets, and every later call,
# the keeper's repairs included, would only see 429. (Header values only: nothing is sent there.)
KEEPER_ADDRESS = "192.0.2.10"
FUZZER_CLIENTS = 16
# Every brand scope: the token then reaches every brand route.
SCOPES = "intents:read offers:write agreements:read"


class Keeper:
    """The test's credentials on one vault, and how to make them work again."""

    FIELDS = (
        "base",
        "passphrase",
        "owner_token",
        "initial_access_token",
        "client_id",
        "client_secret",
        "grant_id",
        "brand_token",
    )

    def __init__(self, path, **values):
        self.path = path
        self.lock = threading.RLock()
        self.http = requests.Session()
        for name in self.FIELDS:
            setattr(self, name, values.get(name))

    @classmethod
    def load(cls, path):
        with open(path, encoding="utf-8") as f:
            return cls(path, **json.load(f))

    def save(self):
        tmp = self.path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump({name: getattr(self, name) for name in self.FIELDS}, f)
        os.replace(tmp, self.path)

    # --- plain calls -----------------------------------------------------------------------

    def call(self, method, path, *, token=None, basic=None, **kwargs):
        headers = kwargs.pop("headers", {})
        headers["X-Forwarded-For"] = KEEPER_ADDRESS
        if token is not None:
            headers["Authorization"] = "Bearer " + token
        return self.http.request(
            method,
            self.base + path,
            headers=headers,
            auth=basic,
            timeout=HTTP_TIMEOUT_S,
            allow_redirects=False,
            **kwargs,
        )

    def owner_call(self, method, path, **kwargs):
        return self.call(method, path, token=self.owner_token, **kwargs)

    @staticmethod
    def expect(resp, *statuses):
        if resp.status_code not in statuses:
            raise RuntimeError(
                f"{resp.request.method} {resp.request.path_url}: expected {statuses}, got "
                f"{resp.status_code}: {resp.text[:300]}"
            )
        return resp.json() if resp.content else None

    # --- the first set-up ---------------------------------------------------------------------

    def bootstrap(self):
        """A new vault: the owner, records, an invitation, a brand with an agreement on the terms,
        a grant offered by the owner and the brand's token for it."""
        body = self.expect(
            self.call("POST", "/api/v1/setup", json={"passphrase": self.passphrase}), 201
        )
        self.owner_token = body["token"]
        for path, (value, category) in RECORDS.items():
            self.expect(
                self.owner_call(
                    "PUT", f"/api/v1/records/{path}", json={"value": value, "category": category}
                ),
                201,
            )
        self.new_invitation()
        self.register()
        self.accept_terms()
        self.new_grant()
        self.new_token()
        self.save()

    def new_invitation(self):
        body = self.expect(
            self.owner_call(
                "POST",
                "/api/v1/invitations",
                json={"max_uses": 100, "expires_in_hours": 24, "note": "schemathesis"},
            ),
            201,
        )
        self.initial_access_token = body["initial_access_token"]

    def register(self):
        request = {
            "client_name": "Schemathesis Brand",
            "token_endpoint_auth_method": "client_secret_basic",
            "grant_types": ["client_credentials", "authorization_code", "refresh_token"],
            "response_types": ["code"],
            "redirect_uris": [REDIRECT_URI],
            "client_uri": "https://schemathesis.example",
        }
        resp = self.call("POST", "/oauth/register", token=self.initial_access_token, json=request)
        if resp.status_code == 401:  # the invitation was spent, deleted or expired
            self.new_invitation()
            resp = self.call(
                "POST", "/oauth/register", token=self.initial_access_token, json=request
            )
        body = self.expect(resp, 201)
        self.client_id, self.client_secret = body["client_id"], body["client_secret"]

    def accept_terms(self):
        terms = self.expect(self.call("GET", "/brand/v1/terms"), 200)
        self.expect(
            self.call(
                "POST",
                "/brand/v1/agreements",
                basic=(self.client_id, self.client_secret),
                json={"terms_hash": terms["hash"]},
            ),
            200,
            201,
        )

    def new_grant(self):
        expires = datetime.now(timezone.utc) + timedelta(days=1)
        body = self.expect(
            self.owner_call(
                "POST",
                "/api/v1/grants",
                json={
                    "client_id": self.client_id,
                    "fields": GRANT_FIELDS,
                    "actions": ["read"],
                    "purpose": PURPOSE,
                    "expires_at": expires.strftime("%Y-%m-%dT%H:%M:%SZ"),
                },
            ),
            201,
        )
        self.grant_id = body["id"]

    def new_token(self):
        details = json.dumps([{"type": DETAILS_TYPE, "grant_id": self.grant_id}])
        body = self.expect(
            self.call(
                "POST",
                "/oauth/token",
                basic=(self.client_id, self.client_secret),
                data={
                    "grant_type": "client_credentials",
                    "authorization_details": details,
                    "scope": SCOPES,
                },
            ),
            200,
        )
        self.brand_token = body["access_token"]

    # --- repairs ------------------------------------------------------------------------------

    def heal(self, scheme):
        """Makes the credential for `scheme` work again if it does not; returns it. Never
        raises: a repair that fails leaves the old credential, whose refusal the run then sees."""
        with self.lock:
            try:
                if scheme == "owner_token":
                    self.heal_owner()
                elif scheme == "initial_access_token":
                    self.heal_owner()
                    self.new_invitation()
                else:
                    self.heal_brand()
                self.save()
            except (requests.RequestException, RuntimeError, KeyError, ValueError) as e:
                print(f"[schemathesis_hooks] could not repair {scheme}: {e}", flush=True)
            return self.credential(scheme)

    def heal_owner(self):
        if self.owner_call("GET", "/api/v1/session").status_code == 200:
            return
        body = self.expect(
            self.call("POST", "/api/v1/session", json={"passphrase": self.passphrase}), 201
        )
        self.owner_token = body["token"]

    def heal_brand(self):
        if self.call("GET", "/brand/v1/data", token=self.brand_token).status_code == 200:
            return
        self.heal_owner()
        resp = self.owner_call("GET", f"/api/v1/brands/{self.client_id}")
        if resp.status_code == 404:
            self.register()
        else:
            if self.expect(resp, 200)["status"] == "suspended":
                self.expect(self.owner_call("POST", f"/api/v1/brands/{self.client_id}/resume"), 200)
        self.accept_terms()
        resp = self.owner_call("GET", f"/api/v1/grants/{self.grant_id}")
        if resp.status_code != 200 or resp.json().get("status") != "active":
            self.new_grant()
        self.new_token()

    def next_passphrase(self):
        """A new passphrase for a passphrase change: the test's own, numbered."""
        base, _, number = self.passphrase.partition(" #")
        return f"{base} #{int(number) + 1 if number.isdigit() else 1}"

    def credential(self, scheme):
        if scheme == "owner_token":
            return self.owner_token
        if scheme == "brand_token":
            return self.brand_token
        if scheme == "initial_access_token":
            return self.initial_access_token
        return (self.client_id, self.client_secret)


def security_alternatives(operation):
    """The schemes of each alternative of the operation's security requirement that this module
    can supply; empty for an open operation."""
    requirements = operation.definition.raw.get("security") or []
    return [
        scheme
        for requirement in requirements
        for scheme in requirement
        if scheme in SUPPLIED and len(requirement) == 1
    ]


# --- the hooks (only when schemathesis loads this module) ----------------------------------------

if os.environ.get("VRM_ST_STATE"):
    import schemathesis
    from requests.auth import _basic_auth_str

    KEEPER = Keeper.load(os.environ["VRM_ST_STATE"])
    # Where an operation takes several credentials (e.g. a brand token or client authentication
    # on GET /brand/v1/grants/{id}), each case picks one; seeded, so a run can be repeated.
    CHOICE = random.Random(int(os.environ.get("VRM_ST_SEED", "1")))
    LOCK = threading.Lock()  # the hooks run on every worker thread

    # Per worker thread: the case it last picked a scheme for, and that scheme.
    LAST_CHOICE = threading.local()

    def scheme_for(case, context):
        """The scheme whose credential `case` carries. Asked several times per case (cache key,
        fetch), so a random pick is remembered for the case it was made for."""
        alternatives = security_alternatives(context.operation)
        if not alternatives:
            return "none"
        if len(alternatives) == 1:
            return alternatives[0]
        if getattr(LAST_CHOICE, "case", None) != case.id:
            with LOCK:
                LAST_CHOICE.scheme = CHOICE.choice(alternatives)
            LAST_CHOICE.case = case.id
        return LAST_CHOICE.scheme

    # The cache is per scheme and lives for the whole run; a 401 to a call that carried one of
    # these credentials invalidates it, and `get` then repairs the credential (see above).
    @schemathesis.auth(refresh_interval=3600, cache_by_key=scheme_for, retry_on=[401])
    class PerOperationCredentials:
        def __init__(self):
            self.fetched = set()  # schemes fetched once: a later fetch means a refusal

        def get(self, case, context):
            scheme = scheme_for(case, context)
            if scheme == "none":
                return None
            if scheme in self.fetched:
                return (scheme, KEEPER.heal(scheme))
            self.fetched.add(scheme)
            return (scheme, KEEPER.credential(scheme))

        def set(self, case, data, context):
            scheme, credential = data
            if scheme == "client_secret_basic":
                case.headers["Authorization"] = _basic_auth_str(*credential)
            else:
                case.headers["Authorization"] = "Bearer " + credential

    # Operations whose success needs the owner's passphrase, which a generator cannot guess: in
    # about half of their cases whose body has the field, the real one is put in, so that the
    # successful answer is checked too. The other half keep what was generated (and are refused).
    PASSPHRASE_FIELDS = {
        ("POST", "/api/v1/session"): "passphrase",
        ("POST", "/api/v1/recovery-key"): "passphrase",
        ("PUT", "/api/v1/passphrase"): "current_passphrase",
        ("DELETE", "/api/v1/vault"): "passphrase",
    }
    CONFIRM_PHRASE = "delete everything"
    CALLS = {}  # "METHOD /path" -> {status: count}, written to VRM_ST_CALLS at exit
    CLIENT = [0]  # the fuzzer's client address last used

    @schemathesis.hook
    def before_call(context, case, kwargs):
        operation = (case.operation.method.upper(), case.operation.path)
        body = case.body
        with LOCK:
            CLIENT[0] = CLIENT[0] % FUZZER_CLIENTS + 1
            case.headers["X-Forwarded-For"] = f"198.51.100.{CLIENT[0]}"
            inject = CHOICE.random() < 0.5
        # Webhooks only to loopback: a fuzzed subscription URL would make the vault resolve and
        # connect to arbitrary hosts.
        if operation == ("PUT", "/brand/v1/subscription") and isinstance(body, dict):
            if "webhook_url" in body:
                body["webhook_url"] = LOOPBACK_WEBHOOK
        field = PASSPHRASE_FIELDS.get(operation)
        if field and isinstance(body, dict) and field in body and inject:
            body[field] = KEEPER.passphrase
            if operation == ("PUT", "/api/v1/passphrase"):
                # A known new passphrase, so that the keeper can log in with it afterwards.
                body["new_passphrase"] = KEEPER.next_passphrase()
            if operation == ("DELETE", "/api/v1/vault") and "confirm" in body:
                body["confirm"] = CONFIRM_PHRASE
        steer = STEERED.get(operation)
        if steer and isinstance(body, dict) and inject:
            steer(body)

    def soon(**delta):
        """An RFC 3339 time `delta` from now."""
        return (datetime.now(timezone.utc) + timedelta(**delta)).strftime("%Y-%m-%dT%H:%M:%SZ")

    def steer_intent(body):
        body["category"] = "food.lunch"
        body["expires_at"] = soon(hours=1)

    def steer_offer(body):
        body["valid_until"] = soon(hours=1)

    def steer_grant(body):
        body["client_id"] = KEEPER.client_id
        body["purpose"] = PURPOSE
        body["expires_at"] = soon(days=1)

    # Operations whose success needs values a generator cannot guess (a time within the next
    # days, a category of the taxonomy, the brand's client id): about half of their cases get
    # them, the rest of the body staying as generated.
    STEERED = {
        ("POST", "/api/v1/intents"): steer_intent,
        ("POST", "/brand/v1/intents/{id}/offers"): steer_offer,
        ("POST", "/api/v1/grants"): steer_grant,
    }

    @schemathesis.hook
    def after_call(context, case, response):
        operation = (case.operation.method.upper(), case.operation.path)
        label = " ".join(operation)
        with LOCK:
            statuses = CALLS.setdefault(label, {})
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
        body = case.body if isinstance(case.body, dict) else {}
        # A passphrase that changed (changed on purpose above, or by logging in with the recovery
        # key and a new one) is the one the keeper logs in with from now on.
        changed = (operation == ("PUT", "/api/v1/passphrase") and response.status_code == 204) or (
            operation == ("POST", "/api/v1/session")
            and response.status_code == 201
            and "new_passphrase" in body
        )
        if changed and isinstance(body.get("new_passphrase"), str):
            with KEEPER.lock:
                KEEPER.passphrase = body["new_passphrase"]
                KEEPER.save()
        if operation == ("POST", "/api/v1/vault/lock") and response.status_code == 204:
            # The vault is locked (sealed): the passphrase opens it again, so that the next
            # cases test locking again instead of a sealed vault.
            with KEEPER.lock:
                try:
                    body = KEEPER.expect(
                        KEEPER.call("POST", "/api/v1/session", json={"passphrase": KEEPER.passphrase}),
                        201,
                    )
                    KEEPER.owner_token = body["token"]
                    KEEPER.save()
                except (requests.RequestException, RuntimeError, KeyError, ValueError) as e:
                    print(f"[schemathesis_hooks] could not unlock the vault again: {e}", flush=True)
        if operation == ("DELETE", "/api/v1/vault") and response.status_code == 200:
            # The vault is gone (setup mode): make a new one, so that the next cases test the
            # deletion again instead of a vault that is not there.
            with KEEPER.lock:
                try:
                    KEEPER.bootstrap()
                except (requests.RequestException, RuntimeError, KeyError, ValueError) as e:
                    print(f"[schemathesis_hooks] could not set the vault up again: {e}", flush=True)

    def write_calls():
        path = os.environ.get("VRM_ST_CALLS")
        if path:
            with open(path, "w", encoding="utf-8") as f:
                json.dump(CALLS, f)

    atexit.register(write_calls)
