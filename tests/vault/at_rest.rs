//! Nothing personal is on disk in plaintext: marker strings written as record values and field
//! names are searched for in every file of the data directory, raw and in the encodings the code
//! could leave them in.

use base64::Engine;
use serde_json::json;

use crate::kit::disk::files_below;
use crate::support::TestApp;

/// The byte strings that would betray `marker`: raw, hex, and base64 (standard and URL-safe) at
/// each of the three alignments a marker can have inside a longer encoded string.
fn encodings(marker: &str) -> Vec<Vec<u8>> {
    let raw = marker.as_bytes();
    let mut out = vec![
        raw.to_vec(),
        data_hex(raw, false).into_bytes(),
        data_hex(raw, true).into_bytes(),
    ];
    for engine in [
        &base64::engine::general_purpose::STANDARD_NO_PAD,
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
    ] {
        for shift in 0..3 {
            let mut shifted = vec![b'_'; shift];
            shifted.extend_from_slice(raw);
            let encoded = engine.encode(&shifted);
            // Drop the characters that depend on the bytes around the marker.
            let start = (shift * 4).div_ceil(3) + 1;
            let end = encoded.len().saturating_sub(2);
            out.push(encoded.as_bytes()[start..end].to_vec());
        }
    }
    // UTF-16 (for completeness: no code path writes it).
    out.push(raw.iter().flat_map(|b| [*b, 0]).collect());
    out
}

fn data_hex(bytes: &[u8], upper: bool) -> String {
    bytes
        .iter()
        .map(|b| {
            if upper {
                format!("{b:02X}")
            } else {
                format!("{b:02x}")
            }
        })
        .collect()
}

fn find(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn marker_values_and_field_names_never_reach_the_disk() {
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::start(dir.path());
    let (token, _) = app.setup().await;
    let value_marker = "MARKERVALUE-7f3a9c-Ana-Lopez-secret";
    let field_marker = "zqmarkerfield4d2e";
    let nested_marker = "NESTEDMARKER-b81c";
    for i in 0..50 {
        let path = format!("secretcollection.{field_marker}{i}");
        let res = app
            .put(
                &token,
                &path,
                json!({"value": format!("{value_marker} #{i}"), "category": "pd:Interest"}),
            )
            .await;
        assert_eq!(res.status(), 201);
    }
    app.put(
        &token,
        "profile.details",
        json!({"value": {"note": nested_marker}, "category": "pd:Preference"}),
    )
    .await;
    // Update and delete too, so old versions and tombstones are on disk as well.
    app.put(
        &token,
        &format!("secretcollection.{field_marker}0"),
        json!({"value": "replaced", "category": "pd:Interest"}),
    )
    .await;
    app.client
        .delete(app.url(&format!("/api/v1/records/secretcollection.{field_marker}1")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    app.stop();

    let files = files_below(dir.path());
    assert!(files.len() >= 3, "{files:?}");
    let mut scanned = 0usize;
    for file in files {
        let bytes = std::fs::read(&file).unwrap();
        scanned += bytes.len();
        for marker in [
            value_marker,
            field_marker,
            nested_marker,
            "secretcollection",
        ] {
            for needle in encodings(marker) {
                assert!(
                    !find(&bytes, &needle),
                    "{marker} found as {:?} in {}",
                    String::from_utf8_lossy(&needle),
                    file.display()
                );
            }
        }
    }
    assert!(
        scanned > 10_000,
        "the store was written ({scanned} bytes scanned)"
    );
}

#[test]
fn the_scanner_finds_what_it_looks_for() {
    // Guard against a scanner that cannot fail: each encoding of a marker is found in a blob
    // that embeds it.
    let marker = "MARKERVALUE-7f3a9c";
    for shift in 0..3 {
        let mut blob = vec![b'x'; shift];
        blob.extend_from_slice(format!("{{\"value\":\"{marker}\"}}").as_bytes());
        let b64 = base64::engine::general_purpose::STANDARD.encode(&blob);
        assert!(
            encodings(marker).iter().any(|n| find(b64.as_bytes(), n)),
            "shift {shift}"
        );
    }
    let hex = data_hex(format!("..{marker}..").as_bytes(), false);
    assert!(encodings(marker).iter().any(|n| find(hex.as_bytes(), n)));
}
