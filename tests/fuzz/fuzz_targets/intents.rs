//! Intentcasting bodies: an intent (`POST /api/v1/intents`), brands' subscriptions
//! (`PUT /brand/v1/subscription`) and offers (`POST /brand/v1/intents/{id}/offers`), through
//! serde and their `validate`, and then the subscription index against the linear scan it must
//! agree with.
//!
//! Input: parts cut at the separator byte. The first is read as an intent, every part as an
//! offer, and every part after the first as a subscription (brand `b1`, `b2`, ...).
//!
//! Properties held: what validated survives the store's JSON round trip unchanged; the index
//! sends an intent to exactly the brands the linear scan finds, also after a brand is removed.

#![no_main]

use libfuzzer_sys::fuzz_target;
use vrm_vault::domain::intents::{
    NewIntent, NewSubscription, SubscriptionIndex, ValidIntent, ValidSubscription, linear_scan,
};
use vrm_vault::domain::offers::{NewOffer, OfferTerms};

fuzz_target!(|data: &[u8]| {
    let parts = vault_fuzz::parts(data);
    let intent = serde_json::from_slice::<NewIntent>(parts[0])
        .ok()
        .and_then(|body| body.validate(vault_fuzz::now()).ok());
    if let Some(intent) = &intent {
        vault_fuzz::assert_round_trip(intent);
    }
    for part in &parts {
        if let Ok(body) = serde_json::from_slice::<NewOffer>(part)
            && let Ok(offer) = body.validate(vault_fuzz::now())
        {
            vault_fuzz::assert_round_trip::<OfferTerms>(&offer);
        }
    }
    let subscriptions: Vec<(String, ValidSubscription)> = parts
        .iter()
        .enumerate()
        .skip(1)
        .filter_map(|(i, part)| {
            let body = serde_json::from_slice::<NewSubscription>(part).ok()?;
            let valid = body.validate(i % 2 == 0).ok()?;
            Some((format!("b{i}"), valid))
        })
        .collect();
    for (_, subscription) in &subscriptions {
        vault_fuzz::assert_round_trip(subscription);
    }
    if let Some(intent) = &intent {
        index_agrees_with_scan(intent, &subscriptions);
    }
});

fn index_agrees_with_scan(intent: &ValidIntent, subscriptions: &[(String, ValidSubscription)]) {
    let mut index = SubscriptionIndex::new();
    for (id, subscription) in subscriptions {
        index.insert(id, subscription);
    }
    let check = |index: &SubscriptionIndex, subscriptions: &[(String, ValidSubscription)]| {
        let mut found = index.matches(intent);
        found.sort_unstable();
        let expected = linear_scan(subscriptions.iter().map(|(id, s)| (id.as_str(), s)), intent);
        assert_eq!(
            found, expected,
            "index and linear scan disagree on {intent:?}"
        );
    };
    check(&index, subscriptions);
    if let Some(((first, _), rest)) = subscriptions.split_first() {
        assert!(index.remove(first));
        check(&index, rest);
    }
}
