//! Validating a terms document: its shape and vocabulary, then the rule that the basis is a
//! ceiling the person can only narrow.
//!
//! A document that parses is one [`evaluate`](super::evaluate()) can decide on without ever
//! meeting a word it does not understand, and one that says every prohibition and duty of its
//! basis itself, because brands read the document, not this code.

use serde_json::{Map, Value};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::duration::parse_duration;
use super::vocabulary::{DUTY_ACTIONS, RULE_ACTIONS, list_actions};
use super::{
    ALL_PERSONAL_DATA, Basis, Cmp, Constraint, PURPOSES, Purpose, PurposeOp, Rule, RuleAction,
    Terms, TermsError, context,
};
use crate::domain::records::DataCategory;

/// How errors name the document as a whole.
const TOP: &str = "the terms";

const TOP_LEVEL: &[&str] = &[
    "@context",
    "@type",
    "uid",
    "assigner",
    "basis",
    "title",
    "description",
    "permission",
    "prohibition",
    "obligation",
];
const RULE_PROPERTIES: &[&str] = &["action", "target", "constraint"];
const CONSTRAINT_PROPERTIES: &[&str] = &["leftOperand", "operator", "rightOperand"];

/// Validates a terms document; see [`Terms::parse`].
pub(super) fn parse(document: &Value) -> Result<Terms, TermsError> {
    let top = object(document, TOP)?;
    check_properties(top, TOP, TOP_LEVEL)?;
    if top.get("@context") != Some(&context()) {
        return Err(TermsError::WrongContext);
    }
    match top.get("@type") {
        Some(Value::String(t)) if t == "Offer" => {}
        Some(other) => {
            return Err(TermsError::WrongPolicyType {
                found: other.to_string(),
            });
        }
        None => return Err(missing(TOP, "@type")),
    }
    non_empty_string(top, "uid", TOP)?;
    non_empty_string(top, "assigner", TOP)?;
    let basis = parse_basis(top)?;
    let title = optional_string(top, "title", TOP)?;
    optional_string(top, "description", TOP)?;

    let permissions = parse_rules(top, "permission", RULE_ACTIONS)?;
    let prohibitions = parse_rules(top, "prohibition", RULE_ACTIONS)?;
    let obligations = parse_rules(top, "obligation", DUTY_ACTIONS)?;
    for (i, permission) in permissions.iter().enumerate() {
        check_within_basis(basis, i, permission)?;
    }
    check_basis_prohibitions(basis, &prohibitions)?;
    check_basis_duties(basis, &obligations)?;

    Ok(Terms {
        document: document.clone(),
        basis,
        title,
        permissions,
        prohibitions,
        obligations,
    })
}

// ---------------------------------------------------------------------------------------------
// Parsing: shape and vocabulary
// ---------------------------------------------------------------------------------------------

fn object<'a>(value: &'a Value, at: &str) -> Result<&'a Map<String, Value>, TermsError> {
    value.as_object().ok_or_else(|| TermsError::WrongType {
        at: at.to_owned(),
        expected: "must be a JSON object",
    })
}

fn missing(at: &str, property: &'static str) -> TermsError {
    TermsError::Missing {
        at: at.to_owned(),
        property,
    }
}

fn check_properties(
    object: &Map<String, Value>,
    at: &str,
    allowed: &[&str],
) -> Result<(), TermsError> {
    match object.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(unknown) => Err(TermsError::UnknownProperty {
            at: at.to_owned(),
            property: unknown.clone(),
            allowed: allowed.join(", "),
        }),
        None => Ok(()),
    }
}

/// The location of `name` inside `at`; top-level properties are named alone.
fn child(at: &str, name: &str) -> String {
    if at == TOP {
        name.to_owned()
    } else {
        format!("{at}.{name}")
    }
}

fn field<'a>(
    object: &'a Map<String, Value>,
    name: &'static str,
    at: &str,
) -> Result<&'a Value, TermsError> {
    object.get(name).ok_or_else(|| missing(at, name))
}

fn string_field<'a>(
    object: &'a Map<String, Value>,
    name: &'static str,
    at: &str,
) -> Result<&'a str, TermsError> {
    field(object, name, at)?
        .as_str()
        .ok_or_else(|| TermsError::WrongType {
            at: child(at, name),
            expected: "must be a string",
        })
}

fn non_empty_string<'a>(
    object: &'a Map<String, Value>,
    name: &'static str,
    at: &str,
) -> Result<&'a str, TermsError> {
    let text = string_field(object, name, at)?;
    if text.trim().is_empty() {
        return Err(TermsError::WrongType {
            at: child(at, name),
            expected: "must not be empty",
        });
    }
    Ok(text)
}

