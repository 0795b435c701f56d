//! Terms made by choosing, not by writing JSON: what a shipped template lets the person choose
//! ([`Options`]), and the document their choices make ([`build`]).
//!
//! Every choice offered is one the template's basis allows, and every choice can only narrow the
//! template: fewer kinds of data, fewer purposes, a shorter time to keep the data, an end date, a
//! number of uses, more refusals. The document built is then checked by [`Terms::parse`] like any
//! other, so the checker stays the one judge of what may be published.
//!
//! Pure: the end date is a calendar date the person picked, turned into an instant here.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use time::Date;
use time::format_description::well_known::Rfc3339;

use super::{ALL_PERSONAL_DATA, Purpose, Template, Terms, TermsError};
use crate::domain::records::{CATEGORIES, DataCategory};

/// One thing the person may tick: its id (sent back in [`Choices`]) and its words.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Choice {
    pub id: &'static str,
    pub label: &'static str,
}

/// A refusal the person may add on top of what the basis already refuses.
#[derive(Debug, Clone, Copy)]
pub struct ExtraRefusal {
    pub id: &'static str,
    pub label: &'static str,
    /// The ODRL prohibition it adds.
    rule: fn() -> Value,
}

/// Refusals beyond #NoStalking, each an ODRL prohibition on all personal data.
pub const EXTRA_REFUSALS: &[ExtraRefusal] = &[
    ExtraRefusal {
        id: "no-changes",
        label: "Never change anything in my vault",
        rule: || json!({"action": "modify", "target": ALL_PERSONAL_DATA}),
    },
    ExtraRefusal {
        id: "no-service-improvement",
        label: "Do not use my data to improve or optimise your service",
        rule: || {
            json!({"action": "use", "target": ALL_PERSONAL_DATA, "constraint": [{
                "leftOperand": "purpose", "operator": "isAnyOf",
                "rightOperand": [{"@id": "dpv:ServiceOptimisation"}, {"@id": "p7012:ServiceImprovement"}]
            }]})
        },
    },
    ExtraRefusal {
        id: "no-relationship-management",
        label: "Do not keep my data in a customer relationship system",
        rule: || {
            json!({"action": "use", "target": ALL_PERSONAL_DATA, "constraint": [{
                "leftOperand": "purpose", "operator": "eq",
                "rightOperand": {"@id": "dpv:CustomerRelationshipManagement"}
            }]})
        },
    },
];

/// How long brands may keep what they receive, in days, as offered to the person.
const RETENTION_DAYS: &[u32] = &[1, 7, 30, 90];

/// What the person may choose when making terms from a template, with the template's own
/// choices as the starting point.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Options {
    /// Kinds of data brands may be given.
    pub categories: Vec<Choice>,
    /// What brands may use it for: the purposes the basis permits.
    pub purposes: Vec<Choice>,
    /// Days brands may keep the data: at most the template's own period.
    pub retention_days: Vec<u32>,
    pub refusals: Vec<Choice>,
    /// The template itself, as choices: publishing these builds the template's rules again.
    pub defaults: Choices,
}

/// What the person chose. Ids are those [`Options`] offers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Choices {
    pub categories: Vec<String>,
    pub purposes: Vec<String>,
    pub retention_days: u32,
    /// The first day brands may no longer use the data (from midnight UTC).
    #[serde(default, with = "iso_date")]
    #[schema(value_type = Option<String>, format = Date, example = "2027-01-31")]
    pub ends_on: Option<Date>,
    /// At most this many uses of the data per brand.
    #[serde(default)]
    #[schema(minimum = 1)]
    pub max_uses: Option<u64>,
    #[serde(default)]
    pub refusals: Vec<String>,
}

