//! No secret and no personal value in the log, even at its most verbose.
//!
//! The design promises that no secret or personal value ever appears in a log line. The test
//! drives a vault's whole life through the API with `VRM_LOG=debug` (every span and event of the
//! vault and of the libraries under it) in JSON lines: setup, logins, the browser's cookie and
//! CSRF token, records, a passphrase change and a new recovery key, brands registering with
//! client secrets, owner-made grants and the authorization-code flow with its code, PKCE verifier,
//! access and refresh tokens, intents delivered by signed webhooks, offers accepted and declined,
//! export and backup; then a restart with an unlock key file, deletion of everything, and a
//! restore of the backup into a fresh vault. Every value typed by the person or a brand is a
//! distinctive marker, and every secret the vault hands out is collected. Failing requests are
//! mixed in throughout (wrong passphrases, bad tokens and secrets, invalid JSON holding markers,
//! unknown paths holding markers), because error paths are where values slip into logs.
//!
//! Every log is then searched for every value, as is and as it would look hex-encoded, in base64
//! or base64url (at each alignment it can have inside a longer encoded string), percent-encoded
//! and JSON-escaped. A control shows the same search finding a marker put into a log line, so the
//! test can fail.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::{Method, Response};
use serde_json::{Value, json};
use time::Duration;

use crate::kit::brand::{
    ASSERTION_TYPE, Brand, ClientAuth, ClientKey, basic_metadata, brand_call, invite, owner_call,
    owner_session, random_id, register, register_key_brand, status_json,
};
use crate::kit::disk::{contains_bytes, encodings_of, passphrase_file};
use crate::kit::grant::{
    AuthRequest, Pkce, REDIRECT_URI, approve, code_brand, consent_request, day_grant, exchange,
    exchange_ok, grant_token, id_of, put_record, read_one, record_value, refresh, wall_now,
};
use crate::kit::intent::{
    LOOPBACK, Receiver, Subscriber, accept_sharing, create_intent, decline, intent_body,
    publish_pdc_intent,
};
use crate::kit::restore::restore;
use crate::support::{TestApp, create_unlock_key, serve_refuses_with};

/// The server's log filter: `debug` turns on every span and event of the vault (each request's
/// span with its route and request id) and the debug output of the libraries under it.
const LEVEL: &str = "debug";

