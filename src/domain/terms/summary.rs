//! Terms in plain words, one sentence per rule, for the person and for brands.
//!
//! It describes the document and decides nothing. Two forms: [`Terms::summary`] keeps the machine
//! ids in parentheses so that a brand can find each sentence's rule in the document;
//! [`Terms::plain_summary`] is the same sentences without any code, for the person.

use time::{Duration, OffsetDateTime};

use super::{ALL_PERSONAL_DATA, Cmp, Constraint, Purpose, PurposeOp, Rule, RuleAction, Terms};
use crate::domain::records::DataCategory;

/// Whether a sentence grants, forbids or requires: the same constraint reads differently in
/// each ("at most 10 times" is a limit on a permission, but a prohibition "for the first 10
/// uses" forbids exactly those).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Modal {
    May,
    MayNot,
    Must,
}

/// Whether sentences carry the machine ids (for brands) or only words (for the person).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ids {
    Shown,
    Hidden,
}

impl Modal {
    const fn as_str(self) -> &'static str {
        match self {
            Modal::May => "Brands may",
            Modal::MayNot => "Brands may not",
            Modal::Must => "Brands must",
        }
    }
}

impl Terms {
    /// The terms in plain words for the person and for brands: one sentence per line, the basis
    /// first, then every permission, prohibition and duty in document order, then how long
    /// brands may keep what they receive. Labels come from [`PURPOSES`] and [`CATEGORIES`], with
    /// the machine ids in parentheses so a brand can find each in the document.
    ///
    /// It describes the document; it decides nothing. A delete duty bounded only by
    /// `elapsedTime` is said once, by the last line, in the words of [`Terms::retention`].
    ///
    /// [`PURPOSES`]: super::PURPOSES
    /// [`CATEGORIES`]: crate::domain::records::CATEGORIES
    pub fn summary(&self) -> Vec<String> {
        self.sentences(Ids::Shown)
    }

    /// The same sentences as [`Terms::summary`] with no code in them — no basis name, no DPV or
    /// ODRL id — for the person, who reads words and never the document.
    pub fn plain_summary(&self) -> Vec<String> {
        self.sentences(Ids::Hidden)
    }

    fn sentences(&self, ids: Ids) -> Vec<String> {
        let first = match ids {
            Ids::Shown => format!(
                "Built on IEEE 7012 {} — {}",
                self.basis,
                lower_first(self.basis.description())
            ),
            Ids::Hidden => format!(
                "Built on a standard agreement — {}",
                lower_first(self.basis.description())
            ),
        };
        let mut lines = vec![first];
        lines.extend(self.permissions.iter().map(|r| r.sentence(Modal::May, ids)));
        lines.extend(
            self.prohibitions
                .iter()
                .map(|r| r.sentence(Modal::MayNot, ids)),
        );
        lines.extend(
            self.obligations
                .iter()
                .filter(|r| !r.is_retention())
                .map(|r| r.sentence(Modal::Must, ids)),
        );
        if let Some(period) = self.retention() {
            lines.push(format!(
                "Brands must delete what they receive within {} of receiving it.",
                words_for_duration(period)
            ));
        }
        lines
    }
}

impl RuleAction {
    /// The action as a verb phrase around its object, with the machine id where the words alone
    /// would not tell a brand which action is meant.
    fn phrase(self, data: &str, ids: Ids) -> String {
        if ids == Ids::Hidden {
            return match self {
                RuleAction::Distribute => format!("share {data} with third parties"),
                RuleAction::Profiling => format!("profile you with {data}"),
                RuleAction::Tracking => format!("track you with {data}"),
                RuleAction::Portability => {
                    format!("let you take {data} with you in a portable form")
                }
                other => other.phrase(data, Ids::Shown),
            };
        }
        match self {
            RuleAction::Use => format!("use {data}"),
            RuleAction::Read => format!("read {data}"),
            RuleAction::Modify => format!("update {data}"),
            RuleAction::Delete => format!("delete {data}"),
            RuleAction::Distribute => format!("share {data} with third parties ({self})"),
            RuleAction::Sell => format!("sell {data}"),
            RuleAction::Profiling => format!("profile you ({self}) with {data}"),
            RuleAction::Tracking => format!("track you ({self}) with {data}"),
            RuleAction::Portability => {
                format!("let you take {data} with you in a portable form ({self})")
            }
        }
    }
}

