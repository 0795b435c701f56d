//! What the store holds once a sealed value has opened: records and their paths, audit entries
//! and their hash chain, grants, agreements with their event chain, brands, intents and offers,
//! each read back with `serde_json` as the service reads it, then used the way the service uses
//! it. Also the record paths and field names that arrive in URLs and grant requests.
//!
//! Input: a selector byte, then the bytes for that reader; audit entries come as several parts
//! cut at the separator byte, in chain order.
//!
//! Properties held: a value reads back unchanged after being written again (so a hash computed
//! over it stays valid), and a chain built by the vault's own functions verifies.

#![no_main]

use libfuzzer_sys::fuzz_target;
use serde::de::DeserializeOwned;
use serde_json::Value;
use vrm_vault::crypto::sha256;
use vrm_vault::domain::audit::{AuditEntry, ChainHead, Event, verify_chain};
use vrm_vault::domain::brands::{Agreement, Brand, verify_events};
use vrm_vault::domain::grants::{FieldSpec, Grant, GrantAction, mask};
use vrm_vault::domain::intents::Intent;
use vrm_vault::domain::offers::Offer;
use vrm_vault::domain::records::{DataCategory, Precondition, Record, RecordPath, validate_value};

fuzz_target!(|data: &[u8]| {
    let Some((selector, rest)) = vault_fuzz::selector(data) else {
        return;
    };
    match selector % 7 {
        0 => record(rest),
        1 => audit_chain(rest),
        2 => grant(rest),
        3 => agreement(rest),
        4 => other_values(rest),
        5 => path(rest),
        _ => value(rest),
    }
});

fn read<T: DeserializeOwned>(bytes: &[u8]) -> Option<T> {
    serde_json::from_slice(bytes).ok()
}

/// The hash agreement events and receipts are made with: hex SHA-256 of the RFC 8785 form.
fn canonical_hash(value: &Value) -> String {
    serde_json_canonicalizer::to_vec(value)
        .map(|bytes| data_encoding_hex(&sha256(&bytes)))
        .unwrap_or_default()
}

fn data_encoding_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn record(bytes: &[u8]) {
    let Some(record) = read::<Record>(bytes) else {
        return;
    };
    vault_fuzz::assert_round_trip(&record);
    let etag = record.etag();
    assert!(Precondition::IfMatch(vec![etag]).holds(Some(&record)));
    assert!(!Precondition::IfNoneMatchAny.holds(Some(&record)));
    let _ = validate_value(&record.value);
    let _ = mask(&record.value);
    // A record only decodes with a path the vault would accept, and that path parses again.
    assert!(
        RecordPath::parse(record.path.as_str()).is_ok(),
        "{record:?}"
    );
    let _ = DataCategory::resolve(&record.path, Some(&record.category));
}

fn audit_chain(bytes: &[u8]) {
    let entries: Vec<AuditEntry> = vault_fuzz::parts(bytes)
        .into_iter()
        .filter_map(read)
        .collect();
    for entry in &entries {
        let hash = entry.compute_hash(sha256);
        let text = serde_json::to_vec(entry).unwrap_or_default();
        let again: AuditEntry =
            serde_json::from_slice(&text).unwrap_or_else(|e| panic!("{entry:?}: {e}"));
        assert_eq!(again.compute_hash(sha256), hash, "hash changes on reload");
    }
    let head = entries.last().map(AuditEntry::head).unwrap_or_default();
    let _ = verify_chain(entries.iter().cloned().map(Ok), &head, sha256);

    // The same events chained by the vault verify, and still do after the store's round trip.
    let mut rebuilt: Vec<AuditEntry> = Vec::with_capacity(entries.len());
    let mut head = ChainHead::default();
    for entry in entries {
        let mut event = Event::owner("record.put", entry.target);
        event.actor = entry.actor;
        event.detail = entry.detail;
        let chained = AuditEntry::chain(event, &head, entry.at, sha256);
        head = chained.head();
        rebuilt.push(chained);
    }
    let reloaded = rebuilt.iter().map(|entry| {
        let text = serde_json::to_vec(entry).unwrap_or_default();
        serde_json::from_slice::<AuditEntry>(&text).map_err(|_| entry.seq)
    });
    let verified = verify_chain(reloaded, &head, sha256);
    assert!(verified.is_ok(), "{verified:?}");
}

fn grant(bytes: &[u8]) {
    let Some(grant) = read::<Grant>(bytes) else {
        return;
    };
    vault_fuzz::assert_round_trip(&grant);
    let _ = grant.status(vault_fuzz::now());
    let _ = grant.uses_left();
    let _ = grant.allows(GrantAction::Write);
    let _ = grant.covers("contact.email", "pd:EmailAddress");
    let detail = grant.authorization_detail(vault_fuzz::RESOURCE);
    let _ = canonical_hash(&detail);
}

fn agreement(bytes: &[u8]) {
    let Some(agreement) = read::<Agreement>(bytes) else {
        return;
    };
    vault_fuzz::assert_round_trip(&agreement);
    let _ = agreement.ended_at();
    let _ = verify_events(&agreement.events, canonical_hash);
    let _ = canonical_hash(&agreement.receipt_document(vault_fuzz::ISSUER));

    // The same events pushed by the vault make a chain that verifies.
    let mut rebuilt = agreement.clone();
    rebuilt.events.clear();
    for event in &agreement.events {
        rebuilt.push_event(event.kind, event.at, canonical_hash);
    }
    assert!(verify_events(&rebuilt.events, canonical_hash));
    let reloaded: Agreement = serde_json::to_vec(&rebuilt)
        .ok()
        .and_then(|text| serde_json::from_slice(&text).ok())
        .unwrap_or_else(|| panic!("{rebuilt:?} does not read back"));
    assert!(verify_events(&reloaded.events, canonical_hash));
}

fn other_values(bytes: &[u8]) {
    if let Some(brand) = read::<Brand>(bytes) {
        vault_fuzz::assert_round_trip(&brand);
    }
    if let Some(intent) = read::<Intent>(bytes) {
        vault_fuzz::assert_round_trip(&intent);
        let _ = intent.status(vault_fuzz::now());
    }
    if let Some(offer) = read::<Offer>(bytes) {
        vault_fuzz::assert_round_trip(&offer);
    }
}

fn path(bytes: &[u8]) {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return;
    };
    if let Ok(path) = RecordPath::parse(text) {
        assert_eq!(path.as_str(), text);
        assert_eq!(
            format!("{}.{}", path.collection(), path.field()),
            path.as_str()
        );
        assert!(DataCategory::resolve(&path, None).is_ok());
    }
    if let Ok(field) = FieldSpec::parse(text) {
        assert_eq!(field.as_str(), text);
    }
}

fn value(bytes: &[u8]) {
    let Some(value) = read::<Value>(bytes) else {
        return;
    };
    if validate_value(&value).is_ok() {
        // A value the vault accepts can be written and read back.
        let record = Record {
            path: RecordPath::parse("contact.email")
                .unwrap_or_else(|e| unreachable!("a valid path: {e}")),
            value,
            category: "pd:EmailAddress".into(),
            version: 1,
            created_at: vault_fuzz::now(),
            updated_at: vault_fuzz::now(),
        };
        vault_fuzz::assert_round_trip(&record);
    }
}
