//! Data grants on the owner's side (`/api/v1/grants`, the consent page's `/api/v1/consent`) and
//! on the brand's (`/brand/v1/data`, `/brand/v1/grants`).

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;
use tracing::instrument;
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::auth::{ClientIp, OwnerRefusals, OwnerSession};
use super::brand_api::{BrandRefusals, BrandToken};
use super::error::{BadParameter, ErrorBody, Json, JsonBodyRefusals, Path, Query};
use super::extract::{RecordPathParam, Unsealed};
use crate::domain::audit::Actor;
use crate::domain::grants::{Grant, GrantOrigin, parse_actions, parse_fields};
use crate::domain::terms::Purpose;
use crate::error::AppError;
use crate::service::OpenVault;
use crate::service::grant_events::BrandGrant;
use crate::service::grants::GrantRequest;

#[derive(Debug, Serialize, ToSchema)]
pub struct DecisionView {
    /// The rule of the terms that permitted it, e.g. `permission[0]`.
    pub rule: String,
    pub reason: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct GrantView {
    pub id: String,
    pub client_id: String,
    pub client_name: String,
    /// Record paths and DPV data categories.
    pub fields: Vec<String>,
    /// `read`, `write`.
    pub actions: Vec<&'static str>,
    pub purpose: String,
    pub purpose_label: String,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    pub max_uses: Option<u64>,
    pub uses: u64,
    /// `active`, `suspended` (you published new terms the brand has not accepted yet),
    /// `revoked`, `expired` or `exhausted`.
    pub status: &'static str,
    /// `owner` (offered) or `consent` (asked by the brand, approved by you).
    pub origin: &'static str,
    pub agreement_id: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub revoked_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_used_at: Option<OffsetDateTime>,
    pub decision: DecisionView,
    /// When new terms no longer permitted it and the vault revoked it: the deciding rule.
    pub revocation: Option<DecisionView>,
    /// What the brand was told about this grant (CloudEvents types), oldest first.
    pub brand_told: Vec<NoticeView>,
}

/// One event the brand was sent about a grant.
#[derive(Debug, Serialize, ToSchema)]
pub struct NoticeView {
    /// `vrm.grant.created.v1`, `vrm.grant.suspended.v1`, `vrm.grant.restored.v1` or
    /// `vrm.grant.revoked.v1`.
    pub event: String,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

fn grant_view(open: &OpenVault, grant: Grant) -> Result<GrantView, AppError> {
    let status = open.grant_status(&grant)?;
    Ok(GrantView {
        status: status.as_str(),
        purpose_label: Purpose::find(&grant.purpose)
            .map(|p| p.label.to_owned())
            .unwrap_or_default(),
        origin: match grant.origin {
            GrantOrigin::Owner => "owner",
            GrantOrigin::Consent => "consent",
        },
        actions: grant.actions.iter().map(|a| a.as_str()).collect(),
        id: grant.id,
        client_id: grant.client_id,
        client_name: grant.brand_name,
        fields: grant.fields,
        purpose: grant.purpose,
        expires_at: grant.expires_at,
        max_uses: grant.max_uses,
        uses: grant.uses,
        agreement_id: grant.agreement_id,
        created_at: grant.created_at,
        revoked_at: grant.revoked_at,
        last_used_at: grant.last_used_at,
        decision: DecisionView {
            rule: grant.decision.rule,
            reason: grant.decision.reason,
        },
        revocation: grant.revocation.map(|d| DecisionView {
            rule: d.rule,
            reason: d.reason,
        }),
        brand_told: grant
            .told
            .into_iter()
            .map(|n| NoticeView {
                event: n.event,
                at: n.at,
            })
            .collect(),
    })
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewGrant {
    pub client_id: String,
    /// Record paths (`contact.email`) and/or DPV data categories (`pd:EmailAddress`).
    pub fields: Vec<String>,
    /// `read`, and `write` where the brand may add to a record.
    pub actions: Vec<String>,
    /// A DPV purpose, e.g. `dpv:ServiceProvision`.
    pub purpose: String,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    pub max_uses: Option<u64>,
}

/// Offers a brand access to some of your data: it then gets a token for it by client credentials
/// with `authorization_details` naming the grant.
#[utoipa::path(post, path = "/api/v1/grants", tag = "grants", request_body = NewGrant,
    responses(OwnerRefusals, JsonBodyRefusals, (status = 201, body = GrantView), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody, description = "`no_agreement`"),
              (status = 422, body = ErrorBody, description = "`grant_not_permitted` (with `rule`) or `invalid_grant`")),
    security(("owner_token" = []), ("owner_cookie" = [])))]
