//! The browser app: files under `static/`, embedded in the binary at build time.

use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use rust_embed::RustEmbed;

use crate::error::AppError;

#[derive(RustEmbed)]
#[folder = "static/"]
struct Assets;

/// Pages of the app that brands send the browser to by URL; they are the app itself.
const APP_PAGES: &[&str] = &["", "consent"];

/// Serves an embedded file, `index.html` for `/` and the app's pages; anything else is a JSON 404.
pub async fn serve_asset(uri: Uri) -> Response {
    let path = uri.path().trim_start_matches('/');
    let path = if APP_PAGES.contains(&path) {
        "index.html"
    } else {
        path
    };
    match Assets::get(path) {
        Some(file) => {
            let mime = mime_guess::from_path(path).first_or_octet_stream();
            let mut response = (StatusCode::OK, file.data.into_owned()).into_response();
            let headers = response.headers_mut();
            if let Ok(value) = HeaderValue::from_str(mime.as_ref()) {
                headers.insert(header::CONTENT_TYPE, value);
            }
            // Small files, always revalidated, so an upgraded binary never serves a stale app.
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            response
        }
        None => AppError::NotFound("page or endpoint").into_response(),
    }
}

/// Whether an embedded asset exists (for tests and the router).
pub fn exists(path: &str) -> bool {
    Assets::get(path).is_some()
}
