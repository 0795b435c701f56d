//! Examples and properties of the grant rules, `decide_use` above all.

use super::*;
use proptest::prelude::*;
use serde_json::json;

const RESOURCE: &str = "http://v/brand/v1";

#[test]
fn authorization_details_ask_and_name() {
    let asked = parse_authorization_details(
        &json!([{"type": DATA_ACCESS_TYPE, "fields": ["contact.email", "pd:TelephoneNumber", "contact.email"],
                 "actions": ["read"], "purpose": "dpv:ServiceProvision", "locations": [RESOURCE], "expires_in": 3600}])
            .to_string(),
        RESOURCE,
    );
    let Ok(AccessRequestDetail::Ask(asked)) = asked else {
        unreachable!("{asked:?}")
    };
    assert_eq!(asked.fields.len(), 2);
    assert_eq!(asked.lifetime, Duration::hours(1));
    let named = parse_authorization_details(
        &json!([{"type": DATA_ACCESS_TYPE, "grant_id": "g1"}]).to_string(),
        RESOURCE,
    );
    assert_eq!(
        named,
        Ok(AccessRequestDetail::Existing {
            grant_id: "g1".into()
        })
    );
}

#[test]
fn bad_authorization_details_say_why() {
    let cases = [
        ("{}", "array"),
        ("[]", "exactly one"),
        (r#"[{"type": "other"}]"#, "type"),
        (
            r#"[{"type": "urn:vrm-vault:data-access:v1", "purpose": "dpv:ServiceProvision"}]"#,
            "fields",
        ),
        (
            r#"[{"type": "urn:vrm-vault:data-access:v1", "fields": ["a.b"]}]"#,
            "purpose",
        ),
        (
            r#"[{"type": "urn:vrm-vault:data-access:v1", "fields": ["a.b"], "purpose": "dpv:Nope"}]"#,
            "purpose",
        ),
        (
            r#"[{"type": "urn:vrm-vault:data-access:v1", "fields": ["a.b"], "purpose": "dpv:ServiceProvision", "actions": ["delete"]}]"#,
            "delete",
        ),
        (
            r#"[{"type": "urn:vrm-vault:data-access:v1", "fields": ["a.b"], "purpose": "dpv:ServiceProvision", "locations": ["https://elsewhere"]}]"#,
            "locations",
        ),
        (
            r#"[{"type": "urn:vrm-vault:data-access:v1", "fields": ["A"], "purpose": "dpv:ServiceProvision"}]"#,
            "\"A\"",
        ),
        (
            r#"[{"type": "urn:vrm-vault:data-access:v1", "fields": ["pd:Nope"], "purpose": "dpv:ServiceProvision"}]"#,
            "pd:Nope",
        ),
    ];
    for (text, needle) in cases {
        let error = parse_authorization_details(text, RESOURCE)
            .err()
            .unwrap_or_default();
        assert!(error.contains(needle), "{text} → {error}");
    }
}

#[test]
fn status_follows_revocation_time_and_count() {
    let t = OffsetDateTime::UNIX_EPOCH;
    let mut grant = Grant {
        id: "g".into(),
        client_id: "c".into(),
        brand_name: "B".into(),
        fields: vec!["contact.email".into(), "pd:TelephoneNumber".into()],
        actions: vec![GrantAction::Read],
        purpose: "dpv:ServiceProvision".into(),
        created_at: t,
        expires_at: t + Duration::hours(1),
        max_uses: Some(2),
        uses: 1,
        origin: GrantOrigin::Owner,
        agreement_id: "a".into(),
        decision: GrantDecision {
            rule: "permission[0]".into(),
            reason: String::new(),
        },
        revoked_at: None,
        last_used_at: None,
        refresh_generation: 0,
        revocation: None,
        told: Vec::new(),
    };
    assert_eq!(grant.status(t), GrantStatus::Active);
    assert_eq!(grant.uses_left(), Some(1));
    assert_eq!(grant.status(t + Duration::hours(1)), GrantStatus::Expired);
    grant.uses = 2;
    assert_eq!(grant.status(t), GrantStatus::Exhausted);
    grant.revoked_at = Some(t);
    assert_eq!(grant.status(t), GrantStatus::Revoked);
    assert!(grant.covers("contact.email", "pd:EmailAddress"));
    assert!(grant.covers("contact.mobile", "pd:TelephoneNumber"));
    assert!(!grant.covers("contact.name", "pd:Name"));
    assert!(!grant.allows(GrantAction::Write));
}

#[test]
fn masks_keep_a_hint_only() {
    assert_eq!(mask(&json!("ana@example.org")), "a•••@e•••");
    assert_eq!(mask(&json!("+33 6 12 34 56 78")), "•••• 78");
    assert_eq!(mask(&json!("Ana Lima")), "A••• L•••");
    assert_eq!(mask(&json!(42)), "•••");
    assert!(!mask(&json!("secretvalue")).contains("ecret"));
}

// --- deciding a use -------------------------------------------------------------------------

const NOW: OffsetDateTime = time::macros::datetime!(2026-06-01 12:00 UTC);
const AGREED: OffsetDateTime = time::macros::datetime!(2026-05-01 12:00 UTC);
const TERMS_VERSION: u64 = 2;

/// The SD-BASE template: it permits reading contact data for service provision and forbids
/// marketing.
fn sd_base() -> Terms {
    let document = crate::domain::terms::Template::find("sd-base")
        .unwrap()
        .document()
        .unwrap();
    Terms::parse(&document).unwrap()
}

/// A grant to brand "c" under agreement "a", good for an hour and three uses.
fn grant() -> Grant {
    Grant {
        id: "g".into(),
        client_id: "c".into(),
        brand_name: "B".into(),
        fields: vec!["contact.email".into(), "pd:TelephoneNumber".into()],
        actions: vec![GrantAction::Read],
        purpose: "dpv:ServiceProvision".into(),
        created_at: NOW - Duration::hours(1),
        expires_at: NOW + Duration::hours(1),
        max_uses: Some(3),
        uses: 0,
        origin: GrantOrigin::Owner,
        agreement_id: "a".into(),
        decision: GrantDecision {
            rule: "permission[0]".into(),
            reason: String::new(),
        },
        revoked_at: None,
        last_used_at: None,
        refresh_generation: 0,
        revocation: None,
        told: Vec::new(),
    }
}

/// An active brand with an accepted agreement "a" on the terms in force.
fn facts(terms: &Terms) -> UseFacts<'_> {
    UseFacts {
        brand: Some(BrandStatus::Active),
        agreement: Some(AgreementFacts {
            id: "a",
            status: AgreementStatus::Accepted,
            terms_version: TERMS_VERSION,
            accepted_at: Some(AGREED),
        }),
        terms_version: TERMS_VERSION,
        terms,
    }
}

