//! Deciding one request against terms: the basis first, then the document's prohibitions, then
//! its permissions.
//!
//! The caller supplies the time and the use count in the [`AccessRequest`]: this module reads no
//! clock and keeps no state, so the same request always gets the same [`Decision`].

use serde::Serialize;
use time::OffsetDateTime;

use super::vocabulary::{Action, list_actions};
use super::{ALL_PERSONAL_DATA, Basis, Cmp, Constraint, Purpose, Rule, Terms};
use crate::domain::records::DataCategory;

/// One request to check against the terms. Time and use count come from the caller: the
/// domain reads no clock and keeps no state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessRequest {
    pub action: Action,
    /// The data category of every field the brand would touch.
    pub categories: Vec<String>,
    /// The purpose the brand declared, a DPV id such as `dpv:ServiceProvision`.
    pub purpose: String,
    /// When the request is made.
    pub at: OffsetDateTime,
    /// How many times the grant was used before this request.
    pub count_so_far: u64,
    /// When the brand accepted these terms; `elapsedTime` counts from here.
    pub agreed_at: OffsetDateTime,
}

/// The answer, with the rule that decided it and why, for the audit log and the person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    pub permitted: bool,
    /// `"permission[0]"`, `"prohibition[2]"`, `"basis SD-BASE"`, `"request"` or
    /// `"no permission matches"`.
    pub rule: String,
    pub reason: String,
}

impl Decision {
    fn deny(rule: impl Into<String>, reason: String) -> Decision {
        Decision {
            permitted: false,
            rule: rule.into(),
            reason,
        }
    }
}

/// Decides a request. The basis comes first, then the document's prohibitions, then its
/// permissions: a prohibition beats a permission, always, and nothing is permitted unless a
/// permission says so.
pub fn evaluate(terms: &Terms, request: &AccessRequest) -> Decision {
    if let Some(denied) = check_request(request) {
        return denied;
    }
    if let Some(denied) = check_basis(terms.basis, request) {
        return denied;
    }
    let what = describe(request);
    if let Some(i) = terms.prohibitions.iter().position(|p| p.forbids(request)) {
        return Decision::deny(
            format!("prohibition[{i}]"),
            format!("the terms prohibit {what}"),
        );
    }
    if let Some(i) = terms.permissions.iter().position(|p| p.allows(request)) {
        return Decision {
            permitted: true,
            rule: format!("permission[{i}]"),
            reason: format!("the terms permit {what}"),
        };
    }
    let reason = terms
        .permissions
        .iter()
        .enumerate()
        .find_map(|(i, p)| p.near_miss(request).map(|(j, c)| (i, j, c)))
        .map_or_else(
            || format!("no permission covers {what}"),
            |(i, j, c)| {
                format!(
                    "permission[{i}] would cover {what}, but its constraint[{j}] ({c}) does \
                     not hold"
                )
            },
        );
    Decision::deny("no permission matches", reason)
}

/// A request naming a purpose or category the vault does not know is refused before anything
/// else: it cannot be matched against rules written in the closed vocabulary.
fn check_request(request: &AccessRequest) -> Option<Decision> {
    if Purpose::find(&request.purpose).is_none() {
        return Some(Decision::deny(
            "request",
            format!("\"{}\" is not a purpose the vault knows", request.purpose),
        ));
    }
    request
        .categories
        .iter()
        .find(|c| DataCategory::find(c).is_none())
        .map(|c| {
            Decision::deny(
                "request",
                format!("\"{c}\" is not a data category the vault knows"),
            )
        })
}

fn check_basis(basis: Basis, request: &AccessRequest) -> Option<Decision> {
    let rule = format!("basis {basis}");
    let purpose = &request.purpose;
    if let Some(p) = basis
        .prohibitions()
        .iter()
        .find(|p| p.action.covers(request.action) && p.forbids_purpose(purpose))
    {
        return Some(Decision::deny(
            rule,
            format!(
                "{basis} prohibits {}, and {purpose} is a kind of it",
                p.what
            ),
        ));
    }
    if !basis.permits_action(request.action) {
        let reason = match request.action {
            Action::ReceiveIntent => {
                format!("{basis} does not cover intentcasting; that needs PDC-INTENT")
            }
            Action::Read | Action::Write => format!(
                "{basis} lets brands {} only",
                list_actions(basis.permitted_actions())
            ),
        };
        return Some(Decision::deny(rule, reason));
    }
    if !basis.permits_purpose(purpose) {
        return Some(Decision::deny(
            rule,
            format!("{purpose} is not a purpose {basis} permits"),
        ));
    }
    None
}

