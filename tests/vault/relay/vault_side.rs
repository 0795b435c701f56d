//! The vault's side of the relay (DESIGN §11, issue 19): `serve --relay`, a relayed intent
//! published from the vault's outbox (also when the relay was down at the time), offers read
//! back and verified, and the person's decisions sent as messages, against the real relay and
//! nats-server, with a brand written here from the kit's keys. A small fake relay (axum, in
//! this file) plays a dishonest relay, to show that the vault checks what a relay says.

use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use reqwest::Method;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use ring::agreement::{ECDH_P256, EphemeralPrivateKey, UnparsedPublicKey, agree_ephemeral};
use ring::rand::SystemRandom;
use serde_json::{Value, json};
use tempfile::TempDir;
use time::OffsetDateTime;

use crate::kit::brand::{ClientKey, b64, jwt_parts, now};
use crate::kit::grant::rfc3339;
use crate::kit::owner::{Owner, PASSPHRASE};
use crate::kit::relay::{AdmittedBrand, BrandKeys, Nats, RelayApp, admit_command, free_port};
use crate::kit::server::Server;

/// `vrm-vault relay` on a given loopback port (so the vault can name it before it runs).
fn relay_on(nats: &Nats, port: u16) -> RelayApp {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vrm-vault"));
    cmd.args(["relay", "--nats", &nats.url(), "--listen"])
        .arg(format!("127.0.0.1:{port}"))
        .env("VRM_LOG", "info");
    RelayApp {
        server: Server::spawn(cmd, TempDir::new().unwrap()),
        client: reqwest::Client::new(),
    }
}

async fn ready(relay: &RelayApp) {
    assert!(
        relay.wait_ready(200, Duration::from_secs(20)).await,
        "relay not ready:\n{}",
        relay.log()
    );
}

/// A brand whose encryption key is a ring agreement key the test holds, so it can open the
/// vault's JWE (once: ring's agreement keys are single-use).
struct EncBrand {
    brand: AdmittedBrand,
    enc: Option<EphemeralPrivateKey>,
    jwks: Value,
}

fn enc_brand(nats_url: &str, name: &str) -> EncBrand {
    let signing = ClientKey::generate(&format!("{name}-sig"));
    let enc = EphemeralPrivateKey::generate(&ECDH_P256, &SystemRandom::new()).unwrap();
    let point = enc.compute_public_key().unwrap().as_ref().to_vec();
    let jwks = json!({"keys": [
        signing.public_jwk(),
        {"kty": "EC", "crv": "P-256", "kid": format!("{name}-enc"), "use": "enc",
         "alg": "ECDH-ES", "x": b64(&point[1..33]), "y": b64(&point[33..65])},
    ]});
    let (ok, stdout, stderr) = admit_command(nats_url, name, &jwks);
    assert!(ok, "admit: {stderr}");
    let printed: Value = serde_json::from_str(stdout.trim()).unwrap();
    EncBrand {
        brand: AdmittedBrand {
            client_id: printed["client_id"].as_str().unwrap().to_owned(),
            name: name.to_owned(),
            keys: BrandKeys {
                signing,
                encryption: ClientKey::generate("unused"),
            },
        },
        enc: Some(enc),
        jwks,
    }
}

