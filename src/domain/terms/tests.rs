//! Tests of terms as a whole: the public accessors, the JSON Schema against the code, and the
//! property tests that draw whole documents and requests (the basis ceiling, prohibitions
//! beating permissions, the schema and the summary agreeing with the parser).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;
use proptest::prelude::*;
use proptest::sample::select;
use serde_json::{Value, json};
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};

use super::parse::parse_rule;
use super::testing::*;
use super::vocabulary::{DUTY_ACTIONS, NO_STALKING, RULE_ACTIONS};
use crate::domain::records::CATEGORIES;

// --- templates, vocabulary, accessors ---------------------------------------------------

#[test]
fn every_template_parses_on_its_basis() {
    for t in Terms::templates() {
        let doc = t.document().unwrap();
        let parsed = terms(&doc);
        assert_eq!(parsed.basis(), t.basis, "{}", t.id);
        assert_eq!(parsed.title(), Some(t.title), "{}", t.id);
        assert_eq!(doc["basis"], t.basis.as_str());
        assert_eq!(doc["@context"], context());
    }
    let mut ids: Vec<_> = TEMPLATES.iter().map(|t| t.id).collect();
    ids.dedup();
    assert_eq!(ids.len(), TEMPLATES.len());
    assert_eq!(
        Template::find("pdc-intent").unwrap().basis,
        Basis::PdcIntent
    );
    assert!(Template::find("anything-goes").is_none());
    // One template per supported basis, so the app can offer each.
    for basis in Basis::ALL {
        assert!(TEMPLATES.iter().any(|t| t.basis == basis), "{basis}");
    }
}

#[test]
fn accessors_expose_what_a_receipt_needs() {
    let doc = template("sd-base-dp");
    let parsed = terms(&doc);
    assert_eq!(parsed.document(), &doc);
    assert_eq!(parsed.basis(), Basis::SdBaseDp);
    assert!(parsed.requires_portability());
    assert_eq!(parsed.retention(), Some(Duration::days(90)));
    assert!(parsed.purposes().contains(&"dpv:ServiceProvision"));
    assert!(parsed.purposes().contains(&"dpv:AccountManagement"));
    assert!(!parsed.purposes().contains(&"dpv:TargetedAdvertising"));
    assert!(parsed.data_categories().contains(&"pd:EmailAddress"));
    assert!(!parsed.data_categories().contains(&"pd:Health"));

    let intent = terms(&template("pdc-intent"));
    assert!(!intent.requires_portability());
    assert_eq!(intent.retention(), Some(Duration::days(30)));
    assert_eq!(
        intent.purposes(),
        vec![
            "dpv:RequestedServiceProvision",
            "dpv:SellProductsToDataSubject"
        ]
    );
    assert!(intent.data_categories().contains(&"pd:Location"));
}

// --- the schema -------------------------------------------------------------------------

fn schema() -> Value {
    serde_json::from_str(SCHEMA).unwrap()
}

fn validator() -> jsonschema::Validator {
    jsonschema::validator_for(&schema()).unwrap()
}

#[test]
fn templates_validate_against_the_schema() {
    let v = validator();
    for t in TEMPLATES {
        let doc = t.document().unwrap();
        if let Err(e) = v.validate(&doc) {
            panic!("{}: {e}", t.id);
        }
    }
}

