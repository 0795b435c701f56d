//! Restoring a backup over HTTP: `POST /api/v1/restore` is a multipart upload (the backup file,
//! then the credential fields), built here by hand so that the tests control every byte of it.

use serde_json::Value;

use crate::kit::brand::{Server, random_id, status_json};

/// A multipart/form-data body: the backup file first, then text fields. Returns the content
/// type (with its boundary) and the body.
fn restore_form(backup: &[u8], fields: &[(&str, &str)]) -> (String, Vec<u8>) {
    let boundary = format!("----vrm-test-{}", random_id());
    let mut body = Vec::new();
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"backup\"; \
             filename=\"vault.vrmbackup\"\r\nContent-Type: application/octet-stream\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(backup);
    body.extend_from_slice(b"\r\n");
    for (name, value) in fields {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// `POST /api/v1/restore` with the backup and the credential fields.
/// Sent on a connection of its own: a 409 answers before the upload is read, and the server then
/// drops the connection (see `a_refused_restore_leaves_the_connection_usable`).
pub async fn restore(app: &impl Server, backup: &[u8], fields: &[(&str, &str)]) -> (u16, Value) {
    restore_on(&reqwest::Client::new(), app, backup, fields).await
}

/// [`restore`] with a given client.
pub async fn restore_on(
    client: &reqwest::Client,
    app: &impl Server,
    backup: &[u8],
    fields: &[(&str, &str)],
) -> (u16, Value) {
    let (content_type, body) = restore_form(backup, fields);
    status_json(
        client
            .post(app.url("/api/v1/restore"))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap(),
    )
    .await
}
