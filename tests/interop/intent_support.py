"""What the intentcasting interop tests (test_intents.py, test_delivery_faults.py) share.

* `Receiver`: a brand's webhook endpoint, Python's `http.server` on 127.0.0.1:0 in a thread. Every
  request it gets is checked with third-party libraries only: **standardwebhooks**
  (`Webhook(secret).verify(body, headers)`: the `webhook-id`/`webhook-timestamp`/
  `webhook-signature` headers, HMAC-SHA256 with the `whsec_` secret) and the **cloudevents** SDK
  (structured content mode, `application/cloudevents+json`), parsed twice: with the SDK's current
  API (`cloudevents.core.bindings.http.from_http` with the CloudEvents 1.0 event class, which
  validates the attributes) and with its v1 API (`cloudevents.v1.http.from_http(headers, body)`,
  the `cloudevents.http.from_http` of the 1.x releases). What it answers (status, delay) is up to
  a behaviour function, so that tests can make it fail or hang.
* `Brand`: one brand's registration (invitation, RFC 7591), agreement, client-credentials token,
  subscription, polling.
* `SseReader`: a raw Server-Sent Events client over `requests` (stream=True): `id:`, `data:`,
  comments, blank-line dispatch.
"""

import json
import threading
import time
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt  # pyjwt
import standardwebhooks
from cloudevents.core.bindings.http import HTTPMessage
from cloudevents.core.bindings.http import from_http as core_from_http
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent as CoreCloudEvent
from cloudevents.v1.http import from_http as v1_from_http

from vault_process import HTTP_TIMEOUT_S

SCOPE = "intents:read offers:write agreements:read"
CLOUDEVENTS_JSON = "application/cloudevents+json"
CREATED = "vrm.intent.created.v1"


def rfc3339(moment):
    return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def in_a_day():
    return rfc3339(datetime.now(timezone.utc) + timedelta(days=1))


