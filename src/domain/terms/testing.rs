//! Fixtures shared by the tests of every part of the terms module: templates, constraint
//! builders and a request at a fixed time.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::macros::datetime;

pub(super) fn template(id: &str) -> Value {
    Template::find(id).unwrap().document().unwrap()
}

pub(super) fn template_for(basis: Basis) -> Value {
    TEMPLATES
        .iter()
        .find(|t| t.basis == basis)
        .unwrap()
        .document()
        .unwrap()
}

pub(super) fn terms(doc: &Value) -> Terms {
    Terms::parse(doc).unwrap_or_else(|e| panic!("{e}"))
}

pub(super) fn reject(doc: &Value) -> TermsError {
    match Terms::parse(doc) {
        Ok(_) => panic!("accepted: {doc:#}"),
        Err(e) => e,
    }
}

pub(super) fn purpose(op: &str, id: &str) -> Value {
    json!({"leftOperand": "purpose", "operator": op, "rightOperand": {"@id": id}})
}

pub(super) fn purposes(op: &str, ids: &[&str]) -> Value {
    let ids: Vec<Value> = ids.iter().map(|id| json!({"@id": id})).collect();
    json!({"leftOperand": "purpose", "operator": op, "rightOperand": ids})
}

pub(super) fn date_time(op: &str, at: &str) -> Value {
    json!({"leftOperand": "dateTime", "operator": op,
           "rightOperand": {"@value": at, "@type": "xsd:dateTime"}})
}

pub(super) fn count(op: &str, n: u64) -> Value {
    json!({"leftOperand": "count", "operator": op, "rightOperand": n})
}

pub(super) fn elapsed(op: &str, period: &str) -> Value {
    json!({"leftOperand": "elapsedTime", "operator": op,
           "rightOperand": {"@value": period, "@type": "xsd:duration"}})
}

pub(super) fn push(list: &mut Value, item: Value) {
    list.as_array_mut().unwrap().push(item);
}

/// The SD-BASE template with `constraint` added to permission[0].
pub(super) fn sd_base_with(constraint: Value) -> Value {
    let mut doc = template("sd-base");
    push(&mut doc["permission"][0]["constraint"], constraint);
    doc
}

pub(super) const AGREED: OffsetDateTime = datetime!(2026-05-01 12:00 UTC);
pub(super) const NOW: OffsetDateTime = datetime!(2026-06-01 12:00 UTC);

pub(super) fn request(action: Action, categories: &[&str], purpose: &str) -> AccessRequest {
    AccessRequest {
        action,
        categories: categories.iter().map(|c| (*c).to_owned()).collect(),
        purpose: purpose.to_owned(),
        at: NOW,
        count_so_far: 0,
        agreed_at: AGREED,
    }
}

pub(super) fn read_email(purpose: &str) -> AccessRequest {
    request(Action::Read, &["pd:EmailAddress"], purpose)
}

// --- summary ------------------------------------------------------------------------------

/// Every purpose id a rule of the document names, in order.
pub(super) fn purpose_ids_of(rule: &Value) -> Vec<String> {
    let mut ids = Vec::new();
    for c in rule["constraint"].as_array().into_iter().flatten() {
        if c["leftOperand"] == "purpose" {
            match &c["rightOperand"] {
                Value::Array(items) => {
                    ids.extend(items.iter().map(|i| i["@id"].as_str().unwrap().to_owned()))
                }
                one => ids.push(one["@id"].as_str().unwrap().to_owned()),
            }
        }
    }
    ids
}

pub(super) fn target_ids_of(rule: &Value) -> Vec<String> {
    match &rule["target"] {
        Value::Array(items) => items
            .iter()
            .map(|i| i.as_str().unwrap().to_owned())
            .collect(),
        one => vec![one.as_str().unwrap().to_owned()],
    }
}

/// One sentence per line: something to read, capitalised, with a full stop.
pub(super) fn assert_sentences(lines: &[String]) {
    assert!(!lines.is_empty());
    for line in lines {
        assert!(!line.trim().is_empty(), "{lines:#?}");
        assert_eq!(line.trim(), line, "{lines:#?}");
        assert!(line.starts_with(char::is_uppercase), "{line}");
        assert!(line.ends_with('.'), "{line}");
        assert!(!line.contains(".."), "{line}");
    }
}