/// Why choices cannot make terms: each names the choice, in words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChoiceError {
    #[error("the shipped template could not be read")]
    Template,
    #[error("choose at least one kind of data brands may see")]
    NoCategory,
    #[error("choose at least one purpose brands may use your data for")]
    NoPurpose,
    #[error("{0:?} is not a kind of data this template lets you choose")]
    Category(String),
    #[error("{0:?} is not a purpose this template lets you choose")]
    Purpose(String),
    #[error("{0:?} is not a refusal you can add")]
    Refusal(String),
    #[error("brands may keep data for 1, 7, 30 or 90 days, and not longer than the template says")]
    Retention,
    #[error("the number of uses must be at least 1")]
    MaxUses,
    #[error(transparent)]
    Terms(#[from] TermsError),
}

impl ChoiceError {
    /// The member of the choices the error is about, for the app to put the message beside it.
    pub fn at(&self) -> &'static str {
        match self {
            ChoiceError::NoCategory | ChoiceError::Category(_) => "/categories",
            ChoiceError::NoPurpose | ChoiceError::Purpose(_) => "/purposes",
            ChoiceError::Refusal(_) => "/refusals",
            ChoiceError::Retention => "/retention_days",
            ChoiceError::MaxUses => "/max_uses",
            ChoiceError::Template | ChoiceError::Terms(_) => "",
        }
    }
}

/// The parts of a template the choices replace: its read permission, and how long data is kept.
struct Shape {
    document: Value,
    /// Every kind of data and every purpose some permission names, in vocabulary order.
    targets: Vec<&'static str>,
    purposes: Vec<&'static str>,
    retention_days: u32,
}

fn shape(template: &Template) -> Result<Shape, ChoiceError> {
    let document = template.document().map_err(|_| ChoiceError::Template)?;
    let terms = Terms::parse(&document)?;
    let has_read = document["permission"]
        .as_array()
        .is_some_and(|rules| rules.iter().any(|r| r["action"] == "read"));
    if !has_read {
        return Err(ChoiceError::Template);
    }
    let retention_days = terms
        .retention()
        .map(|d| u32::try_from(d.whole_days()).unwrap_or(u32::MAX))
        .ok_or(ChoiceError::Template)?;
    Ok(Shape {
        targets: terms.data_categories(),
        purposes: terms.purposes(),
        document,
        retention_days,
    })
}

/// The ids of a target or a right operand: a string, an `{"@id"}` or a list of either.
fn ids(value: &Value) -> Vec<String> {
    match value {
        Value::String(s) => vec![s.clone()],
        Value::Object(o) => o
            .get("@id")
            .and_then(Value::as_str)
            .map(|s| vec![s.to_owned()])
            .unwrap_or_default(),
        Value::Array(items) => items.iter().flat_map(ids).collect(),
        _ => Vec::new(),
    }
}

/// The kinds of data the person may choose: every category but "all personal data", which is not
/// a kind but everything.
fn offered_categories() -> impl Iterator<Item = DataCategory> {
    CATEGORIES
        .iter()
        .copied()
        .filter(|c| c.id != ALL_PERSONAL_DATA)
}

/// What the person may choose for terms made from `template`.
pub fn options(template: &Template) -> Result<Options, ChoiceError> {
    let shape = shape(template)?;
    let purposes = template
        .basis
        .permitted_purposes()
        .iter()
        .filter_map(|id| Purpose::find(id))
        .map(|p| Choice {
            id: p.id,
            label: p.label,
        })
        .collect();
    Ok(Options {
        categories: offered_categories()
            .map(|c| Choice {
                id: c.id,
                label: c.label,
            })
            .collect(),
        purposes,
        retention_days: RETENTION_DAYS
            .iter()
            .copied()
            .filter(|d| *d <= shape.retention_days)
            .collect(),
        refusals: EXTRA_REFUSALS
            .iter()
            .map(|r| Choice {
                id: r.id,
                label: r.label,
            })
            .collect(),
        defaults: Choices {
            categories: shape.targets.iter().map(|c| (*c).to_owned()).collect(),
            purposes: shape.purposes.iter().map(|p| (*p).to_owned()).collect(),
            retention_days: shape.retention_days,
            ends_on: None,
            max_uses: None,
            refusals: Vec::new(),
        },
    })
}

