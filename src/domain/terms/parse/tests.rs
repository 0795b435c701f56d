//! What `Terms::parse` rejects, and why: one test per kind of mistake a person or a brand can
//! make in a document, each checking where the error points.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;
use serde_json::json;

use crate::domain::terms::ODRL_CONTEXT;
use crate::domain::terms::testing::*;

// --- rejections ---------------------------------------------------------------------------

#[test]
fn rejects_what_is_not_an_object() {
    assert!(matches!(reject(&json!([])), TermsError::WrongType { .. }));
    let mut doc = template("sd-base");
    doc["permission"][0] = json!("read everything");
    let e = reject(&doc);
    assert!(matches!(e, TermsError::WrongType { .. }));
    assert_eq!(e.at(), "permission[0]");
    let mut doc = template("sd-base");
    doc["permission"] = json!({"action": "read"});
    assert_eq!(reject(&doc).at(), "permission");
    let mut doc = template("sd-base");
    doc["permission"][0]["constraint"] = purpose("eq", "dpv:ServiceProvision");
    assert_eq!(reject(&doc).at(), "permission[0].constraint");
}

#[test]
fn rejects_unknown_properties_everywhere() {
    let mut doc = template("sd-base");
    doc["profile"] = json!("http://example.com/profile");
    let e = reject(&doc);
    assert!(matches!(&e, TermsError::UnknownProperty { property, .. } if property == "profile"));
    assert_eq!(e.at(), "the terms");

    let mut doc = template("sd-base");
    doc["permission"][0]["duty"] = json!([]);
    let e = reject(&doc);
    assert!(matches!(&e, TermsError::UnknownProperty { property, .. } if property == "duty"));
    assert_eq!(e.at(), "permission[0]");

    let mut doc = template("sd-base");
    doc["permission"][0]["constraint"][0]["unit"] = json!("days");
    assert_eq!(reject(&doc).at(), "permission[0].constraint[0]");

    // Logical constraints (and/or/xone) are not supported: they would be ignored otherwise.
    let mut doc = template("sd-base");
    push(&mut doc["permission"][0]["constraint"], json!({"or": []}));
    assert!(matches!(reject(&doc), TermsError::UnknownProperty { .. }));
}

#[test]
fn rejects_another_context_or_policy_type() {
    let mut doc = template("sd-base");
    doc["@context"] = json!(ODRL_CONTEXT);
    assert_eq!(reject(&doc), TermsError::WrongContext);
    let mut doc = template("sd-base");
    doc["@context"][1]["prohibition"] = json!("http://example.com/nothing");
    assert_eq!(reject(&doc), TermsError::WrongContext);
    let mut doc = template("sd-base");
    doc.as_object_mut().unwrap().remove("@context");
    assert_eq!(reject(&doc), TermsError::WrongContext);

    let mut doc = template("sd-base");
    doc["@type"] = json!("Set");
    assert!(matches!(reject(&doc), TermsError::WrongPolicyType { .. }));
    doc.as_object_mut().unwrap().remove("@type");
    assert!(matches!(
        reject(&doc),
        TermsError::Missing {
            property: "@type",
            ..
        }
    ));
}

#[test]
fn rejects_missing_or_empty_parties() {
    for property in ["uid", "assigner", "basis"] {
        let mut doc = template("sd-base");
        doc.as_object_mut().unwrap().remove(property);
        assert!(
            matches!(reject(&doc), TermsError::Missing { property: p, .. } if p == property),
            "{property}"
        );
    }
    let mut doc = template("sd-base");
    doc["assigner"] = json!(" ");
    assert_eq!(reject(&doc).at(), "assigner");
    let mut doc = template("sd-base");
    doc["uid"] = json!(7);
    assert_eq!(reject(&doc).at(), "uid");
    let mut doc = template("sd-base");
    doc["title"] = json!(["a", "b"]);
    assert_eq!(reject(&doc).at(), "title");
}

#[test]
fn rejects_an_unknown_basis() {
    // SD-BASE-ATP is a real roster agreement (it permits profiling), but not one supported.
    for basis in ["SD-BASE-ATP", "sd-base", "NoStalking", ""] {
        let mut doc = template("sd-base");
        doc["basis"] = json!(basis);
        assert_eq!(
            reject(&doc),
            TermsError::UnknownBasis {
                found: basis.into()
            }
        );
    }
    let mut doc = template("sd-base");
    doc["basis"] = json!(["SD-BASE"]);
    assert!(matches!(reject(&doc), TermsError::WrongType { .. }));
}

