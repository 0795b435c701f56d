//! What brands are told about their grants, and what they can read of them.
//!
//! A grant changes for a brand in four ways: the person makes it (`vrm.grant.created.v1`), new
//! terms suspend it until the brand accepts them (`vrm.grant.suspended.v1`), accepting restores
//! it (`vrm.grant.restored.v1`), or it ends by the person, the brand or new terms that no longer
//! permit it (`vrm.grant.revoked.v1`). Each event is a CloudEvent built by
//! [`OpenVault::cloud_event`], the one place events are made, and appended to the brand's stream
//! (and outbox) in the same atomic write as the change it reports. The grant keeps a
//! [`BrandNotice`] for each, so the person's app can say what the brand was told and when.
//!
//! `GET /brand/v1/grants` lists the same [`BrandGrant`] view the events carry.

use serde::Serialize;
use serde_json::Value;
use time::OffsetDateTime;
use utoipa::ToSchema;

use super::OpenVault;
use super::events::append_in;
use crate::crypto::KeyedHash;
use crate::domain::grants::{BrandNotice, Grant, GrantDecision, GrantOrigin, GrantStatus};
use crate::error::AppError;
use crate::store::Tx;

/// The CloudEvents types of grant events.
pub const GRANT_CREATED: &str = "vrm.grant.created.v1";
pub const GRANT_SUSPENDED: &str = "vrm.grant.suspended.v1";
pub const GRANT_RESTORED: &str = "vrm.grant.restored.v1";
pub const GRANT_REVOKED: &str = "vrm.grant.revoked.v1";

/// A grant as its brand sees it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BrandGrant {
    /// Pass it as `grant_id` in `authorization_details` to get a token for it.
    #[schema(example = "g_abcdefghijklmnop")]
    pub id: String,
    /// Record paths (`contact.email`) and data categories (`pd:EmailAddress`).
    pub fields: Vec<String>,
    /// `read` and/or `write`.
    pub actions: Vec<String>,
    /// The DPV purpose the brand may use the data for.
    #[schema(example = "dpv:ServiceProvision")]
    pub purpose: String,
    /// `owner` (the person offered it) or `consent` (the brand asked and the person approved).
    pub origin: &'static str,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    /// Until when it may be used.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: OffsetDateTime,
    pub max_uses: Option<u64>,
    pub uses: u64,
    /// Uses left, when the grant has a limit.
    pub uses_left: Option<u64>,
    /// `active`, `suspended` (the person's terms changed: accept them and it works again if
    /// they still permit it), `revoked`, `expired` or `exhausted`.
    #[schema(example = "active")]
    pub state: &'static str,
    /// Why the vault revoked it when new terms no longer permitted it: the deciding rule.
    pub revocation: Option<RuleView>,
}

/// A rule of the person's terms and what it decided, in plain words.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RuleView {
    /// The rule's id in the terms document, or the basis that decided.
    pub rule: String,
    pub reason: String,
}

impl From<&GrantDecision> for RuleView {
    fn from(d: &GrantDecision) -> RuleView {
        RuleView {
            rule: d.rule.clone(),
            reason: d.reason.clone(),
        }
    }
}

/// A terms version a brand is pointed at.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TermsRef {
    pub version: u64,
    #[schema(example = "sha256:...")]
    pub hash: String,
}

/// The `data` of every `vrm.grant.*.v1` event.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct GrantEventData {
    /// The brand's pseudonym for the person.
    pub person: String,
    /// The grant as it is after the change.
    pub grant: BrandGrant,
    /// What happened, in plain words.
    pub reason: String,
    /// For `vrm.grant.revoked.v1` by new terms: the rule that decided.
    pub rule: Option<String>,
    /// For suspension and restoration: the terms version it depends on.
    pub terms: Option<TermsRef>,
}

/// What a grant event says besides the grant itself.
#[derive(Debug, Clone)]
pub(crate) struct GrantNews {
    /// One of the `GRANT_*` types.
    pub kind: &'static str,
    /// The grant's state after the change.
    pub state: GrantStatus,
    /// What happened, in plain words.
    pub reason: String,
    pub rule: Option<String>,
    pub terms: Option<TermsRef>,
}