fn describe(request: &AccessRequest) -> String {
    let categories = if request.categories.is_empty() {
        "no personal data".to_owned()
    } else {
        request.categories.join(", ")
    };
    format!(
        "{} {categories} for {}",
        request.action.verb(),
        request.purpose
    )
}

impl Rule {
    /// A permission allows a request when its action covers it, its targets cover every
    /// category asked for, and every constraint holds.
    pub(super) fn allows(&self, request: &AccessRequest) -> bool {
        self.action.covers(request.action)
            && request.categories.iter().all(|c| self.covers_category(c))
            && self.constraints.iter().all(|c| c.holds(request))
    }

    /// A prohibition forbids a request when its action covers it, it targets any of the
    /// categories asked for (all personal data covers even a request that names none), and every
    /// constraint holds.
    pub(super) fn forbids(&self, request: &AccessRequest) -> bool {
        self.action.covers(request.action)
            && (self.targets.contains(&ALL_PERSONAL_DATA)
                || request.categories.iter().any(|c| self.covers_category(c)))
            && self.constraints.iter().all(|c| c.holds(request))
    }

    /// For a permission that would allow the request but for a time or count constraint, that
    /// constraint: the person is better served by "the 5 uses are spent" than by "no permission".
    fn near_miss(&self, request: &AccessRequest) -> Option<(usize, &Constraint)> {
        let otherwise_fits = self.action.covers(request.action)
            && request.categories.iter().all(|c| self.covers_category(c))
            && self.purpose_applies(&request.purpose);
        if !otherwise_fits {
            return None;
        }
        self.constraints
            .iter()
            .enumerate()
            .find(|(_, c)| !c.holds(request))
    }
}

impl Constraint {
    fn holds(&self, request: &AccessRequest) -> bool {
        match self {
            Constraint::Purpose { .. } => self.purpose_holds(&request.purpose),
            Constraint::DateTime { op, at, .. } => op.compare(request.at, *at),
            // The count of this use: with "lteq 5" the fifth use is the last one allowed.
            Constraint::Count { op, n } => op.compare(request.count_so_far.saturating_add(1), *n),
            Constraint::ElapsedTime { op, period, .. } => {
                op.compare(request.at - request.agreed_at, *period)
            }
        }
    }
}

