//! Which of the fields a person means to share the terms allow, one field at a time, and why not
//! in words the person reads: no DPV codes, no rule numbers.
//!
//! A grant is decided as a whole (one permission must cover every category it names), so a
//! refusal of "email and phone" says nothing about the email alone. The person, choosing what to
//! share with an offer or on the Sharing screen, needs the answer per field before trying, and a
//! refusal that names only what was refused. Both come from here; the evaluation itself stays
//! [`terms_verdict`].

use serde::Serialize;
use time::OffsetDateTime;

use super::{GrantAction, VerdictRefusal, terms_verdict};
use crate::domain::records::DataCategory;
use crate::domain::terms::{Purpose, Terms};

/// One field the person may share, with the category that decides it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldToShare {
    /// A record path (`contact.phone`) or a data category (`pd:TelephoneNumber`).
    pub field: String,
    /// The DPV category of the field.
    pub category: String,
}

/// The terms' answer for one field, in plain words.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldVerdict {
    pub field: String,
    /// What the field is, as the person reads it: "your telephone number".
    pub label: String,
    pub allowed: bool,
    /// Why not, as a sentence ("Your terms forbid sharing your telephone number for “Marketing”.");
    /// empty when allowed.
    pub reason: String,
    /// The rule that decided, for the audit log and for support; not for the person.
    #[serde(skip)]
    pub rule: String,
}

/// "your telephone number" for `pd:TelephoneNumber`.
pub fn category_words(category: &str) -> String {
    match DataCategory::find(category) {
        Some(c) if c.id == "dpv:PersonalData" => "other personal data".to_owned(),
        Some(c) => format!("your {}", lower_first(c.label)),
        None => "this data".to_owned(),
    }
}

/// "“Requested service provision”" for `dpv:RequestedServiceProvision`.
pub fn purpose_words(purpose: &str) -> String {
    Purpose::find(purpose).map_or_else(
        || "a purpose the vault does not know".to_owned(),
        |p| format!("“{}”", lower_first(p.label)),
    )
}

fn lower_first(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map_or_else(String::new, |c| {
        c.to_lowercase().chain(chars.as_str().chars()).collect()
    })
}

/// Why the terms refuse `actions` on a field of `category` for `purpose`, as a sentence, given the
/// rule that refused. The rule's kind decides the words; the terms' basis says which of its limits
/// was hit.
pub fn refusal_words(
    terms: &Terms,
    rule: &str,
    actions: &[GrantAction],
    category: &str,
    purpose: &str,
) -> String {
    let what = category_words(category);
    let why = purpose_words(purpose);
    let writing = actions.contains(&GrantAction::Write);
    let doing = if writing {
        format!("letting brands change {what}")
    } else {
        format!("sharing {what}")
    };
    if rule == "request" {
        return format!(
            "{} is not something your vault can share data for.",
            upper_first(&why)
        );
    }
    if rule.starts_with("basis") {
        let basis = terms.basis();
        if writing && !basis.permits_action(GrantAction::Write.terms_action()) {
            return format!(
                "Your terms let brands read your data, never change it: they do not allow {doing}."
            );
        }
        return format!("Your terms never allow sharing anything for {why}.");
    }
    if rule.starts_with("prohibition") {
        return format!("Your terms forbid {doing} for {why}.");
    }
    format!("Your terms do not allow {doing} for {why}.")
}

fn upper_first(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map_or_else(String::new, |c| {
        c.to_uppercase().chain(chars.as_str().chars()).collect()
    })
}

/// The terms' answer for each field on its own, in the order given.
pub fn field_verdicts(
    terms: &Terms,
    actions: &[GrantAction],
    fields: &[FieldToShare],
    purpose: &str,
    now: OffsetDateTime,
    agreed_at: OffsetDateTime,
) -> Vec<FieldVerdict> {
    fields
        .iter()
        .map(|f| {
            let verdict = terms_verdict(
                terms,
                actions,
                std::slice::from_ref(&f.category),
                purpose,
                now,
                agreed_at,
                0,
            );
            let (allowed, reason, rule) = match verdict {
                Ok(decision) => (true, String::new(), decision.rule),
                Err(VerdictRefusal::NoAction) => (
                    false,
                    "Choose whether the brand may read it or change it.".to_owned(),
                    "request".to_owned(),
                ),
                Err(VerdictRefusal::NotPermitted { rule, .. }) => {
                    let reason = refusal_words(terms, &rule, actions, &f.category, purpose);
                    (false, reason, rule)
                }
            };
            FieldVerdict {
                field: f.field.clone(),
                label: category_words(&f.category),
                allowed,
                reason,
                rule,
            }
        })
        .collect()
}