#[test]
fn invalid_documents_fail_the_schema_too() {
    let v = validator();
    let mut cases = Vec::new();
    let mut doc = template("sd-base");
    doc["extra"] = json!(true);
    cases.push(("unknown property", doc));
    cases.push((
        "unknown left operand",
        sd_base_with(json!({"leftOperand": "recipient",
        "operator": "eq", "rightOperand": "x"})),
    ));
    cases.push(("wrong operator", sd_base_with(elapsed("gt", "P1D"))));
    cases.push(("months", sd_base_with(elapsed("lteq", "P1M"))));
    cases.push((
        "negative count",
        sd_base_with(count("lteq", 0)).tap(|d| {
            d["permission"][0]["constraint"][1]["rightOperand"] = json!(-1);
        }),
    ));
    cases.push(("date only", sd_base_with(date_time("lt", "2026-12-31"))));
    cases.push((
        "unknown purpose",
        sd_base_with(purpose("eq", "dpv:Stalking")),
    ));
    let mut doc = template("sd-base");
    doc["basis"] = json!("SD-BASE-ATP");
    cases.push(("unknown basis", doc));
    let mut doc = template("sd-base");
    doc["permission"][0]["target"] = json!("pd:ShoeSize");
    cases.push(("unknown category", doc));
    let mut doc = template("sd-base");
    doc["@context"] = json!(ODRL_CONTEXT);
    cases.push(("other context", doc));
    for (what, doc) in cases {
        assert!(!v.is_valid(&doc), "the schema accepted: {what}");
        assert!(Terms::parse(&doc).is_err(), "the vault accepted: {what}");
    }
}

trait Tap: Sized {
    fn tap(self, f: impl FnOnce(&mut Self)) -> Self;
}
impl Tap for Value {
    fn tap(mut self, f: impl FnOnce(&mut Self)) -> Self {
        f(&mut self);
        self
    }
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn the_schema_and_the_code_share_one_vocabulary() {
    let s = schema();
    let defs = &s["$defs"];
    assert_eq!(s["properties"]["@context"]["const"], context());
    let ids = |list: &mut dyn Iterator<Item = &'static str>| -> Vec<String> {
        list.map(str::to_owned).collect()
    };
    assert_eq!(
        strings(&defs["purpose"]["properties"]["@id"]["enum"]),
        ids(&mut PURPOSES.iter().map(|p| p.id))
    );
    assert_eq!(
        strings(&defs["category"]["enum"]),
        ids(&mut CATEGORIES.iter().map(|c| c.id))
    );
    assert_eq!(
        strings(&s["properties"]["basis"]["enum"]),
        ids(&mut Basis::ALL.iter().map(|b| b.as_str()))
    );
    assert_eq!(
        strings(&defs["rule"]["properties"]["action"]["enum"]),
        ids(&mut RULE_ACTIONS.iter().map(|a| a.as_str()))
    );
    assert_eq!(
        strings(&defs["duty"]["properties"]["action"]["enum"]),
        ids(&mut DUTY_ACTIONS.iter().map(|a| a.as_str()))
    );
}

// --- properties -------------------------------------------------------------------------

fn purpose_ids() -> Vec<&'static str> {
    PURPOSES.iter().map(|p| p.id).collect()
}

fn category_ids() -> Vec<&'static str> {
    CATEGORIES.iter().map(|c| c.id).collect()
}

fn instant(seconds: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(seconds).unwrap()
}

const EARLIEST: i64 = 1_700_000_000;
const LATEST: i64 = 1_900_000_000;

fn purpose_constraint(pool: BoxedStrategy<&'static str>) -> BoxedStrategy<Value> {
    let single =
        (select(vec!["eq", "neq", "isA"]), pool.clone()).prop_map(|(op, p)| purpose(op, p));
    let set = (
        select(vec!["isAnyOf", "isNoneOf"]),
        proptest::collection::vec(pool, 1..4),
    )
        .prop_map(|(op, ps)| purposes(op, &ps));
    prop_oneof![single, set].boxed()
}

fn limit_constraint() -> BoxedStrategy<Value> {
    prop_oneof![
        (select(vec!["lt", "lteq", "gt", "gteq"]), EARLIEST..LATEST)
            .prop_map(|(op, s)| { date_time(op, &instant(s).format(&Rfc3339).unwrap()) }),
        (select(vec!["eq", "lt", "lteq", "gt", "gteq"]), 0u64..8).prop_map(|(op, n)| count(op, n)),
        (select(vec!["eq", "lt", "lteq"]), 0u32..120)
            .prop_map(|(op, days)| elapsed(op, &format!("P{days}D"))),
    ]
    .boxed()
}