impl Cmp {
    fn compare<T: Ord>(self, left: T, right: T) -> bool {
        match self {
            Cmp::Eq => left == right,
            Cmp::Lt => left < right,
            Cmp::Lteq => left <= right,
            Cmp::Gt => left > right,
            Cmp::Gteq => left >= right,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use serde_json::json;
    use time::Duration;
    use time::macros::datetime;

    use crate::domain::terms::INTENTCASTING_PURPOSE;
    use crate::domain::terms::testing::*;

    // --- evaluation -------------------------------------------------------------------------

    #[test]
    fn permits_what_a_permission_covers() {
        let sd_base = terms(&template("sd-base"));
        let d = evaluate(&sd_base, &read_email("dpv:ServiceProvision"));
        assert!(d.permitted, "{d:?}");
        assert_eq!(d.rule, "permission[0]");
        assert_eq!(
            d.reason,
            "the terms permit reading pd:EmailAddress for dpv:ServiceProvision"
        );
        let write = request(Action::Write, &["pd:Identifier"], "dpv:AccountManagement");
        assert_eq!(evaluate(&sd_base, &write).rule, "permission[1]");
        assert!(evaluate(&sd_base, &write).permitted);
        let several = request(
            Action::Read,
            &["pd:Name", "pd:PhysicalAddress"],
            "dpv:DeliveryOfGoods",
        );
        assert!(evaluate(&sd_base, &several).permitted);
    }

    #[test]
    fn the_basis_decides_before_the_document() {
        let sd_base = terms(&template("sd-base"));
        let d = evaluate(&sd_base, &read_email("dpv:TargetedAdvertising"));
        assert!(!d.permitted);
        assert_eq!(d.rule, "basis SD-BASE");
        assert_eq!(
            d.reason,
            "SD-BASE prohibits advertising and marketing, and dpv:TargetedAdvertising is a kind of it"
        );
        // A purpose the basis does not permit, though it does not prohibit it by name.
        let d = evaluate(&sd_base, &read_email("dpv:SellProducts"));
        assert_eq!((d.permitted, d.rule.as_str()), (false, "basis SD-BASE"));
        assert!(d.reason.contains("not a purpose SD-BASE permits"));
        // Actions: no intents on service delivery, no writes on intentcasting.
        let d = evaluate(
            &sd_base,
            &request(
                Action::ReceiveIntent,
                &["pd:Location"],
                INTENTCASTING_PURPOSE,
            ),
        );
        assert_eq!((d.permitted, d.rule.as_str()), (false, "basis SD-BASE"));
        assert!(d.reason.contains("PDC-INTENT"));
        let intent = terms(&template("pdc-intent"));
        let d = evaluate(
            &intent,
            &request(Action::Write, &["pd:Preference"], INTENTCASTING_PURPOSE),
        );
        assert_eq!((d.permitted, d.rule.as_str()), (false, "basis PDC-INTENT"));
    }

    #[test]
    fn intents_flow_under_pdc_intent_only() {
        let intent = terms(&template("pdc-intent"));
        let receive = request(
            Action::ReceiveIntent,
            &["pd:Location", "pd:Preference"],
            INTENTCASTING_PURPOSE,
        );
        let d = evaluate(&intent, &receive);
        assert!(d.permitted, "{d:?}");
        assert_eq!(d.rule, "permission[0]");
        // Disclosed data outside the permission's categories is not covered.
        let d = evaluate(
            &intent,
            &request(
                Action::ReceiveIntent,
                &["pd:Location", "pd:BirthDate"],
                INTENTCASTING_PURPOSE,
            ),
        );
        assert_eq!(
            (d.permitted, d.rule.as_str()),
            (false, "no permission matches")
        );
        // Answering with an offer is reading for selling to the person.
        let offer = request(
            Action::Read,
            &["pd:EmailAddress"],
            "dpv:SellProductsToDataSubject",
        );
        assert!(evaluate(&intent, &offer).permitted);
        let d = evaluate(&intent, &read_email("dpv:DirectMarketing"));
        assert_eq!(d.rule, "basis PDC-INTENT");
    }

    #[test]
    fn unknown_purposes_and_categories_in_a_request_are_refused() {
        let sd_base = terms(&template("sd-base"));
        let d = evaluate(&sd_base, &read_email("dpv:Whatever"));
        assert_eq!((d.permitted, d.rule.as_str()), (false, "request"));
        let d = evaluate(
            &sd_base,
            &request(Action::Read, &["pd:ShoeSize"], "dpv:ServiceProvision"),
        );
        assert_eq!((d.permitted, d.rule.as_str()), (false, "request"));
        assert!(d.reason.contains("pd:ShoeSize"));
    }

    #[test]
    fn a_prohibition_beats_a_permission() {
        let mut doc = template("sd-base");
        push(
            &mut doc["prohibition"],
            json!({"action": "read", "target": "pd:EmailAddress",
            "constraint": [purpose("eq", "dpv:ServiceProvision")]}),
        );
        let t = terms(&doc);
        let d = evaluate(&t, &read_email("dpv:ServiceProvision"));
        assert_eq!((d.permitted, d.rule.as_str()), (false, "prohibition[8]"));
        assert_eq!(
            d.reason,
            "the terms prohibit reading pd:EmailAddress for dpv:ServiceProvision"
        );
        // Any prohibited category in the request taints the whole request.
        let both = request(
            Action::Read,
            &["pd:Name", "pd:EmailAddress"],
            "dpv:ServiceProvision",
        );
        assert_eq!(evaluate(&t, &both).rule, "prohibition[8]");
        // Other categories and purposes are still permitted.
        assert!(
            evaluate(
                &t,
                &request(Action::Read, &["pd:Name"], "dpv:ServiceProvision")
            )
            .permitted
        );
        assert!(evaluate(&t, &read_email("dpv:CustomerCare")).permitted);
    }

    #[test]
    fn nothing_is_permitted_without_a_permission() {
        let sd_base = terms(&template("sd-base"));
        let d = evaluate(
            &sd_base,
            &request(Action::Read, &["pd:Health"], "dpv:ServiceProvision"),
        );
        assert_eq!(
            (d.permitted, d.rule.as_str()),
            (false, "no permission matches")
        );
        assert_eq!(
            d.reason,
            "no permission covers reading pd:Health for dpv:ServiceProvision"
        );
        // Permitted by the basis but by no permission of this document.
        let d = evaluate(&sd_base, &read_email("dpv:LegalCompliance"));
        assert_eq!(d.rule, "no permission matches");
        let d = evaluate(
            &sd_base,
            &request(Action::Write, &["pd:EmailAddress"], "dpv:AccountManagement"),
        );
        assert_eq!(d.rule, "no permission matches");
    }

    #[test]
    fn count_allows_that_many_uses() {
        let t = terms(&sd_base_with(count("lteq", 2)));
        let mut r = read_email("dpv:ServiceProvision");
        for (used, permitted) in [(0, true), (1, true), (2, false), (u64::MAX, false)] {
            r.count_so_far = used;
            assert_eq!(evaluate(&t, &r).permitted, permitted, "after {used} uses");
        }
        r.count_so_far = 2;
        assert_eq!(
            evaluate(&t, &r).reason,
            "permission[0] would cover reading pd:EmailAddress for dpv:ServiceProvision, but its \
             constraint[1] (count lteq 2) does not hold"
        );
        let t = terms(&sd_base_with(count("lt", 2)));
        r.count_so_far = 1;
        assert!(!evaluate(&t, &r).permitted);
        let t = terms(&sd_base_with(count("eq", 1)));
        r.count_so_far = 0;
        assert!(evaluate(&t, &r).permitted);
        let t = terms(&sd_base_with(count("gteq", 3)));
        r.count_so_far = 1;
        assert!(!evaluate(&t, &r).permitted);
        r.count_so_far = 2;
        assert!(evaluate(&t, &r).permitted);
    }

    #[test]
    fn date_time_bounds_a_rule() {
        let t = terms(&sd_base_with(date_time("lt", "2027-01-01T00:00:00Z")));
        let mut r = read_email("dpv:ServiceProvision");
        assert!(evaluate(&t, &r).permitted);
        r.at = datetime!(2027-01-01 00:00 UTC);
        assert!(!evaluate(&t, &r).permitted);
        let t = terms(&sd_base_with(date_time(
            "gteq",
            "2027-01-01T01:00:00+01:00",
        )));
        assert!(evaluate(&t, &r).permitted, "offsets are honoured");
        // A prohibition from a date on.
        let mut doc = template("sd-base");
        push(
            &mut doc["prohibition"],
            json!({"action": "read", "target": "pd:EmailAddress",
            "constraint": [date_time("gt", "2026-07-01T00:00:00Z")]}),
        );
        let t = terms(&doc);
        r.at = NOW;
        assert!(evaluate(&t, &r).permitted);
        r.at = datetime!(2026-07-02 00:00 UTC);
        assert_eq!(evaluate(&t, &r).rule, "prohibition[8]");
    }

    #[test]
    fn elapsed_time_counts_from_the_agreement() {
        let t = terms(&sd_base_with(elapsed("lteq", "P30D")));
        let mut r = read_email("dpv:ServiceProvision");
        r.at = AGREED + Duration::days(30);
        assert!(evaluate(&t, &r).permitted);
        r.at = AGREED + Duration::days(30) + Duration::seconds(1);
        assert!(!evaluate(&t, &r).permitted);
        let t = terms(&sd_base_with(elapsed("lt", "PT1H")));
        r.at = AGREED + Duration::minutes(59);
        assert!(evaluate(&t, &r).permitted);
        r.at = AGREED + Duration::hours(1);
        assert!(!evaluate(&t, &r).permitted);
    }

    #[test]
    fn a_prohibition_on_all_personal_data_covers_a_request_naming_none() {
        let intent = terms(&template("pdc-intent"));
        let bare = request(Action::ReceiveIntent, &[], INTENTCASTING_PURPOSE);
        assert!(evaluate(&intent, &bare).permitted);
        let mut doc = template("pdc-intent");
        push(
            &mut doc["prohibition"],
            json!({"action": "use", "target": ALL_PERSONAL_DATA,
            "constraint": [date_time("gt", "2026-01-01T00:00:00Z")]}),
        );
        let d = evaluate(&terms(&doc), &bare);
        assert_eq!((d.permitted, d.rule.as_str()), (false, "prohibition[8]"));
        assert_eq!(
            d.reason,
            "the terms prohibit receiving an intent with no personal data for dpv:RequestedServiceProvision"
        );
    }
}
