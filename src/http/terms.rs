//! The person's terms: the owner reads, previews and publishes them under `/api/v1/terms`;
//! brands read the ones in force at the public `/brand/v1/terms`.

use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;
use tracing::instrument;
use utoipa::ToSchema;

use super::auth::{OwnerRefusals, OwnerSession};
use super::error::{BadParameter, ErrorBody, Json, JsonBodyRefusals, Path};
use super::extract::Unsealed;
use crate::domain::terms::guided::{self, ChoiceError, Choices, Options};
use crate::domain::terms::{Basis, TEMPLATES, Template, Terms};
use crate::error::AppError;
use crate::service::OpenVault;
use crate::service::terms::TermsVersion;

/// A terms version as served to the owner and to brands.
#[derive(Debug, Serialize, ToSchema)]
pub struct TermsView {
    /// The ODRL 2.2 / JSON-LD document.
    #[schema(value_type = Object)]
    pub terms: Value,
    /// `sha256:` and the hex SHA-256 of the document's RFC 8785 canonical form: what brands accept.
    #[schema(example = "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08")]
    pub hash: String,
    pub version: u64,
    /// The IEEE 7012 roster agreement the terms are built on.
    #[schema(example = "SD-BASE")]
    pub basis: String,
    #[serde(with = "time::serde::rfc3339")]
    pub published_at: OffsetDateTime,
    /// The terms in plain language, one sentence a line, with the machine ids in parentheses.
    pub summary: Vec<String>,
    /// The same sentences without any id or code, for the person.
    pub plain_summary: Vec<String>,
}

impl TermsView {
    fn new(version: TermsVersion, terms: &Terms) -> TermsView {
        TermsView {
            summary: terms.summary(),
            plain_summary: terms.plain_summary(),
            terms: version.document,
            hash: version.hash,
            version: version.version,
            basis: version.basis,
            published_at: version.published_at,
        }
    }

    fn of(version: TermsVersion) -> Result<TermsView, AppError> {
        let terms = Terms::parse(&version.document)
            .map_err(|e| AppError::internal("a stored terms version no longer parses", e))?;
        Ok(TermsView::new(version, &terms))
    }
}

fn current(open: &OpenVault) -> Result<TermsView, AppError> {
    let current = open.current_terms()?;
    Ok(TermsView::new(current.version.clone(), &current.terms))
}

/// The terms in force.
#[utoipa::path(get, path = "/api/v1/terms", tag = "terms",
    responses(OwnerRefusals, (status = 200, body = TermsView)),
    security(("owner_token" = []), ("owner_cookie" = [])))]
pub async fn get_terms(
    _session: OwnerSession,
    Unsealed(open): Unsealed,
) -> Result<Json<TermsView>, AppError> {
    current(&open).map(Json)
}

/// The terms in force, for anyone: brands read them here before accepting them by hash.
#[utoipa::path(get, path = "/brand/v1/terms", tag = "brands",
    responses((status = 200, body = TermsView), (status = 503, body = ErrorBody)))]
pub async fn brand_terms(Unsealed(open): Unsealed) -> Result<Json<TermsView>, AppError> {
    current(&open).map(Json)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TermsDocument {
    /// The ODRL 2.2 / JSON-LD terms document.
    #[schema(value_type = Object)]
    pub terms: Value,
}

/// Publishes new terms. Every brand must accept them again before its next token or delivery.
/// Publishing the document already in force changes nothing and answers 200.
#[utoipa::path(put, path = "/api/v1/terms", tag = "terms", request_body = TermsDocument,
    responses(OwnerRefusals, JsonBodyRefusals, (status = 201, body = TermsView, description = "a new version"),
              (status = 200, body = TermsView, description = "identical to the terms in force"),
              (status = 422, body = ErrorBody, description = "`invalid_terms`; `at` names the rule")),
    security(("owner_token" = []), ("owner_cookie" = [])))]
#[instrument(skip_all)]
pub async fn put_terms(
    _session: OwnerSession,
    Unsealed(open): Unsealed,
    Json(request): Json<TermsDocument>,
) -> Result<(StatusCode, Json<TermsView>), AppError> {
    let (version, created) = open.publish_terms(&request.terms).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(TermsView::of(version)?)))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TermsPreview {
    pub hash: String,
    pub basis: String,
    pub summary: Vec<String>,
    /// The same sentences without any id or code, for the person.
    pub plain_summary: Vec<String>,
}

/// Checks a terms document and describes it, publishing nothing.
#[utoipa::path(post, path = "/api/v1/terms/preview", tag = "terms", request_body = TermsDocument,
    responses(OwnerRefusals, JsonBodyRefusals, (status = 200, body = TermsPreview), (status = 422, body = ErrorBody)),
    security(("owner_token" = []), ("owner_cookie" = [])))]