#[instrument(skip_all)]
pub async fn create_grant(
    _session: OwnerSession,
    Unsealed(open): Unsealed,
    Json(request): Json<NewGrant>,
) -> Result<(StatusCode, Json<GrantView>), AppError> {
    let invalid = |e: String| AppError::invalid("invalid_grant", e);
    crate::domain::grants::check_purpose(&request.purpose).map_err(invalid)?;
    let grant = open
        .create_grant(GrantRequest {
            client_id: request.client_id,
            fields: parse_fields(&request.fields).map_err(invalid)?,
            actions: parse_actions(&request.actions).map_err(invalid)?,
            purpose: request.purpose,
            expires_at: request.expires_at,
            max_uses: request.max_uses,
            origin: GrantOrigin::Owner,
        })
        .await?;
    Ok((StatusCode::CREATED, Json(grant_view(&open, grant)?)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct GrantFilter {
    /// `active` or `ended`; both when absent.
    pub status: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct GrantList {
    /// Newest first.
    pub grants: Vec<GrantView>,
}

/// Your grants, newest first.
#[utoipa::path(get, path = "/api/v1/grants", tag = "grants", params(GrantFilter),
    responses(OwnerRefusals, BadParameter, (status = 200, body = GrantList)),
    security(("owner_token" = []), ("owner_cookie" = [])))]
pub async fn list_grants(
    _session: OwnerSession,
    Query(filter): Query<GrantFilter>,
    Unsealed(open): Unsealed,
) -> Result<Json<GrantList>, AppError> {
    let want_active = match filter.status.as_deref() {
        None => None,
        Some("active") => Some(true),
        Some("ended") => Some(false),
        Some(other) => {
            return Err(AppError::BadRequest(format!(
                "status must be active or ended, not {other}"
            )));
        }
    };
    let mut grants = Vec::new();
    for grant in open.list_grants()? {
        let view = grant_view(&open, grant)?;
        if want_active.is_none_or(|active| (view.status == "active") == active) {
            grants.push(view);
        }
    }
    Ok(Json(GrantList { grants }))
}

/// One grant.
#[utoipa::path(get, path = "/api/v1/grants/{id}", tag = "grants", params(("id" = String, Path)),
    responses(OwnerRefusals, BadParameter, (status = 200, body = GrantView), (status = 404, body = ErrorBody)),
    security(("owner_token" = []), ("owner_cookie" = [])))]
pub async fn get_grant(
    _session: OwnerSession,
    Path(id): Path<String>,
    Unsealed(open): Unsealed,
) -> Result<Json<GrantView>, AppError> {
    let grant = open.grant(&id)?;
    Ok(Json(grant_view(&open, grant)?))
}

/// Revokes a grant: the brand's very next request with it fails, even with an unexpired token.
#[utoipa::path(delete, path = "/api/v1/grants/{id}", tag = "grants", params(("id" = String, Path)),
    responses(OwnerRefusals, BadParameter, (status = 200, body = GrantView), (status = 404, body = ErrorBody)),
    security(("owner_token" = []), ("owner_cookie" = [])))]
#[instrument(skip_all)]
pub async fn revoke_grant(
    _session: OwnerSession,
    Path(id): Path<String>,
    Unsealed(open): Unsealed,
) -> Result<Json<GrantView>, AppError> {
    let grant = open.revoke_grant(&id, Actor::Owner).await?;
    Ok(Json(grant_view(&open, grant)?))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Revoked {
    pub revoked: usize,
}

/// Revokes every active grant of a brand.
#[utoipa::path(delete, path = "/api/v1/brands/{client_id}/grants", tag = "grants",
    params(("client_id" = String, Path)),
    responses(OwnerRefusals, BadParameter, (status = 200, body = Revoked), (status = 404, body = ErrorBody)),
    security(("owner_token" = []), ("owner_cookie" = [])))]