def wait_until(predicate, timeout_s, what, interval_s=0.05, describe=None):
    """Polls `predicate` until it returns something truthy (returned), or fails after `timeout_s`
    saying what it waited for and, with `describe`, how things stood."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            detail = f"\n{describe()}" if describe is not None else ""
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}{detail}")
        time.sleep(interval_s)


def wait_for_receivers(receivers, expected, timeout_s, interval_s=0.05):
    """Waits until each receiver (name -> Receiver) accepted an event for every intent id of
    `expected` (name -> {intent id}); fails at once when a delivery did not check out."""

    def done():
        for name, receiver in receivers.items():
            errors = receiver.errors()
            if errors:
                raise AssertionError(f"{name}: deliveries that did not check out: {errors[:5]}")
        return all(receivers[n].accepted_subjects() >= ids for n, ids in expected.items())

    def describe():
        return "\n".join(
            f"  {n}: missing {sorted(ids - receivers[n].accepted_subjects())}, "
            f"{len(receivers[n].snapshot()[0])} requests so far"
            for n, ids in expected.items()
        )

    wait_until(done, timeout_s, "every intent at every matching receiver", interval_s, describe)


# --- webhook receivers --------------------------------------------------------------------------


class Attempt:
    """One request a receiver got, and what it made of it."""

    def __init__(self, webhook_id, number, received_at):
        self.webhook_id = webhook_id
        self.number = number  # 1 for the first request carrying this webhook-id, 2 for the next...
        self.received_at = received_at  # time.monotonic()
        self.timestamp = None  # the webhook-timestamp header
        self.content_type = None
        self.verified = False  # standardwebhooks accepted the signature
        self.event = None  # the CloudEvent as a dict (attributes + data), from the SDK
        self.errors = []  # what was wrong with it
        self.status = None  # what the receiver answered
        self.delay_s = 0.0  # how long it waited before answering
        self.answered = False  # whether the answer was written without a socket error
        self.body = None  # the body as JSON, as sent


class Receiver:
    """A brand's webhook endpoint on 127.0.0.1:0.

    `behaviour(receiver, attempt)` → (HTTP status, seconds to wait before answering) decides the
    answer; by default 204 at once. A status in 2xx counts as accepting the delivery. The secret
    is set once the brand subscribed (the vault returns it then)."""

    def __init__(self, name, behaviour=None):
        self.name = name
        self.secret = None
        self.behaviour = behaviour or (lambda receiver, attempt: (204, 0))
        self.lock = threading.Lock()
        self.attempts = []
        self.per_id = {}  # webhook-id -> [Attempt]
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's naming)
                receiver._handle(self)

            def log_message(self, format, *args):  # quiet
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True  # a hanging handler must not hold the test's end
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/webhooks/{name}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()

    def _handle(self, request):
        length = int(request.headers.get("Content-Length") or 0)
        body = request.rfile.read(length)
        headers = {k.lower(): v for k, v in request.headers.items()}
        webhook_id = headers.get("webhook-id", "")
        with self.lock:
            previous = self.per_id.setdefault(webhook_id, [])
            attempt = Attempt(webhook_id, len(previous) + 1, time.monotonic())
            previous.append(attempt)
            self.attempts.append(attempt)
        self._check(attempt, headers, body)
        status, delay = self.behaviour(self, attempt)
        if attempt.errors:
            status = 400  # a real receiver refuses what it cannot verify
        attempt.status, attempt.delay_s = status, delay
        if delay:
            time.sleep(delay)
        try:
            request.send_response(status)
            request.send_header("Content-Length", "0")
            request.end_headers()
            request.wfile.flush()
            attempt.answered = True
        except OSError:
            pass  # the vault gave up on this request (timeout) or was killed

    def _check(self, attempt, headers, body):
        attempt.timestamp = headers.get("webhook-timestamp")
        attempt.content_type = headers.get("content-type")
        if not attempt.webhook_id:
            attempt.errors.append("no webhook-id header")
        if (attempt.content_type or "").split(";")[0].strip() != CLOUDEVENTS_JSON:
            attempt.errors.append(f"content-type {attempt.content_type!r}")
        # Standard Webhooks: signature over id.timestamp.body with the whsec_ secret, timestamp
        # within the library's tolerance.
        try:
            if self.secret is None:
                raise ValueError("no secret yet: the delivery came before the subscription")
            standardwebhooks.Webhook(self.secret).verify(body, headers)
            attempt.verified = True
        except Exception as e:  # WebhookVerificationError and anything else
            attempt.errors.append(f"standardwebhooks: {type(e).__name__}: {e}")
        # CloudEvents, structured content mode: the current SDK API with the v1.0 event class
        # (validates required and optional attributes), and the v1 API.
        try:
            core = core_from_http(HTTPMessage(headers=headers, body=body), JSONFormat(), CoreCloudEvent)
            legacy = v1_from_http(headers, body)
            event = dict(core.get_attributes())
            event["time"] = rfc3339(core.get_time()) if core.get_time() else None
            event["data"] = core.get_data()
            attempt.event = event
            for name in ("specversion", "id", "source", "type", "subject", "datacontenttype"):
                if legacy[name] != event.get(name):
                    attempt.errors.append(
                        f"the SDKs disagree on {name}: {legacy[name]!r} vs {event.get(name)!r}"
                    )
            if legacy.get_data() != event["data"]:
                attempt.errors.append("the SDKs disagree on data")
            if event["id"] != attempt.webhook_id:
                attempt.errors.append(
                    f"webhook-id {attempt.webhook_id!r} is not the event id {event['id']!r}"
                )
        except Exception as e:
            attempt.errors.append(f"cloudevents: {type(e).__name__}: {e}")
        # The body as sent, for comparing with what polling returns.
        try:
            attempt.body = json.loads(body)
        except ValueError as e:
            attempt.body = None
            attempt.errors.append(f"body is not JSON: {e}")

    # --- what it got ----------------------------------------------------------------------------

    def snapshot(self):
        with self.lock:
            return list(self.attempts), {k: list(v) for k, v in self.per_id.items()}

    def accepted(self):
        """webhook-id -> the first attempt this receiver accepted (answered 2xx to)."""
        with self.lock:
            result = {}
            for attempt in self.attempts:
                if attempt.status is not None and 200 <= attempt.status < 300:
                    result.setdefault(attempt.webhook_id, attempt)
            return result

    def accepted_subjects(self):
        return {owner_id(a.event["subject"]) for a in self.accepted().values() if a.event}

    def retries(self):
        """Requests beyond the first for each webhook-id (whatever was answered)."""
        with self.lock:
            return sum(len(v) - 1 for v in self.per_id.values())

    def duplicates(self):
        """Requests answered 2xx beyond the first such answer for each webhook-id: deliveries a
        brand gets twice and must de-duplicate."""
        with self.lock:
            return sum(
                max(0, sum(1 for a in v if a.status is not None and 200 <= a.status < 300) - 1)
                for v in self.per_id.values()
            )

    def errors(self):
        with self.lock:
            return [(a.webhook_id, a.number, e) for a in self.attempts for e in a.errors]


# --- brands -------------------------------------------------------------------------------------


class Brand:
    """One brand: registers with an invitation (RFC 7591), accepts the current terms, gets
    client-credentials tokens, subscribes, polls. Plain `requests` on the metadata's endpoints."""

    def __init__(self, name, http, meta):
        self.name = name
        self.http = http
        self.meta = meta
        self.client_id = None
        self.client_secret = None
        self.token = None
        self.sub = None  # the token's subject: the person's pseudonym for this brand
        self.subscription = None
        self.webhook_secret = None
        self.receiver = None

    def register(self, initial_access_token):
        resp = self.http.post(
            self.meta["registration_endpoint"],
            json={
                "client_name": self.name,
                "token_endpoint_auth_method": "client_secret_basic",
                "grant_types": ["client_credentials"],
                "scope": SCOPE,
            },
            headers={"Authorization": "Bearer " + initial_access_token},
            timeout=HTTP_TIMEOUT_S,
        )
        check(resp, 201)
        registration = resp.json()
        self.client_id = registration["client_id"]
        self.client_secret = registration["client_secret"]

    def accept_terms(self):
        terms = check(self.http.get(self.meta["vrm_terms_endpoint"], timeout=HTTP_TIMEOUT_S), 200)
        check(
            self.http.post(
                self.meta["vrm_agreements_endpoint"],
                json={"terms_hash": terms.json()["hash"]},
                auth=(self.client_id, self.client_secret),
                timeout=HTTP_TIMEOUT_S,
            ),
            201,
        )
        return terms.json()

    def fetch_token(self, jwks_client):
        resp = self.http.post(
            self.meta["token_endpoint"],
            data={"grant_type": "client_credentials", "scope": SCOPE},
            auth=(self.client_id, self.client_secret),
            timeout=HTTP_TIMEOUT_S,
        )
        check(resp, 200)
        self.token = resp.json()["access_token"]
        key = jwks_client.get_signing_key_from_jwt(self.token)
        claims = jwt.decode(
            self.token,
            key.key,
            algorithms=["ES256"],
            audience=self.meta["vrm_resource"],
            issuer=self.meta["issuer"],
        )
        self.sub = claims["sub"]
        return claims

    def auth(self):
        return {"Authorization": "Bearer " + self.token}

    def subscribe(self, body):
        resp = self.http.put(
            self.meta["vrm_resource"] + "/subscription",
            json=body,
            headers=self.auth(),
            timeout=HTTP_TIMEOUT_S,
        )
        check(resp, 200)
        self.subscription = resp.json()
        if self.subscription.get("webhook_secret"):
            self.webhook_secret = self.subscription["webhook_secret"]
            if self.receiver is not None:
                self.receiver.secret = self.webhook_secret
        return self.subscription

    def poll_all(self, cursor=0, limit=None):
        """Every event after `cursor`, following next_cursor until nothing new: (events, cursor)."""
        events = []
        for _ in range(1000):
            params = {"cursor": cursor}
            if limit is not None:
                params["limit"] = limit
            resp = self.http.get(
                self.meta["vrm_resource"] + "/intents",
                params=params,
                headers=self.auth(),
                timeout=HTTP_TIMEOUT_S,
            )
            check(resp, 200)
            page = resp.json()
            if not page["events"]:
                if page["next_cursor"] != cursor:
                    raise AssertionError(f"an empty page moved the cursor: {page}")
                return events, cursor
            if page["next_cursor"] <= cursor:
                raise AssertionError(f"next_cursor did not advance: {cursor} -> {page['next_cursor']}")
            events.extend(page["events"])
            cursor = page["next_cursor"]
        raise AssertionError("polling never reached the end")