fn optional_string(
    object: &Map<String, Value>,
    name: &'static str,
    at: &str,
) -> Result<Option<String>, TermsError> {
    match object.get(name) {
        None => Ok(None),
        Some(_) => string_field(object, name, at).map(|s| Some(s.to_owned())),
    }
}

fn parse_basis(top: &Map<String, Value>) -> Result<Basis, TermsError> {
    let text = string_field(top, "basis", TOP)?;
    Basis::parse(text).ok_or_else(|| TermsError::UnknownBasis {
        found: text.to_owned(),
    })
}

/// Parses the list `kind` (`permission`, `prohibition` or `obligation`); absent means empty.
fn parse_rules(
    top: &Map<String, Value>,
    kind: &'static str,
    actions: &[RuleAction],
) -> Result<Vec<Rule>, TermsError> {
    let Some(list) = top.get(kind) else {
        return Ok(Vec::new());
    };
    let items = list.as_array().ok_or_else(|| TermsError::WrongType {
        at: kind.to_owned(),
        expected: "must be a list of rules",
    })?;
    items
        .iter()
        .enumerate()
        .map(|(i, item)| parse_rule(item, &format!("{kind}[{i}]"), actions))
        .collect()
}

pub(super) fn parse_rule(
    value: &Value,
    at: &str,
    actions: &[RuleAction],
) -> Result<Rule, TermsError> {
    let rule = object(value, at)?;
    check_properties(rule, at, RULE_PROPERTIES)?;
    let action_text = string_field(rule, "action", at)?;
    let action =
        RuleAction::parse(action_text, actions).ok_or_else(|| TermsError::UnknownAction {
            at: format!("{at}.action"),
            found: action_text.to_owned(),
            allowed: list_actions(actions),
        })?;
    let targets = parse_targets(field(rule, "target", at)?, &format!("{at}.target"))?;
    let constraints = match rule.get("constraint") {
        None => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(j, c)| parse_constraint(c, &format!("{at}.constraint[{j}]")))
            .collect::<Result<_, _>>()?,
        Some(_) => {
            return Err(TermsError::WrongType {
                at: format!("{at}.constraint"),
                expected: "must be a list of constraints",
            });
        }
    };
    Ok(Rule {
        action,
        targets,
        constraints,
    })
}

/// A target is one data category or a non-empty list of them (ODRL reads a rule with several
/// targets as one rule per target).
fn parse_targets(value: &Value, at: &str) -> Result<Vec<&'static str>, TermsError> {
    let category = |v: &Value, at: String| -> Result<&'static str, TermsError> {
        let text = v.as_str().ok_or_else(|| TermsError::WrongType {
            at: at.clone(),
            expected: "must be a data category such as \"pd:EmailAddress\"",
        })?;
        DataCategory::find(text)
            .map(|c| c.id)
            .ok_or_else(|| TermsError::UnknownCategory {
                at,
                found: text.to_owned(),
            })
    };
    match value {
        Value::Array(items) if items.is_empty() => Err(TermsError::WrongType {
            at: at.to_owned(),
            expected: "must name at least one data category",
        }),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, v)| category(v, format!("{at}[{i}]")))
            .collect(),
        single => category(single, at.to_owned()).map(|c| vec![c]),
    }
}