fn rule(
    action: BoxedStrategy<&'static str>,
    purpose_pool: BoxedStrategy<&'static str>,
    with_purpose: f64,
) -> BoxedStrategy<Value> {
    (
        action,
        proptest::collection::vec(select(category_ids()), 1..4),
        proptest::option::weighted(with_purpose, purpose_constraint(purpose_pool)),
        proptest::collection::vec(limit_constraint(), 0..3),
    )
        .prop_map(|(action, targets, purpose, limits)| {
            let constraints: Vec<Value> = purpose.into_iter().chain(limits).collect();
            json!({"action": action, "target": targets, "constraint": constraints})
        })
        .boxed()
}

fn assemble(
    basis: Basis,
    permissions: Vec<Value>,
    extra: Vec<Value>,
    drop: Option<usize>,
) -> Value {
    let mut doc = template_for(basis);
    doc["permission"] = Value::Array(permissions);
    let prohibitions = doc["prohibition"].as_array_mut().unwrap();
    if let Some(i) = drop {
        prohibitions.remove(i % NO_STALKING.len());
    }
    prohibitions.extend(extra);
    doc
}

/// Any document over any basis: permissions mostly within the basis but often not, extra
/// prohibitions of every kind, and now and then a basis prohibition dropped.
fn any_document() -> impl Strategy<Value = Value> {
    select(Basis::ALL.to_vec()).prop_flat_map(|basis| {
        let within: Vec<&'static str> = basis
            .permitted_actions()
            .iter()
            .map(|a| a.as_str())
            .collect();
        let all_actions: Vec<&'static str> = RULE_ACTIONS.iter().map(|a| a.as_str()).collect();
        let action = prop_oneof![3 => select(within), 1 => select(all_actions.clone())].boxed();
        let pool = prop_oneof![
            3 => select(basis.permitted_purposes().to_vec()),
            1 => select(purpose_ids())
        ]
        .boxed();
        (
            Just(basis),
            proptest::collection::vec(rule(action, pool, 0.9), 0..4),
            proptest::collection::vec(
                rule(
                    select(all_actions).boxed(),
                    select(purpose_ids()).boxed(),
                    0.5,
                ),
                0..3,
            ),
            proptest::option::weighted(0.1, any::<usize>()),
        )
            .prop_map(|(basis, permissions, extra, drop)| assemble(basis, permissions, extra, drop))
    })
}

/// A document that is always valid: permissions within the basis, purposes named positively.
fn valid_document() -> impl Strategy<Value = Value> {
    select(Basis::ALL.to_vec()).prop_flat_map(|basis| {
        let within: Vec<&'static str> = basis
            .permitted_actions()
            .iter()
            .map(|a| a.as_str())
            .collect();
        let permitted = basis.permitted_purposes().to_vec();
        let positive = prop_oneof![
            select(permitted.clone()).prop_map(|p| purpose("eq", p)),
            proptest::collection::vec(select(permitted), 1..4)
                .prop_map(|ps| purposes("isAnyOf", &ps)),
        ];
        let permission = (
            select(within),
            proptest::collection::vec(select(category_ids()), 1..4),
            positive,
            proptest::collection::vec(limit_constraint(), 0..3),
        )
            .prop_map(|(action, targets, purpose, limits)| {
                let constraints: Vec<Value> = std::iter::once(purpose).chain(limits).collect();
                json!({"action": action, "target": targets, "constraint": constraints})
            });
        (
            Just(basis),
            proptest::collection::vec(permission, 1..4),
            proptest::collection::vec(
                rule(
                    select(RULE_ACTIONS.iter().map(|a| a.as_str()).collect::<Vec<_>>()).boxed(),
                    select(purpose_ids()).boxed(),
                    0.5,
                ),
                0..3,
            ),
        )
            .prop_map(|(basis, permissions, extra)| assemble(basis, permissions, extra, None))
    })
}

fn any_request() -> impl Strategy<Value = AccessRequest> {
    (
        select(vec![Action::Read, Action::Write, Action::ReceiveIntent]),
        proptest::collection::vec(select(category_ids()), 0..3),
        prop_oneof![9 => select(purpose_ids()), 1 => Just("dpv:NotAPurpose")],
        EARLIEST..LATEST,
        0u64..10,
        0i64..(200 * 86_400),
    )
        .prop_map(
            |(action, categories, purpose, at, count_so_far, since)| AccessRequest {
                action,
                categories: categories.into_iter().map(str::to_owned).collect(),
                purpose: purpose.to_owned(),
                at: instant(at),
                count_so_far,
                agreed_at: instant(at - since),
            },
        )
}