#[test]
fn rejects_unknown_actions() {
    // `play` is an ODRL action, but not one terms about personal data use.
    let mut doc = template("sd-base");
    doc["permission"][0]["action"] = json!("play");
    let e = reject(&doc);
    assert!(matches!(&e, TermsError::UnknownAction { found, .. } if found == "play"));
    assert_eq!(e.at(), "permission[0].action");

    let mut doc = template("sd-base");
    doc["prohibition"][0]["action"] = json!("p7012:PortabilityRequired");
    assert_eq!(reject(&doc).at(), "prohibition[0].action");

    let mut doc = template("sd-base");
    doc["obligation"][0]["action"] = json!("read");
    assert_eq!(reject(&doc).at(), "obligation[0].action");

    let mut doc = template("sd-base");
    doc["permission"][0]["action"] = json!(["read"]);
    assert!(matches!(reject(&doc), TermsError::WrongType { .. }));
}

#[test]
fn rejects_unknown_left_operands() {
    // `recipient` and `spatial` are ODRL left operands too; unsupported ones are refused
    // rather than ignored.
    for operand in ["recipient", "spatial", "Purpose", "odrl:purpose"] {
        let doc = sd_base_with(json!({"leftOperand": operand, "operator": "eq",
                                      "rightOperand": "x"}));
        let e = reject(&doc);
        assert_eq!(
            e,
            TermsError::UnknownLeftOperand {
                at: "permission[0].constraint[1]".into(),
                found: operand.into()
            }
        );
    }
}

#[test]
fn rejects_operators_an_operand_does_not_take() {
    for (constraint, operand) in [
        (date_time("eq", "2027-01-01T00:00:00Z"), "dateTime"),
        (date_time("isAnyOf", "2027-01-01T00:00:00Z"), "dateTime"),
        (count("neq", 3), "count"),
        (count("isA", 3), "count"),
        (elapsed("gt", "P30D"), "elapsedTime"),
        (elapsed("gteq", "P30D"), "elapsedTime"),
        (purpose("lt", "dpv:ServiceProvision"), "purpose"),
        (purpose("hasPart", "dpv:ServiceProvision"), "purpose"),
    ] {
        let e = reject(&sd_base_with(constraint.clone()));
        assert!(
            matches!(&e, TermsError::UnknownOperator { operand: o, .. } if *o == operand),
            "{constraint}: {e}"
        );
        assert_eq!(e.at(), "permission[0].constraint[1]");
    }
}

#[test]
fn rejects_unknown_purposes() {
    for id in [
        "dpv:Stalking",
        "dpv:Profiling",
        "ServiceProvision",
        "https://w3id.org/dpv#Marketing",
    ] {
        let e = reject(&sd_base_with(purpose("eq", id)));
        assert_eq!(
            e,
            TermsError::UnknownPurpose {
                at: "permission[0].constraint[1]".into(),
                found: id.into()
            }
        );
    }
    let e = reject(&sd_base_with(purposes(
        "isNoneOf",
        &["dpv:Marketing", "dpv:Nope"],
    )));
    assert!(matches!(e, TermsError::UnknownPurpose { .. }));
}

#[test]
fn rejects_unknown_categories() {
    let mut doc = template("sd-base");
    push(&mut doc["permission"][0]["target"], json!("pd:ShoeSize"));
    let e = reject(&doc);
    assert_eq!(
        e,
        TermsError::UnknownCategory {
            at: "permission[0].target[10]".into(),
            found: "pd:ShoeSize".into()
        }
    );
    let mut doc = template("sd-base");
    doc["prohibition"][0]["target"] = json!("EmailAddress");
    assert_eq!(reject(&doc).at(), "prohibition[0].target");
    let mut doc = template("sd-base");
    doc["permission"][0]["target"] = json!([]);
    assert!(matches!(reject(&doc), TermsError::WrongType { .. }));
    let mut doc = template("sd-base");
    doc["permission"][0]
        .as_object_mut()
        .unwrap()
        .remove("target");
    assert!(matches!(
        reject(&doc),
        TermsError::Missing {
            property: "target",
            ..
        }
    ));
}