impl Rule {
    /// One sentence: "Brands may read your email address (pd:EmailAddress) for customer care
    /// (dpv:CustomerCare), at most 10 times."
    fn sentence(&self, modal: Modal, ids: Ids) -> String {
        let mut sentence = format!(
            "{} {}",
            modal.as_str(),
            self.action
                .phrase(&data_words(&self.targets, modal, ids), ids)
        );
        let purposes: Vec<String> = self
            .constraints
            .iter()
            .filter_map(|c| c.purpose_words(ids))
            .collect();
        if !purposes.is_empty() {
            sentence.push(' ');
            sentence.push_str(&purposes.join(" and "));
        }
        for limit in self.constraints.iter().filter_map(|c| c.limit_words(modal)) {
            sentence.push_str(", ");
            sentence.push_str(&limit);
        }
        sentence.push('.');
        sentence
    }

    /// A delete duty bounded only by time: what [`Terms::retention`] reports.
    pub(super) fn is_retention(&self) -> bool {
        self.action == RuleAction::Delete
            && !self.constraints.is_empty()
            && self
                .constraints
                .iter()
                .all(|c| matches!(c, Constraint::ElapsedTime { .. }))
    }
}

/// The data a rule targets: "your name and email address (pd:Name, pd:EmailAddress)", or all of
/// it when the targets include [`ALL_PERSONAL_DATA`].
fn data_words(targets: &[&'static str], modal: Modal, ids: Ids) -> String {
    if targets.contains(&ALL_PERSONAL_DATA) {
        return match modal {
            Modal::Must => "your data".to_owned(),
            Modal::May | Modal::MayNot => "any of your data".to_owned(),
        };
    }
    let labels: Vec<String> = targets
        .iter()
        .map(|id| DataCategory::find(id).map_or_else(|| (*id).to_owned(), |c| lower_first(c.label)))
        .collect();
    if ids == Ids::Hidden {
        return format!("your {}", join_words(&labels, "and"));
    }
    format!(
        "your {} ({})",
        join_words(&labels, "and"),
        targets.join(", ")
    )
}

impl Constraint {
    /// A purpose constraint as "for ...", or `None` for any other constraint.
    fn purpose_words(&self, ids: Ids) -> Option<String> {
        let Constraint::Purpose { op, purposes } = self else {
            return None;
        };
        let labels: Vec<String> = purposes
            .iter()
            .map(|id| Purpose::find(id).map_or_else(|| (*id).to_owned(), |p| lower_first(p.label)))
            .collect();
        let codes = match ids {
            Ids::Shown => format!(" ({})", purposes.join(", ")),
            Ids::Hidden => String::new(),
        };
        Some(match op {
            PurposeOp::Eq | PurposeOp::IsAnyOf => {
                format!("for {}{codes}", join_words(&labels, "or"))
            }
            PurposeOp::IsA => format!("for {} of any kind{codes}", join_words(&labels, "or")),
            PurposeOp::Neq | PurposeOp::IsNoneOf => {
                format!(
                    "for any purpose other than {}{codes}",
                    join_words(&labels, "and")
                )
            }
        })
    }

    /// A time or count constraint as words, or `None` for a purpose constraint.
    fn limit_words(&self, modal: Modal) -> Option<String> {
        Some(match self {
            Constraint::Purpose { .. } => return None,
            Constraint::DateTime { op, at, .. } => {
                // Midnight UTC reads as a date only where the date alone is exact: "before
                // 2027-01-01" is, "until 2027-01-01" would suggest the whole of that day.
                let date_only = at.time() == time::Time::MIDNIGHT
                    && at.offset().is_utc()
                    && matches!(op, Cmp::Lt | Cmp::Gteq);
                let when = if date_only {
                    at.date().to_string()
                } else {
                    words_for_instant(*at)
                };
                match op {
                    Cmp::Eq => format!("only at {when}"),
                    Cmp::Lt => format!("before {when}"),
                    Cmp::Lteq => format!("until {when}"),
                    Cmp::Gt => format!("after {when}"),
                    Cmp::Gteq => format!("from {when} on"),
                }
            }
            Constraint::Count { op, n } => {
                let n = *n;
                match (modal, op) {
                    (Modal::May, Cmp::Lteq) => format!("at most {}", times(n)),
                    (Modal::May, Cmp::Lt) => format!("fewer than {n} times"),
                    (Modal::May, Cmp::Eq) => format!("only on use number {n}"),
                    (Modal::May, Cmp::Gt) => format!("only after the first {}", uses(n)),
                    (Modal::May, Cmp::Gteq) => format!("only from use number {n} on"),
                    (_, Cmp::Lteq) => format!("for the first {}", uses(n)),
                    (_, Cmp::Lt) => format!("before use number {n}"),
                    (_, Cmp::Eq) => format!("on use number {n}"),
                    (_, Cmp::Gt) => format!("after the first {}", uses(n)),
                    (_, Cmp::Gteq) => format!("from use number {n} on"),
                }
            }
            Constraint::ElapsedTime { op, period, .. } => {
                // Permissions and prohibitions count from the brand's agreement (as `evaluate`
                // does); a duty counts from receipt (as `Terms::retention` says).
                let since = match modal {
                    Modal::Must => "receiving it",
                    Modal::May | Modal::MayNot => "accepting these terms",
                };
                let period = words_for_duration(*period);
                match op {
                    Cmp::Eq => format!("exactly {period} after {since}"),
                    Cmp::Lt => format!("less than {period} after {since}"),
                    Cmp::Lteq => format!("within {period} of {since}"),
                    Cmp::Gt => format!("more than {period} after {since}"),
                    Cmp::Gteq => format!("at least {period} after {since}"),
                }
            }
        })
    }
}

/// "2026-07-01 12:30 UTC", "2026-07-01 12:30:15 +02:00".
fn words_for_instant(at: OffsetDateTime) -> String {
    let clock = if at.second() == 0 {
        format!("{:02}:{:02}", at.hour(), at.minute())
    } else {
        format!("{:02}:{:02}:{:02}", at.hour(), at.minute(), at.second())
    };
    let offset = at.offset();
    let zone = if offset.is_utc() {
        "UTC".to_owned()
    } else {
        let sign = if offset.is_negative() { '-' } else { '+' };
        format!(
            "{sign}{:02}:{:02}",
            offset.whole_hours().unsigned_abs(),
            offset.minutes_past_hour().unsigned_abs()
        )
    };
    format!("{} {clock} {zone}", at.date())
}

/// "30 days", "1 day and 12 hours", "5 minutes and 30 seconds".
fn words_for_duration(period: Duration) -> String {
    let total = period.whole_seconds().unsigned_abs();
    let parts: Vec<String> = [
        (total / 86_400, "day"),
        (total % 86_400 / 3_600, "hour"),
        (total % 3_600 / 60, "minute"),
        (total % 60, "second"),
    ]
    .into_iter()
    .filter(|(n, _)| *n > 0)
    .map(|(n, unit)| plural(n, unit))
    .collect();
    if parts.is_empty() {
        "0 seconds".to_owned()
    } else {
        join_words(&parts, "and")
    }
}

fn plural(n: u64, unit: &str) -> String {
    if n == 1 {
        format!("1 {unit}")
    } else {
        format!("{n} {unit}s")
    }
}

fn times(n: u64) -> String {
    if n == 1 {
        "once".to_owned()
    } else {
        format!("{n} times")
    }
}

/// "use", "3 uses": what follows "the first".
fn uses(n: u64) -> String {
    if n == 1 {
        "use".to_owned()
    } else {
        format!("{n} uses")
    }
}

/// "a", "a and b", "a, b and c".
fn join_words(items: &[String], conjunction: &str) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} {conjunction} {last}", init.join(", ")),
    }
}