fn parse_constraint(value: &Value, at: &str) -> Result<Constraint, TermsError> {
    let constraint = object(value, at)?;
    check_properties(constraint, at, CONSTRAINT_PROPERTIES)?;
    let left = string_field(constraint, "leftOperand", at)?;
    let operator = string_field(constraint, "operator", at)?;
    let right = field(constraint, "rightOperand", at)?;
    match left {
        "purpose" => parse_purpose_constraint(operator, right, at),
        "dateTime" => {
            // ODRL: "may be exercised before (lt/lteq) or after (gt/gteq)" the right operand.
            let op = comparison(operator, "dateTime", "lt, lteq, gt or gteq", at)?;
            if op == Cmp::Eq {
                return Err(unknown_operator(
                    at,
                    "dateTime",
                    operator,
                    "lt, lteq, gt or gteq",
                ));
            }
            let text = typed_literal(right, "xsd:dateTime", "2026-12-31T23:59:59Z", at)?;
            let when =
                OffsetDateTime::parse(text, &Rfc3339).map_err(|_| TermsError::InvalidValue {
                    at: at.to_owned(),
                    reason: format!(
                        "dateTime must be an RFC 3339 date and time with its offset, such as \
                         2026-12-31T23:59:59Z, not \"{text}\""
                    ),
                })?;
            Ok(Constraint::DateTime {
                op,
                at: when,
                text: text.to_owned(),
            })
        }
        "count" => {
            let op = comparison(operator, "count", "eq, lt, lteq, gt or gteq", at)?;
            let n = right.as_u64().ok_or_else(|| TermsError::InvalidValue {
                at: at.to_owned(),
                reason: format!(
                    "count must be a whole number of uses, 0 or more (such as 10), not {right}"
                ),
            })?;
            Ok(Constraint::Count { op, n })
        }
        "elapsedTime" => {
            // ODRL: "Only the eq, lt, lteq operators SHOULD be used" with elapsedTime.
            let op = comparison(operator, "elapsedTime", "eq, lt or lteq", at)?;
            if matches!(op, Cmp::Gt | Cmp::Gteq) {
                return Err(unknown_operator(
                    at,
                    "elapsedTime",
                    operator,
                    "eq, lt or lteq",
                ));
            }
            let text = typed_literal(right, "xsd:duration", "P30D", at)?;
            let period = parse_duration(text).map_err(|why| TermsError::InvalidValue {
                at: at.to_owned(),
                reason: format!("elapsedTime \"{text}\" {why}"),
            })?;
            Ok(Constraint::ElapsedTime {
                op,
                period,
                text: text.to_owned(),
            })
        }
        other => Err(TermsError::UnknownLeftOperand {
            at: at.to_owned(),
            found: other.to_owned(),
        }),
    }
}

fn unknown_operator(
    at: &str,
    operand: &'static str,
    found: &str,
    allowed: &'static str,
) -> TermsError {
    TermsError::UnknownOperator {
        at: at.to_owned(),
        operand,
        found: found.to_owned(),
        allowed,
    }
}

fn comparison(
    operator: &str,
    operand: &'static str,
    allowed: &'static str,
    at: &str,
) -> Result<Cmp, TermsError> {
    match operator {
        "eq" => Ok(Cmp::Eq),
        "lt" => Ok(Cmp::Lt),
        "lteq" => Ok(Cmp::Lteq),
        "gt" => Ok(Cmp::Gt),
        "gteq" => Ok(Cmp::Gteq),
        _ => Err(unknown_operator(at, operand, operator, allowed)),
    }
}

/// A JSON-LD typed literal: `{"@value": "...", "@type": datatype}`.
fn typed_literal<'a>(
    value: &'a Value,
    datatype: &'static str,
    example: &str,
    at: &str,
) -> Result<&'a str, TermsError> {
    let shape = || TermsError::InvalidValue {
        at: at.to_owned(),
        reason: format!(
            "rightOperand must be written {{\"@value\": \"{example}\", \"@type\": \"{datatype}\"}}"
        ),
    };
    let literal = value.as_object().ok_or_else(shape)?;
    if literal.len() != 2 || literal.get("@type").and_then(Value::as_str) != Some(datatype) {
        return Err(shape());
    }
    literal
        .get("@value")
        .and_then(Value::as_str)
        .ok_or_else(shape)
}

fn parse_purpose_constraint(
    operator: &str,
    right: &Value,
    at: &str,
) -> Result<Constraint, TermsError> {
    let op = match operator {
        "eq" => PurposeOp::Eq,
        "neq" => PurposeOp::Neq,
        "isA" => PurposeOp::IsA,
        "isAnyOf" => PurposeOp::IsAnyOf,
        "isNoneOf" => PurposeOp::IsNoneOf,
        _ => {
            return Err(unknown_operator(
                at,
                "purpose",
                operator,
                "eq, neq, isA, isAnyOf or isNoneOf",
            ));
        }
    };
    let purposes = match (op, right) {
        (PurposeOp::IsAnyOf | PurposeOp::IsNoneOf, Value::Array(items)) if !items.is_empty() => {
            items
                .iter()
                .map(|item| purpose_ref(item, at))
                .collect::<Result<_, _>>()?
        }
        (PurposeOp::IsAnyOf | PurposeOp::IsNoneOf, _) => {
            return Err(TermsError::InvalidValue {
                at: at.to_owned(),
                reason: format!(
                    "{operator} takes a non-empty list of purposes, such as \
                     [{{\"@id\": \"dpv:ServiceProvision\"}}]"
                ),
            });
        }
        (_, Value::Array(_)) => {
            return Err(TermsError::InvalidValue {
                at: at.to_owned(),
                reason: format!(
                    "{operator} compares with one purpose; use isAnyOf or isNoneOf for a list"
                ),
            });
        }
        (_, single) => vec![purpose_ref(single, at)?],
    };
    Ok(Constraint::Purpose { op, purposes })
}