/// A request `rule` allows, if a simple search over the times and counts its own constraints
/// name finds one: the action and the purpose are picked among those the rule covers and
/// `accept` admits.
fn fit_request(
    rule: &Rule,
    accept: impl Fn(Action, &str) -> bool,
    pick: prop::sample::Index,
) -> Option<AccessRequest> {
    let fitting: Vec<(Action, &str)> = [Action::Read, Action::Write, Action::ReceiveIntent]
        .into_iter()
        .filter(|a| rule.action.covers(*a))
        .flat_map(|a| PURPOSES.iter().map(move |p| (a, p.id)))
        .filter(|(a, p)| rule.purpose_applies(p) && accept(*a, p))
        .collect();
    if fitting.is_empty() {
        return None;
    }
    let (action, purpose) = fitting[pick.index(fitting.len())];
    let mut instants = vec![instant(EARLIEST - 86_400), instant(LATEST + 86_400)];
    let mut periods = vec![Duration::ZERO];
    for c in &rule.constraints {
        match c {
            Constraint::DateTime { at, .. } => {
                instants.extend([*at - Duration::SECOND, *at, *at + Duration::SECOND]);
            }
            Constraint::ElapsedTime { period, .. } => periods.push(*period),
            _ => {}
        }
    }
    let mut candidate = AccessRequest {
        action,
        categories: rule.targets.iter().map(|c| (*c).to_owned()).collect(),
        purpose: purpose.to_owned(),
        at: NOW,
        count_so_far: 0,
        agreed_at: NOW,
    };
    for at in &instants {
        for period in &periods {
            for used in 0..10 {
                candidate.at = *at;
                candidate.agreed_at = *at - *period;
                candidate.count_so_far = used;
                if rule.allows(&candidate) {
                    return Some(candidate);
                }
            }
        }
    }
    None
}

/// A random request, or one fitted to permission `k` (any purpose it lets through, even one
/// its basis forbids), so that both answers come up often.
fn some_request(
    doc: &Value,
    random: AccessRequest,
    (fitted, k, pick): (bool, prop::sample::Index, prop::sample::Index),
) -> AccessRequest {
    let permissions = doc["permission"].as_array().unwrap();
    if !fitted || permissions.is_empty() {
        return random;
    }
    let rule = parse_rule(&permissions[k.index(permissions.len())], "p", RULE_ACTIONS).unwrap();
    fit_request(&rule, |_, _| true, pick).unwrap_or(random)
}

fn fitting() -> impl Strategy<Value = (bool, prop::sample::Index, prop::sample::Index)> {
    (
        proptest::bool::weighted(0.7),
        any::<prop::sample::Index>(),
        any::<prop::sample::Index>(),
    )
}

fn assert_within_basis(basis: Basis, request: &AccessRequest, decision: &Decision) {
    if decision.permitted {
        assert!(
            basis.permits_purpose(&request.purpose),
            "{basis}: {decision:?}"
        );
        assert!(
            !basis.forbids_purpose(&request.purpose),
            "{basis}: {decision:?}"
        );
        assert!(
            basis.permits_action(request.action),
            "{basis}: {decision:?}"
        );
    }
}