fn email() -> Vec<(String, String)> {
    vec![("contact.email".into(), "pd:EmailAddress".into())]
}

fn read(fields: &[(String, String)], now: OffsetDateTime) -> UseRequest<'_> {
    UseRequest {
        client_id: "c",
        action: GrantAction::Read,
        fields,
        now,
    }
}

#[test]
fn a_good_use_is_allowed_and_counted() {
    let terms = sd_base();
    let mut g = grant();
    let fields = email();
    let allowed = decide_use(Some(&g), &facts(&terms), &read(&fields, NOW));
    assert_eq!(allowed, Ok(AllowedUse { uses: 1, at: NOW }));
    allowed.unwrap().apply(&mut g);
    assert_eq!(g.uses, 1);
    assert_eq!(g.last_used_at, Some(NOW));
    // A phone number is covered through its category, not its path.
    let phone = vec![("contact.mobile".to_owned(), "pd:TelephoneNumber".to_owned())];
    assert!(decide_use(Some(&g), &facts(&terms), &read(&phone, NOW)).is_ok());
}

/// Every refusal, with the message brands received before the decision moved here, and
/// whether it ends the brand's access (401 invalid_token) or refuses this request (403).
#[test]
fn each_refusal_keeps_its_message_and_kind() {
    let terms = sd_base();
    let fields = email();
    let request = read(&fields, NOW);
    let decide =
        |g: Option<&Grant>, f: &UseFacts<'_>, r: &UseRequest<'_>| decide_use(g, f, r).unwrap_err();
    let mut cases: Vec<(UseRefusal, &str, bool)> = Vec::new();

    let mut f = facts(&terms);
    f.brand = None;
    cases.push((
        decide(Some(&grant()), &f, &request),
        "the brand was removed",
        true,
    ));
    f.brand = Some(BrandStatus::Suspended);
    cases.push((
        decide(Some(&grant()), &f, &request),
        "the brand is suspended",
        true,
    ));
    cases.push((
        decide(None, &facts(&terms), &request),
        "the grant no longer exists",
        true,
    ));
    let mut g = grant();
    g.client_id = "other".into();
    cases.push((
        decide(Some(&g), &facts(&terms), &request),
        "the grant belongs to another brand",
        true,
    ));
    let mut g = grant();
    g.revoked_at = Some(NOW);
    cases.push((
        decide(Some(&g), &facts(&terms), &request),
        "the grant is revoked",
        true,
    ));
    let mut g = grant();
    g.expires_at = NOW;
    cases.push((
        decide(Some(&g), &facts(&terms), &request),
        "the grant is expired",
        true,
    ));
    let mut g = grant();
    g.uses = 3;
    cases.push((
        decide(Some(&g), &facts(&terms), &request),
        "the grant is exhausted",
        true,
    ));
    let no_agreement = "no agreement on the terms in force";
    let mut f = facts(&terms);
    f.agreement = None;
    cases.push((decide(Some(&grant()), &f, &request), no_agreement, true));
    for change in [
        |a: &mut AgreementFacts<'_>| a.status = AgreementStatus::Withdrawn,
        |a: &mut AgreementFacts<'_>| a.status = AgreementStatus::Terminated,
        |a: &mut AgreementFacts<'_>| a.accepted_at = None,
    ] {
        let mut f = facts(&terms);
        if let Some(a) = f.agreement.as_mut() {
            change(a);
        }
        cases.push((decide(Some(&grant()), &f, &request), no_agreement, true));
    }
    // New terms the brand has not accepted yet suspend the grant, and the refusal says which
    // version to accept.
    let mut f = facts(&terms);
    if let Some(a) = f.agreement.as_mut() {
        a.terms_version = TERMS_VERSION - 1;
    }
    cases.push((
        decide(Some(&grant()), &f, &request),
        format!(
            "the person's terms changed; accept version {TERMS_VERSION} (GET /brand/v1/terms, \
             then POST /brand/v1/agreements) and this grant works again if the new terms still \
             permit it"
        )
        .leak(),
        true,
    ));
    let mut g = grant();
    g.agreement_id = "older".into();
    cases.push((
        decide(Some(&g), &facts(&terms), &request),
        "the grant was made under an agreement that no longer covers the terms in force",
        true,
    ));
    let write = UseRequest {
        action: GrantAction::Write,
        ..request
    };
    cases.push((
        decide(Some(&grant()), &facts(&terms), &write),
        "this grant does not allow write",
        false,
    ));
    let name = vec![("contact.name".to_owned(), "pd:Name".to_owned())];
    cases.push((
        decide(Some(&grant()), &facts(&terms), &read(&name, NOW)),
        "this grant does not cover that field",
        false,
    ));
    let mut g = grant();
    g.purpose = "dpv:Marketing".into();
    cases.push((
        decide(Some(&g), &facts(&terms), &request),
        "the person's terms no longer permit this (basis SD-BASE)",
        false,
    ));

    for (refusal, message, ends_access) in cases {
        assert_eq!(refusal.to_string(), message, "{refusal:?}");
        assert_eq!(refusal.ends_access(), ends_access, "{refusal:?}");
    }
}

