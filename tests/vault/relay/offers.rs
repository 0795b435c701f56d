//! Offers back through the relay: a brand answers a relayed intent with its offer and a JWS
//! accepting the person's terms; the relay checks both and the intent's offer limit, and the
//! intent's vault reads the offers by signing with the intent's key, then verifies each
//! acceptance against the brand's published keys.

use std::time::Duration;

use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::kit::brand::{ClientKey, b64, jcs_hash, now};
use crate::kit::grant::rfc3339;
use crate::kit::relay::{AdmittedBrand, Nats, RelayApp};

const PDC_INTENT: &str = include_str!("../../../policies/pdc-intent.json");

/// A vault's side of one relayed intent: its key and its id.
pub(super) struct VaultIntent {
    pub(super) key: ClientKey,
    pub(super) id: String,
    pub(super) terms_hash: String,
    /// What the vault published.
    pub(super) body: Value,
}

pub(super) async fn publish(relay: &RelayApp, max_offers: u32) -> VaultIntent {
    let terms: Value = serde_json::from_str(PDC_INTENT).unwrap();
    let key = ClientKey::generate("intent");
    let mut jwk = key.public_jwk();
    jwk.as_object_mut().unwrap().remove("kid");
    let body = json!({
        "category": "food.lunch",
        "text": "Lunch for two",
        "expires_at": rfc3339(OffsetDateTime::now_utc() + time::Duration::hours(2)),
        "location": {"geohash": "u09tv", "radius_m": 1500},
        "max_offers": max_offers,
        "terms_hash": jcs_hash(&terms),
        "terms": terms,
        "jwk": jwk,
    });
    let res = relay
        .client
        .post(relay.url("/relay/v1/intents"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let created: Value = res.json().await.unwrap();
    VaultIntent {
        key,
        id: created["id"].as_str().unwrap().to_owned(),
        terms_hash: body["terms_hash"].as_str().unwrap().to_owned(),
        body,
    }
}

pub(super) fn offer_body() -> Value {
    json!({
        "name": "Menu du jour",
        "price": {"amount": "14.50", "currency": "EUR"},
        "valid_until": rfc3339(OffsetDateTime::now_utc() + time::Duration::hours(1)),
        "data_requested": ["contact.phone"],
    })
}

/// base64url SHA-256 of the RFC 8785 form: the acceptance's `offer_sha256`.
fn digest(offer: &Value) -> String {
    let bytes = serde_json_canonicalizer::to_vec(offer).unwrap();
    b64(ring::digest::digest(&ring::digest::SHA256, &bytes).as_ref())
}

pub(super) fn acceptance(
    signer: &ClientKey,
    kid: &str,
    intent_id: &str,
    terms_hash: &str,
    offer: &Value,
) -> String {
    signer.sign(
        None,
        kid,
        &json!({"intent_id": intent_id, "terms_hash": terms_hash,
                "offer_sha256": digest(offer), "iat": now()}),
    )
}

pub(super) async fn post_offer(
    relay: &RelayApp,
    token: &str,
    intent_id: &str,
    body: &Value,
) -> (u16, Value) {
    let res = relay
        .client
        .post(relay.url(&format!("/relay/v1/intents/{intent_id}/offers")))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

pub(super) async fn vault_read(
    relay: &RelayApp,
    intent: &VaultIntent,
    signer: &ClientKey,
) -> (u16, Value) {
    let path = format!("/relay/v1/intents/{}/offers", intent.id);
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    header.typ = Some("JWT".into());
    let read = jsonwebtoken::encode(
        &header,
        &json!({"sub": intent.id, "aud": relay.url(&path), "exp": now() + 60}),
        &signer.encoding_key(),
    )
    .unwrap();
    relay.get_json(&path, Some(&read)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_accepted_offer_reaches_the_intents_vault_verifiably() {
    let nats = Nats::start();
    let relay = RelayApp::start(&nats.url(), |_| {});
    assert!(
        relay.wait_ready(200, Duration::from_secs(20)).await,
        "{}",
        relay.log()
    );
    let lulu = AdmittedBrand::admit(&nats, "Chez Lulu");
    let nord = AdmittedBrand::admit(&nats, "Pizzeria Nord");
    let lulu_token = relay.token(&lulu).await;
    let nord_token = relay.token(&nord).await;
    let intent = publish(&relay, 1).await;
    let signing = &lulu.keys.signing;

    // Refused: a forged signature, an acceptance of another offer, of other terms, no acceptance.
    let offer = offer_body();
    let stranger = ClientKey::generate(&signing.kid);
    let mut other_offer = offer.clone();
    other_offer["price"]["amount"] = json!("9.00");
    let cases = [
        acceptance(
            &stranger,
            &signing.kid,
            &intent.id,
            &intent.terms_hash,
            &offer,
        ),
        acceptance(
            signing,
            &signing.kid,
            &intent.id,
            &intent.terms_hash,
            &other_offer,
        ),
        acceptance(signing, &signing.kid, &intent.id, "sha256:00", &offer),
        acceptance(
            signing,
            &signing.kid,
            "ri_other",
            &intent.terms_hash,
            &offer,
        ),
    ];
    for forged in cases {
        let mut body = offer.clone();
        body["acceptance"] = json!(forged);
        let (status, answer) = post_offer(&relay, &lulu_token, &intent.id, &body).await;
        assert_eq!(
            (status, answer["error"].as_str()),
            (422, Some("invalid_acceptance")),
            "{answer}"
        );
        assert_eq!(answer["at"], "acceptance");
    }
    let (status, answer) = post_offer(&relay, &lulu_token, &intent.id, &offer).await;
    assert_eq!(
        (status, answer["at"].as_str()),
        (422, Some("acceptance")),
        "{answer}"
    );
    let mut bad_offer = offer.clone();
    bad_offer["price"]["currency"] = json!("euro");
    bad_offer["acceptance"] = json!(acceptance(
        signing,
        &signing.kid,
        &intent.id,
        &intent.terms_hash,
        &offer
    ));
    let (status, answer) = post_offer(&relay, &lulu_token, &intent.id, &bad_offer).await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (422, Some("invalid_offer")),
        "{answer}"
    );
    let (status, _) = post_offer(
        &relay,
        &lulu_token,
        "ri_00000000000000000000000000000000",
        &offer,
    )
    .await;
    assert_eq!(status, 404);

    // The real one.
    let mut body = offer.clone();
    body["acceptance"] = json!(acceptance(
        signing,
        &signing.kid,
        &intent.id,
        &intent.terms_hash,
        &offer
    ));
    let (status, created) = post_offer(&relay, &lulu_token, &intent.id, &body).await;
    assert_eq!(status, 201, "{created}");

    // max_offers is 1: the next brand is told so.
    let mut late = offer.clone();
    late["acceptance"] = json!(acceptance(
        &nord.keys.signing,
        &nord.keys.signing.kid,
        &intent.id,
        &intent.terms_hash,
        &offer
    ));
    let (status, answer) = post_offer(&relay, &nord_token, &intent.id, &late).await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (409, Some("offer_limit")),
        "{answer}"
    );

    // Only the intent's key reads the offers.
    let (status, _) = vault_read(&relay, &intent, &ClientKey::generate("x")).await;
    assert_eq!(status, 401);
    let (status, _) = relay
        .get_json(
            &format!("/relay/v1/intents/{}/offers", intent.id),
            Some(&lulu_token),
        )
        .await;
    assert_eq!(status, 401);
    let (status, list) = vault_read(&relay, &intent, &intent.key).await;
    assert_eq!(status, 200, "{list}");
    let offers = list["offers"].as_array().unwrap();
    assert_eq!(offers.len(), 1);
    let got = &offers[0];
    assert_eq!(got["id"], created["id"]);
    assert_eq!(
        got["brand"],
        json!({"client_id": lulu.client_id, "name": "Chez Lulu"})
    );
    assert_eq!(got["offer"], offer);

    // The vault verifies the acceptance with the brand's published keys, as any JOSE library.
    let (_, published) = relay
        .get_json(&format!("/relay/v1/brands/{}", lulu.client_id), None)
        .await;
    // Only the signing key: jsonwebtoken's Jwk type cannot even parse an ECDH-ES key.
    let jws = got["acceptance"].as_str().unwrap();
    let kid = jsonwebtoken::decode_header(jws).unwrap().kid.unwrap();
    let signing_key = published["jwks"]["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == kid.as_str() && k["use"] == "sig")
        .unwrap();
    let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(signing_key.clone()).unwrap();
    let key = jsonwebtoken::DecodingKey::from_jwk(&jwk).unwrap();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    let claims = jsonwebtoken::decode::<Value>(jws, &key, &validation)
        .unwrap()
        .claims;
    assert_eq!(claims["intent_id"], intent.id.as_str());
    assert_eq!(claims["terms_hash"], intent.terms_hash.as_str());
    assert_eq!(claims["offer_sha256"], digest(&got["offer"]));
}