#[instrument(skip_all)]
pub async fn revoke_brand_grants(
    _session: OwnerSession,
    Path(client_id): Path<String>,
    Unsealed(open): Unsealed,
) -> Result<Json<Revoked>, AppError> {
    let revoked = open.revoke_brand_grants(&client_id).await?;
    Ok(Json(Revoked { revoked }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AccessView {
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// `data.read` or `data.written`.
    pub action: String,
    pub fields: Vec<String>,
    pub purpose: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AccessList {
    /// Newest first.
    pub accesses: Vec<AccessView>,
}

/// What the brand read or wrote with a grant, and when (from the audit log).
#[utoipa::path(get, path = "/api/v1/grants/{id}/accesses", tag = "grants", params(("id" = String, Path)),
    responses(OwnerRefusals, BadParameter, (status = 200, body = AccessList), (status = 404, body = ErrorBody)),
    security(("owner_token" = []), ("owner_cookie" = [])))]
pub async fn grant_accesses(
    _session: OwnerSession,
    Path(id): Path<String>,
    Unsealed(open): Unsealed,
) -> Result<Json<AccessList>, AppError> {
    let accesses = open
        .grant_accesses(&id)?
        .into_iter()
        .map(|a| AccessView {
            at: a.at,
            action: a.action,
            fields: a.fields,
            purpose: a.purpose,
        })
        .collect();
    Ok(Json(AccessList { accesses }))
}

// --- The consent page ----------------------------------------------------------------------

#[derive(Debug, Serialize, ToSchema)]
pub struct ConsentDecision {
    /// Whether your terms permit what the brand asks.
    pub permitted: bool,
    pub rule: String,
    pub reason: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ConsentRequestView {
    pub request_id: String,
    pub client_id: String,
    pub client_name: String,
    pub client_uri: Option<String>,
    pub redirect_uri: String,
    pub purpose: String,
    pub purpose_label: String,
    pub actions: Vec<&'static str>,
    /// Until when the brand asks.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    #[schema(value_type = Vec<Object>)]
    pub fields: Vec<crate::service::authorize::ConsentField>,
    pub decision: ConsentDecision,
    /// Seconds left to decide.
    pub expires_in: i64,
}

/// What a brand asks for, for the consent page: values are masked.
#[utoipa::path(get, path = "/api/v1/consent/{request_id}", tag = "grants", params(("request_id" = String, Path)),
    responses(OwnerRefusals, BadParameter, (status = 200, body = ConsentRequestView), (status = 404, body = ErrorBody)),
    security(("owner_token" = []), ("owner_cookie" = [])))]
pub async fn get_consent(
    _session: OwnerSession,
    Path(request_id): Path<String>,
    Unsealed(open): Unsealed,
) -> Result<Json<ConsentRequestView>, AppError> {
    let view = open.consent_view(&request_id)?;
    let asked = &view.consent.asked;
    Ok(Json(ConsentRequestView {
        request_id: view.consent.id.clone(),
        client_id: view.brand.client_id.clone(),
        client_name: view.brand.client_name.clone(),
        client_uri: view.brand.client_uri.clone(),
        redirect_uri: view.consent.redirect_uri.clone(),
        purpose: asked.purpose.clone(),
        purpose_label: Purpose::find(&asked.purpose)
            .map(|p| p.label.to_owned())
            .unwrap_or_default(),
        actions: asked.actions.iter().map(|a| a.as_str()).collect(),
        expires_at: view.expires_at,
        fields: view.fields,
        decision: match view.decision {
            Ok(d) => ConsentDecision {
                permitted: true,
                rule: d.rule,
                reason: d.reason,
            },
            Err((rule, reason)) => ConsentDecision {
                permitted: false,
                rule,
                reason,
            },
        },
        expires_in: view.expires_in,
    }))
}

// For the OpenAPI document only: the body reads a string, so that another value gets a message
// naming the two.
/// The owner's decision on a consent request.
#[derive(Debug, ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum ConsentDecisionName {
    Approve,
    Deny,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConsentAnswer {
    #[schema(value_type = ConsentDecisionName)]
    pub decision: String,
    /// To approve fewer fields than asked.
    pub fields: Option<Vec<String>>,
    /// To approve for less time than asked.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ConsentRedirect {
    /// Where the browser goes next: back to the brand with a code, or with `error=access_denied`.
    pub redirect_to: String,
}

/// Approves (possibly narrowed) or denies a brand's request.
#[utoipa::path(post, path = "/api/v1/consent/{request_id}", tag = "grants", params(("request_id" = String, Path)),
    request_body = ConsentAnswer,
    responses(OwnerRefusals, BadParameter, JsonBodyRefusals, (status = 200, body = ConsentRedirect), (status = 404, body = ErrorBody),
              (status = 422, body = ErrorBody, description = "wider than asked, or not permitted by your terms")),
    security(("owner_token" = []), ("owner_cookie" = [])))]