#[test]
fn the_widest_refusal_wins() {
    let terms = sd_base();
    let name = vec![("contact.name".to_owned(), "pd:Name".to_owned())];
    let mut g = grant();
    g.expires_at = NOW;
    g.agreement_id = "older".into();
    let mut f = facts(&terms);
    f.brand = Some(BrandStatus::Suspended);
    let request = read(&name, NOW);
    assert_eq!(
        decide_use(Some(&g), &f, &request),
        Err(UseRefusal::BrandSuspended)
    );
    f.brand = Some(BrandStatus::Active);
    assert_eq!(
        decide_use(Some(&g), &f, &request),
        Err(UseRefusal::Inactive(GrantStatus::Expired))
    );
    g.expires_at = NOW + Duration::hours(1);
    assert_eq!(
        decide_use(Some(&g), &f, &request),
        Err(UseRefusal::AgreementChanged)
    );
    g.agreement_id = "a".into();
    assert_eq!(
        decide_use(Some(&g), &f, &request),
        Err(UseRefusal::FieldNotCovered)
    );
}

#[test]
fn a_use_touching_no_field_is_counted_without_asking_the_terms() {
    let terms = sd_base();
    let mut g = grant();
    // The terms would refuse this purpose for any field; with none, nothing is revealed.
    g.purpose = "dpv:Marketing".into();
    g.uses = 2;
    assert_eq!(
        decide_use(Some(&g), &facts(&terms), &read(&[], NOW)),
        Ok(AllowedUse { uses: 3, at: NOW })
    );
}