/// A CloudEvent ready to be appended to one brand's stream.
#[derive(Debug, Clone)]
pub(crate) struct Outgoing {
    pub client_id: String,
    pub kind: &'static str,
    pub event: Value,
    pub webhook: bool,
}

impl Outgoing {
    /// Appends the event inside a change; returns its cursor.
    pub fn append_in(
        &self,
        tx: &mut Tx<'_>,
        index: &KeyedHash,
        now: OffsetDateTime,
    ) -> Result<u64, AppError> {
        append_in(tx, index, &self.client_id, &self.event, self.webhook, now)
    }

    /// What the grant keeps of it.
    pub fn notice(&self, at: OffsetDateTime) -> BrandNotice {
        BrandNotice {
            event: self.kind.to_owned(),
            at,
        }
    }
}

fn origin_name(origin: GrantOrigin) -> &'static str {
    match origin {
        GrantOrigin::Owner => "owner",
        GrantOrigin::Consent => "consent",
    }
}

/// The brand's view of `grant` in `state`.
pub(crate) fn brand_grant(grant: &Grant, state: GrantStatus) -> BrandGrant {
    BrandGrant {
        id: grant.id.clone(),
        fields: grant.fields.clone(),
        actions: grant
            .actions
            .iter()
            .map(|a| a.as_str().to_owned())
            .collect(),
        purpose: grant.purpose.clone(),
        origin: origin_name(grant.origin),
        created_at: grant.created_at,
        expires_at: grant.expires_at,
        max_uses: grant.max_uses,
        uses: grant.uses,
        uses_left: grant.uses_left(),
        state: state.as_str(),
        revocation: grant.revocation.as_ref().map(RuleView::from),
    }
}

impl OpenVault {
    /// A CloudEvent of `kind` for one brand, made by the one event builder, with whether the
    /// brand takes webhooks.
    pub(crate) fn outgoing(
        &self,
        client_id: &str,
        kind: &'static str,
        subject: &str,
        data: &impl Serialize,
        now: OffsetDateTime,
    ) -> Result<Outgoing, AppError> {
        let data = serde_json::to_value(data)
            .map_err(|e| AppError::internal("encoding an event's data", e))?;
        let webhook = self
            .subscription(client_id)?
            .is_some_and(|s| s.takes_webhooks());
        Ok(Outgoing {
            client_id: client_id.to_owned(),
            kind,
            event: self.cloud_event(kind, subject, data, now)?,
            webhook,
        })
    }

    /// A grant event for the grant's brand.
    pub(crate) fn grant_event(
        &self,
        grant: &Grant,
        news: GrantNews,
        now: OffsetDateTime,
    ) -> Result<Outgoing, AppError> {
        let data = GrantEventData {
            person: self.pseudonym(&grant.client_id),
            grant: brand_grant(grant, news.state),
            reason: news.reason,
            rule: news.rule,
            terms: news.terms,
        };
        self.outgoing(&grant.client_id, news.kind, &grant.id, &data, now)
    }

    /// `vrm.grant.revoked.v1` for a grant the person or the brand revoked.
    pub(crate) fn grant_revoked_event(
        &self,
        grant: &Grant,
        by_brand: bool,
        now: OffsetDateTime,
    ) -> Result<Outgoing, AppError> {
        let reason = if by_brand {
            "You revoked this grant."
        } else {
            "The person revoked this grant."
        };
        self.grant_event(
            grant,
            GrantNews {
                kind: GRANT_REVOKED,
                state: GrantStatus::Revoked,
                reason: reason.into(),
                rule: None,
                terms: None,
            },
            now,
        )
    }

    /// Every grant of `client_id`, newest first, as the brand sees it.
    pub fn brand_grants(&self, client_id: &str) -> Result<Vec<BrandGrant>, AppError> {
        self.list_grants()?
            .into_iter()
            .filter(|g| g.client_id == client_id)
            .map(|g| Ok(brand_grant(&g, self.grant_status(&g)?)))
            .collect()
    }
}