#[test]
fn rejects_malformed_values() {
    let invalid = |constraint: Value| match reject(&sd_base_with(constraint.clone())) {
        TermsError::InvalidValue { at, reason } => {
            assert_eq!(at, "permission[0].constraint[1]");
            reason
        }
        other => panic!("{constraint}: {other}"),
    };
    // dateTime: RFC 3339 with an offset, as a typed literal.
    assert!(invalid(date_time("lt", "2026-12-31")).contains("RFC 3339"));
    assert!(invalid(date_time("lt", "tomorrow")).contains("RFC 3339"));
    assert!(invalid(date_time("lt", "2026-12-31T23:59:59")).contains("RFC 3339"));
    invalid(json!({"leftOperand": "dateTime", "operator": "lt",
                   "rightOperand": "2026-12-31T23:59:59Z"}));
    invalid(json!({"leftOperand": "dateTime", "operator": "lt",
                   "rightOperand": {"@value": "2026-12-31", "@type": "xsd:date"}}));
    // elapsedTime: an xsd:duration of days and time.
    assert!(invalid(elapsed("lteq", "P1M")).contains("months"));
    invalid(elapsed("lteq", "30 days"));
    invalid(elapsed("lteq", "PT"));
    invalid(json!({"leftOperand": "elapsedTime", "operator": "lteq", "rightOperand": 30}));
    // count: a non-negative whole number.
    for bad in [json!(-1), json!("5"), json!(2.5), json!(null)] {
        assert!(
            invalid(json!({"leftOperand": "count", "operator": "lteq", "rightOperand": bad}))
                .contains("whole number")
        );
    }
    // purpose: IRIs, one or a list as the operator says.
    invalid(json!({"leftOperand": "purpose", "operator": "eq",
                   "rightOperand": "dpv:ServiceProvision"}));
    invalid(json!({"leftOperand": "purpose", "operator": "isAnyOf",
                   "rightOperand": {"@id": "dpv:ServiceProvision"}}));
    invalid(purposes("isAnyOf", &[]));
    invalid(json!({"leftOperand": "purpose", "operator": "eq",
                   "rightOperand": [{"@id": "dpv:ServiceProvision"}]}));
    invalid(json!({"leftOperand": "purpose", "operator": "eq",
                   "rightOperand": {"@id": "dpv:ServiceProvision", "x": 1}}));
}

#[test]
fn rejects_permissions_wider_than_the_basis() {
    let widens = |doc: &Value| match reject(doc) {
        TermsError::Widens { at, reason, .. } => (at, reason),
        other => panic!("{other}"),
    };
    // A purpose the basis forbids.
    let mut doc = template("sd-base");
    push(
        &mut doc["permission"][0]["constraint"][0]["rightOperand"],
        json!({"@id": "dpv:TargetedAdvertising"}),
    );
    let (at, reason) = widens(&doc);
    assert_eq!(at, "permission[0].constraint[0]");
    assert!(reason.contains("dpv:TargetedAdvertising"), "{reason}");
    assert!(
        reason.contains("prohibits advertising and marketing"),
        "{reason}"
    );

    // A purpose the basis simply does not permit.
    let mut doc = template("sd-base");
    doc["permission"][1]["constraint"] = json!([purpose("eq", "dpv:SellProducts")]);
    let (at, reason) = widens(&doc);
    assert_eq!(at, "permission[1].constraint[0]");
    assert!(reason.contains("dpv:SellProducts"), "{reason}");

    // isA reaches narrower purposes: service provision includes selling data.
    let mut doc = template("sd-base");
    doc["permission"][0]["constraint"] = json!([purpose("isA", "dpv:ServiceProvision")]);
    assert!(widens(&doc).1.contains("dpv:SellProducts"));

    // Only excluding purposes still allows everything else.
    let mut doc = template("sd-base");
    doc["permission"][0]["constraint"] =
        json!([purposes("isNoneOf", &["dpv:TargetedAdvertising"])]);
    assert_eq!(widens(&doc).0, "permission[0].constraint[0]");

    // No purpose at all.
    let mut doc = template("sd-base");
    doc["permission"][0]["constraint"] = json!([count("lteq", 5)]);
    let (at, reason) = widens(&doc);
    assert_eq!(at, "permission[0]");
    assert!(reason.contains("no purpose constraint"), "{reason}");

    // Actions beyond the basis.
    for action in [
        "use",
        "distribute",
        "sell",
        "dpv:Profiling",
        "dpv:Tracking",
        "delete",
    ] {
        let mut doc = template("sd-base");
        doc["permission"][0]["action"] = json!(action);
        assert_eq!(widens(&doc).0, "permission[0]", "{action}");
    }
    let mut doc = template("pdc-intent");
    doc["permission"][0]["action"] = json!("modify");
    assert!(widens(&doc).1.contains("PDC-INTENT lets brands read only"));
    let mut doc = template("pdc-intent");
    doc["permission"][0]["constraint"] = json!([purpose("eq", "dpv:ServiceProvision")]);
    widens(&doc);
}

