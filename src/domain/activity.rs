//! The audit log as the person reads it: what kind of thing each entry is (reads of their data,
//! sharing, wishes, brands, …) and, for the entries about brands and data, one plain sentence
//! ("Bistro Lilas read your email address, to provide a service you asked for.").
//!
//! The stored entries stay as they are (their bytes are hash-chained); this is a view computed
//! when the log is listed. The brand's name comes from the caller, which looks it up: an entry
//! only holds the brand's client id.

use serde::Serialize;
use serde_json::Value;

use crate::domain::audit::{Actor, AuditEntry};
use crate::domain::grants::disclosure::{category_words, purpose_words};
use crate::domain::records::{DataCategory, RecordPath};

/// What an entry is about, for the Activity screen's filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ActivityKind {
    /// A brand read or changed the person's data.
    Reads,
    /// Grants: made, revoked, refused.
    Sharing,
    /// Wishes, offers and their delivery to brands.
    Wishes,
    /// Brands: registrations, agreements, tokens, invitations.
    Brands,
    /// The person's own records.
    Data,
    /// The person's terms.
    Terms,
    /// Logins, passphrases, keys, locking and unlocking.
    Security,
    /// The vault as a whole: creation, export, backup, restore, deletion.
    Vault,
}

impl ActivityKind {
    pub const ALL: [ActivityKind; 8] = [
        ActivityKind::Reads,
        ActivityKind::Sharing,
        ActivityKind::Wishes,
        ActivityKind::Brands,
        ActivityKind::Data,
        ActivityKind::Terms,
        ActivityKind::Security,
        ActivityKind::Vault,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            ActivityKind::Reads => "reads",
            ActivityKind::Sharing => "sharing",
            ActivityKind::Wishes => "wishes",
            ActivityKind::Brands => "brands",
            ActivityKind::Data => "data",
            ActivityKind::Terms => "terms",
            ActivityKind::Security => "security",
            ActivityKind::Vault => "vault",
        }
    }

    pub fn parse(text: &str) -> Option<ActivityKind> {
        ActivityKind::ALL.into_iter().find(|k| k.as_str() == text)
    }

    /// The kind of an audit action such as `data.read`.
    pub fn of(action: &str) -> ActivityKind {
        let (noun, verb) = action.split_once('.').unwrap_or((action, ""));
        match noun {
            "data" => ActivityKind::Reads,
            "grant" | "consent" | "refresh_token" => ActivityKind::Sharing,
            "intent" | "offer" | "subscription" | "delivery" | "relay" | "proposal" => {
                ActivityKind::Wishes
            }
            "brand" | "agreement" | "invitation" | "token" | "webhook_secret" => {
                ActivityKind::Brands
            }
            "record" => ActivityKind::Data,
            // The person's assistant: reading their data is a read like a brand's; refusals are
            // security; everything else it does is about wishes and offers.
            "agent" if verb.starts_with("record") => ActivityKind::Reads,
            "agent" if verb == "refused" => ActivityKind::Security,
            // Connecting, disconnecting and the assistant's keys (the authorization side's
            // entries) are about who may use the vault.
            "agent"
                if matches!(verb, "approved" | "disconnected" | "code_replayed")
                    || verb.starts_with("token")
                    || verb.starts_with("refresh_token") =>
            {
                ActivityKind::Security
            }
            "agent" => ActivityKind::Wishes,
            "terms" => ActivityKind::Terms,
            "vault" if matches!(verb, "unsealed" | "sealed") => ActivityKind::Security,
            "session" | "passphrase" | "unlock_key" | "recovery_key" | "signing_key" => {
                ActivityKind::Security
            }
            _ => ActivityKind::Vault,
        }
    }
}

/// The client id of the brand an entry is about, if any: the target of a brand's own entries
/// and of the owner's entries about a brand.
pub fn brand_of(entry: &AuditEntry) -> Option<&str> {
    // An assistant's entries name the assistant, not a brand (its detail names the brand, if any).
    if entry.actor == Actor::Agent {
        return None;
    }
    let about_brand = entry.actor == Actor::Brand
        || matches!(
            ActivityKind::of(&entry.action),
            ActivityKind::Sharing | ActivityKind::Brands | ActivityKind::Reads
        )
        || entry.action.starts_with("offer.")
        || entry.action.starts_with("delivery.");
    if !about_brand || entry.action.starts_with("invitation.") {
        return None;
    }
    entry.target.as_deref()
}