/// A label as it reads inside a sentence: "Email address" becomes "email address".
fn lower_first(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map_or_else(String::new, |first| {
        first.to_lowercase().chain(chars).collect()
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use serde_json::json;
    use time::macros::datetime;

    use crate::domain::terms::testing::*;
    use crate::domain::terms::{Basis, TEMPLATES};

    #[test]
    fn summary_of_every_template_states_its_basis_and_every_prohibition() {
        for t in TEMPLATES {
            let doc = t.document().unwrap();
            let lines = terms(&doc).summary();
            assert_sentences(&lines);

            // The basis first, in its own words.
            let basis_line = &lines[0];
            assert!(
                basis_line.starts_with(&format!("Built on IEEE 7012 {} — ", t.basis)),
                "{}: {basis_line}",
                t.id
            );
            assert!(
                basis_line.ends_with(&t.basis.description()[1..]),
                "{}: {basis_line}",
                t.id
            );

            // Every permission, with every category and purpose it names.
            let permissions = doc["permission"].as_array().unwrap();
            let granting: Vec<&String> = lines
                .iter()
                .filter(|l| l.starts_with("Brands may ") && !l.starts_with("Brands may not "))
                .collect();
            assert_eq!(granting.len(), permissions.len(), "{}: {lines:#?}", t.id);
            for (rule, line) in permissions.iter().zip(granting) {
                for id in target_ids_of(rule).iter().chain(&purpose_ids_of(rule)) {
                    assert!(
                        line.contains(id.as_str()),
                        "{}: {id} missing in {line}",
                        t.id
                    );
                }
            }

            // Every prohibition, each on its own line, saying what it forbids.
            let prohibitions = doc["prohibition"].as_array().unwrap();
            let forbidding: Vec<&String> = lines
                .iter()
                .filter(|l| l.starts_with("Brands may not "))
                .collect();
            assert_eq!(forbidding.len(), prohibitions.len(), "{}: {lines:#?}", t.id);
            for (rule, line) in prohibitions.iter().zip(forbidding) {
                let says = match rule["action"].as_str().unwrap() {
                    "dpv:Tracking" => {
                        "Brands may not track you (dpv:Tracking) with any of your data"
                    }
                    "dpv:Profiling" => {
                        "Brands may not profile you (dpv:Profiling) with any of your data"
                    }
                    "distribute" => {
                        "Brands may not share any of your data with third parties (distribute)"
                    }
                    "sell" => "Brands may not sell any of your data",
                    "use" => "Brands may not use any of your data for ",
                    other => panic!("{}: unexpected prohibition {other}", t.id),
                };
                assert!(line.starts_with(says), "{}: {line}", t.id);
                for id in purpose_ids_of(rule) {
                    assert!(
                        line.contains(id.as_str()),
                        "{}: {id} missing in {line}",
                        t.id
                    );
                }
            }

            // Duties, then how long brands may keep what they receive.
            let portability = lines.iter().any(|l| {
                l.starts_with("Brands must let you take your data with you")
                    && l.contains("(p7012:PortabilityRequired)")
            });
            assert_eq!(
                portability,
                t.basis == Basis::SdBaseDp,
                "{}: {lines:#?}",
                t.id
            );
            let days = terms(&doc).retention().unwrap().whole_days();
            assert_eq!(
                lines.last().unwrap(),
                &format!(
                    "Brands must delete what they receive within {days} days of receiving it."
                ),
                "{}",
                t.id
            );
            assert_eq!(
                lines.len(),
                1 + permissions.len() + prohibitions.len() + usize::from(portability) + 1,
                "{}: {lines:#?}",
                t.id
            );
        }
    }

    #[test]
    fn summary_of_sd_base_reads_as_plain_sentences() {
        let lines = terms(&template("sd-base")).summary();
        let expected = [
            "Built on IEEE 7012 SD-BASE — service delivery only: no tracking, no profiling, no \
             analytics, no sharing with third parties.",
            "Brands may update your identifier (account or membership number) and username \
             (pd:Identifier, pd:Username) for account management or service registration \
             (dpv:AccountManagement, dpv:ServiceRegistration).",
            "Brands may not track you (dpv:Tracking) with any of your data.",
            "Brands may not share any of your data with third parties (distribute).",
            "Brands may not use any of your data for marketing of any kind (dpv:Marketing).",
            "Brands may not use any of your data for service usage analytics or service \
             analytics (dpv:ServiceUsageAnalytics, p7012:ServiceAnalytics).",
            "Brands must delete what they receive within 90 days of receiving it.",
        ];
        for sentence in expected {
            assert!(
                lines.iter().any(|l| l == sentence),
                "{sentence}\n{lines:#?}"
            );
        }
        assert!(lines[1].starts_with(
            "Brands may read your name, email address, telephone number, postal address, \
             location, language, preference, payment card, identifier (account or membership \
             number) and username (pd:Name, pd:EmailAddress, "
        ));
    }

    #[test]
    fn summary_states_the_limits_of_narrowed_terms() {
        let mut doc = template("sd-base");
        for limit in [
            count("lteq", 10),
            date_time("lt", "2027-01-01T00:00:00Z"),
            elapsed("lteq", "P30D"),
        ] {
            push(&mut doc["permission"][0]["constraint"], limit);
        }
        for limit in [
            count("lteq", 1),
            date_time("lteq", "2026-12-31T18:30:00+01:00"),
            elapsed("lt", "PT36H"),
        ] {
            push(&mut doc["permission"][1]["constraint"], limit);
        }
        push(
            &mut doc["prohibition"],
            json!({"action": "read", "target": "pd:EmailAddress", "constraint": [
                purposes("isNoneOf", &["dpv:CustomerCare"]),
                date_time("gt", "2026-07-01T00:00:00Z"),
                count("gteq", 3),
            ]}),
        );
        push(
            &mut doc["obligation"],
            json!({"action": "delete", "target": "pd:PaymentCardNumber",
                   "constraint": [date_time("gteq", "2027-01-01T00:00:00Z")]}),
        );
        doc["obligation"][0]["constraint"][0] = elapsed("lteq", "P7D");
        let lines = terms(&doc).summary();
        assert_sentences(&lines);
        assert!(
            lines[1].ends_with(
                " dpv:CommunicationForCustomerCare), at most 10 times, before 2027-01-01, within \
                 30 days of accepting these terms."
            ),
            "{}",
            lines[1]
        );
        assert!(
            lines[2].ends_with(
                "(dpv:AccountManagement, dpv:ServiceRegistration), at most once, until \
                 2026-12-31 18:30 +01:00, less than 1 day and 12 hours after accepting these \
                 terms."
            ),
            "{}",
            lines[2]
        );
        let expected = [
            "Brands may not read your email address (pd:EmailAddress) for any purpose other than \
             customer care (dpv:CustomerCare), after 2026-07-01 00:00 UTC, from use number 3 on.",
            "Brands must delete your payment card (pd:PaymentCardNumber), from 2027-01-01 on.",
            "Brands must delete what they receive within 7 days of receiving it.",
        ];
        for sentence in expected {
            assert!(
                lines.iter().any(|l| l == sentence),
                "{sentence}\n{lines:#?}"
            );
        }
        assert_eq!(lines.last().unwrap(), expected[2]);
    }

    #[test]
    fn the_plain_summary_says_the_same_without_a_code() {
        for t in TEMPLATES {
            let parsed = terms(&t.document().unwrap());
            let (coded, plain) = (parsed.summary(), parsed.plain_summary());
            assert_eq!(coded.len(), plain.len(), "{}", t.id);
            assert_sentences(&plain);
            for line in &plain {
                for code in [
                    "pd:",
                    "dpv:",
                    "p7012:",
                    "SD-BASE",
                    "PDC-INTENT",
                    "IEEE",
                    "(distribute)",
                ] {
                    assert!(!line.contains(code), "{}: {code} in {line}", t.id);
                }
            }
            // The same sentences: only the codes in parentheses differ.
            for (c, p) in coded.iter().zip(&plain).skip(1) {
                let stripped = strip_codes(c);
                assert_eq!(&stripped, p, "{}", t.id);
            }
        }
        let sd = terms(&template("sd-base")).plain_summary();
        assert_eq!(
            sd[0],
            "Built on a standard agreement — service delivery only: no tracking, no profiling, no \
             analytics, no sharing with third parties."
        );
        assert!(
            sd.iter()
                .any(|l| l == "Brands may not track you with any of your data.")
        );
        assert!(sd.iter().any(|l| l
            == "Brands may update your identifier (account or membership number) and username \
                for account management or service registration."));
    }

    /// A coded sentence with its parenthesised codes taken out.
    fn strip_codes(line: &str) -> String {
        let mut out = String::new();
        let mut rest = line;
        while let Some(start) = rest.find(" (") {
            let Some(len) = rest[start..].find(')') else {
                break;
            };
            let inside = &rest[start + 2..start + len];
            out.push_str(&rest[..start]);
            if !inside.contains(':') && inside != "distribute" {
                out.push_str(&rest[start..=start + len]);
            }
            rest = &rest[start + len + 1..];
        }
        out.push_str(rest);
        out
    }

    #[test]
    fn limits_read_as_words() {
        assert_eq!(words_for_duration(Duration::days(1)), "1 day");
        assert_eq!(
            words_for_duration(Duration::seconds(330)),
            "5 minutes and 30 seconds"
        );
        assert_eq!(
            words_for_duration(Duration::seconds(90_061)),
            "1 day, 1 hour, 1 minute and 1 second"
        );
        assert_eq!(words_for_duration(Duration::ZERO), "0 seconds");
        assert_eq!(
            words_for_instant(datetime!(2026-03-01 09:05:07 -03:30)),
            "2026-03-01 09:05:07 -03:30"
        );
        // The same constraint is a limit on a permission but the scope of a prohibition.
        let first_five = Constraint::Count {
            op: Cmp::Lteq,
            n: 5,
        };
        assert_eq!(
            first_five.limit_words(Modal::May).unwrap(),
            "at most 5 times"
        );
        assert_eq!(
            first_five.limit_words(Modal::MayNot).unwrap(),
            "for the first 5 uses"
        );
        let midnight = |op| Constraint::DateTime {
            op,
            at: datetime!(2027-01-01 00:00 UTC),
            text: "2027-01-01T00:00:00Z".into(),
        };
        // A date alone is exact only where the day starts the range or ends it before it begins.
        assert_eq!(
            midnight(Cmp::Lt).limit_words(Modal::May).unwrap(),
            "before 2027-01-01"
        );
        assert_eq!(
            midnight(Cmp::Gteq).limit_words(Modal::May).unwrap(),
            "from 2027-01-01 on"
        );
        assert_eq!(
            midnight(Cmp::Lteq).limit_words(Modal::May).unwrap(),
            "until 2027-01-01 00:00 UTC"
        );
        assert_eq!(
            midnight(Cmp::Gt).limit_words(Modal::May).unwrap(),
            "after 2027-01-01 00:00 UTC"
        );
    }
}