def check(resp, status):
    if resp.status_code != status:
        raise AssertionError(
            f"{resp.request.method} {resp.url}: expected {status}, got {resp.status_code}: "
            f"{resp.text[:500]}"
        )
    return resp


# --- owner steps --------------------------------------------------------------------------------


def publish_intent_terms(http, base, owner):
    """Publishes the shipped pdc-intent template (basis PDC-INTENT) as the terms in force."""
    templates = check(
        http.get(base + "/api/v1/terms/templates", headers=owner, timeout=HTTP_TIMEOUT_S), 200
    ).json()["templates"]
    template = next(t for t in templates if t["id"] == "pdc-intent")
    resp = http.put(
        base + "/api/v1/terms", json={"terms": template["terms"]}, headers=owner, timeout=HTTP_TIMEOUT_S
    )
    check(resp, 201)
    published = resp.json()
    if published["basis"] != "PDC-INTENT":
        raise AssertionError(f"published terms have basis {published['basis']}")
    return published


def invitation(http, base, owner, uses, note):
    resp = http.post(
        base + "/api/v1/invitations",
        json={"max_uses": uses, "expires_in_hours": 1, "note": note},
        headers=owner,
        timeout=HTTP_TIMEOUT_S,
    )
    return check(resp, 201).json()["initial_access_token"]