#[test]
fn rejects_terms_that_drop_a_basis_prohibition() {
    for basis in Basis::ALL {
        for (i, required) in basis.prohibitions().iter().enumerate() {
            let mut doc = template_for(basis);
            doc["prohibition"].as_array_mut().unwrap().remove(i);
            assert_eq!(
                reject(&doc),
                TermsError::BasisProhibitionMissing {
                    basis,
                    what: required.what,
                    hint: required.hint()
                },
                "{basis} without prohibition[{i}]"
            );
        }
        let mut doc = template_for(basis);
        doc.as_object_mut().unwrap().remove("prohibition");
        assert!(matches!(
            reject(&doc),
            TermsError::BasisProhibitionMissing { .. }
        ));
    }
}

#[test]
fn rejects_terms_that_weaken_a_basis_prohibition() {
    let missing = |doc: &Value| match reject(doc) {
        TermsError::BasisProhibitionMissing { what, .. } => what,
        other => panic!("{other}"),
    };
    // A prohibition that lapses is no prohibition.
    let mut doc = template("sd-base");
    doc["prohibition"][0]["constraint"] = json!([date_time("lt", "2027-01-01T00:00:00Z")]);
    assert_eq!(missing(&doc), "tracking");
    let mut doc = template("sd-base");
    push(&mut doc["prohibition"][4]["constraint"], count("lteq", 100));
    assert_eq!(missing(&doc), "advertising and marketing");
    // Some data only.
    let mut doc = template("sd-base");
    doc["prohibition"][2]["target"] = json!("pd:EmailAddress");
    assert_eq!(missing(&doc), "sharing with third parties");
    // Some kinds of marketing only.
    let mut doc = template("sd-base");
    doc["prohibition"][4]["constraint"] = json!([purpose("isA", "dpv:Advertising")]);
    assert_eq!(missing(&doc), "advertising and marketing");
    // A narrower action: reading for personalisation is not all use for it.
    let mut doc = template("sd-base");
    doc["prohibition"][5]["action"] = json!("read");
    assert_eq!(missing(&doc), "personalisation");
    // Everything but one purpose.
    let mut doc = template("sd-base");
    doc["prohibition"][6]["constraint"] = json!([
        purposes(
            "isAnyOf",
            &["dpv:ServiceUsageAnalytics", "p7012:ServiceAnalytics"]
        ),
        purposes("isNoneOf", &["p7012:ServiceAnalytics"])
    ]);
    assert_eq!(missing(&doc), "analytics");
}

#[test]
fn rejects_terms_that_drop_the_portability_duty() {
    let mut doc = template("sd-base-dp");
    doc["obligation"].as_array_mut().unwrap().pop();
    let e = reject(&doc);
    assert!(
        matches!(&e, TermsError::BasisDutyMissing { basis: Basis::SdBaseDp, what, .. } if *what == "data portability")
    );
    assert_eq!(e.at(), "obligation");
    let mut doc = template("sd-base-dp");
    doc["obligation"][1]["constraint"] = json!([date_time("lt", "2027-01-01T00:00:00Z")]);
    assert!(matches!(reject(&doc), TermsError::BasisDutyMissing { .. }));
}

#[test]
fn accepts_terms_that_narrow_the_basis() {
    // Fewer permissions, fewer categories, fewer purposes, time and count limits.
    let mut doc = template("sd-base");
    doc["permission"].as_array_mut().unwrap().pop();
    doc["permission"][0]["target"] = json!("pd:EmailAddress");
    doc["permission"][0]["constraint"] = json!([
        purpose("isA", "dpv:DeliveryOfGoods"),
        date_time("lt", "2027-01-01T00:00:00Z"),
        count("lteq", 10),
        elapsed("lteq", "PT24H")
    ]);
    terms(&doc);
    // More prohibitions, and the basis's ones said differently: split or broader.
    let mut doc = template("sd-base");
    doc["prohibition"][4] = json!({"action": "use", "target": ALL_PERSONAL_DATA,
                                   "constraint": [purpose("isA", "dpv:Advertising")]});
    push(
        &mut doc["prohibition"],
        json!({"action": "use", "target": ALL_PERSONAL_DATA,
        "constraint": [purposes("isAnyOf", &["dpv:Marketing", "dpv:DirectMarketing",
            "dpv:SocialMediaMarketing", "dpv:PublicRelations"])]}),
    );
    doc["prohibition"][2] = json!({"action": "use", "target": [ALL_PERSONAL_DATA]});
    push(
        &mut doc["prohibition"],
        json!({"action": "read", "target": "pd:Health"}),
    );
    terms(&doc);
    // No permission at all: nothing is allowed, which is narrower still.
    let mut doc = template("pdc-intent");
    doc.as_object_mut().unwrap().remove("permission");
    assert!(terms(&doc).purposes().is_empty());
}