/// Opens a compact JWE (ECDH-ES, A256GCM) with the recipient's key, as any JOSE library would.
fn open_jwe(recipient: EphemeralPrivateKey, jwe: &str) -> (Value, Value) {
    let parts: Vec<&str> = jwe.split('.').collect();
    assert_eq!(parts.len(), 5, "{jwe}");
    let header: Value = serde_json::from_slice(&B64.decode(parts[0]).unwrap()).unwrap();
    assert_eq!(
        (header["alg"].as_str(), header["enc"].as_str()),
        (Some("ECDH-ES"), Some("A256GCM"))
    );
    let epk = &header["epk"];
    let mut point = vec![4u8];
    point.extend(B64.decode(epk["x"].as_str().unwrap()).unwrap());
    point.extend(B64.decode(epk["y"].as_str().unwrap()).unwrap());
    let cek = agree_ephemeral(
        recipient,
        &UnparsedPublicKey::new(&ECDH_P256, &point),
        |z| {
            // RFC 7518 §4.6.2: Concat KDF, SHA-256, AlgorithmID = enc, no party infos, 256 bits.
            let mut input = 1u32.to_be_bytes().to_vec();
            input.extend_from_slice(z);
            input.extend_from_slice(&7u32.to_be_bytes());
            input.extend_from_slice(b"A256GCM");
            input.extend_from_slice(&0u32.to_be_bytes());
            input.extend_from_slice(&0u32.to_be_bytes());
            input.extend_from_slice(&256u32.to_be_bytes());
            ring::digest::digest(&ring::digest::SHA256, &input)
                .as_ref()
                .to_vec()
        },
    )
    .unwrap();
    let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &cek).unwrap());
    let iv: [u8; 12] = B64.decode(parts[2]).unwrap().try_into().unwrap();
    let mut data = B64.decode(parts[3]).unwrap();
    data.extend(B64.decode(parts[4]).unwrap());
    let plain = key
        .open_in_place(
            Nonce::assume_unique_for_key(iv),
            Aad::from(parts[0].as_bytes()),
            &mut data,
        )
        .unwrap();
    (header, serde_json::from_slice(plain).unwrap())
}

fn offer_body() -> Value {
    json!({
        "name": "Menu du jour",
        "price": {"amount": "14.50", "currency": "EUR"},
        "valid_until": rfc3339(OffsetDateTime::now_utc() + time::Duration::hours(1)),
        "data_requested": ["contact.email"],
    })
}

fn digest(offer: &Value) -> String {
    let bytes = serde_json_canonicalizer::to_vec(offer).unwrap();
    b64(ring::digest::digest(&ring::digest::SHA256, &bytes).as_ref())
}

/// The offer with the brand's acceptance of the person's terms, signed by `signer`.
fn with_acceptance(signer: &ClientKey, kid: &str, intent_id: &str, terms_hash: &str) -> Value {
    let mut offer = offer_body();
    let acceptance = signer.sign(
        None,
        kid,
        &json!({"intent_id": intent_id, "terms_hash": terms_hash,
                "offer_sha256": digest(&offer), "iat": now()}),
    );
    offer["acceptance"] = json!(acceptance);
    offer
}

/// A vault with the owner set up, `pdc-intent` terms and an email address.
async fn vault_with(relays: &[String]) -> (Server, Owner, reqwest::Client) {
    let vault = Server::vault(|cmd| {
        for relay in relays {
            cmd.args(["--relay", relay]);
        }
    });
    let client = reqwest::Client::new();
    let owner = Owner::setup(&client, &vault.url(""), PASSPHRASE).await;
    owner.publish_template(&client, "pdc-intent").await;
    for (path, value, category) in [
        ("contact.email", "ana@example.org", "pd:EmailAddress"),
        ("profile.birthday", "1990-01-01", "pd:BirthDate"),
    ] {
        let (status, body) = owner
            .call(
                &client,
                Method::PUT,
                &format!("/api/v1/records/{path}"),
                Some(json!({"value": value, "category": category})),
            )
            .await;
        assert!(status == 201 || status == 200, "{path}: {body}");
    }
    (vault, owner, client)
}

fn lunch(geohash: &str) -> Value {
    json!({
        "category": "food.lunch",
        "text": "Lunch for two near the office",
        "expires_at": rfc3339(OffsetDateTime::now_utc() + time::Duration::hours(2)),
        "location": {"geohash": geohash, "radius_m": 800},
        "party_size": 2,
        "max_offers": 3,
        "relay": true,
    })
}

