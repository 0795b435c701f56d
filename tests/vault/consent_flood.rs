//! Anyone can open consent requests for any brand, since a client id and its redirect URI are
//! in every browser's address bar (issue 17, item 4). Floods must not block another brand's
//! flow, nor another address's. The vault trusts the test client as its proxy, so the test can
//! speak for many client addresses through `X-Forwarded-For`.

use reqwest::Response;
use vrm_vault::domain::consent_budget::{PER_ADDRESS, PER_BRAND};

use crate::kit::brand::Brand;
use crate::kit::grant::{
    AuthRequest, Pkce, code_brand, consent_view, location, no_redirects, seed,
};
use crate::support::{TestApp, ready_vault_with};

/// `GET /oauth/authorize` from `address`, without following the redirect.
async fn authorize_from(app: &TestApp, request: &AuthRequest, address: &str) -> Response {
    no_redirects()
        .get(app.url("/oauth/authorize"))
        .query(&request.params)
        .header("X-Forwarded-For", address)
        .send()
        .await
        .unwrap()
}

/// The consent request id a request opened; fails if it was not sent to the consent page.
async fn opened(app: &TestApp, request: &AuthRequest, address: &str) -> String {
    let res = authorize_from(app, request, address).await;
    let status = res.status().as_u16();
    let to = location(app, &res).unwrap_or_else(|| panic!("{status} without Location"));
    assert_eq!(
        (status, to.path()),
        (303, "/consent"),
        "from {address}: {to}"
    );
    to.query_pairs()
        .find(|(k, _)| k == "request")
        .map(|(_, v)| v.into_owned())
        .unwrap()
}

/// Opens `count` consent requests for `brand`, one after the other, `address(n)` naming the
/// n-th one's address; returns their ids in order.
async fn flood(
    app: &TestApp,
    brand: &Brand,
    count: usize,
    address: impl Fn(usize) -> String,
) -> Vec<String> {
    let pkce = Pkce::generate();
    let request = AuthRequest::new(app, brand, &pkce, &["contact.email"]);
    let mut ids = Vec::new();
    for n in 0..count {
        ids.push(opened(app, &request, &address(n)).await);
    }
    ids
}

async fn pending(app: &TestApp, owner: &str, id: &str) -> bool {
    let (status, view) = consent_view(app, owner, id).await;
    assert!(matches!(status, 200 | 404), "{status} {view}");
    status == 200
}

#[tokio::test]
async fn a_flood_of_consent_requests_blocks_no_other_brand_or_address() {
    let (_dir, app, owner) = ready_vault_with(&["--trusted-proxy", "127.0.0.1"]).await;
    seed(&app, &owner).await;
    let target = code_brand(&app, &owner, "Flooded").await;
    let other = code_brand(&app, &owner, "Other").await;
    let pkce = Pkce::generate();
    let other_request = AuthRequest::new(&app, &other, &pkce, &["contact.email"]);
    let waiting = opened(&app, &other_request, "198.51.100.7").await;

    // A thousand anonymous requests from one address: before, they filled the single table and
    // every brand got `temporarily_unavailable` for ten minutes. Now they displace only their
    // own address's oldest requests.
    let from_one = flood(&app, &target, 1_000, |_| "203.0.113.66".into()).await;
    assert!(pending(&app, &owner, from_one.last().unwrap()).await);
    assert!(!pending(&app, &owner, &from_one[from_one.len() - PER_ADDRESS - 1]).await);

    // The same brand flooded from rotating addresses: only that brand's oldest are displaced.
    let rotating = flood(&app, &target, PER_BRAND * 3, |n| {
        format!("10.0.{}.{}", n / 250, n % 250 + 1)
    })
    .await;
    assert!(pending(&app, &owner, rotating.last().unwrap()).await);
    assert!(!pending(&app, &owner, &rotating[rotating.len() - PER_BRAND - 1]).await);

    // The other brand's request, made before the flood, is still waiting for the person, and
    // the other brand can still start new ones, from another address ...
    assert!(pending(&app, &owner, &waiting).await);
    let fresh = opened(&app, &other_request, "192.0.2.44").await;
    assert!(pending(&app, &owner, &fresh).await);
    // ... as can the flooded brand itself, from an address that did not flood.
    let pkce = Pkce::generate();
    let target_request = AuthRequest::new(&app, &target, &pkce, &["contact.email"]);
    let honest = opened(&app, &target_request, "192.0.2.45").await;
    assert!(pending(&app, &owner, &honest).await);
    app.stop();
}