# Every brand knows an intent by its own id (the vault gives each brand its own alias of it, so
# brands cannot match intents with each other); the owner's view of an intent lists them in
# `ids_by_brand`. The tests speak of intents by the owner's ids: what brands receive is
# translated back with owner_id().
ALIASES = {}


def owner_id(seen):
    """The owner's id of the intent a brand knows by `seen` (unknown ids are kept as they are)."""
    return ALIASES.get(seen, seen)


def post_intent(http, base, owner, body):
    body = dict(body)
    body.setdefault("expires_at", in_a_day())
    resp = http.post(base + "/api/v1/intents", json=body, headers=owner, timeout=HTTP_TIMEOUT_S)
    view = check(resp, 201).json()
    for seen in view.get("ids_by_brand", {}).values():
        assert seen != view["id"], f"a brand knows the intent by the vault's own id: {view}"
        ALIASES[seen] = view["id"]
    return view


def owner_brands(http, base, owner):
    resp = http.get(base + "/api/v1/brands", headers=owner, timeout=HTTP_TIMEOUT_S)
    return {b["client_id"]: b for b in check(resp, 200).json()["brands"]}


# --- Server-Sent Events -------------------------------------------------------------------------


class SseReader:
    """Reads one Server-Sent Events response: `next_event()` → {"id", "event", "data"} or None at
    the end of the stream. Comments (keep-alives) are skipped; `data:` lines are joined by "\\n"."""

    def __init__(self, resp):
        self.resp = resp
        self.chunks = resp.iter_content(chunk_size=None)  # each chunk as it arrives
        self.buffer = b""
        self.comments = 0

    def _line(self):
        """The next line without its end (CRLF, LF or CR), or None at the end of the stream."""
        while True:
            ends = [i for i in (self.buffer.find(b"\r"), self.buffer.find(b"\n")) if i >= 0]
            if ends:
                index = min(ends)
                if self.buffer[index:index + 1] == b"\r" and index == len(self.buffer) - 1:
                    pass  # maybe the CR of a CRLF whose LF has not arrived yet: read on
                else:
                    width = 2 if self.buffer[index:index + 2] == b"\r\n" else 1
                    line, self.buffer = self.buffer[:index], self.buffer[index + width:]
                    return line.decode("utf-8")
            try:
                chunk = next(self.chunks)
            except StopIteration:
                if not self.buffer:
                    return None
                line, self.buffer = self.buffer.rstrip(b"\r"), b""
                return line.decode("utf-8")
            self.buffer += chunk

    def next_event(self):
        fields, data = {}, []
        while True:
            line = self._line()
            if line is None:
                return None
            if line == "":
                if data or fields:
                    return {"id": fields.get("id"), "event": fields.get("event"), "data": "\n".join(data)}
                continue
            if line.startswith(":"):
                self.comments += 1
                continue
            name, _, value = line.partition(":")
            if value.startswith(" "):
                value = value[1:]
            if name == "data":
                data.append(value)
            elif name in ("id", "event", "retry"):
                fields[name] = value

    def close(self):
        self.resp.close()