/// Polls `check` on the intent's view until it holds (at most `within`).
async fn wait_for(
    owner: &Owner,
    client: &reqwest::Client,
    path: &str,
    within: Duration,
    check: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let (status, body) = owner.call(client, Method::GET, path, None).await;
        assert_eq!(status, 200, "{body}");
        if check(&body) {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "gave up waiting on {path}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn audit_actions(owner: &Owner, client: &reqwest::Client) -> Vec<Value> {
    let (status, body) = owner
        .call(client, Method::GET, "/api/v1/audit?limit=200", None)
        .await;
    assert_eq!(status, 200, "{body}");
    body["entries"].as_array().cloned().unwrap_or_default()
}

fn count(entries: &[Value], action: &str) -> usize {
    entries.iter().filter(|e| e["action"] == action).count()
}

/// A brand's whole feed at the relay.
async fn feed(relay: &RelayApp, token: &str) -> Vec<Value> {
    let (status, page) = relay
        .get_json("/relay/v1/intents?cursor=0", Some(token))
        .await;
    assert_eq!(status, 200, "{page}");
    page["events"].as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vault_without_a_relay_says_so_and_a_relayed_intent_discloses_nothing() {
    let (vault, owner, client) = vault_with(&[]).await;
    let (status, body) = owner
        .call(&client, Method::GET, "/api/v1/relays", None)
        .await;
    assert_eq!((status, body.clone()), (200, json!({"relays": []})));
    let (status, body) = owner
        .call(
            &client,
            Method::POST,
            "/api/v1/intents",
            Some(lunch("u09tv")),
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (422, Some("relay_not_configured")),
        "{body}"
    );
    drop(vault);

    let (_vault, owner, client) = vault_with(&["http://127.0.0.1:9".to_owned()]).await;
    let (status, body) = owner
        .call(&client, Method::GET, "/api/v1/relays", None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["relays"][0]["url"], "http://127.0.0.1:9");
    let mut disclosing = lunch("u09tv");
    disclosing["disclose"] = json!(["contact.email"]);
    for path in ["/api/v1/intents", "/api/v1/intents/relay-preview"] {
        let (status, body) = owner
            .call(&client, Method::POST, path, Some(disclosing.clone()))
            .await;
        assert_eq!(
            (status, body["error"].as_str()),
            (422, Some("invalid_intent")),
            "{body}"
        );
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .contains("never carries your data"),
            "{body}"
        );
    }
    // The preview is exactly what goes out, less the key: coarsened, with the terms.
    let (status, preview) = owner
        .call(
            &client,
            Method::POST,
            "/api/v1/intents/relay-preview",
            Some(lunch("u09tvw0")),
        )
        .await;
    assert_eq!(status, 200, "{preview}");
    assert_eq!(preview["intent"]["location"]["geohash"], "u09tv");
    assert!(preview["intent"].get("jwk").is_none());
    assert!(preview["intent"].get("relay").is_none());
    assert!(
        preview["intent"]["terms_hash"]
            .as_str()
            .unwrap()
            .starts_with("sha256:")
    );
    assert!(
        preview["changes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c.as_str().unwrap().contains("u09tv instead of u09tvw0")),
        "{preview}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_intent_posted_while_the_relay_is_down_is_published_once_and_its_offers_come_back() {
    let nats = Nats::start();
    let port = free_port();
    let relay_url = format!("http://127.0.0.1:{port}");
    // The relay runs first only to admit and subscribe a brand; then it goes down.
    let relay = relay_on(&nats, port);
    ready(&relay).await;
    let mut lulu = enc_brand(&nats.url(), "Chez Lulu");
    let lulu_token = relay.token(&lulu.brand).await;
    let (status, body) = relay_call(
        &relay,
        Method::PUT,
        "/relay/v1/subscription",
        &lulu_token,
        &json!({"categories": ["food"], "areas": [{"geohash": "u09"}]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    drop(relay);

    let (_vault, owner, client) = vault_with(std::slice::from_ref(&relay_url)).await;
    let (status, created) = owner
        .call(
            &client,
            Method::POST,
            "/api/v1/intents",
            Some(lunch("u09tvw0")),
        )
        .await;
    assert_eq!(status, 201, "a relay that is down fails nothing: {created}");
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created["relay"]["status"], "pending", "{created}");
    assert_eq!(created["relay"]["relays"][0]["url"], relay_url.as_str());
    let path = format!("/api/v1/intents/{id}");
    let failed = wait_for(&owner, &client, &path, Duration::from_secs(10), |v| {
        v["relay"]["relays"][0]["error"].is_string()
    })
    .await;
    assert_eq!(failed["relay"]["status"], "pending", "{failed}");

    let relay = relay_on(&nats, port);
    ready(&relay).await;
    let published = wait_for(&owner, &client, &path, Duration::from_secs(60), |v| {
        v["relay"]["status"] == "published"
    })
    .await;
    assert!(
        published["relay"]["relays"][0].get("error").is_none(),
        "{published}"
    );

    // Once at the relay: one event in the brand's feed, coarsened to precision 5, with the
    // person's terms and the intent's key, and nothing disclosed.
    let events = feed(&relay, &lulu_token).await;
    let created_events: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == "vrm.intent.created.v1")
        .collect();
    assert_eq!(created_events.len(), 1, "{events:?}");
    let seen = &created_events[0]["data"]["intent"];
    assert_eq!(seen["location"]["geohash"], "u09tv");
    assert_eq!(seen["disclosed"], json!({}));
    assert!(
        seen["jwk"]["x"].is_string() && seen["jwk"].get("d").is_none(),
        "{seen}"
    );
    assert!(seen["terms"]["permission"].is_array());
    let remote_id = seen["id"].as_str().unwrap().to_owned();
    let terms_hash = seen["terms_hash"].as_str().unwrap().to_owned();
    let audit = audit_actions(&owner, &client).await;
    assert_eq!(count(&audit, "relay.published"), 1, "{audit:?}");
    assert_eq!(count(&audit, "relay.publish_failed"), 1, "{audit:?}");

    // The brand answers; the vault reads the offer back, verifies it and lists it.
    let signing = &lulu.brand.keys.signing;
    let offer = with_acceptance(signing, &signing.kid, &remote_id, &terms_hash);
    let (status, body) = relay_call(
        &relay,
        Method::POST,
        &format!("/relay/v1/intents/{remote_id}/offers"),
        &lulu_token,
        &offer,
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let offers_path = format!("/api/v1/intents/{id}/offers");
    let listed = wait_for(
        &owner,
        &client,
        &offers_path,
        Duration::from_secs(30),
        |v| !v["offers"].as_array().unwrap().is_empty(),
    )
    .await;
    let shown = &listed["offers"][0];
    assert_eq!(shown["via"], relay_url.as_str(), "{shown}");
    assert_eq!(
        shown["brand"],
        json!({"client_id": lulu.brand.client_id, "name": "Chez Lulu", "verified": true})
    );
    assert_eq!(shown["name"], "Menu du jour");
    let offer_id = shown["id"].as_str().unwrap().to_owned();

    // A field the terms do not allow is refused in words; a direct offer takes no disclose.
    let (status, body) = owner
        .call(
            &client,
            Method::POST,
            &format!("/api/v1/offers/{offer_id}/accept"),
            Some(json!({"disclose": ["profile.birthday"]})),
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (422, Some("grant_not_permitted")),
        "{body}"
    );
    assert!(
        !body["message"].as_str().unwrap().contains("profile."),
        "{body}"
    );

    // Accepting sends the receipt and exactly the disclosed field, encrypted to the brand.
    let (status, accepted) = owner
        .call(
            &client,
            Method::POST,
            &format!("/api/v1/offers/{offer_id}/accept"),
            Some(json!({"disclose": ["contact.email"]})),
        )
        .await;
    assert_eq!(status, 200, "{accepted}");
    assert_eq!(accepted["status"], "accepted");
    assert_eq!(accepted["sent"]["disclosed"], json!(["contact.email"]));
    assert_eq!(accepted["sent"]["receipt"], true);
    let deadline = Instant::now() + Duration::from_secs(30);
    let event = loop {
        let events = feed(&relay, &lulu_token).await;
        if let Some(event) = events.iter().find(|e| e["type"] == "vrm.offer.accepted.v1") {
            break event.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no acceptance reached the brand: {events:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let data = &event["data"];
    let (header, receipt) = jwt_parts(data["receipt"].as_str().unwrap());
    assert_eq!(header["alg"], "ES256");
    assert_eq!(receipt["acceptance"], offer["acceptance"]);
    assert_eq!(receipt["intent_id"], remote_id.as_str());
    assert!(receipt["accepted_at"].is_i64());
    let (jwe_header, plaintext) = open_jwe(lulu.enc.take().unwrap(), data["jwe"].as_str().unwrap());
    assert_eq!(jwe_header["kid"], "Chez Lulu-enc");
    assert_eq!(
        plaintext,
        json!({"fields": {"contact.email": "ana@example.org"}})
    );
    let _ = &lulu.jwks;

    let audit = audit_actions(&owner, &client).await;
    assert_eq!(count(&audit, "relay.offer_received"), 1, "{audit:?}");
    let sent = wait_for(
        &owner,
        &client,
        "/api/v1/audit?limit=200",
        Duration::from_secs(10),
        |v| {
            v["entries"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["action"] == "relay.message_sent")
        },
    )
    .await;
    assert!(sent.to_string().contains("accepted"));
}

async fn relay_call(
    relay: &RelayApp,
    method: Method,
    path: &str,
    token: &str,
    body: &Value,
) -> (u16, Value) {
    let res = relay
        .client
        .request(method, relay.url(path))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// What the fake relay was sent and what it serves.
#[derive(Default)]
struct FakeRelay {
    published: Vec<Value>,
    offers: Vec<Value>,
    messages: Vec<Value>,
    brand: Value,
}

/// A relay that serves whatever offers the test puts in it, forged ones included.
async fn fake_relay(state: Arc<Mutex<FakeRelay>>) -> String {
    fake_relay_at(state, "127.0.0.1:0").await
}

async fn fake_relay_at(state: Arc<Mutex<FakeRelay>>, addr: &str) -> String {
    use axum::extract::State;
    use axum::routing::{get, post};
    type S = Arc<Mutex<FakeRelay>>;
    async fn publish(
        State(s): State<S>,
        axum::Json(body): axum::Json<Value>,
    ) -> (axum::http::StatusCode, axum::Json<Value>) {
        s.lock().unwrap().published.push(body);
        (
            axum::http::StatusCode::CREATED,
            axum::Json(json!({"id": "ri_fake"})),
        )
    }
    async fn offers(State(s): State<S>) -> axum::Json<Value> {
        let offers = s.lock().unwrap().offers.clone();
        axum::Json(json!({"offers": offers, "next_after": offers.len()}))
    }
    async fn brand(State(s): State<S>) -> axum::Json<Value> {
        axum::Json(s.lock().unwrap().brand.clone())
    }
    async fn message(
        State(s): State<S>,
        axum::Json(body): axum::Json<Value>,
    ) -> (axum::http::StatusCode, axum::Json<Value>) {
        s.lock().unwrap().messages.push(body);
        (
            axum::http::StatusCode::CREATED,
            axum::Json(json!({"id": "rm_1"})),
        )
    }
    let app = axum::Router::new()
        .route("/relay/v1/intents", post(publish))
        .route("/relay/v1/intents/{id}/offers", get(offers))
        .route("/relay/v1/intents/{id}/messages", post(message))
        .route("/relay/v1/brands/{client_id}", get(brand))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offer_whose_acceptance_does_not_verify_is_not_shown_but_is_on_the_record() {
    let state = Arc::new(Mutex::new(FakeRelay::default()));
    let url = fake_relay(state.clone()).await;
    let signing = ClientKey::generate("bistro-sig");
    let stranger = ClientKey::generate("bistro-sig");
    let enc = EphemeralPrivateKey::generate(&ECDH_P256, &SystemRandom::new()).unwrap();
    let point = enc.compute_public_key().unwrap().as_ref().to_vec();
    state.lock().unwrap().brand = json!({"client_id": "rb_bistro", "name": "Bistro", "jwks": {"keys": [
        signing.public_jwk(),
        {"kty": "EC", "crv": "P-256", "kid": "bistro-enc", "use": "enc",
         "x": b64(&point[1..33]), "y": b64(&point[33..65])},
    ]}});
    let (_vault, owner, client) = vault_with(std::slice::from_ref(&url)).await;
    let (status, created) = owner
        .call(
            &client,
            Method::POST,
            "/api/v1/intents",
            Some(lunch("u09tv")),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    wait_for(
        &owner,
        &client,
        &format!("/api/v1/intents/{id}"),
        Duration::from_secs(20),
        |v| v["relay"]["status"] == "published",
    )
    .await;
    let terms_hash = state.lock().unwrap().published[0]["terms_hash"]
        .as_str()
        .unwrap()
        .to_owned();
    let record = |n: u64, id: &str, signer: &ClientKey, intent: &str, hash: &str| {
        let mut offer = with_acceptance(signer, "bistro-sig", intent, hash);
        let acceptance = offer.as_object_mut().unwrap().remove("acceptance").unwrap();
        json!({"n": n, "id": id, "intent_id": "ri_fake",
               "brand": {"client_id": "rb_bistro", "name": "Bistro"},
               "offer": offer, "acceptance": acceptance})
    };
    {
        let mut fake = state.lock().unwrap();
        fake.offers = vec![
            record(1, "ro_forged", &stranger, "ri_fake", &terms_hash),
            record(2, "ro_other_intent", &signing, "ri_other", &terms_hash),
            record(3, "ro_other_terms", &signing, "ri_fake", "sha256:00"),
            record(4, "ro_good", &signing, "ri_fake", &terms_hash),
        ];
        // A relay that changes the offer after the brand signed it is caught too.
        let mut tampered = record(5, "ro_tampered", &signing, "ri_fake", &terms_hash);
        tampered["offer"]["price"]["amount"] = json!("1.00");
        fake.offers.push(tampered);
    }
    let offers_path = format!("/api/v1/intents/{id}/offers");
    let listed = wait_for(
        &owner,
        &client,
        &offers_path,
        Duration::from_secs(30),
        |v| !v["offers"].as_array().unwrap().is_empty(),
    )
    .await;
    let audit = wait_for(
        &owner,
        &client,
        "/api/v1/audit?limit=200",
        Duration::from_secs(30),
        |v| count(v["entries"].as_array().unwrap(), "relay.offer_refused") == 4,
    )
    .await;
    // Several reads later, still one offer shown and four refusals: each is handled once.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (_, listed_again) = owner.call(&client, Method::GET, &offers_path, None).await;
    assert_eq!(
        listed_again["offers"].as_array().unwrap().len(),
        1,
        "{listed_again}"
    );
    assert_eq!(listed["offers"][0]["name"], "Menu du jour");
    assert_eq!(listed["offers"][0]["brand"]["verified"], true);
    let audit_now = audit_actions(&owner, &client).await;
    assert_eq!(count(&audit_now, "relay.offer_refused"), 4, "{audit_now:?}");
    assert_eq!(count(&audit_now, "relay.offer_received"), 1);
    let reasons = audit.to_string();
    assert!(reasons.contains("not signed by the brand"), "{reasons}");
    assert!(reasons.contains("another intent"), "{reasons}");
    assert!(reasons.contains("other terms"), "{reasons}");
    assert!(reasons.contains("different offer"), "{reasons}");

    // Declining goes back through the relay; so does withdrawing.
    let offer_id = listed["offers"][0]["id"].as_str().unwrap().to_owned();
    let (status, body) = owner
        .call(
            &client,
            Method::POST,
            &format!("/api/v1/offers/{offer_id}/decline"),
            None,
        )
        .await;
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("declined")),
        "{body}"
    );
    let (status, body) = owner
        .call(
            &client,
            Method::DELETE,
            &format!("/api/v1/intents/{id}"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let messages = state.lock().unwrap().messages.clone();
        if messages.len() == 2 {
            assert_eq!(
                messages[0],
                json!({"type": "declined", "offer_id": "ro_good"})
            );
            assert_eq!(messages[1], json!({"type": "withdrawn"}));
            break;
        }
        assert!(Instant::now() < deadline, "messages: {messages:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let _ = enc;
}

/// The fake relay's messages once there are `n` (at most `within` of waiting).
async fn messages_when(state: &Arc<Mutex<FakeRelay>>, n: usize, within: Duration) -> Vec<Value> {
    let deadline = Instant::now() + within;
    loop {
        let messages = state.lock().unwrap().messages.clone();
        if messages.len() >= n {
            return messages;
        }
        assert!(Instant::now() < deadline, "messages so far: {messages:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relayed_intents_survive_a_restart_reach_the_live_stream_expire_and_are_erased() {
    let state = Arc::new(Mutex::new(FakeRelay::default()));
    let signing = ClientKey::generate("bistro-sig");
    let enc = EphemeralPrivateKey::generate(&ECDH_P256, &SystemRandom::new()).unwrap();
    let point = enc.compute_public_key().unwrap().as_ref().to_vec();
    state.lock().unwrap().brand = json!({"client_id": "rb_bistro", "name": "Bistro", "jwks": {"keys": [
        signing.public_jwk(),
        {"kty": "EC", "crv": "P-256", "kid": "bistro-enc", "use": "enc",
         "x": b64(&point[1..33]), "y": b64(&point[33..65])},
    ]}});
    // The relay's address is taken but nothing answers there yet.
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let (mut vault, owner, client) = vault_with(std::slice::from_ref(&url)).await;
    let mut soon = lunch("u09tv");
    soon["expires_at"] = json!(rfc3339(
        OffsetDateTime::now_utc() + time::Duration::seconds(25)
    ));
    let (status, created) = owner
        .call(&client, Method::POST, "/api/v1/intents", Some(soon))
        .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    let (status, later) = owner
        .call(
            &client,
            Method::POST,
            "/api/v1/intents",
            Some(lunch("u09tv")),
        )
        .await;
    assert_eq!(status, 201, "{later}");
    let later_id = later["id"].as_str().unwrap().to_owned();

    // The vault stops with both intents unpublished; it starts again on the same data.
    let data = std::mem::replace(&mut vault.data, TempDir::new().unwrap());
    drop(vault);
    let mut cmd = crate::kit::server::serve_command(data.path());
    cmd.args(["--relay", &url]);
    let vault = Server::spawn(cmd, data);
    let owner = Owner {
        base: vault.url(""),
        ..owner
    };
    let (status, session) = crate::kit::owner::call(
        &client,
        Method::POST,
        &vault.url("/api/v1/session"),
        None,
        Some(json!({"passphrase": PASSPHRASE})),
    )
    .await;
    assert_eq!(status, 201, "{session}");
    let owner = Owner {
        auth: format!("Bearer {}", session["token"].as_str().unwrap()),
        ..owner
    };
    // Now the relay comes up, on the address the vault was told.
    let served = fake_relay_on(state.clone(), port).await;
    assert_eq!(served, url);
    for intent in [&id, &later_id] {
        wait_for(
            &owner,
            &client,
            &format!("/api/v1/intents/{intent}"),
            Duration::from_secs(60),
            |v| v["relay"]["status"] == "published",
        )
        .await;
    }
    assert_eq!(
        state.lock().unwrap().published.len(),
        2,
        "each published once"
    );

    // A relayed offer reaches the app's live stream like a direct one.
    let stream = client
        .get(vault.url("/api/v1/events"))
        .header("authorization", &owner.auth)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    let terms_hash = state.lock().unwrap().published[0]["terms_hash"]
        .as_str()
        .unwrap()
        .to_owned();
    {
        let mut offer = with_acceptance(&signing, "bistro-sig", "ri_fake", &terms_hash);
        let acceptance = offer.as_object_mut().unwrap().remove("acceptance").unwrap();
        state.lock().unwrap().offers =
            vec![json!({"n": 1, "id": "ro_live", "intent_id": "ri_fake",
            "brand": {"client_id": "rb_bistro", "name": "Bistro"},
            "offer": offer, "acceptance": acceptance})];
    }
    let mut body = stream;
    let mut seen = String::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !seen.contains("event: offer") || !seen.contains("\"via\"") {
        let left = deadline.saturating_duration_since(Instant::now());
        let chunk = tokio::time::timeout(left, body.chunk())
            .await
            .expect("no offer on the live stream");
        seen.push_str(&String::from_utf8_lossy(&chunk.unwrap().unwrap()));
    }
    assert!(seen.contains(&format!("\"via\":\"{url}\"")), "{seen}");
    assert!(seen.contains("\"verified\":true"), "{seen}");
    drop(body);

    // The first intent expires: its relay is told.
    let messages = messages_when(&state, 1, Duration::from_secs(60)).await;
    assert_eq!(messages[0], json!({"type": "expired"}));

    // Deleting everything tells the relay of the intent still open, before the data is gone.
    let res = client
        .delete(vault.url("/api/v1/vault"))
        .header("authorization", &owner.auth)
        .json(&json!({"passphrase": PASSPHRASE, "confirm": "delete everything"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let messages = state.lock().unwrap().messages.clone();
    assert_eq!(
        messages
            .iter()
            .filter(|m| **m == json!({"type": "erasure"}))
            .count(),
        1,
        "only the open intent's relay is asked to erase, once: {messages:?}"
    );
    let _ = enc;
}

/// [`fake_relay`] on a given port.
async fn fake_relay_on(state: Arc<Mutex<FakeRelay>>, port: u16) -> String {
    fake_relay_at(state, &format!("127.0.0.1:{port}")).await
}