/// A fresh random lower-case hex string: the part of a marker nothing else can contain.
fn core() -> String {
    let bytes: [u8; 8] = ring::rand::generate(&ring::rand::SystemRandom::new())
        .unwrap()
        .expose();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A distinctive value for one kind of input: `MARKER-<KIND>-<random>`.
fn marker(kind: &str) -> String {
    format!("MARKER-{kind}-{}", core())
}

/// Prefixes of the vault's opaque secrets: the part after one is searched for on its own too.
const PREFIXES: [&str; 7] = [
    "vrm_s_", "vrmcs_", "vrmia_", "vrmrt_", "whsec_", "vrmrk-", "vrmuk-",
];

/// What no log line may hold: labelled values, each with every form it is searched for in.
#[derive(Default)]
struct Secrets {
    needles: Vec<(String, Vec<Vec<u8>>)>,
}

impl Secrets {
    /// A text value: itself, its part after a known prefix, and for a JWT its signature.
    fn add(&mut self, label: &str, value: &str) {
        assert!(
            value.len() >= 12,
            "{label}: {value:?} is too short to search for"
        );
        let mut forms = text_forms(value);
        if let Some(rest) = PREFIXES.iter().find_map(|p| value.strip_prefix(p)) {
            forms.extend(text_forms(rest));
        }
        let parts: Vec<&str> = value.split('.').collect();
        if parts.len() == 3 && parts[2].len() >= 40 {
            forms.extend(text_forms(parts[2]));
        }
        self.needles.push((label.to_owned(), forms));
    }

    /// Binary secret material (keys, backup bytes): hex and base64 forms.
    fn add_bytes(&mut self, label: &str, bytes: &[u8]) {
        let mut forms = encodings_of(bytes);
        forms.push(decimal_list(bytes));
        self.needles.push((label.to_owned(), forms));
    }

    fn len(&self) -> usize {
        self.needles.len()
    }

    /// Every place a value turns up in `log` (named `name`): `"label in name line N: line"`.
    fn find_in(&self, name: &str, log: &[u8]) -> Vec<String> {
        let text = String::from_utf8_lossy(log);
        let mut found = Vec::new();
        for (label, forms) in &self.needles {
            for form in forms {
                // Text forms are searched with the standard library's substring search (fast
                // even unoptimised); raw binary ones byte by byte.
                let at = match std::str::from_utf8(form) {
                    Ok(needle) => text.find(needle),
                    Err(_) => contains_bytes(log, form).then_some(0),
                };
                if let Some(at) = at {
                    let line_no = text[..at.min(text.len())].matches('\n').count() + 1;
                    let line = text.lines().nth(line_no - 1).unwrap_or_default();
                    let shown: String = line.chars().take(600).collect();
                    found.push(format!("{label} in {name} line {line_no}: {shown}"));
                    break;
                }
            }
        }
        found
    }
}

/// A text value as it could be written into a log: as is, in hex and base64 (by
/// [`encodings_of`]), percent-encoded, and escaped inside a JSON string.
fn text_forms(value: &str) -> Vec<Vec<u8>> {
    let mut forms = encodings_of(value.as_bytes());
    forms.push(decimal_list(value.as_bytes()));
    let percent: String = url::form_urlencoded::byte_serialize(value.as_bytes()).collect();
    let json = serde_json::to_string(value).unwrap();
    for other in [percent, json.trim_matches('"').to_owned()] {
        if other != value {
            forms.push(other.into_bytes());
        }
    }
    forms
}

/// Bytes as `Debug` prints a byte slice, without the brackets: `77, 65, 82`. Libraries log keys
/// and buffers this way (sled names its trees so at debug level).
fn decimal_list(bytes: &[u8]) -> Vec<u8> {
    let listed = format!("{bytes:?}");
    listed
        .trim_start_matches('[')
        .trim_end_matches(']')
        .as_bytes()
        .to_vec()
}

/// The JSON lines of a log, checked: not empty, every line one JSON object.
fn json_lines(name: &str, log: &[u8]) -> Vec<Value> {
    let text = std::str::from_utf8(log).unwrap_or_else(|e| panic!("{name} is not UTF-8: {e}"));
    let lines: Vec<Value> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            serde_json::from_str::<Value>(l)
                .ok()
                .filter(Value::is_object)
                .unwrap_or_else(|| panic!("{name}: a line that is not a JSON object: {l}"))
        })
        .collect();
    assert!(!lines.is_empty(), "{name} is empty");
    lines
}

/// The lines that report a refused or failed request.
fn failure_lines(lines: &[Value]) -> Vec<&Value> {
    lines
        .iter()
        .filter(|l| {
            matches!(
                l["fields"]["message"].as_str(),
                Some("request refused" | "request failed")
            )
        })
        .collect()
}

/// The `X-Request-Id` the server gave a response.
fn request_id(res: &Response) -> String {
    res.headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| panic!("no x-request-id on {}", res.url()))
        .to_owned()
}

