//! `vrm-vault relay admit --batch FILE`: an operator admits many brands from JSON lines in one
//! command, gets each one's client id in the file's order, and a bad line admits nobody.

use std::time::Duration;

use serde_json::{Value, json};

use crate::kit::relay::{AdmittedBrand, BrandKeys, Nats, RelayApp, admit_batch_command};

async fn published_ids(relay: &RelayApp) -> Vec<String> {
    let (status, list) = relay.get_json("/relay/v1/brands", None).await;
    assert_eq!(status, 200, "{list}");
    let mut ids: Vec<String> = list["brands"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["client_id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort_unstable();
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_admits_every_line_in_order_and_they_can_get_tokens() {
    let nats = Nats::start();
    let relay = RelayApp::start(&nats.url(), |_| {});
    assert!(
        relay.wait_ready(200, Duration::from_secs(20)).await,
        "{}",
        relay.log()
    );
    // More lines than the admissions kept in flight, so the order is kept across the window.
    let names: Vec<String> = (0..40).map(|i| format!("Brand {i:02}")).collect();
    let brands = AdmittedBrand::admit_many(&nats, &names);

    let mut want: Vec<String> = brands.iter().map(|b| b.client_id.clone()).collect();
    want.sort_unstable();
    want.dedup();
    assert_eq!(want.len(), 40, "every brand has its own client id");
    assert_eq!(published_ids(&relay).await, want);
    for brand in [&brands[0], &brands[39]] {
        let (status, body) = relay
            .get_json(&format!("/relay/v1/brands/{}", brand.client_id), None)
            .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["name"], brand.name.as_str(), "line order kept");
        assert_eq!(
            body["jwks"]["keys"][0]["x"],
            brand.keys.signing.public_jwk()["x"]
        );
        // The admitted key is the one the brand signs its client assertions with.
        assert!(relay.token(brand).await.starts_with("vrm_rt_"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_line_is_named_and_admits_nobody() {
    let nats = Nats::start();
    let relay = RelayApp::start(&nats.url(), |_| {});
    assert!(
        relay.wait_ready(200, Duration::from_secs(20)).await,
        "{}",
        relay.log()
    );
    let good = |name: &str| json!({"name": name, "jwks": BrandKeys::generate(name).jwks()});
    let mut private = BrandKeys::generate("Leaky").jwks();
    private["keys"][0]["d"] = json!("AAAA");
    let cases: [(Vec<Value>, &str); 3] = [
        (
            vec![good("A"), good("B"), json!({"name": "C"})],
            "line 3: expected",
        ),
        (
            vec![good("A"), json!({"name": "Leaky", "jwks": private})],
            "line 2: jwks.keys[0] holds private key material",
        ),
        (
            vec![
                json!({"name": "", "jwks": BrandKeys::generate("x").jwks()}),
                good("B"),
            ],
            "line 1: name must have 1 to 100 characters",
        ),
    ];
    for (lines, want) in cases {
        let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
        let (ok, stdout, stderr) = admit_batch_command(&nats.url(), &text);
        assert!(!ok, "admitted: {stdout}");
        assert!(stderr.contains(want), "{want:?} not in {stderr}");
        assert!(stderr.contains("no brand was admitted"), "{stderr}");
        assert_eq!(stdout, "");
    }
    assert!(published_ids(&relay).await.is_empty());

    // --batch and --name together are refused by the command line itself.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_vrm-vault"))
        .args([
            "relay",
            "admit",
            "--nats",
            &nats.url(),
            "--name",
            "A",
            "--batch",
            "-",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot be used with"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