/// "your email address" for `contact.email`, "your acme" for `memberships.acme`.
pub fn field_words(field: &str) -> String {
    if field.contains(':') {
        return category_words(field);
    }
    match RecordPath::parse(field) {
        Ok(path) => match DataCategory::default_for(&path) {
            Some(category) => category_words(category.id),
            None => {
                let last = path.field().rsplit('.').next().unwrap_or_default();
                format!("your {}", last.replace(['_', '-'], " "))
            }
        },
        Err(_) => "some of your data".to_owned(),
    }
}

/// "to provide a service you asked for" for `dpv:RequestedServiceProvision`.
pub fn purpose_phrase(purpose: &str) -> String {
    let known = match purpose {
        "dpv:ServiceProvision" | "p7012:ServiceDelivery" => "to provide a service you use",
        "dpv:RequestedServiceProvision" => "to provide a service you asked for",
        "dpv:DeliveryOfGoods" => "to deliver goods to you",
        "dpv:CustomerCare" => "to help you as a customer",
        "dpv:PaymentManagement" => "to handle your payments",
        "dpv:AccountManagement" => "to manage your account with them",
        _ => return format!("for {}", purpose_words(purpose)),
    };
    known.to_owned()
}

fn fields_of(detail: Option<&Value>) -> String {
    let fields: Vec<String> = detail
        .and_then(|d| d.get("fields"))
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(Value::as_str)
                .map(field_words)
                .collect()
        })
        .unwrap_or_default();
    match fields.as_slice() {
        [] => "nothing it had access to".to_owned(),
        [one] => one.clone(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

fn purpose_of(detail: Option<&Value>) -> Option<String> {
    detail
        .and_then(|d| d.get("purpose"))
        .and_then(Value::as_str)
        .map(purpose_phrase)
}

/// The entry in one sentence, for the entries about brands and data; `None` for the others,
/// whose short label the app already words well. `brand` is the brand's name when the caller
/// knows it.
pub fn sentence(entry: &AuditEntry, brand: Option<&str>) -> Option<String> {
    let detail = entry.detail.as_ref();
    if entry.action.starts_with("relay.") {
        return relay_sentence(&entry.action, detail);
    }
    // A brand met through a relay is not one of the vault's: its name is in the entry.
    let relayed_name = detail
        .filter(|d| d.get("relayed").and_then(Value::as_bool) == Some(true))
        .and_then(|d| d.get("brand"))
        .and_then(Value::as_str);
    let name = brand.or(relayed_name).unwrap_or("A brand");
    let fields = || fields_of(detail);
    let why = || {
        purpose_of(detail)
            .map(|p| format!(", {p}"))
            .unwrap_or_default()
    };
    let record = || {
        entry
            .target
            .as_deref()
            .map(field_words)
            .unwrap_or_else(|| "a piece of your data".to_owned())
    };
    if entry.actor == Actor::Agent {
        return Some(agent_sentence(entry));
    }
    let text = match entry.action.as_str() {
        "data.read" => format!("{name} read {}{}.", fields(), why()),
        "data.written" => format!("{name} changed {}{}.", fields(), why()),
        "grant.created" => format!("You shared {} with {name}{}.", fields(), why()),
        "grant.revoked" => match entry.actor {
            Actor::Brand => format!("{name} gave up its access to your data."),
            Actor::System | Actor::Agent => format!("The vault stopped a grant to {name}."),
            Actor::Owner => format!("You stopped sharing some of your data with {name}."),
        },
        "grant.revoked_all" => format!("You stopped sharing anything with {name}."),
        "consent.denied" => format!("You said no to {name}’s request for your data."),
        "refresh_token.replayed" => format!(
            "{name} sent a used refresh token again; the vault stopped that grant to be safe."
        ),
        "offer.received" => format!("{name} sent an offer for one of your wishes."),
        "offer.accepted" => {
            let shared = detail
                .and_then(|d| d.get("grant"))
                .is_some_and(|g| !g.is_null());
            if shared {
                format!("You accepted {name}’s offer and shared some of your data with it.")
            } else {
                format!("You accepted {name}’s offer.")
            }
        }
        "offer.declined" => format!("You declined {name}’s offer."),
        "proposal.confirmed" | "proposal.refused" => {
            let text = |key: &str| detail.and_then(|d| d.get(key)).and_then(Value::as_str);
            let agent = text("agent").unwrap_or("your assistant");
            let offerer = text("brand").unwrap_or("a brand");
            if entry.action == "proposal.refused" {
                format!(
                    "You said no when your assistant {agent} asked you to accept {offerer}’s offer."
                )
            } else if detail
                .and_then(|d| d.get("fields"))
                .and_then(Value::as_array)
                .is_some_and(|f| !f.is_empty())
            {
                format!(
                    "You said yes to your assistant {agent}: you accepted {offerer}’s offer and shared {} with it.",
                    fields()
                )
            } else {
                format!("You said yes to your assistant {agent}: you accepted {offerer}’s offer.")
            }
        }
        "subscription.updated" => format!("{name} changed which wishes it hears about."),
        "delivery.succeeded" => format!("News about one of your wishes reached {name}."),
        "delivery.failed" => format!("News about one of your wishes could not reach {name}."),
        "brand.registered" => format!("{name} registered with your vault."),
        "brand.suspended" => format!("You paused {name}."),
        "brand.resumed" => format!("You resumed {name}."),
        "brand.removed" => format!("You removed {name}."),
        "brand.erased" => format!("You removed {name} and deleted everything about it."),
        "agreement.accepted" | "agreement.reaccepted" => format!("{name} accepted your terms."),
        "agreement.withdrawn" => format!("{name} withdrew from its agreement with you."),
        "agreement.terminated" => format!("The agreement with {name} was ended."),
        "token.issued" => format!("{name} got a key to use your vault for a while."),
        "token.revoked" => format!("A key {name} used was cancelled."),
        "webhook_secret.rotated" => {
            format!("{name} replaced the secret its messages are signed with.")
        }
        "record.put" => {
            let created = detail
                .and_then(|d| d.get("created"))
                .and_then(Value::as_bool);
            match created {
                Some(true) => format!("You added {}.", record()),
                _ => format!("You changed {}.", record()),
            }
        }
        "record.deleted" => format!("You deleted {}.", record()),
        _ => return None,
    };
    Some(text)
}

/// A relay's host, as the person knows it ("relay.example.org").
fn relay_name(detail: Option<&Value>) -> String {
    let url = detail
        .and_then(|d| d.get("relay"))
        .and_then(Value::as_str)
        .unwrap_or_default();
    let host = url.split_once("://").map_or(url, |(_, rest)| rest);
    let host = host.split('/').next().unwrap_or_default();
    if host.is_empty() {
        "an intent relay".to_owned()
    } else {
        format!("the relay {host}")
    }
}

/// The sentences of what the vault did with an intent relay (`service::relayed`).
fn relay_sentence(action: &str, detail: Option<&Value>) -> Option<String> {
    let text = |key: &str| {
        detail
            .and_then(|d| d.get(key))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let relay = relay_name(detail);
    let retrying = detail
        .and_then(|d| d.get("retrying"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let what = |kind: &str| match kind {
        "accepted" => "that you accepted its offer",
        "declined" => "that you declined its offer",
        "withdrawn" => "that you withdrew your wish",
        "expired" => "that your wish expired",
        "erasure" => "that you deleted everything and ask them to erase what they have",
        _ => "a message about your wish",
    };
    let brand = text("brand");
    let brand = if brand.is_empty() {
        "A brand".to_owned()
    } else {
        brand
    };
    Some(match action {
        "relay.published" => format!(
            "Your wish was published at {relay}, for brands you have not met; it carries no data of yours."
        ),
        "relay.publish_failed" if retrying => format!(
            "Your wish could not reach {relay} yet ({}); the vault keeps trying.",
            text("error")
        ),
        "relay.publish_failed" => {
            format!("Your wish was not published at {relay}: {}.", text("error"))
        }
        "relay.offer_received" => {
            format!("{brand} sent an offer for one of your wishes, through {relay}.")
        }
        "relay.offer_refused" => format!(
            "An offer that came through {relay} was not shown to you: {}.",
            text("reason")
        ),
        "relay.message_sent" => format!("The brands at {relay} were told {}.", what(&text("type"))),
        "relay.message_failed" if retrying => format!(
            "{} could not be told {} yet ({}); the vault keeps trying.",
            capitalised(&relay),
            what(&text("type")),
            text("error")
        ),
        "relay.message_failed" => format!(
            "{} could not be told {}: {}.",
            capitalised(&relay),
            what(&text("type")),
            text("error")
        ),
        "relay.intent_ended" => format!(
            "Your wish ended; the relays that have it will be told {}.",
            what(&text("type"))
        ),
        _ => return None,
    })
}

fn capitalised(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// What the person's assistant did, in one sentence: "Your assistant Claude Desktop made a wish:
/// Lunch." The assistant's and the brand's names come from the entry's detail (`agent`,
/// `brand`), as they were when it happened.
fn agent_sentence(entry: &AuditEntry) -> String {
    let detail = entry.detail.as_ref();
    let text = |key: &str| {
        detail
            .and_then(|d| d.get(key))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let who = match text("agent") {
        Some(name) => format!("Your assistant {name}"),
        None => "Your assistant".to_owned(),
    };
    let brand = text("brand").unwrap_or_else(|| "a brand".to_owned());
    match entry.action.as_str() {
        "agent.records_listed" => format!("{who} looked at which of your data it may see."),
        "agent.record_read" => format!(
            "{who} read {}.",
            text("field").map_or_else(|| "some of your data".to_owned(), |f| field_words(&f))
        ),
        "agent.categories_listed" => format!("{who} looked at the kinds of data a vault holds."),
        "agent.taxonomy_read" => format!("{who} looked at the kinds of wishes it can make."),
        "agent.terms_read" => format!("{who} read your terms."),
        "agent.intent_created" => match text("wish") {
            Some(wish) => format!("{who} made a wish: {wish}."),
            None => format!("{who} made a wish."),
        },
        "agent.intents_listed" => format!("{who} looked at your wishes."),
        "agent.intent_withdrawn" => format!("{who} withdrew one of your wishes."),
        "agent.offers_listed" => format!("{who} looked at the offers brands made you."),
        "agent.offer_declined" => format!("{who} declined {brand}’s offer."),
        "agent.offer_proposed" => {
            format!("{who} asked you to accept {brand}’s offer; it waits for your answer.")
        }
        "agent.proposal_read" => format!("{who} checked your answer to its request."),
        "agent.refused" => format!(
            "The vault refused a request from {}: {}.",
            who.replacen("Your", "your", 1),
            text("reason").unwrap_or_else(|| "it was not allowed".to_owned())
        ),
        _ => format!("{who} used your vault."),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use serde_json::json;
    use time::macros::datetime;

    fn entry(actor: Actor, action: &str, target: Option<&str>, detail: Value) -> AuditEntry {
        AuditEntry {
            seq: 1,
            at: datetime!(2026-06-01 12:00 UTC),
            actor,
            action: action.to_owned(),
            target: target.map(str::to_owned),
            detail: Some(detail),
            prev_hash: String::new(),
            hash: String::new(),
        }
    }

    #[test]
    fn a_read_is_a_sentence_with_the_brand_the_data_and_the_purpose() {
        let read = entry(
            Actor::Brand,
            "data.read",
            Some("c_bistro"),
            json!({"grant": "g_1", "fields": ["contact.email", "contact.phone"], "purpose": "dpv:RequestedServiceProvision"}),
        );
        assert_eq!(brand_of(&read), Some("c_bistro"));
        assert_eq!(ActivityKind::of(&read.action), ActivityKind::Reads);
        assert_eq!(
            sentence(&read, Some("Bistro Lilas")).unwrap(),
            "Bistro Lilas read your email address and your telephone number, to provide a service you asked for."
        );
        assert_eq!(
            sentence(&read, None).unwrap(),
            "A brand read your email address and your telephone number, to provide a service you asked for."
        );
    }

    #[test]
    fn sentences_hold_no_codes_or_paths() {
        let cases = [
            entry(
                Actor::Owner,
                "grant.created",
                Some("c_x"),
                json!({"fields": ["pd:Location", "memberships.acme_card"], "purpose": "dpv:Marketing"}),
            ),
            entry(
                Actor::Owner,
                "record.put",
                Some("contact.email"),
                json!({"created": true}),
            ),
            entry(
                Actor::Owner,
                "offer.accepted",
                Some("c_x"),
                json!({"grant": "g_1"}),
            ),
        ];
        for case in &cases {
            let text = sentence(case, Some("Acme")).unwrap();
            for code in ["pd:", "dpv:", "contact.", "memberships."] {
                assert!(!text.contains(code), "{text}");
            }
        }
        assert_eq!(
            sentence(&cases[1], None).unwrap(),
            "You added your email address."
        );
    }

    #[test]
    fn relay_entries_read_as_sentences_without_codes_or_paths() {
        let published = entry(
            Actor::System,
            "relay.published",
            None,
            json!({"intent": "i_1", "relay": "https://relay.example.org", "attempts": 3}),
        );
        assert_eq!(ActivityKind::of(&published.action), ActivityKind::Wishes);
        assert_eq!(
            sentence(&published, None).unwrap(),
            "Your wish was published at the relay relay.example.org, for brands you have not met; it carries no data of yours."
        );
        let refused = entry(
            Actor::System,
            "relay.offer_refused",
            None,
            json!({"relay": "http://127.0.0.1:9000", "reason": "its acceptance of your terms is not signed by the brand's published key"}),
        );
        assert!(
            sentence(&refused, None)
                .unwrap()
                .contains("was not shown to you")
        );
        let accepted = entry(
            Actor::Owner,
            "offer.accepted",
            Some("rb_1"),
            json!({"relayed": true, "brand": "Bistro Lilas", "fields": ["contact.email"]}),
        );
        assert_eq!(
            sentence(&accepted, None).unwrap(),
            "You accepted Bistro Lilas’s offer."
        );
        let sent = entry(
            Actor::System,
            "relay.message_sent",
            None,
            json!({"relay": "https://r.example", "type": "erasure"}),
        );
        assert!(
            sentence(&sent, None)
                .unwrap()
                .contains("deleted everything")
        );
    }

    #[test]
    fn every_action_has_a_kind_and_owner_only_entries_name_no_brand() {
        assert_eq!(ActivityKind::of("session.created"), ActivityKind::Security);
        assert_eq!(ActivityKind::of("vault.sealed"), ActivityKind::Security);
        assert_eq!(ActivityKind::of("vault.restored"), ActivityKind::Vault);
        assert_eq!(ActivityKind::of("offer.accepted"), ActivityKind::Wishes);
        let login = entry(Actor::Owner, "session.created", Some("s_1"), json!({}));
        assert_eq!(brand_of(&login), None);
        let saved = entry(Actor::Owner, "record.put", Some("contact.email"), json!({}));
        assert_eq!(brand_of(&saved), None);
        for kind in ActivityKind::ALL {
            assert_eq!(ActivityKind::parse(kind.as_str()), Some(kind));
        }
    }

    #[test]
    fn an_assistants_entries_are_sentences_that_name_it_and_no_brand_id() {
        let wish = entry(
            Actor::Agent,
            "agent.intent_created",
            Some("agent_1"),
            json!({"agent": "Claude Desktop", "tool": "create_intent", "wish": "Lunch"}),
        );
        assert_eq!(
            sentence(&wish, None).unwrap(),
            "Your assistant Claude Desktop made a wish: Lunch."
        );
        assert_eq!(brand_of(&wish), None);
        assert_eq!(
            ActivityKind::of("agent.intent_created"),
            ActivityKind::Wishes
        );
        let read = entry(
            Actor::Agent,
            "agent.record_read",
            Some("agent_1"),
            json!({"agent": "Claude Desktop", "field": "contact.email"}),
        );
        assert_eq!(
            sentence(&read, None).unwrap(),
            "Your assistant Claude Desktop read your email address."
        );
        assert_eq!(ActivityKind::of("agent.record_read"), ActivityKind::Reads);
        let refused = entry(
            Actor::Agent,
            "agent.refused",
            Some("agent_1"),
            json!({"agent": "Claude Desktop", "reason": "it may not read your phone number"}),
        );
        assert_eq!(
            sentence(&refused, None).unwrap(),
            "The vault refused a request from your assistant Claude Desktop: it may not read your phone number."
        );
        assert_eq!(ActivityKind::of("agent.refused"), ActivityKind::Security);
        assert_eq!(ActivityKind::of("agent.approved"), ActivityKind::Security);
        assert_eq!(
            ActivityKind::of("agent.refresh_token.replayed"),
            ActivityKind::Security
        );
        let confirmed = entry(
            Actor::Owner,
            "proposal.confirmed",
            Some("agent_1"),
            json!({"agent": "Claude Desktop", "brand": "Bistro Lilas", "fields": ["contact.email"]}),
        );
        assert_eq!(
            sentence(&confirmed, None).unwrap(),
            "You said yes to your assistant Claude Desktop: you accepted Bistro Lilas’s offer and shared your email address with it."
        );
        assert_eq!(brand_of(&confirmed), None);
    }
}