proptest! {
    // Failing seeds are kept beside this file (src/domain/terms.proptest-regressions), not in
    // a folder at the top of the repository.
    #![proptest_config(ProptestConfig {
        cases: 512,
        failure_persistence: Some(Box::new(
            proptest::test_runner::FileFailurePersistence::WithSource("proptest-regressions"),
        )),
        ..ProptestConfig::default()
    })]

    /// (a) Whatever terms pass validation, no request is permitted for a purpose or an
    /// action the basis does not allow.
    #[test]
    fn valid_terms_never_permit_what_the_basis_forbids(
        doc in any_document(),
        random in any_request(),
        fit in fitting(),
    ) {
        let request = some_request(&doc, random, fit);
        if let Ok(t) = Terms::parse(&doc) {
            assert_within_basis(t.basis(), &request, &evaluate(&t, &request));
        }
    }

    /// (a) The same even for rules that never went through validation, with every
    /// prohibition of the document removed: the basis is checked by `evaluate` itself.
    #[test]
    fn even_unvalidated_rules_never_permit_what_the_basis_forbids(
        doc in any_document(),
        random in any_request(),
        fit in fitting(),
    ) {
        let request = some_request(&doc, random, fit);
        let basis = Basis::parse(doc["basis"].as_str().unwrap()).unwrap();
        let permissions = doc["permission"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| parse_rule(r, "permission", RULE_ACTIONS).unwrap())
            .collect();
        let t = Terms {
            document: doc.clone(),
            basis,
            title: None,
            permissions,
            prohibitions: Vec::new(),
            obligations: Vec::new(),
        };
        assert_within_basis(basis, &request, &evaluate(&t, &request));
    }

    /// (b) Whenever a prohibition of the terms matches a request, the request is denied.
    #[test]
    fn a_matching_prohibition_always_denies(
        doc in valid_document(),
        random in any_request(),
        fit in fitting(),
    ) {
        let request = some_request(&doc, random, fit);
        let t = terms(&doc);
        if t.prohibitions.iter().any(|p| p.forbids(&request)) {
            prop_assert!(!evaluate(&t, &request).permitted);
        }
    }

    /// (b) A prohibition that matches exactly what a permission allows denies it.
    #[test]
    fn a_prohibition_beats_a_permission_that_matches_too(
        doc in valid_document(),
        (_, which, pick) in fitting(),
    ) {
        let t = terms(&doc);
        let k = which.index(t.permissions.len());
        let basis = t.basis();
        let found = fit_request(
            &t.permissions[k],
            |action, purpose| basis.permits_action(action) && basis.permits_purpose(purpose),
            pick,
        );
        prop_assume!(found.is_some());
        let request = found.unwrap();
        prop_assert!(t.permissions[k].allows(&request));

        let mut mirrored = doc.clone();
        let permission = doc["permission"][k].clone();
        push(&mut mirrored["prohibition"], permission);
        let t = terms(&mirrored);
        let d = evaluate(&t, &request);
        prop_assert!(!d.permitted, "{d:?}");
        prop_assert!(d.rule.starts_with("prohibition["), "{d:?}");
    }

    /// (c) Whatever the vault accepts, the published schema accepts too.
    #[test]
    fn accepted_terms_validate_against_the_schema(doc in any_document()) {
        if Terms::parse(&doc).is_ok() {
            let v = validator();
            if let Err(e) = v.validate(&doc) {
                prop_assert!(false, "{e}: {doc:#}");
            }
        }
    }

    #[test]
    fn valid_documents_validate_against_the_schema(doc in valid_document()) {
        prop_assert!(validator().is_valid(&doc));
    }

    /// The summary says every rule, leaves no category or purpose of a permission unsaid, and
    /// never has an empty line.
    #[test]
    fn the_summary_says_every_rule(doc in valid_document()) {
        let t = terms(&doc);
        let lines = t.summary();
        assert_sentences(&lines);
        let duties = t.obligations.iter().filter(|r| !r.is_retention()).count();
        prop_assert_eq!(
            lines.len(),
            1 + t.permissions.len() + t.prohibitions.len() + duties
                + usize::from(t.retention().is_some())
        );
        for (i, rule) in doc["permission"].as_array().unwrap().iter().enumerate() {
            let line = &lines[1 + i];
            prop_assert!(line.starts_with("Brands may "), "{}", line);
            let mut ids = purpose_ids_of(rule);
            let targets = target_ids_of(rule);
            if targets.iter().any(|id| id == ALL_PERSONAL_DATA) {
                prop_assert!(line.contains(" any of your data"), "{}", line);
            } else {
                ids.extend(targets);
            }
            for id in &ids {
                prop_assert!(line.contains(id.as_str()), "{} missing in {}", id, line);
            }
        }
    }
}
