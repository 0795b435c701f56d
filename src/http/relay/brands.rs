//! The relay's public list of admitted brands: each one's name and public keys, so that a vault
//! can show an offer's brand by name and verify its signatures, and encrypt to it.

use axum::extract::{Path, State};
use serde::Serialize;

use crate::http::error::Json;
use crate::relay::brands::PublicBrand;
use crate::relay::{Relay, RelayError};

#[derive(Debug, Serialize)]
pub struct BrandList {
    pub brands: Vec<PublicBrand>,
}

/// `GET /relay/v1/brands`: every active brand, by client id.
#[utoipa::path(get, path = "/relay/v1/brands", tag = "public",
    responses((status = 200, body = super::openapi::RelayBrandList)))]
pub async fn list(State(relay): State<Relay>) -> Result<Json<BrandList>, RelayError> {
    let brands = relay
        .active_brands()
        .await?
        .into_iter()
        .map(PublicBrand::from)
        .collect();
    Ok(Json(BrandList { brands }))
}

/// `GET /relay/v1/brands/{client_id}`: one brand's name and JWKS; 404 for an unknown or
/// suspended brand (whose keys no vault should trust any longer).
#[utoipa::path(get, path = "/relay/v1/brands/{client_id}", tag = "public",
    params(("client_id" = String, Path)),
    responses((status = 200, body = super::openapi::RelayBrandView),
              (status = 404, body = crate::http::error::ErrorBody, description = "`not_found`: unknown or suspended")))]
pub async fn show(
    State(relay): State<Relay>,
    Path(client_id): Path<String>,
) -> Result<Json<PublicBrand>, RelayError> {
    let brand = relay
        .brand(&client_id)
        .await?
        .filter(|b| b.status == crate::relay::brands::BrandStatus::Active)
        .ok_or(RelayError::NotFound("brand"))?;
    Ok(Json(brand.into()))
}