pub async fn preview_terms(
    _session: OwnerSession,
    Unsealed(open): Unsealed,
    Json(request): Json<TermsDocument>,
) -> Result<Json<TermsPreview>, AppError> {
    let preview = open.preview_terms(&request.terms)?;
    Ok(Json(TermsPreview {
        hash: preview.hash,
        basis: preview.terms.basis().as_str().to_owned(),
        summary: preview.terms.summary(),
        plain_summary: preview.terms.plain_summary(),
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct VersionSummary {
    pub version: u64,
    pub hash: String,
    pub basis: String,
    #[serde(with = "time::serde::rfc3339")]
    pub published_at: OffsetDateTime,
    /// Whether this is the version in force.
    pub current: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct VersionList {
    /// Newest first.
    pub versions: Vec<VersionSummary>,
}

/// Every published version, newest first.
#[utoipa::path(get, path = "/api/v1/terms/versions", tag = "terms",
    responses(OwnerRefusals, (status = 200, body = VersionList)),
    security(("owner_token" = []), ("owner_cookie" = [])))]
pub async fn terms_versions(
    _session: OwnerSession,
    Unsealed(open): Unsealed,
) -> Result<Json<VersionList>, AppError> {
    let current = open.current_terms()?.version.version;
    let versions = open
        .terms_versions()?
        .into_iter()
        .map(|v| VersionSummary {
            current: v.version == current,
            version: v.version,
            hash: v.hash,
            basis: v.basis,
            published_at: v.published_at,
        })
        .collect();
    Ok(Json(VersionList { versions }))
}

/// One published version.
#[utoipa::path(get, path = "/api/v1/terms/versions/{version}", tag = "terms",
    params(("version" = u64, Path, description = "the version number, from 1")),
    responses(OwnerRefusals, BadParameter, (status = 200, body = TermsView), (status = 404, body = ErrorBody)),
    security(("owner_token" = []), ("owner_cookie" = [])))]
pub async fn terms_version(
    _session: OwnerSession,
    Path(version): Path<u64>,
    Unsealed(open): Unsealed,
) -> Result<Json<TermsView>, AppError> {
    let version = open.terms_version(version)?;
    TermsView::of(version).map(Json)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TemplateView {
    #[schema(example = "sd-base")]
    pub id: &'static str,
    pub title: &'static str,
    pub basis: &'static str,
    /// What the basis allows and forbids, in a sentence.
    pub description: &'static str,
    #[schema(value_type = Object)]
    pub terms: Value,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TemplateList {
    pub templates: Vec<TemplateView>,
}

/// The templates shipped in `policies/`, to start new terms from.
#[utoipa::path(get, path = "/api/v1/terms/templates", tag = "terms",
    responses(OwnerRefusals, (status = 200, body = TemplateList)),
    security(("owner_token" = []), ("owner_cookie" = [])))]
pub async fn terms_templates(_session: OwnerSession) -> Result<Json<TemplateList>, AppError> {
    let templates = TEMPLATES
        .iter()
        .map(|t| {
            let basis: Basis = t.basis;
            Ok(TemplateView {
                id: t.id,
                title: t.title,
                basis: basis.as_str(),
                description: basis.description(),
                terms: t
                    .document()
                    .map_err(|e| AppError::internal("a shipped template is not JSON", e))?,
            })
        })
        .collect::<Result<_, AppError>>()?;
    Ok(Json(TemplateList { templates }))
}

/// The shipped template `id`, or 404.
fn template(id: &str) -> Result<Template, AppError> {
    Template::find(id).ok_or(AppError::NotFound("terms template"))
}

impl From<ChoiceError> for AppError {
    fn from(e: ChoiceError) -> AppError {
        match e {
            ChoiceError::Terms(e) => e.into(),
            ChoiceError::Template => {
                AppError::internal("a shipped template does not fit the guided editor", e)
            }
            other => AppError::invalid_at("invalid_choices", other.at(), other.to_string()),
        }
    }
}

/// What the person may choose when making terms from a template: kinds of data, purposes (only
/// those its basis permits), how long brands may keep data (never longer than the template) and
/// extra refusals, each with a label to show; `defaults` are the template's own choices.
#[utoipa::path(get, path = "/api/v1/terms/templates/{id}/choices", tag = "terms",
    params(("id" = String, Path, description = "a template id from /api/v1/terms/templates")),
    responses(OwnerRefusals, (status = 200, body = Options), (status = 404, body = ErrorBody)),
    security(("owner_token" = []), ("owner_cookie" = [])))]
pub async fn template_choices(
    _session: OwnerSession,
    Path(id): Path<String>,
) -> Result<Json<Options>, AppError> {
    Ok(Json(guided::options(&template(&id)?)?))
}

/// A terms document built from a template and the person's choices, checked and described,
/// publishing nothing: `PUT /api/v1/terms` with its `terms` publishes it.
#[derive(Debug, Serialize, ToSchema)]
pub struct BuiltTerms {
    #[schema(value_type = Object)]
    pub terms: Value,
    pub hash: String,
    pub basis: String,
    pub summary: Vec<String>,
    pub plain_summary: Vec<String>,
}

/// Builds terms from a template and the person's choices. A choice the template's basis does
/// not allow answers 422 `invalid_choices` with `at` naming it; the built document then passes
/// the same checker as any other.
#[utoipa::path(post, path = "/api/v1/terms/templates/{id}/build", tag = "terms",
    params(("id" = String, Path, description = "a template id from /api/v1/terms/templates")),
    request_body = Choices,
    responses(OwnerRefusals, JsonBodyRefusals, (status = 200, body = BuiltTerms),
              (status = 404, body = ErrorBody),
              (status = 422, body = ErrorBody, description = "`invalid_choices`; `at` names the choice")),
    security(("owner_token" = []), ("owner_cookie" = [])))]
#[instrument(skip_all)]
pub async fn build_terms(
    _session: OwnerSession,
    Path(id): Path<String>,
    Unsealed(open): Unsealed,
    Json(choices): Json<Choices>,
) -> Result<Json<BuiltTerms>, AppError> {
    let built = guided::build(&template(&id)?, &choices)?;
    let preview = open.preview_terms(built.document())?;
    Ok(Json(BuiltTerms {
        terms: preview.terms.document().clone(),
        hash: preview.hash,
        basis: preview.terms.basis().as_str().to_owned(),
        summary: preview.terms.summary(),
        plain_summary: preview.terms.plain_summary(),
    }))
}
