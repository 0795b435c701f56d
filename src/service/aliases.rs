//! What a brand sees instead of the vault's own identifiers. Each brand sees the person under
//! its own pseudonym; a shared intent id would link those pseudonyms again (two brands that
//! received the same intent could match it). So every intent id a brand receives is its own
//! alias of it ([`crate::crypto::alias`]: a per-brand keyed permutation, in the same `i_` form),
//! and the brand's routes that take an intent id take its alias.
//!
//! The one place aliases are applied is where a brand's events are written ([`for_brand`],
//! called by `events::append_in` for every event of every kind) and where brand-facing offer
//! views are built. Other identifiers a brand receives are its own already: event ids (and so
//! `webhook-id`s) are drawn afresh for every brand's copy of an event, offers and grants belong
//! to one brand, and the person appears under the brand's pseudonym.

use serde_json::Value;

use super::OpenVault;
use crate::crypto::KeyedHash;
use crate::crypto::alias::{ID_BYTES, alias, unalias};

/// The prefix of intent ids.
const INTENT: &str = "i_";

/// The ten bytes of an intent id (`i_` and 16 lower-case base32 characters), if it is one.
fn intent_bytes(id: &str) -> Option<[u8; ID_BYTES]> {
    let body = id.strip_prefix(INTENT)?;
    if body.len() != 16
        || !body
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    {
        return None;
    }
    let bytes = data_encoding::BASE32_NOPAD
        .decode(body.to_ascii_uppercase().as_bytes())
        .ok()?;
    bytes.try_into().ok()
}

fn intent_text(bytes: &[u8; ID_BYTES]) -> String {
    format!(
        "{INTENT}{}",
        data_encoding::BASE32_NOPAD.encode(bytes).to_lowercase()
    )
}

/// The id `client_id` knows the intent `id` by; anything that is not an intent id is returned
/// as it is.
pub(crate) fn intent_for_brand(key: &KeyedHash, client_id: &str, id: &str) -> String {
    match intent_bytes(id) {
        Some(bytes) => intent_text(&alias(key, client_id, &bytes)),
        None => id.to_owned(),
    }
}

/// The intent id behind `client_id`'s alias; `None` if it is not in the form of one.
pub(crate) fn intent_from_brand(key: &KeyedHash, client_id: &str, alias: &str) -> Option<String> {
    intent_bytes(alias).map(|bytes| intent_text(&unalias(key, client_id, &bytes)))
}

/// Where the vault's events carry intent ids: the CloudEvent's subject, an intent's id, an
/// offer's intent. A new kind of event that names an intent elsewhere adds its place here.
const INTENT_IDS_AT: &[&str] = &["/subject", "/data/intent/id", "/data/offer/intent_id"];

/// Rewrites an event about to be written to `client_id`'s stream so that every intent id in it
/// is the brand's alias.
pub(crate) fn for_brand(key: &KeyedHash, client_id: &str, event: &mut Value) {
    for at in INTENT_IDS_AT {
        if let Some(slot) = event.pointer_mut(at)
            && let Some(id) = slot.as_str()
            && intent_bytes(id).is_some()
        {
            *slot = Value::String(intent_for_brand(key, client_id, id));
        }
    }
}

impl OpenVault {
    /// The id `client_id` knows the intent `id` by.
    pub fn intent_id_for_brand(&self, client_id: &str, id: &str) -> String {
        intent_for_brand(&self.index, client_id, id)
    }

    /// The intent behind an id a brand sent (its alias); `None` if it cannot be one. An id the
    /// brand never received maps to an intent that does not exist or that it did not receive.
    pub fn intent_id_from_brand(&self, client_id: &str, alias: &str) -> Option<String> {
        intent_from_brand(&self.index, client_id, alias)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::crypto::SecretKey;

    #[test]
    fn intent_ids_in_events_become_the_brands_own() {
        let key = KeyedHash::new(&SecretKey::from_slice(&[3u8; 32]).unwrap());
        let id = "i_abcdefghijklmnop";
        let mut event = serde_json::json!({
            "id": "evt_x", "subject": id, "type": "vrm.intent.created.v1",
            "data": { "intent": { "id": id, "text": id }, "offer": { "intent_id": id } },
        });
        let mut other = event.clone();
        for_brand(&key, "a", &mut event);
        for_brand(&key, "b", &mut other);
        let seen = event["subject"].as_str().unwrap();
        assert!(intent_bytes(seen).is_some() && seen != id);
        assert_eq!(event["data"]["intent"]["id"], seen);
        assert_eq!(event["data"]["offer"]["intent_id"], seen);
        assert_ne!(other["subject"], seen);
        // The person's own text is not an id, whatever it says.
        assert_eq!(event["data"]["intent"]["text"], id);
        assert_eq!(event["id"], "evt_x");
        assert_eq!(intent_from_brand(&key, "a", seen).as_deref(), Some(id));
        assert_ne!(intent_from_brand(&key, "b", seen).as_deref(), Some(id));
        assert_eq!(intent_from_brand(&key, "a", "i_doesnotexist"), None);
        assert_eq!(intent_from_brand(&key, "a", "I_ABCDEFGHIJKLMNOP"), None);
    }
}
