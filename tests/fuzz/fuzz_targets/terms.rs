//! Terms documents, as the owner publishes them (`PUT /api/v1/terms`, the preview too): JSON,
//! then [`Terms::parse`], then what the vault does with terms that parsed — the plain-language
//! summary, [`evaluate`] on a request, and the RFC 8785 canonical form whose SHA-256 is the
//! terms hash brands accept.
//!
//! Input: the document, optionally followed by the separator byte and a few bytes that choose
//! the request to evaluate (action, purpose, categories, time, uses so far).
//!
//! Properties held: terms that parse still parse, to the same terms, after the store's round
//! trip through JSON text (or a published version would fail at the next start); a permitted
//! request never exceeds the basis; the canonical form is stable.

#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use time::Duration;
use vrm_vault::domain::records::CATEGORIES;
use vrm_vault::domain::terms::{AccessRequest, Action, PURPOSES, Terms, evaluate};

fuzz_target!(|data: &[u8]| {
    let parts = vault_fuzz::parts(data);
    let Ok(document) = serde_json::from_slice::<Value>(parts[0]) else {
        return;
    };
    canonical_form_is_stable(&document);
    let Ok(terms) = Terms::parse(&document) else {
        return;
    };

    let stored = serde_json::to_vec(terms.document()).unwrap_or_default();
    let reloaded = serde_json::from_slice::<Value>(&stored)
        .ok()
        .and_then(|d| Terms::parse(&d).ok());
    assert_eq!(reloaded.as_ref(), Some(&terms), "terms change on reload");

    assert!(!terms.summary().is_empty());
    let _ = (terms.purposes(), terms.data_categories(), terms.retention());

    let request = request(parts.get(1).copied().unwrap_or_default());
    let decision = evaluate(&terms, &request);
    if decision.permitted {
        let basis = terms.basis();
        assert!(basis.permits_action(request.action), "{decision:?}");
        assert!(basis.permits_purpose(&request.purpose), "{decision:?}");
        assert!(!basis.forbids_purpose(&request.purpose), "{decision:?}");
    }
});

/// RFC 8785 output is itself canonical: parsing it and canonicalising again gives the same bytes.
fn canonical_form_is_stable(document: &Value) {
    let Ok(canonical) = serde_json_canonicalizer::to_vec(document) else {
        return;
    };
    let again: Value = serde_json::from_slice(&canonical)
        .unwrap_or_else(|e| panic!("canonical form is not JSON: {e}"));
    assert_eq!(
        serde_json_canonicalizer::to_vec(&again).ok().as_deref(),
        Some(canonical.as_slice())
    );
}

/// A request made of the bytes that follow the document (missing bytes read as zero).
fn request(bytes: &[u8]) -> AccessRequest {
    let byte = |i: usize| bytes.get(i).copied().unwrap_or(0);
    let action = [Action::Read, Action::Write, Action::ReceiveIntent][usize::from(byte(0)) % 3];
    let purpose = PURPOSES[usize::from(byte(1)) % PURPOSES.len()]
        .id
        .to_owned();
    let categories = (0..usize::from(byte(2) % 4))
        .map(|i| {
            CATEGORIES[usize::from(byte(3 + i)) % CATEGORIES.len()]
                .id
                .to_owned()
        })
        .collect();
    let days = i64::from(byte(6)) * 7 + i64::from(byte(7) % 7);
    let agreed_at = vault_fuzz::now() - Duration::days(400);
    AccessRequest {
        action,
        categories,
        purpose,
        at: agreed_at + Duration::days(days),
        count_so_far: u64::from(byte(8)),
        agreed_at,
    }
}