/// A raw request with a body and content type (for bodies that are not valid JSON).
async fn send_raw(
    app: &TestApp,
    method: Method,
    path: &str,
    auth: &str,
    content_type: &str,
    body: String,
) -> u16 {
    app.client
        .request(method, app.url(path))
        .bearer_auth(auth)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[test]
fn the_scanner_finds_a_marker_in_every_form() {
    let value = "MARKER-EMAIL-7f3a@example.org";
    let mut secrets = Secrets::default();
    secrets.add("email", value);
    let clean = br#"{"level":"INFO","fields":{"message":"request refused","status":401}}"#;
    assert!(secrets.find_in("clean", clean).is_empty());
    let hex: String = value.bytes().map(|b| format!("{b:02x}")).collect();
    let lines = [
        format!(r#"{{"fields":{{"message":"stored {value}"}}}}"#),
        format!(
            r#"{{"fields":{{"detail":"{}"}}}}"#,
            URL_SAFE_NO_PAD.encode(value)
        ),
        format!(
            r#"{{"fields":{{"body":"x{}"}}}}"#,
            base64::engine::general_purpose::STANDARD.encode(format!("ab{value}cd"))
        ),
        format!(r#"{{"fields":{{"hex":"{hex}"}}}}"#),
        r#"{"fields":{"uri":"/x?e=MARKER-EMAIL-7f3a%40example.org"}}"#.to_owned(),
        format!(
            r#"{{"fields":{{"message":"batch {:?}"}}}}"#,
            value.as_bytes()
        ),
    ];
    for line in lines {
        let found = secrets.find_in("synthetic", line.as_bytes());
        assert_eq!(found.len(), 1, "the scanner missed the marker in {line}");
        assert!(
            found[0].starts_with("email in synthetic line 1"),
            "{found:?}"
        );
    }
    // A prefixed secret is found without its prefix, and a JWT by its signature alone.
    secrets.add("session", "vrm_s_Zm9vYmFyYmF6cXV4cXV1eA");
    let found = secrets.find_in("synthetic", b"{\"token\":\"Zm9vYmFyYmF6cXV4cXV1eA\"}");
    assert_eq!(found.len(), 1, "{found:?}");
    let signature = "S".repeat(40);
    secrets.add("jwt", &format!("eyJh.eyJz.{signature}"));
    assert_eq!(
        secrets
            .find_in("synthetic", format!("sig={signature}").as_bytes())
            .len(),
        1
    );
}

#[tokio::test]
async fn no_secret_or_personal_value_reaches_the_log_at_debug_level() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("vault");
    let mut secrets = Secrets::default();
    // The person's and the brands' own inputs.
    let pass1 = format!("{} pass one", marker("PASS1"));
    let pass2 = format!("{} pass two", marker("PASS2"));
    let pass3 = format!("{} pass three", marker("PASS3"));
    let wrong = format!("{} wrong", marker("WRONGPASS"));
    let email = format!("{}@example.org", marker("EMAIL"));
    let note = marker("HEALTHNOTE");
    let personal_path = format!("health.diagnosis-{}", core());
    let missing_path = format!("contact.missing-{}", core());
    let intent_text = marker("INTENT");
    let declined_text = marker("INTENT2");
    let offer_name = marker("OFFERNAME");
    let offer_text = marker("OFFERTEXT");
    let hook_path = format!("hook-{}", core());
    for (label, value) in [
        ("passphrase 1", &pass1),
        ("passphrase 2", &pass2),
        ("passphrase 3", &pass3),
        ("wrong passphrase", &wrong),
        ("email value", &email),
        ("health note", &note),
        ("personal record path", &personal_path),
        ("missing record path", &missing_path),
        ("intent text", &intent_text),
        ("second intent text", &declined_text),
        ("offer name", &offer_name),
        ("offer text", &offer_text),
        ("webhook path", &hook_path),
    ] {
        secrets.add(label, value);
    }

    // --- The first life of the vault, with its log at debug level. ---
    let log_a = dir.path().join("a.log");
    let app = TestApp::start_with_logging_at(&data, &[LOOPBACK], &log_a, LEVEL);
    let body = owner_session(&app, "/api/v1/setup", &pass1).await;
    let owner = body["token"].as_str().unwrap().to_owned();
    secrets.add("setup session token", &owner);
    secrets.add("setup CSRF token", body["csrf_token"].as_str().unwrap());
    let recovery1 = body["recovery_key"].as_str().unwrap().to_owned();
    secrets.add("recovery key 1", &recovery1);
    secrets.add("recovery key 1 undashed", &recovery1.replace('-', ""));

    // Logins: a wrong passphrase, then the browser's way (cookie and CSRF token).
    assert_eq!(app.login(&wrong).await.status(), 401);
    // The device cookie a login sets, then sent back with a wrong passphrase.
    let res = app.login(&pass1).await;
    assert_eq!(res.status(), 201);
    let device = res
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok()?.strip_prefix("vrm_device="))
        .map(|v| v.split(';').next().unwrap_or_default().to_owned())
        .next()
        .expect("a login sets a device cookie");
    secrets.add("device cookie", &device);
    let res = app
        .client
        .post(app.url("/api/v1/session"))
        .header("cookie", format!("vrm_device={device}"))
        .json(&json!({ "passphrase": wrong }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let login = owner_session(&app, "/api/v1/session", &pass1).await;
    let cookie_token = login["token"].as_str().unwrap().to_owned();
    let csrf = login["csrf_token"].as_str().unwrap().to_owned();
    secrets.add("cookie session token", &cookie_token);
    secrets.add("CSRF token", &csrf);
    let bad_csrf = marker("BADCSRF");
    secrets.add("wrong CSRF token", &bad_csrf);
    for (token, expected) in [(&csrf, 201), (&bad_csrf, 403)] {
        let res = app
            .client
            .put(app.url("/api/v1/records/contact.email"))
            .header("cookie", format!("vrm_session={cookie_token}"))
            .header("x-csrf-token", token.as_str())
            .json(&json!({ "value": email }))
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        assert!(
            status == expected || (expected == 201 && status == 200),
            "cookie write with {token}: {status}"
        );
    }

    // Records, and requests about them that fail.
    put_record(&app, &owner, &personal_path, json!({ "note": note })).await;
    assert_eq!(
        app.get(&owner, &format!("/api/v1/records/{personal_path}"))
            .await
            .status(),
        200
    );
    assert_eq!(app.get(&owner, "/api/v1/records").await.status(), 200);
    let syntax = format!("{{\"value\": \"{}\", ", marker("BADJSON"));
    let shape = format!("{{\"valeu\": \"{}\"}}", marker("BADSHAPE"));
    secrets.add("invalid JSON body", syntax.split('"').nth(3).unwrap());
    secrets.add("wrong-shape body", shape.split('"').nth(3).unwrap());
    let record = format!("/api/v1/records/{personal_path}");
    for body in [syntax, shape] {
        let status = send_raw(&app, Method::PUT, &record, &owner, "application/json", body).await;
        assert_eq!(status, 400);
    }
    let bad_path = format!("Contact.{}", marker("BADPATH"));
    secrets.add("invalid record path", &bad_path);
    let (status, _) = owner_call(
        &app,
        &owner,
        Method::PUT,
        &format!("/api/v1/records/{bad_path}"),
        Some(json!({ "value": email })),
    )
    .await;
    assert!((400..500).contains(&status), "{status}");
    let (no_page, no_route) = (marker("NOPAGE"), marker("NOROUTE"));
    secrets.add("unknown page", &no_page);
    secrets.add("unknown API route", &no_route);
    for path in [
        format!("/api/v1/records/{missing_path}"),
        format!("/{no_page}"),
        format!("/api/v1/{no_route}"),
    ] {
        assert_eq!(app.get(&owner, &path).await.status(), 404, "{path}");
    }
    let bad_session = format!("vrm_s_{}", marker("BADSESSION"));
    secrets.add("unknown session token", &bad_session);
    assert_eq!(app.get(&bad_session, "/api/v1/records").await.status(), 401);

    // The passphrase changes (after a wrong try) and the recovery key is replaced.
    for (current, expected) in [(&wrong, 401), (&pass1, 204)] {
        let (status, body) = owner_call(
            &app,
            &owner,
            Method::PUT,
            "/api/v1/passphrase",
            Some(json!({ "current_passphrase": current, "new_passphrase": pass2 })),
        )
        .await;
        assert_eq!(status, expected, "{body}");
    }
    let (status, body) = owner_call(
        &app,
        &owner,
        Method::POST,
        "/api/v1/recovery-key",
        Some(json!({ "passphrase": pass2 })),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let recovery2 = body["recovery_key"].as_str().unwrap().to_owned();
    secrets.add("recovery key 2", &recovery2);
    secrets.add("recovery key 2 undashed", &recovery2.replace('-', ""));

    // A brand registers (after someone tries a made-up invitation) and gets a grant.
    let invitation = invite(&app, &owner, json!({ "note": marker("INVITENOTE") })).await;
    let initial = invitation["initial_access_token"].as_str().unwrap();
    secrets.add("initial access token", initial);
    let forged = format!("vrmia_{}", marker("BADINVITE"));
    secrets.add("forged initial access token", &forged);
    let metadata = basic_metadata("Log Bistro");
    assert_eq!(
        register(&app, Some(&forged), &metadata)
            .await
            .status()
            .as_u16(),
        401
    );
    let (status, registered) = status_json(register(&app, Some(initial), &metadata).await).await;
    assert_eq!(status, 201, "{registered}");
    secrets.add(
        "client secret",
        registered["client_secret"].as_str().unwrap(),
    );
    let bistro = Brand::with_secret("Log Bistro", &registered);
    bistro.accept_current(&app).await;
    let wrong_secret = format!("vrmcs_{}", marker("BADSECRET"));
    secrets.add("wrong client secret", &wrong_secret);
    let impostor = Brand {
        client_id: bistro.client_id.clone(),
        name: "impostor".into(),
        auth: ClientAuth::Secret(wrong_secret),
    };
    let (status, body) = impostor.token_response(&app, &[]).await;
    assert_eq!(status, 401, "{body}");
    // A brand that authenticates with signed client assertions (private_key_jwt): one for
    // another audience is refused, a good one gets a token.
    let keyed = register_key_brand(&app, &owner, "Log Keys", ClientKey::generate("log-1")).await;
    keyed.accept_current(&app).await;
    let ClientAuth::Key(key) = &keyed.auth else {
        panic!("{} has no key", keyed.name)
    };
    let good = key.assertion(&keyed.client_id, &app.url("/oauth/token"), &random_id());
    let elsewhere = key.assertion(&keyed.client_id, "https://elsewhere.example/", &random_id());
    secrets.add("client assertion", &good);
    secrets.add("client assertion for another audience", &elsewhere);
    for (assertion, expected) in [(&elsewhere, 400), (&good, 200)] {
        let res = app
            .client
            .post(app.url("/oauth/token"))
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_assertion_type", ASSERTION_TYPE),
                ("client_assertion", assertion.as_str()),
            ])
            .send()
            .await
            .unwrap();
        let (status, body) = status_json(res).await;
        assert_eq!(status, expected, "{body}");
        if let Some(token) = body["access_token"].as_str() {
            secrets.add("assertion-made access token", token);
        }
    }

    let view = day_grant(&app, &owner, &bistro, &["contact.email"]).await;
    let data_token = grant_token(&app, &bistro, &id_of(&view)).await;
    secrets.add("grant access token", &data_token);
    let res = read_one(&app, &data_token, "contact.email").await;
    assert_eq!(res.status(), 200);
    assert!(res.text().await.unwrap().contains(&email));
    assert_eq!(
        read_one(&app, &data_token, &personal_path)
            .await
            .status()
            .as_u16(),
        403
    );

    // Bearer tokens that are not the vault's: garbage, and a JWT whose header holds a marker.
    let garbage = marker("BADBEARER");
    let header = URL_SAFE_NO_PAD.encode(format!(
        r#"{{"alg":"{}","typ":"at+jwt"}}"#,
        marker("BADALG")
    ));
    let fake_jwt = format!(
        "{header}.{}.{}",
        URL_SAFE_NO_PAD.encode(format!(r#"{{"sub":"{}"}}"#, marker("BADSUB"))),
        URL_SAFE_NO_PAD.encode(marker("BADSIGNATURE").repeat(2))
    );
    secrets.add("garbage bearer", &garbage);
    secrets.add("forged JWT", &fake_jwt);
    let refused = brand_call(&app, &garbage).await;
    assert_eq!(refused.status(), 401);
    let refused_id = request_id(&refused);
    assert_eq!(brand_call(&app, &fake_jwt).await.status(), 401);

    // The authorization-code flow: code, verifier, access and refresh tokens, and bad ones.
    let shop = code_brand(&app, &owner, "Log Shop").await;
    if let ClientAuth::Secret(secret) = &shop.auth {
        secrets.add("code brand client secret", secret);
    }
    let pkce = Pkce::generate();
    secrets.add("PKCE verifier", &pkce.verifier);
    let request = AuthRequest::new(&app, &shop, &pkce, &["contact.email"]);
    let consent = consent_request(&app, &request).await;
    let code = approve(&app, &owner, &consent, &request).await;
    secrets.add("authorization code", &code);
    let tokens = exchange_ok(&app, &shop, &code, &pkce).await;
    let refresh1 = tokens["refresh_token"].as_str().unwrap().to_owned();
    secrets.add(
        "code access token",
        tokens["access_token"].as_str().unwrap(),
    );
    secrets.add("refresh token 1", &refresh1);
    let (status, rotated) = refresh(&app, &shop, &refresh1).await;
    assert_eq!(status, 200, "{rotated}");
    let access2 = rotated["access_token"].as_str().unwrap().to_owned();
    secrets.add("refreshed access token", &access2);
    secrets.add(
        "refresh token 2",
        rotated["refresh_token"].as_str().unwrap(),
    );
    let bad_code = marker("BADCODE");
    let bad_verifier = marker("BADVERIFIER").repeat(3);
    let bad_refresh = format!("vrmrt_{}", marker("BADREFRESH"));
    secrets.add("wrong code", &bad_code);
    secrets.add("wrong verifier", &bad_verifier);
    secrets.add("wrong refresh token", &bad_refresh);
    let (status, _) = exchange(&app, &shop, &bad_code, Some(&bad_verifier), REDIRECT_URI).await;
    assert_eq!(status, 400);
    let (status, _) = refresh(&app, &shop, &refresh1).await;
    assert_eq!(status, 400, "a used refresh token");
    let (status, _) = refresh(&app, &shop, &bad_refresh).await;
    assert_eq!(status, 400);
    let (status, _) = shop.introspect(&app, &access2).await;
    assert_eq!(status, 200);
    assert_eq!(shop.revoke(&app, &access2).await, 200);

    // Intents under the PDC-INTENT terms, delivered to a webhook that fails once.
    publish_pdc_intent(&app, &owner).await;
    bistro.accept_current(&app).await;
    let api_token = bistro.access_token(&app).await;
    secrets.add("brand API token", &api_token);
    let subscriber = Subscriber {
        brand: bistro,
        token: api_token,
        owner: Some(owner.clone()),
    };
    let receiver = Receiver::start(&[500]).await;
    let subscription = subscriber
        .subscribe_ok(
            &app,
            &json!({
                "categories": ["food"],
                "webhook_url": format!("{}/{hook_path}", receiver.url),
            }),
        )
        .await;
    secrets.add(
        "webhook secret 1",
        subscription["webhook_secret"].as_str().unwrap(),
    );
    let rotated = subscriber.rotate_secret(&app).await;
    secrets.add(
        "webhook secret 2",
        rotated["webhook_secret"].as_str().unwrap(),
    );
    for secret in [&subscription, &rotated] {
        let encoded = secret["webhook_secret"].as_str().unwrap();
        let key = base64::engine::general_purpose::STANDARD
            .decode(encoded.strip_prefix("whsec_").unwrap())
            .unwrap();
        secrets.add_bytes("webhook secret key bytes", &key);
    }
    let mut body = intent_body("food.lunch", wall_now());
    body["text"] = json!(intent_text);
    body["disclose"] = json!(["contact.email"]);
    let (status, intent) = create_intent(&app, &owner, body).await;
    assert_eq!(status, 201, "{intent}");
    // The first delivery is refused (500) and retried.
    let received = receiver
        .wait_for(2, std::time::Duration::from_secs(20))
        .await;
    assert!(
        String::from_utf8_lossy(&received[1].body).contains(&email),
        "the disclosed email is in the delivery"
    );
    let offer = json!({
        "name": offer_name,
        "description": offer_text,
        "price": { "amount": "24.00", "currency": "EUR" },
        "valid_until": crate::kit::grant::rfc3339(wall_now() + Duration::days(1)),
        "data_requested": ["contact.email"],
    });
    let intent_id = intent["id"].as_str().unwrap();
    let offer_id = subscriber.offer_ok(&app, intent_id, &offer).await;
    accept_sharing(&app, &owner, &offer_id).await;
    let mut body = intent_body("food.dinner", wall_now());
    body["text"] = json!(declined_text);
    let (status, second) = create_intent(&app, &owner, body).await;
    assert_eq!(status, 201, "{second}");
    let second_offer = subscriber
        .offer_ok(&app, second["id"].as_str().unwrap(), &offer)
        .await;
    decline(&app, &owner, &second_offer).await;
    let bad_category = marker("BADCATEGORY").to_lowercase();
    secrets.add("invalid intent category", &bad_category);
    let mut body = intent_body("food.lunch", wall_now());
    body["category"] = json!(bad_category);
    let (status, _) = create_intent(&app, &owner, body).await;
    assert_eq!(status, 422);
    let bad_offer = format!("{{\"name\": \"{}\"", marker("BADOFFER"));
    secrets.add("invalid offer body", bad_offer.split('"').nth(3).unwrap());
    let status = send_raw(
        &app,
        Method::POST,
        &format!("/brand/v1/intents/{intent_id}/offers"),
        &subscriber.token,
        "application/json",
        bad_offer,
    )
    .await;
    assert_eq!(status, 400);

    // Export and backup; the backup's bytes must not reach the log either.
    let export = app.get(&owner, "/api/v1/export").await;
    assert_eq!(export.status(), 200);
    assert!(export.text().await.unwrap().contains(&note));
    let backup = app.get(&owner, "/api/v1/backup").await;
    assert_eq!(backup.status(), 200);
    let backup = backup.bytes().await.unwrap().to_vec();
    assert!(backup.len() > 4096, "a backup of {} bytes", backup.len());
    for (label, at) in [
        ("backup bytes (middle)", backup.len() / 2),
        ("backup bytes (end)", backup.len() - 48),
    ] {
        secrets.add_bytes(label, &backup[at..at + 48]);
    }
    let (status, _) =
        owner_call(&app, &cookie_token, Method::DELETE, "/api/v1/session", None).await;
    assert_eq!(status, 204);
    app.stop();

    // --- The second life: unsealed at boot by an unlock key file, then everything deleted. ---
    let pass_file = passphrase_file(dir.path(), &pass2);
    let key_file = dir.path().join("unlock.key");
    create_unlock_key(&data, &pass_file, &key_file);
    let unlock_key = std::fs::read_to_string(&key_file).unwrap();
    let unlock_key = unlock_key.trim();
    secrets.add("unlock key", unlock_key);
    secrets.add_bytes(
        "unlock key bytes",
        &URL_SAFE_NO_PAD
            .decode(unlock_key.strip_prefix("vrmuk-").unwrap())
            .unwrap(),
    );
    let log_b = dir.path().join("b.log");
    let app = TestApp::start_with_logging_at(
        &data,
        &[LOOPBACK, "--unlock-key-file", key_file.to_str().unwrap()],
        &log_b,
        LEVEL,
    );
    assert_eq!(
        app.get("", "/readyz").await.status(),
        200,
        "unsealed at boot"
    );
    let login = owner_session(&app, "/api/v1/session", &pass2).await;
    let owner = login["token"].as_str().unwrap().to_owned();
    secrets.add("second-life session token", &owner);
    for (passphrase, expected) in [(&wrong, 401), (&pass2, 200)] {
        let (status, body) = owner_call(
            &app,
            &owner,
            Method::DELETE,
            "/api/v1/vault",
            Some(json!({ "passphrase": passphrase, "confirm": "delete everything" })),
        )
        .await;
        assert_eq!(status, expected, "{body}");
    }
    app.stop();

    // --- A fresh vault restored from the backup with the recovery key. ---
    let restored = dir.path().join("restored");
    let log_c = dir.path().join("c.log");
    let app = TestApp::start_with_logging_at(&restored, &[], &log_c, LEVEL);
    let (status, body) = restore(&app, &backup, &[("passphrase", &wrong)]).await;
    assert_eq!(status, 401, "{body}");
    let (status, body) = restore(
        &app,
        &backup,
        &[("recovery_key", &recovery2), ("new_passphrase", &pass3)],
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let owner = body["token"].as_str().unwrap().to_owned();
    secrets.add("restored session token", &owner);
    assert_eq!(
        record_value(&app, &owner, "contact.email").await,
        json!(email)
    );
    app.stop();

    // --- A server refusing to start with a forged unlock key file says why, and only that. ---
    let forged_key = dir.path().join("forged.key");
    let forged_text = format!("vrmuk-{}", marker("FORGEDUNLOCK"));
    std::fs::write(&forged_key, &forged_text).unwrap();
    secrets.add("forged unlock key", &forged_text);
    let refusal = serve_refuses_with(
        &restored,
        &[
            "--log-format",
            "json",
            "--unlock-key-file",
            forged_key.to_str().unwrap(),
        ],
    );

    // --- The logs. ---
    let logs: Vec<(&str, Vec<u8>)> = vec![
        ("first life log", std::fs::read(&log_a).unwrap()),
        ("second life log", std::fs::read(&log_b).unwrap()),
        ("restored vault log", std::fs::read(&log_c).unwrap()),
        ("refused start's output", refusal.into_bytes()),
    ];
    let mut all_lines = Vec::new();
    for (name, log) in &logs[..3] {
        let lines = json_lines(name, log);
        // Debug level is really on: the per-request spans are there.
        assert!(
            lines.iter().any(|l| l["level"] == "DEBUG"),
            "{name} has no debug line"
        );
        all_lines.extend(lines);
    }
    // At least the forged invitation, the wrong client secret and the two forged bearer tokens
    // (refusals whose reason is logged; other 4xx answers are not logged at all).
    let failures = failure_lines(&all_lines);
    assert!(
        failures.len() >= 4,
        "only {} request-failure lines: {failures:?}",
        failures.len()
    );
    for line in &failures {
        let id = line["fields"]["request_id"].as_str().unwrap_or_default();
        assert!(
            !id.is_empty(),
            "a request-failure line without request id: {line}"
        );
        assert!(
            line["fields"]["route"].is_string(),
            "a request-failure line without route: {line}"
        );
    }
    assert!(
        failures
            .iter()
            .any(|l| l["fields"]["request_id"] == refused_id.as_str()
                && l["fields"]["status"] == 401),
        "no failure line for the refused bearer token's request {refused_id}"
    );

    // The control: the scanner finds a marker spliced into a real line of this very log.
    let real_line = String::from_utf8_lossy(&logs[0].1)
        .lines()
        .find(|l| l.contains("request refused"))
        .unwrap()
        .to_owned();
    let spliced = real_line.replacen("request refused", &format!("request refused {email}"), 1);
    assert_eq!(
        secrets.find_in("control", spliced.as_bytes()).len(),
        1,
        "the scanner does not see a marker in a log line: {spliced}"
    );

    let found: Vec<String> = logs
        .iter()
        .flat_map(|(name, log)| secrets.find_in(name, log))
        .collect();
    let total: usize = logs.iter().map(|(_, l)| l.len()).sum();
    assert!(
        found.is_empty(),
        "{} of {} secret or personal values are in the logs ({total} bytes):\n{}",
        found.len(),
        secrets.len(),
        found.join("\n")
    );
}