/// A purpose is an IRI, written `{"@id": "dpv:ServiceProvision"}` so that JSON-LD reads it as
/// one and not as a plain string.
fn purpose_ref(value: &Value, at: &str) -> Result<&'static str, TermsError> {
    let id = value
        .as_object()
        .filter(|o| o.len() == 1)
        .and_then(|o| o.get("@id"))
        .and_then(Value::as_str)
        .ok_or_else(|| TermsError::InvalidValue {
            at: at.to_owned(),
            reason: format!(
                "a purpose is written {{\"@id\": \"dpv:ServiceProvision\"}}, not {value}"
            ),
        })?;
    Purpose::find(id)
        .map(|p| p.id)
        .ok_or_else(|| TermsError::UnknownPurpose {
            at: at.to_owned(),
            found: id.to_owned(),
        })
}
// ---------------------------------------------------------------------------------------------
// Parsing: the basis is a ceiling
// ---------------------------------------------------------------------------------------------

/// A permission may not allow an action or a purpose its basis does not.
fn check_within_basis(basis: Basis, i: usize, rule: &Rule) -> Result<(), TermsError> {
    let at = format!("permission[{i}]");
    if !basis.permitted_actions().contains(&rule.action) {
        let reason = if rule.action == RuleAction::Use {
            format!(
                "\"use\" includes every action, among them distribute, which {basis} prohibits; \
                 permit {} instead",
                list_actions(basis.permitted_actions())
            )
        } else {
            format!(
                "{basis} lets brands {} only, not {}",
                list_actions(basis.permitted_actions()),
                rule.action
            )
        };
        return Err(TermsError::Widens { at, basis, reason });
    }
    if !rule.has_purpose_constraint() {
        return Err(TermsError::Widens {
            at,
            basis,
            reason: format!(
                "it has no purpose constraint, so it would allow any purpose; {basis} permits \
                 only {}",
                basis.permitted_purposes().join(", ")
            ),
        });
    }
    let widening = PURPOSES
        .iter()
        .find(|p| rule.purpose_applies(p.id) && !basis.permits_purpose(p.id));
    if let Some(wide) = widening {
        // Point at the first purpose constraint that lets the purpose through.
        let blamed = rule
            .constraints
            .iter()
            .position(|c| matches!(c, Constraint::Purpose { .. }) && c.purpose_holds(wide.id))
            .map_or(at, |j| format!("permission[{i}].constraint[{j}]"));
        let forbidden = basis
            .forbidding(wide.id, RuleAction::Use)
            .map(|p| format!(", and it prohibits {}", p.what))
            .unwrap_or_default();
        return Err(TermsError::Widens {
            at: blamed,
            basis,
            reason: format!(
                "it would allow the purpose {} ({}), which {basis} does not permit{forbidden}",
                wide.id, wide.label
            ),
        });
    }
    Ok(())
}

/// Every prohibition of the basis must be stated, unconditionally and on all personal data, by
/// one prohibition or jointly by several (one per purpose, say). A prohibition with a time or
/// count condition does not state it: it would lapse.
fn check_basis_prohibitions(basis: Basis, prohibitions: &[Rule]) -> Result<(), TermsError> {
    for required in basis.prohibitions() {
        let stating: Vec<&Rule> = prohibitions
            .iter()
            .filter(|p| {
                p.action.includes(required.action)
                    && p.targets.contains(&ALL_PERSONAL_DATA)
                    && p.constraints
                        .iter()
                        .all(|c| matches!(c, Constraint::Purpose { .. }))
            })
            .collect();
        let stated = if required.purposes.is_empty() {
            stating.iter().any(|p| !p.has_purpose_constraint())
        } else {
            PURPOSES
                .iter()
                .filter(|purpose| required.forbids_purpose(purpose.id))
                .all(|purpose| stating.iter().any(|p| p.purpose_applies(purpose.id)))
        };
        if !stated {
            return Err(TermsError::BasisProhibitionMissing {
                basis,
                what: required.what,
                hint: required.hint(),
            });
        }
    }
    Ok(())
}

/// Every duty of the basis must be stated, unconditionally and on all personal data.
fn check_basis_duties(basis: Basis, obligations: &[Rule]) -> Result<(), TermsError> {
    for duty in basis.duties() {
        let stated = obligations.iter().any(|o| {
            o.action == *duty && o.targets.contains(&ALL_PERSONAL_DATA) && o.constraints.is_empty()
        });
        if !stated {
            return Err(TermsError::BasisDutyMissing {
                basis,
                what: "data portability",
                hint: format!(
                    "keep an obligation with action \"{duty}\", target \"{ALL_PERSONAL_DATA}\" \
                     and no constraint"
                ),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