#[instrument(skip_all)]
pub async fn answer_consent(
    _session: OwnerSession,
    Path(request_id): Path<String>,
    Unsealed(open): Unsealed,
    Json(answer): Json<ConsentAnswer>,
) -> Result<Json<ConsentRedirect>, AppError> {
    let approve = match answer.decision.as_str() {
        "approve" => true,
        "deny" => false,
        other => {
            return Err(AppError::BadRequest(format!(
                "decision must be approve or deny, not {other}"
            )));
        }
    };
    let redirect_to = open
        .decide_consent(&request_id, approve, answer.fields, answer.expires_at)
        .await?;
    Ok(Json(ConsentRedirect { redirect_to }))
}

// --- The brand's side ----------------------------------------------------------------------

fn token_grant(token: &BrandToken) -> Result<&str, AppError> {
    token.0.claims.grant_id().ok_or(AppError::NoGrant)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct GrantedData {
    pub grant_id: String,
    pub purpose: String,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    /// `null` when the grant has no use limit.
    pub uses_left: Option<u64>,
    /// Every granted field that holds data, by path.
    #[schema(value_type = Object)]
    pub fields: BTreeMap<String, Value>,
}

/// Every field the token's grant covers (one use of the grant).
#[utoipa::path(get, path = "/brand/v1/data", tag = "brands",
    responses(BrandRefusals, (status = 200, body = GrantedData),
              (status = 401, body = ErrorBody, description = "token, grant or agreement no longer valid"),
              (status = 403, body = ErrorBody, description = "`no_grant`")),
    security(("brand_token" = [])))]
