"""Interoperability test: intentcasting as brands see it, checked with third-party libraries.

Three brands subscribe with webhook receivers of their own (Python's http.server on 127.0.0.1:0).
Every delivery is verified with Python's **standardwebhooks** library and parsed with the
**cloudevents** SDK (structured mode); see intent_support.Receiver. The owner broadcasts intents
chosen so that some match some brands only (category prefixes, geohash cells, circles, intents
without a place). Then:

* every brand got, by webhook, exactly the intents that match its subscription: one event per
  intent (de-duplicated by webhook-id; duplicates are counted and shown), none of the others;
  `data.person` is the brand's token `sub`; the owner's `recipients_count` agrees;
* polling (GET /brand/v1/intents?cursor=) returns the same events, byte for byte as JSON;
* a raw Server-Sent Events client (requests, stream=True) reads some events, disconnects,
  reconnects with Last-Event-ID and reads the rest plus one live event: no gap, no duplicate,
  the same sequence as polling.

Run through tests/interop/run.sh, or directly:

    VRM_VAULT_BIN=target/debug/vrm-vault python3 tests/interop/test_intents.py

The server runs with --allow-loopback-webhooks (http receivers on 127.0.0.1). Every HTTP call has
a timeout and the whole run is bounded by RUN_LIMIT_S.
"""

import json
import sys

import jwt  # pyjwt