#[test]
fn the_terms_verdict_needs_every_action_permitted() {
    let terms = sd_base();
    let email = vec!["pd:EmailAddress".to_owned()];
    let verdict = |actions: &[GrantAction], purpose: &str| {
        terms_verdict(&terms, actions, &email, purpose, NOW, AGREED, 0)
    };
    let read = verdict(&[GrantAction::Read], "dpv:ServiceProvision").unwrap();
    assert_eq!(read.rule, "permission[0]");
    // SD-BASE lets brands update identifiers only, so reading and writing an email fails on
    // the write, whatever the read would say.
    assert!(matches!(
        verdict(
            &[GrantAction::Read, GrantAction::Write],
            "dpv:ServiceProvision"
        ),
        Err(VerdictRefusal::NotPermitted { .. })
    ));
    assert!(matches!(
        verdict(&[GrantAction::Read], "dpv:Marketing"),
        Err(VerdictRefusal::NotPermitted { rule, .. }) if rule == "basis SD-BASE"
    ));
    assert_eq!(
        verdict(&[], "dpv:ServiceProvision"),
        Err(VerdictRefusal::NoAction)
    );
}

// --- properties of deciding a use -----------------------------------------------------------

/// Fields a request may touch: path and category. The grant names some of these paths and
/// categories, so a request may fall inside or outside it either way.
const FIELDS: &[(&str, &str)] = &[
    ("contact.email", "pd:EmailAddress"),
    ("contact.mobile", "pd:TelephoneNumber"),
    ("contact.name", "pd:Name"),
    ("home.address", "pd:PhysicalAddress"),
];

fn any_grant() -> impl Strategy<Value = Grant> {
    (
        proptest::sample::subsequence(FIELDS.to_vec(), 0..=FIELDS.len()),
        proptest::collection::vec(any::<bool>(), FIELDS.len()),
        proptest::sample::subsequence(vec![GrantAction::Read, GrantAction::Write], 0..=2),
        -7_200i64..7_200,
        proptest::option::of(0u64..6),
        0u64..8,
        proptest::option::of(-7_200i64..7_200),
    )
        .prop_map(
            |(fields, by_category, actions, expires_in, max_uses, uses, revoked)| {
                let mut g = grant();
                g.fields = fields
                    .iter()
                    .zip(by_category)
                    .map(|((path, category), by_category)| {
                        (if by_category { *category } else { *path }).to_owned()
                    })
                    .collect();
                g.fields.sort();
                g.actions = actions;
                g.expires_at = NOW + Duration::seconds(expires_in);
                g.max_uses = max_uses;
                g.uses = uses;
                g.revoked_at = revoked.map(|s| NOW + Duration::seconds(s));
                g
            },
        )
}

fn any_fields() -> impl Strategy<Value = Vec<(String, String)>> {
    proptest::sample::subsequence(FIELDS.to_vec(), 0..=FIELDS.len()).prop_map(|fields| {
        fields
            .into_iter()
            .map(|(p, c)| (p.to_owned(), c.to_owned()))
            .collect()
    })
}

fn any_action() -> impl Strategy<Value = GrantAction> {
    prop_oneof![Just(GrantAction::Read), Just(GrantAction::Write)]
}

fn any_brand() -> impl Strategy<Value = Option<BrandStatus>> {
    prop_oneof![
        4 => Just(Some(BrandStatus::Active)),
        1 => Just(Some(BrandStatus::Suspended)),
        1 => Just(None),
    ]
}

