//! Asking the terms before sharing (`POST /api/v1/sharing/check`): for a brand, some fields and
//! some purposes, which the terms allow and why not, in plain words. Nothing is written.

use serde::{Deserialize, Serialize};
use tracing::instrument;
use utoipa::ToSchema;

use super::auth::{OwnerRefusals, OwnerSession};
use super::error::{ErrorBody, Json, JsonBodyRefusals};
use super::extract::Unsealed;
use crate::domain::grants::{check_purpose, parse_actions, parse_fields};
use crate::error::AppError;

/// Most purposes one check may ask about: the Sharing screen's list, with room to spare.
const MAX_PURPOSES: usize = 40;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SharingCheck {
    pub client_id: String,
    /// Record paths (`contact.email`) and/or DPV data categories (`pd:EmailAddress`).
    pub fields: Vec<String>,
    /// `read` and/or `write`; `read` when absent.
    #[serde(default)]
    pub actions: Option<Vec<String>>,
    /// The DPV purposes to ask about, e.g. `dpv:ServiceProvision` (1–40).
    pub purposes: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FieldVerdictView {
    pub field: String,
    /// What the field is, in words: "your telephone number".
    pub label: String,
    pub allowed: bool,
    /// Why not, as a sentence; empty when allowed.
    pub reason: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PurposeVerdictView {
    pub purpose: String,
    pub label: String,
    /// Whether a grant of all the fields for this purpose would be allowed now.
    pub allowed: bool,
    /// Why not, naming only the refused fields and what the person can do; empty when allowed.
    pub reason: String,
    pub fields: Vec<FieldVerdictView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SharingVerdict {
    /// In the order asked.
    pub purposes: Vec<PurposeVerdictView>,
}

/// What your terms would say to sharing these fields with this brand, for each purpose: allowed
/// or refused, field by field, with the reason in plain words. Nothing is shared.
#[utoipa::path(post, path = "/api/v1/sharing/check", tag = "grants", request_body = SharingCheck,
    responses(OwnerRefusals, JsonBodyRefusals, (status = 200, body = SharingVerdict), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody, description = "`no_agreement`: nothing can be shared with the brand yet"),
              (status = 422, body = ErrorBody, description = "`invalid_grant`: a field, action or purpose that cannot be read")),
    security(("owner_token" = []), ("owner_cookie" = [])))]
#[instrument(skip_all)]
pub async fn check_sharing(
    _session: OwnerSession,
    Unsealed(open): Unsealed,
    Json(request): Json<SharingCheck>,
) -> Result<Json<SharingVerdict>, AppError> {
    let invalid = |e: String| AppError::invalid("invalid_grant", e);
    if request.purposes.is_empty() || request.purposes.len() > MAX_PURPOSES {
        return Err(invalid(format!(
            "name between 1 and {MAX_PURPOSES} purposes"
        )));
    }
    for purpose in &request.purposes {
        check_purpose(purpose).map_err(invalid)?;
    }
    let fields = parse_fields(&request.fields).map_err(invalid)?;
    let actions = request.actions.unwrap_or_else(|| vec!["read".to_owned()]);
    let actions = parse_actions(&actions).map_err(invalid)?;
    let verdicts = open.check_sharing(&request.client_id, &fields, &actions, &request.purposes)?;
    Ok(Json(SharingVerdict {
        purposes: verdicts
            .into_iter()
            .map(|p| PurposeVerdictView {
                purpose: p.purpose,
                label: p.label,
                allowed: p.allowed,
                reason: p.reason,
                fields: p
                    .fields
                    .into_iter()
                    .map(|f| FieldVerdictView {
                        field: f.field,
                        label: f.label,
                        allowed: f.allowed,
                        reason: f.reason,
                    })
                    .collect(),
            })
            .collect(),
    }))
}
