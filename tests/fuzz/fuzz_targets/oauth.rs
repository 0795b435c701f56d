//! What brands send to the OAuth endpoints: RFC 9396 `authorization_details` (authorization and
//! token requests), RFC 7591 registration metadata with its key set, HTTP Basic client
//! credentials with the form's authentication parameters (and the owner's bearer token and session
//! cookie from the same headers), and the redirect back to a brand.
//!
//! Input: a selector byte, then
//! - 0: an `authorization_details` parameter;
//! - 1: a registration body (JSON);
//! - 2: an `Authorization` header value (also read as an owner's bearer token, and as a `Cookie`
//!   header), optionally followed by the separator and the form's client-authentication
//!   parameters (JSON);
//! - 3: a redirect URI, then the separator and the `state` the brand sent.

#![no_main]

use http::{HeaderMap, HeaderValue, header};
use libfuzzer_sys::fuzz_target;
use vrm_vault::crypto::jwt::check_client_jwks;
use vrm_vault::domain::brands::{ClientMetadata, all_brand_scopes};
use vrm_vault::domain::grants::{
    AccessRequestDetail, MAX_FIELDS, MAX_GRANT_LIFETIME, parse_authorization_details,
};
use vrm_vault::domain::terms::Purpose;
use vrm_vault::http::auth::{COOKIE, bearer, cookie};
use vrm_vault::http::oauth::{ClientAuthParams, client_credentials};
use vrm_vault::service::authorize::redirect_with;
use vrm_vault::service::brands::ClientCredentials;

fuzz_target!(|data: &[u8]| {
    let Some((selector, rest)) = vault_fuzz::selector(data) else {
        return;
    };
    match selector % 4 {
        0 => authorization_details(rest),
        1 => registration(rest),
        2 => basic_credentials(rest),
        _ => redirect(rest),
    }
});

fn authorization_details(bytes: &[u8]) {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return;
    };
    match parse_authorization_details(text, vault_fuzz::RESOURCE) {
        Ok(AccessRequestDetail::Ask(asked)) => {
            assert!(!asked.fields.is_empty() && asked.fields.len() <= MAX_FIELDS);
            assert!(asked.fields.windows(2).all(|w| w[0] < w[1]));
            assert!(!asked.actions.is_empty());
            assert!(asked.lifetime.is_positive() && asked.lifetime <= MAX_GRANT_LIFETIME);
            assert!(Purpose::find(&asked.purpose).is_some());
        }
        Ok(AccessRequestDetail::Existing { .. }) | Err(_) => {}
    }
}

fn registration(bytes: &[u8]) {
    let Ok(metadata) = serde_json::from_slice::<ClientMetadata>(bytes) else {
        return;
    };
    let Ok(valid) = metadata.validate(check_client_jwks) else {
        return;
    };
    let scopes = all_brand_scopes();
    assert!(valid.scope.iter().all(|s| scopes.contains(s)));
    for uri in &valid.redirect_uris {
        let parsed = url::Url::parse(uri).unwrap_or_else(|e| panic!("{uri}: {e}"));
        assert!(parsed.fragment().is_none());
        assert!(matches!(parsed.scheme(), "https" | "http"), "{uri}");
    }
}

fn basic_credentials(bytes: &[u8]) {
    let parts = vault_fuzz::parts(bytes);
    let mut headers = HeaderMap::new();
    if let Ok(value) = HeaderValue::from_bytes(parts[0]) {
        headers.insert(header::COOKIE, value.clone());
        headers.insert(header::AUTHORIZATION, value);
    }
    // The owner's credentials arrive in the same headers: a bearer token or a session cookie.
    let _ = bearer(&headers);
    let _ = cookie(&headers, COOKIE);
    let params = match parts.get(1) {
        Some(json) => match serde_json::from_slice::<ClientAuthParams>(json) {
            Ok(params) => params,
            Err(_) => return,
        },
        None => ClientAuthParams::default(),
    };
    let client_id = params.client_id.clone();
    if let Ok(ClientCredentials::Basic { client_id: id, .. }) = client_credentials(&headers, params)
    {
        // A request naming a client in its form may only authenticate as that client.
        assert!(client_id.is_none_or(|named| named == id));
    }
}

fn redirect(bytes: &[u8]) {
    let parts = vault_fuzz::parts(bytes);
    let (Ok(uri), Ok(state)) = (
        std::str::from_utf8(parts[0]),
        std::str::from_utf8(parts.get(1).copied().unwrap_or_default()),
    ) else {
        return;
    };
    let target = redirect_with(uri, &[("error", "access_denied"), ("state", state)]);
    if url::Url::parse(uri).is_ok() {
        // The brand gets its own state back, exactly.
        let parsed = url::Url::parse(&target).unwrap_or_else(|e| panic!("{target}: {e}"));
        let states: Vec<String> = parsed
            .query_pairs()
            .filter(|(k, _)| k == "state")
            .map(|(_, v)| v.into_owned())
            .collect();
        assert_eq!(states.last().map(String::as_str), Some(state), "{target}");
    }
}