proptest! {
    #[test]
    fn never_allowed_once_revoked_expired_or_used_up(
        g in any_grant(),
        fields in any_fields(),
        action in any_action(),
        at in -7_200i64..7_200,
    ) {
        let terms = sd_base();
        let now = NOW + Duration::seconds(at);
        let request = UseRequest { client_id: "c", action, fields: &fields, now };
        let decision = decide_use(Some(&g), &facts(&terms), &request);
        let spent = g.max_uses.is_some_and(|max| g.uses >= max);
        if g.revoked_at.is_some() || now >= g.expires_at || spent {
            prop_assert!(decision.is_err(), "{decision:?}");
        }
        if let Ok(allowed) = decision {
            prop_assert_eq!(g.status(now), GrantStatus::Active);
            prop_assert!(g.max_uses.is_none_or(|max| allowed.uses <= max));
        }
    }

    #[test]
    fn never_allowed_outside_the_granted_fields_and_actions(
        g in any_grant(),
        fields in any_fields(),
        action in any_action(),
    ) {
        let terms = sd_base();
        let request = UseRequest { client_id: "c", action, fields: &fields, now: NOW };
        let decision = decide_use(Some(&g), &facts(&terms), &request);
        let outside = fields.iter().any(|(path, category)| {
            !g.fields.iter().any(|f| f == path || f == category)
        });
        if outside || !g.actions.contains(&action) {
            prop_assert!(decision.is_err(), "{decision:?}");
        }
    }

    #[test]
    fn never_allowed_without_the_brand_and_its_agreement(
        g in any_grant(),
        brand in any_brand(),
        agreement_id in prop_oneof![Just("a"), Just("b")],
        accepted in any::<bool>(),
        version in (TERMS_VERSION - 1)..=TERMS_VERSION,
        fields in any_fields(),
        client_id in prop_oneof![Just("c"), Just("d")],
    ) {
        let terms = sd_base();
        let mut f = facts(&terms);
        f.brand = brand;
        f.agreement = Some(AgreementFacts {
            id: agreement_id,
            status: if accepted { AgreementStatus::Accepted } else { AgreementStatus::Withdrawn },
            terms_version: version,
            accepted_at: Some(AGREED),
        });
        let request = UseRequest { client_id, action: GrantAction::Read, fields: &fields, now: NOW };
        if decide_use(Some(&g), &f, &request).is_ok() {
            prop_assert_eq!(brand, Some(BrandStatus::Active));
            prop_assert_eq!(client_id, g.client_id.as_str());
            prop_assert!(accepted && version == TERMS_VERSION);
            prop_assert_eq!(agreement_id, g.agreement_id.as_str());
        }
    }

    #[test]
    fn allowed_uses_never_exceed_the_limit(
        max_uses in 1u64..8,
        attempts in 0usize..16,
        fields in any_fields(),
    ) {
        let terms = sd_base();
        let mut g = grant();
        g.fields = FIELDS.iter().map(|(path, _)| (*path).to_owned()).collect();
        g.max_uses = Some(max_uses);
        let mut allowed = 0u64;
        for i in 0..attempts {
            let now = NOW + Duration::seconds(i64::try_from(i).unwrap_or(0));
            let request = read(&fields, now);
            if let Ok(using) = decide_use(Some(&g), &facts(&terms), &request) {
                using.apply(&mut g);
                allowed += 1;
            }
            prop_assert!(g.uses <= max_uses);
        }
        // Every use up to the limit goes through: the limit is the only thing in the way.
        let expected = u64::try_from(attempts).unwrap_or(u64::MAX).min(max_uses);
        prop_assert_eq!(allowed, expected);
        prop_assert_eq!(g.uses, expected);
    }

    #[test]
    fn time_moving_forward_never_undoes_an_expiry(
        g in any_grant(),
        fields in any_fields(),
        action in any_action(),
        earlier in -7_200i64..7_200,
        later_by in 0i64..7_200,
    ) {
        let terms = sd_base();
        let then = NOW + Duration::seconds(earlier);
        let later = then + Duration::seconds(later_by);
        let at = |now| UseRequest { client_id: "c", action, fields: &fields, now };
        let first = decide_use(Some(&g), &facts(&terms), &at(then));
        if first == Err(UseRefusal::Inactive(GrantStatus::Expired)) {
            let second = decide_use(Some(&g), &facts(&terms), &at(later));
            prop_assert!(second.is_err(), "{second:?}");
        }
    }
}