from intent_support import (
    CREATED,
    Brand,
    Receiver,
    SseReader,
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

RUN_LIMIT_S = 90  # the whole test, server start to stop
DELIVERY_WAIT_S = 20  # until every expected webhook arrived
EMAIL = "grace.hopper@example.org"

# Paris centre is geohash u09tvw0; London gcpvj0d; Berlin u33dc0c.
PARIS_CELL = "u09tv"
SUBSCRIPTIONS = {
    # name: subscription body (without webhook_url)
    "lunch-paris": {"categories": ["food.lunch"], "areas": [{"geohash": "u09t"}]},
    "food-anywhere": {"categories": ["food"]},
    "travel-repairs-paris": {
        "categories": ["travel", "home.repair"],
        "areas": [{"lat": 48.8566, "lon": 2.3522, "radius_m": 5000}],
    },
}
# (intent body without expires_at, the brands it must reach)
INTENTS = [
    (
        {
            "category": "food.lunch",
            "text": "lunch nearby for two",
            "location": {"geohash": PARIS_CELL, "radius_m": 1500},
            "price_max": {"amount": "15.00", "currency": "EUR"},
            "party_size": 2,
            "tags": ["vegan", "quiet"],
            "max_offers": 5,
            "disclose": ["contact.email"],
        },
        {"lunch-paris", "food-anywhere"},
    ),
    ({"category": "food.lunch", "text": "lunch in London", "location": {"geohash": "gcpvj", "radius_m": 1000}}, {"food-anywhere"}),
    ({"category": "food.dinner", "text": "dinner, anywhere"}, {"food-anywhere"}),
    ({"category": "food.lunch", "text": "lunch, no place given"}, {"lunch-paris", "food-anywhere"}),
    ({"category": "travel.hotel", "text": "a hotel in Paris", "location": {"geohash": PARIS_CELL, "radius_m": 2000}}, {"travel-repairs-paris"}),
    ({"category": "travel.hotel", "text": "a hotel in Berlin", "location": {"geohash": "u33dc", "radius_m": 1000}}, set()),
    ({"category": "home.repair.plumbing", "text": "a leaking tap", "location": {"geohash": "u09tvw", "radius_m": 500}}, {"travel-repairs-paris"}),
    ({"category": "leisure.cinema", "text": "a film tonight", "location": {"geohash": PARIS_CELL, "radius_m": 3000}}, set()),
    ({"category": "food.breakfast", "text": "breakfast in Paris", "location": {"geohash": PARIS_CELL, "radius_m": 800}}, {"food-anywhere"}),
    ({"category": "travel.flight", "text": "a flight to Lisbon"}, {"travel-repairs-paris"}),
    ({"category": "home.cleaning", "text": "a cleaner in Paris", "location": {"geohash": PARIS_CELL, "radius_m": 1000}}, set()),
]
# Posted while the SSE client is connected: reaches food-anywhere only.
LIVE_INTENT = ({"category": "food.groceries", "text": "groceries delivered"}, {"food-anywhere"})
SSE_BRAND = "food-anywhere"
SSE_FIRST_READ = 2  # events read before disconnecting


class IntentsTest(VaultTestCase):
    """The steps share one server and run in order (unittest sorts methods by name)."""

    state = {}
    server_args = ("--allow-loopback-webhooks",)

    @classmethod
    def close_clients(cls):
        for brand in cls.state.get("brands", {}).values():
            if brand.receiver is not None:
                brand.receiver.close()

    def owner(self):
        (token,) = self.need("owner_token")
        return {"Authorization": "Bearer " + token}

    def expected(self):
        """brand name -> {intent id}, from the intents posted so far."""
        (posted,) = self.need("posted")
        result = {name: set() for name in SUBSCRIPTIONS}
        for intent_id, (_, recipients) in posted.items():
            for name in recipients:
                result[name].add(intent_id)
        return result

    def wait_for_webhooks(self):
        brands = self.need("brands")[0]
        expected = self.expected()
        receivers = {name: brand.receiver for name, brand in brands.items()}
        wait_for_receivers(receivers, expected, DELIVERY_WAIT_S)
        # Then until the vault has nothing pending: an outbox entry goes only once its delivery
        # succeeded, so anything unexpected (a delivery to a brand that should not get it, a
        # duplicate) has arrived by then.
        owner = self.owner()
        wait_until(
            lambda: all(
                (b.get("delivery") or {"pending": 0})["pending"] == 0
                for b in owner_brands(self.http, self.base, owner).values()
            ),
            DELIVERY_WAIT_S,
            "no pending deliveries",
            interval_s=0.2,
        )

    # --- setup ----------------------------------------------------------------------------------

    def test_00_owner_setup_and_terms(self):
        meta = self.assert_json(self.http.get(self.base + WELL_KNOWN, timeout=HTTP_TIMEOUT_S), 200)
        self.state["meta"] = meta
        resp = self.http.post(
            self.base + "/api/v1/setup", json={"passphrase": PASSPHRASE}, timeout=HTTP_TIMEOUT_S
        )
        self.assertIn(resp.status_code, (200, 201), resp.text[:500])
        self.state["owner_token"] = resp.json()["token"]
        self.http.cookies.clear()  # the owner authenticates by bearer token from here on
        self.assert_json(
            self.http.put(
                f"{self.base}/api/v1/records/contact.email",
                json={"value": EMAIL, "category": "pd:EmailAddress"},
                headers=self.owner(),
                timeout=HTTP_TIMEOUT_S,
            ),
            201,
        )
        published = publish_intent_terms(self.http, self.base, self.owner())
        self.state["terms_hash"] = published["hash"]
        self.state["iat"] = invitation(
            self.http, self.base, self.owner(), len(SUBSCRIPTIONS), "intents interop"
        )
        self.state["jwks"] = jwt.PyJWKClient(meta["jwks_uri"], cache_keys=False, timeout=HTTP_TIMEOUT_S)

    def test_01_brands_register_accept_subscribe(self):
        meta, iat, jwks, terms_hash = self.need("meta", "iat", "jwks", "terms_hash")
        brands = {}
        self.state["brands"] = brands
        for name, subscription in SUBSCRIPTIONS.items():
            brand = Brand(name, self.http, meta)
            brand.receiver = Receiver(name)
            brands[name] = brand
            brand.register(iat)
            terms = brand.accept_terms()
            self.assertEqual(terms["hash"], terms_hash)
            self.assertEqual(terms["basis"], "PDC-INTENT")
            claims = brand.fetch_token(jwks)
            self.assertIn("intents:read", claims["scope"].split())
            answer = brand.subscribe(dict(subscription, webhook_url=brand.receiver.url))
            secret = answer.get("webhook_secret") or ""
            self.assertTrue(secret.startswith("whsec_"), answer)
            self.assertEqual(answer["webhook_url"], brand.receiver.url)
            self.assertEqual(answer["categories"], sorted(subscription["categories"]))
            self.assertEqual(len(answer["areas"]), len(subscription.get("areas", [])))
            # Reading the subscription back never shows the secret again.
            again = check(
                self.http.get(meta["vrm_resource"] + "/subscription", headers=brand.auth(), timeout=HTTP_TIMEOUT_S),
                200,
            ).json()
            self.assertNotIn("webhook_secret", again)
        # Pairwise pseudonyms: one per brand.
        self.assertEqual(len({b.sub for b in brands.values()}), len(brands))

    # --- intents --------------------------------------------------------------------------------

    def test_02_owner_posts_intents(self):
        (brands,) = self.need("brands")
        posted = {}
        bodies = {}
        for body, recipients in INTENTS:
            view = post_intent(self.http, self.base, self.owner(), body)
            self.assertTrue(view["id"].startswith("i_"), view)
            self.assertEqual(view["status"], "open")
            self.assertEqual(view["category"], body["category"])
            self.assertEqual(
                view["recipients_count"],
                len(recipients),
                f"{body['category']} {body.get('location')}: expected {sorted(recipients)}",
            )
            posted[view["id"]] = (body, recipients)
            bodies[view["id"]] = view
        self.state["posted"] = posted
        self.state["views"] = bodies
        print(
            f"\n  posted {len(posted)} intents; expected per brand: "
            + ", ".join(f"{k}={len(v)}" for k, v in self.expected().items()),
            flush=True,
        )

    def test_03_webhooks_verified_and_exactly_the_matching_intents(self):
        brands, posted, views, meta = self.need("brands", "posted", "views", "meta")
        self.wait_for_webhooks()
        expected = self.expected()
        all_event_ids = []
        for name, brand in brands.items():
            receiver = brand.receiver
            self.assertEqual(receiver.errors(), [], f"{name}: deliveries that did not check out")
            attempts, per_id = receiver.snapshot()
            self.assertTrue(all(a.verified for a in attempts), name)
            accepted = receiver.accepted()
            # One event per matching intent, none for the others.
            subjects = [owner_id(a.event["subject"]) for a in accepted.values()]
            self.assertEqual(sorted(subjects), sorted(expected[name]), f"{name}: intents received")
            self.assertEqual(len(set(subjects)), len(subjects), f"{name}: two events for one intent")
            # Every request carried an id that was accepted (nothing unknown, nothing refused).
            self.assertEqual(set(per_id), set(accepted), name)
            print(
                f"  {name}: {len(accepted)} distinct deliveries, {receiver.retries()} retried "
                f"request(s), {receiver.duplicates()} duplicate(s) (2xx twice for one webhook-id)",
                flush=True,
            )
            for webhook_id, attempt in accepted.items():
                event = attempt.event
                all_event_ids.append(event["id"])
                self.assertEqual(event["specversion"], "1.0")
                self.assertEqual(event["type"], CREATED)
                self.assertEqual(event["source"], meta["issuer"])
                self.assertEqual(event["datacontenttype"], "application/json")
                data = event["data"]
                self.assertEqual(data["person"], brand.sub, f"{name}: data.person is not the token's sub")
                intent = data["intent"]
                self.assertEqual(intent["id"], event["subject"])
                body, _ = posted[owner_id(intent["id"])]
                view = views[owner_id(intent["id"])]
                for field in ("category", "text", "location", "price_max", "party_size", "tags", "max_offers"):
                    if field in body:
                        self.assertEqual(intent[field], body[field], f"{name}: data.intent.{field}")
                self.assertEqual(intent["expires_at"][:19], view["expires_at"][:19])
                self.assertNotIn("disclose", intent)  # the brand sees values, not the list
                if "disclose" in body:
                    self.assertEqual(intent["disclosed"], {"contact.email": EMAIL})
                else:
                    self.assertEqual(intent.get("disclosed") or {}, {})
                # Redeliveries (if any) carry the same event.
                for other in per_id[webhook_id]:
                    self.assertEqual(other.body, attempt.body, f"{name}: a redelivery differs")
        self.assertEqual(len(all_event_ids), len(set(all_event_ids)), "event ids are not unique")

        # The owner's view of deliveries: all went through.
        for client_id, view in owner_brands(self.http, self.base, self.owner()).items():
            self.assertEqual(view["delivery"]["status"], "ok", view)
            self.assertEqual(view["delivery"]["pending"], 0, view)
            self.assertIsNone(view["delivery"]["last_error"], view)

    def test_04_polling_returns_the_same_events(self):
        (brands,) = self.need("brands")
        expected = self.expected()
        for name, brand in brands.items():
            events, cursor = brand.poll_all()
            ids = [e["id"] for e in events]
            self.assertEqual(len(ids), len(set(ids)), f"{name}: polling repeats an event")
            self.assertEqual(sorted(owner_id(e["subject"]) for e in events), sorted(expected[name]), name)
            accepted = brand.receiver.accepted()
            self.assertEqual(set(ids), set(accepted), f"{name}: polling and webhooks differ")
            for event in events:
                self.assertEqual(event, accepted[event["id"]].body, f"{name}: event {event['id']}")
            # Small pages walk the same sequence; a cursor at the end gives nothing new.
            paged, end = brand.poll_all(limit=2)
            self.assertEqual([e["id"] for e in paged], ids, name)
            self.assertEqual(end, cursor)
            self.assertEqual(brand.poll_all(cursor=cursor), ([], cursor))
        self.state["polled"] = True

    # --- Server-Sent Events ---------------------------------------------------------------------

    def open_sse(self, brand, last_event_id=None):
        headers = dict(brand.auth(), Accept="text/event-stream")
        if last_event_id is not None:
            headers["Last-Event-ID"] = last_event_id
        resp = self.http.get(
            brand.meta["vrm_resource"] + "/events",
            headers=headers,
            stream=True,
            timeout=(HTTP_TIMEOUT_S, HTTP_TIMEOUT_S),  # connect, and each read
        )
        if resp.status_code != 200:
            body = resp.text[:500]
            resp.close()
            self.fail(f"SSE: {resp.status_code} {body}")
        self.assertTrue(resp.headers.get("Content-Type", "").startswith("text/event-stream"), resp.headers)
        return SseReader(resp)

    def read_events(self, reader, count):
        got = []
        while len(got) < count:
            message = reader.next_event()
            self.assertIsNotNone(message, f"the stream ended after {len(got)} of {count} events")
            self.assertTrue(message["id"], message)
            got.append((message["id"], json.loads(message["data"])))
        return got

    def test_05_sse_resumes_with_last_event_id(self):
        brands, _ = self.need("brands", "polled")
        brand = brands[SSE_BRAND]
        polled, _ = brand.poll_all()
        self.assertGreater(len(polled), SSE_FIRST_READ)

        # First connection: a few events, then the client goes away.
        first = self.open_sse(brand)
        try:
            head = self.read_events(first, SSE_FIRST_READ)
        finally:
            first.close()

        # A cursor from the stream is a polling cursor too.
        after, _ = brand.poll_all(cursor=int(head[-1][0]))
        self.assertEqual([e["id"] for e in after], [e["id"] for e in polled[SSE_FIRST_READ:]])

        # Second connection, resuming after the last event seen: the rest, then a live one.
        second = self.open_sse(brand, last_event_id=head[-1][0])
        try:
            tail = self.read_events(second, len(polled) - SSE_FIRST_READ)
            body, recipients = LIVE_INTENT
            view = post_intent(self.http, self.base, self.owner(), body)
            self.assertEqual(view["recipients_count"], len(recipients))
            self.state["posted"][view["id"]] = (body, recipients)
            live = self.read_events(second, 1)
        finally:
            second.close()

        streamed = head + tail + live
        cursors = [int(c) for c, _ in streamed]
        self.assertEqual(cursors, sorted(set(cursors)), f"SSE ids are not increasing: {cursors}")
        ids = [e["id"] for _, e in streamed]
        self.assertEqual(len(ids), len(set(ids)), f"SSE repeated an event: {ids}")
        self.assertEqual(owner_id(live[0][1]["subject"]), view["id"])

        everything, _ = brand.poll_all()
        self.assertEqual(ids, [e["id"] for e in everything], "SSE and polling differ (gap or order)")
        for (_, event), polled_event in zip(streamed, everything):
            self.assertEqual(event, polled_event)

        # A Last-Event-ID that is not one of the stream's ids is refused.
        resp = self.http.get(
            brand.meta["vrm_resource"] + "/events",
            headers=dict(brand.auth(), **{"Last-Event-ID": "not-a-cursor"}),
            timeout=HTTP_TIMEOUT_S,
        )
        self.assertEqual(resp.status_code, 400, resp.text[:300])

    def test_06_live_intent_reached_the_webhook_too(self):
        (brands,) = self.need("brands")
        self.wait_for_webhooks()
        expected = self.expected()
        for name, brand in brands.items():
            self.assertEqual(brand.receiver.errors(), [], name)
            self.assertEqual(brand.receiver.accepted_subjects(), expected[name], name)
            events, _ = brand.poll_all()
            self.assertEqual({e["id"] for e in events}, set(brand.receiver.accepted()), name)


if __name__ == "__main__":
    sys.exit(run_bounded(IntentsTest, RUN_LIMIT_S, "interop (test_intents.py)"))