/// The refusal of a whole grant, naming only the fields refused and what the person can do:
/// share the others alone, or change the terms. `verdicts` are the fields' own answers.
pub fn grant_refusal(verdicts: &[FieldVerdict]) -> String {
    let refused: Vec<&FieldVerdict> = verdicts.iter().filter(|v| !v.allowed).collect();
    let allowed: Vec<&str> = verdicts
        .iter()
        .filter(|v| v.allowed)
        .map(|v| v.label.as_str())
        .collect();
    if refused.is_empty() {
        // Each field on its own is allowed, but no one rule covers them together.
        return "Your terms allow each of these on its own, but no single rule of them allows \
                all of them together: share them one at a time."
            .to_owned();
    }
    let mut reasons: Vec<&str> = refused.iter().map(|v| v.reason.as_str()).collect();
    reasons.dedup();
    let mut text = reasons.join(" ");
    if !allowed.is_empty() {
        text.push_str(&format!(
            " You can share {} without it, or change your terms under My terms.",
            join_words(&allowed)
        ));
    } else {
        text.push_str(" You can change that under My terms.");
    }
    text
}

/// "a", "a and b", "a, b and c".
fn join_words(items: &[&str]) -> String {
    match items {
        [] => String::new(),
        [one] => (*one).to_owned(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::domain::terms::Template;
    use time::macros::datetime;

    fn terms(id: &str) -> Terms {
        let document = Template::find(id).unwrap().document().unwrap();
        Terms::parse(&document).unwrap()
    }

    const NOW: OffsetDateTime = datetime!(2026-06-01 12:00 UTC);

    fn share(field: &str, category: &str) -> FieldToShare {
        FieldToShare {
            field: field.to_owned(),
            category: category.to_owned(),
        }
    }

    #[test]
    fn each_field_is_decided_on_its_own_and_refusals_say_why_in_words() {
        let terms = terms("pdc-intent");
        let fields = [
            share("contact.email", "pd:EmailAddress"),
            share("profile.birthdate", "pd:BirthDate"),
        ];
        let verdicts = field_verdicts(
            &terms,
            &[GrantAction::Read],
            &fields,
            crate::domain::terms::INTENTCASTING_PURPOSE,
            NOW,
            NOW,
        );
        let refused: Vec<_> = verdicts.iter().filter(|v| !v.allowed).collect();
        assert!(!refused.is_empty(), "{verdicts:?}");
        for v in &verdicts {
            assert!(
                !v.reason.contains("pd:") && !v.reason.contains("dpv:"),
                "{v:?}"
            );
            assert!(!v.label.contains(':'), "{v:?}");
        }
        let message = grant_refusal(&verdicts);
        for v in &verdicts {
            assert_eq!(v.reason.is_empty(), v.allowed, "{v:?}");
            if !v.allowed {
                assert!(message.contains(&v.reason), "{message}");
            }
        }
        assert!(
            message.contains("You can share your email address without it"),
            "{message}"
        );
        assert!(
            !message.contains("dpv:") && !message.contains("pd:"),
            "{message}"
        );
    }

    #[test]
    fn a_forbidden_purpose_is_named_in_words() {
        let terms = terms("sd-base");
        let verdicts = field_verdicts(
            &terms,
            &[GrantAction::Read],
            &[share("contact.email", "pd:EmailAddress")],
            "dpv:Marketing",
            NOW,
            NOW,
        );
        assert!(!verdicts[0].allowed);
        assert_eq!(
            verdicts[0].reason,
            "Your terms never allow sharing anything for “marketing”."
        );
        assert_eq!(verdicts[0].label, "your email address");
    }

    #[test]
    fn lists_read_as_sentences() {
        assert_eq!(join_words(&["a"]), "a");
        assert_eq!(join_words(&["a", "b"]), "a and b");
        assert_eq!(join_words(&["a", "b", "c"]), "a, b and c");
    }
}