#[instrument(skip_all)]
pub async fn read_all(
    token: BrandToken,
    Unsealed(open): Unsealed,
) -> Result<Json<GrantedData>, AppError> {
    let grant_id = token_grant(&token)?;
    let (grant, fields) = open.brand_read_all(&token.0.brand, grant_id).await?;
    Ok(Json(GrantedData {
        uses_left: grant.uses_left(),
        grant_id: grant.id,
        purpose: grant.purpose,
        expires_at: grant.expires_at,
        fields,
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct GrantedField {
    pub path: String,
    /// The record's value: any JSON value but null.
    pub value: Value,
    pub category: String,
    pub version: u64,
}

/// One granted field (one use of the grant). A field the grant does not cover is `403
/// not_granted`, whether or not it exists.
#[utoipa::path(get, path = "/brand/v1/data/{path}", tag = "brands",
    params(RecordPathParam),
    responses(BrandRefusals, BadParameter, (status = 200, body = GrantedField),
              (status = 403, body = ErrorBody, description = "`not_granted`"),
              (status = 404, body = ErrorBody, description = "granted, but empty"),
              (status = 422, body = ErrorBody, description = "`invalid_path`")),
    security(("brand_token" = [])))]
#[instrument(skip_all)]
pub async fn read_field(
    token: BrandToken,
    path: Result<RecordPathParam, AppError>,
    Unsealed(open): Unsealed,
) -> Result<Json<GrantedField>, AppError> {
    // A token without a grant answers before a bad path, as it always has.
    let grant_id = token_grant(&token)?;
    let RecordPathParam(path) = path?;
    let (_, record) = open.brand_read(&token.0.brand, grant_id, &path).await?;
    Ok(Json(GrantedField {
        path: record.path.into(),
        value: record.value,
        category: record.category,
        version: record.version,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BrandWrite {
    /// Any JSON value but null, at most 64 KiB.
    pub value: Value,
}

/// Writes a granted field (grants with the `write` action; one use).
#[utoipa::path(put, path = "/brand/v1/data/{path}", tag = "brands",
    params(RecordPathParam),
    request_body = BrandWrite,
    responses(BrandRefusals, BadParameter, JsonBodyRefusals, (status = 200, body = GrantedField), (status = 201, body = GrantedField),
              (status = 403, body = ErrorBody, description = "`not_granted`, `no_grant` or `insufficient_scope`"),
              (status = 422, body = ErrorBody, description = "`invalid_path` or `invalid_value`")),
    security(("brand_token" = [])))]
#[instrument(skip_all)]
pub async fn write_field(
    token: BrandToken,
    path: Result<RecordPathParam, AppError>,
    Unsealed(open): Unsealed,
    Json(body): Json<BrandWrite>,
) -> Result<(StatusCode, Json<GrantedField>), AppError> {
    // A bad body, then a token without a grant, answer before a bad path, as they always have.
    let grant_id = token_grant(&token)?;
    let RecordPathParam(path) = path?;
    let written = open
        .brand_write(&token.0.brand, grant_id, &path, body.value)
        .await?;
    let status = if written.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let record = written.record;
    Ok((
        status,
        Json(GrantedField {
            path: record.path.into(),
            value: record.value,
            category: record.category,
            version: record.version,
        }),
    ))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct GrantStatusView {
    pub id: String,
    /// `active`, `revoked`, `expired` or `exhausted`.
    pub status: &'static str,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    pub uses_left: Option<u64>,
    pub fields: Vec<String>,
    pub actions: Vec<&'static str>,
    pub purpose: String,
}

/// A grant's state, for the brand it was made for (bearer token or client authentication).
#[utoipa::path(get, path = "/brand/v1/grants/{id}", tag = "brands", params(("id" = String, Path)),
    responses(BrandRefusals, BadParameter, (status = 200, body = GrantStatusView), (status = 404, body = ErrorBody),
              (status = 429, body = ErrorBody, description = "`too_many_requests`: too many failed client authentications from this address", headers(("Retry-After" = u64, description = "Seconds to wait")))),
    security(("brand_token" = []), ("client_secret_basic" = [])))]
pub async fn grant_status(
    State(state): State<AppState>,
    ClientIp(from): ClientIp,
    headers: HeaderMap,
    Path(id): Path<String>,
    Unsealed(open): Unsealed,
) -> Result<Json<GrantStatusView>, AppError> {
    let brand = super::brand_api::caller(
        &state,
        from,
        &headers,
        None,
        "/brand/v1/grants",
        ("GET", &format!("/brand/v1/grants/{id}")),
    )
    .await?;
    let grant = open
        .grant_for(&brand, &id)
        .map_err(|_| AppError::NotFound("grant"))?;
    let status = open.grant_status(&grant)?;
    Ok(Json(GrantStatusView {
        status: status.as_str(),
        uses_left: grant.uses_left(),
        actions: grant.actions.iter().map(|a| a.as_str()).collect(),
        id: grant.id,
        expires_at: grant.expires_at,
        fields: grant.fields,
        purpose: grant.purpose,
    }))
}

/// The calling brand's grants.
#[derive(Debug, Serialize, ToSchema)]
pub struct BrandGrantList {
    /// Newest first, whatever their state.
    pub grants: Vec<BrandGrant>,
}

/// Every grant the person made for the calling brand, newest first, with its state (bearer
/// token or client authentication: a brand whose agreement is on older terms has no token, and
/// sees its grants `suspended` here).
#[utoipa::path(get, path = "/brand/v1/grants", tag = "brands",
    responses(BrandRefusals, (status = 200, body = BrandGrantList),
              (status = 429, body = ErrorBody, description = "`too_many_requests`: too many failed client authentications from this address", headers(("Retry-After" = u64, description = "Seconds to wait")))),
    security(("brand_token" = []), ("client_secret_basic" = [])))]
pub async fn brand_grants(
    State(state): State<AppState>,
    ClientIp(from): ClientIp,
    headers: HeaderMap,
    Unsealed(open): Unsealed,
) -> Result<Json<BrandGrantList>, AppError> {
    let brand = super::brand_api::caller(
        &state,
        from,
        &headers,
        None,
        "/brand/v1/grants",
        ("GET", "/brand/v1/grants"),
    )
    .await?;
    Ok(Json(BrandGrantList {
        grants: open.brand_grants(&brand.client_id)?,
    }))
}