/// The terms document `choices` make from `template`, checked by [`Terms::parse`].
///
/// The template's read permission gets exactly the chosen kinds of data and purposes; its other
/// permissions keep only what was chosen (and go when nothing is left); every permission gets
/// the end date and the number of uses; the delete duty gets the chosen period; the refusals are
/// added to the template's prohibitions. The description becomes the plain summary, so it never
/// says more than the rules do.
pub fn build(template: &Template, choices: &Choices) -> Result<Terms, ChoiceError> {
    let shape = shape(template)?;
    let categories = checked(&choices.categories, ChoiceError::NoCategory, |id| {
        offered_categories()
            .any(|c| c.id == id)
            .then_some(())
            .ok_or_else(|| ChoiceError::Category(id.to_owned()))
    })?;
    let purposes = checked(&choices.purposes, ChoiceError::NoPurpose, |id| {
        template
            .basis
            .permits_purpose(id)
            .then_some(())
            .ok_or_else(|| ChoiceError::Purpose(id.to_owned()))
    })?;
    if !RETENTION_DAYS.contains(&choices.retention_days)
        || choices.retention_days > shape.retention_days
    {
        return Err(ChoiceError::Retention);
    }
    if choices.max_uses == Some(0) {
        return Err(ChoiceError::MaxUses);
    }
    let refusals = choices
        .refusals
        .iter()
        .map(|id| {
            EXTRA_REFUSALS
                .iter()
                .find(|r| r.id == id)
                .ok_or_else(|| ChoiceError::Refusal(id.clone()))
        })
        .collect::<Result<Vec<_>, _>>()?;

    let mut limits = Vec::new();
    if let Some(day) = choices.ends_on {
        let at = day
            .midnight()
            .assume_utc()
            .format(&Rfc3339)
            .map_err(|_| ChoiceError::Template)?;
        limits.push(json!({"leftOperand": "dateTime", "operator": "lt",
                           "rightOperand": {"@value": at, "@type": "xsd:dateTime"}}));
    }
    if let Some(n) = choices.max_uses {
        limits.push(json!({"leftOperand": "count", "operator": "lteq", "rightOperand": n}));
    }

    let mut document = shape.document.clone();
    let permissions = document["permission"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter_map(|rule| narrow(rule, &shape, &categories, &purposes, &limits))
        .collect::<Vec<_>>();
    document["permission"] = Value::Array(permissions);
    if let Some(prohibitions) = document["prohibition"].as_array_mut() {
        prohibitions.extend(refusals.iter().map(|r| (r.rule)()));
    }
    if let Some(duties) = document["obligation"].as_array_mut() {
        for duty in duties.iter_mut().filter(|d| d["action"] == "delete") {
            duty["constraint"] = json!([{"leftOperand": "elapsedTime", "operator": "lteq",
                "rightOperand": {"@value": format!("P{}D", choices.retention_days), "@type": "xsd:duration"}}]);
        }
    }
    // The template's prose would describe the template, not these choices.
    document["description"] = json!("");
    let draft = Terms::parse(&document)?;
    document["description"] = json!(draft.plain_summary().join(" "));
    Ok(Terms::parse(&document)?)
}

/// The ids in `chosen`, each checked, in the order given, without repeats; `empty` if none.
fn checked(
    chosen: &[String],
    empty: ChoiceError,
    check: impl Fn(&str) -> Result<(), ChoiceError>,
) -> Result<Vec<&str>, ChoiceError> {
    let mut out: Vec<&str> = Vec::new();
    for id in chosen {
        check(id)?;
        if !out.contains(&id.as_str()) {
            out.push(id);
        }
    }
    if out.is_empty() { Err(empty) } else { Ok(out) }
}

/// A template permission narrowed to the choices, or `None` when none of its data or purposes
/// was chosen. Each permission keeps what it named and was chosen; the read permission also takes
/// what was chosen and no permission of the template named (a kind of data or a purpose the
/// basis allows but the template left out).
fn narrow(
    mut rule: Value,
    shape: &Shape,
    categories: &[&str],
    purposes: &[&str],
    limits: &[Value],
) -> Option<Value> {
    let is_read = rule["action"] == "read";
    let own_purposes: Vec<String> = rule["constraint"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["leftOperand"] == "purpose")
        .flat_map(|c| ids(&c["rightOperand"]))
        .collect();
    // The template's own order first, so choosing what it says writes what it says.
    let keep = |chosen: &[&str], own: &[String], named: &[&str]| -> Vec<String> {
        let mut kept: Vec<String> = own
            .iter()
            .filter(|o| chosen.contains(&o.as_str()))
            .cloned()
            .collect();
        if is_read {
            kept.extend(
                chosen
                    .iter()
                    .filter(|c| !named.contains(c) && !own.iter().any(|o| o == *c))
                    .map(|c| (*c).to_owned()),
            );
        }
        kept
    };
    let targets = keep(categories, &ids(&rule["target"]), &shape.targets);
    let kept = keep(purposes, &own_purposes, &shape.purposes);
    if targets.is_empty() || kept.is_empty() {
        return None;
    }
    let operands: Vec<Value> = kept.iter().map(|p| json!({"@id": p})).collect();
    let mut constraints =
        vec![json!({"leftOperand": "purpose", "operator": "isAnyOf", "rightOperand": operands})];
    constraints.extend(limits.iter().cloned());
    rule["target"] = json!(targets);
    rule["constraint"] = Value::Array(constraints);
    Some(rule)
}

/// `ends_on` as `"YYYY-MM-DD"` on the wire.
mod iso_date {
    use serde::{Deserialize, Deserializer, Serializer};
    use time::Date;
    use time::macros::format_description;

    const FORMAT: &[time::format_description::FormatItem<'_>] =
        format_description!("[year]-[month]-[day]");

    pub fn serialize<S: Serializer>(date: &Option<Date>, s: S) -> Result<S::Ok, S::Error> {
        match date {
            Some(d) => s.serialize_str(&d.format(FORMAT).map_err(serde::ser::Error::custom)?),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Date>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|text| {
                Date::parse(&text, FORMAT)
                    .map_err(|_| serde::de::Error::custom("ends_on is a date written YYYY-MM-DD"))
            })
            .transpose()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::domain::terms::TEMPLATES;
    use time::macros::date;

    #[test]
    fn the_defaults_of_every_template_build_its_own_rules_again() {
        for t in TEMPLATES {
            let options = options(t).unwrap();
            let built = build(t, &options.defaults).unwrap();
            let template = Terms::parse(&t.document().unwrap()).unwrap();
            assert_eq!(built.basis(), t.basis);
            assert_eq!(
                built.data_categories(),
                template.data_categories(),
                "{}",
                t.id
            );
            assert_eq!(built.purposes(), template.purposes(), "{}", t.id);
            assert_eq!(built.retention(), template.retention(), "{}", t.id);
            assert_eq!(built.plain_summary(), template.plain_summary(), "{}", t.id);
            // Every purpose offered is one the basis permits; every default is offered.
            for p in &options.purposes {
                assert!(t.basis.permits_purpose(p.id), "{}: {}", t.id, p.id);
            }
            for p in &options.defaults.purposes {
                assert!(options.purposes.iter().any(|o| o.id == p), "{}: {p}", t.id);
            }
            for c in &options.defaults.categories {
                assert!(
                    options.categories.iter().any(|o| o.id == c),
                    "{}: {c}",
                    t.id
                );
            }
            assert!(
                options
                    .retention_days
                    .iter()
                    .all(|d| *d <= options.defaults.retention_days)
            );
        }
    }

    #[test]
    fn choices_narrow_the_template_and_the_summary_says_so() {
        let t = Template::find("sd-base").unwrap();
        let choices = Choices {
            categories: vec![
                "pd:Name".into(),
                "pd:PhysicalAddress".into(),
                "pd:Username".into(),
            ],
            purposes: vec!["dpv:DeliveryOfGoods".into(), "dpv:AccountManagement".into()],
            retention_days: 30,
            ends_on: Some(date!(2027 - 01 - 31)),
            max_uses: Some(5),
            refusals: vec!["no-service-improvement".into()],
        };
        let built = build(&t, &choices).unwrap();
        assert_eq!(
            built.data_categories(),
            ["pd:Name", "pd:PhysicalAddress", "pd:Username"]
        );
        assert_eq!(
            built.purposes(),
            ["dpv:DeliveryOfGoods", "dpv:AccountManagement"]
        );
        assert_eq!(built.retention().unwrap().whole_days(), 30);
        let lines = built.plain_summary();
        assert!(
            lines.iter().any(|l| l
                == "Brands may read your name, postal address and username for delivery of goods, \
                before 2027-01-31, at most 5 times."),
            "{lines:#?}"
        );
        assert!(
            lines.iter().any(|l| l
                == "Brands may update your username for account management, before 2027-01-31, at \
                most 5 times."),
            "{lines:#?}"
        );
        assert!(
            lines.iter().any(|l| l
                == "Brands may not use any of your data for service optimisation or service \
                improvement."),
            "{lines:#?}"
        );
        assert_eq!(
            lines.last().unwrap(),
            "Brands must delete what they receive within 30 days of receiving it."
        );
        assert_eq!(
            built.document()["description"].as_str().unwrap(),
            lines.join(" ")
        );
    }

    #[test]
    fn choices_beyond_the_basis_are_refused_by_name() {
        let t = Template::find("pdc-intent").unwrap();
        let base = options(&t).unwrap().defaults;
        let with = |f: &dyn Fn(&mut Choices)| {
            let mut c = base.clone();
            f(&mut c);
            build(&t, &c).unwrap_err()
        };
        assert_eq!(
            with(&|c| c.purposes.push("dpv:Marketing".into())),
            ChoiceError::Purpose("dpv:Marketing".into())
        );
        // Service delivery is not what intentcasting allows.
        assert_eq!(
            with(&|c| c.purposes = vec!["dpv:ServiceProvision".into()]),
            ChoiceError::Purpose("dpv:ServiceProvision".into())
        );
        assert_eq!(with(&|c| c.purposes.clear()), ChoiceError::NoPurpose);
        assert_eq!(with(&|c| c.categories.clear()), ChoiceError::NoCategory);
        assert_eq!(
            with(&|c| c.categories.push(ALL_PERSONAL_DATA.into())),
            ChoiceError::Category(ALL_PERSONAL_DATA.into())
        );
        // Longer than the template keeps data is not narrowing it.
        assert_eq!(with(&|c| c.retention_days = 90), ChoiceError::Retention);
        assert_eq!(with(&|c| c.retention_days = 45), ChoiceError::Retention);
        assert_eq!(with(&|c| c.max_uses = Some(0)), ChoiceError::MaxUses);
        assert_eq!(
            with(&|c| c.refusals.push("no-tracking-please".into())),
            ChoiceError::Refusal("no-tracking-please".into())
        );
        assert_eq!(ChoiceError::Retention.at(), "/retention_days");
    }

    #[test]
    fn every_extra_refusal_is_accepted_by_the_checker() {
        for t in TEMPLATES {
            let mut choices = options(t).unwrap().defaults;
            choices.refusals = EXTRA_REFUSALS.iter().map(|r| r.id.to_owned()).collect();
            let built = build(t, &choices).unwrap();
            let before = Terms::parse(&t.document().unwrap()).unwrap();
            assert_eq!(
                built.plain_summary().len(),
                before.plain_summary().len() + EXTRA_REFUSALS.len(),
                "{}",
                t.id
            );
        }
    }
}
