//! Admitting many brands at once: `vrm-vault relay admit --batch FILE`, for an operator who
//! brings a trade association's members in one go. One `relay admit` per brand costs a process,
//! a NATS connection and the layout check each time (about a tenth of a second); a batch pays
//! them once and keeps [`BATCH_IN_FLIGHT`] admissions in flight.
//!
//! The file holds JSON lines, one brand each: `{"name": "...", "jwks": {...}}` (blank lines are
//! skipped). Every line is checked before anything is stored, so a typo on line 9,000 admits
//! nobody rather than half the file; the error names the line. Once admitting starts, each
//! stored brand is reported as `{"line": N, "client_id": "..."}` in the file's order, so if
//! NATS fails part-way the operator sees exactly which lines were admitted and which were not
//! (admitting a line again would give the brand a second client id).

use std::sync::atomic::{AtomicBool, Ordering};

use futures_util::StreamExt as _;
use serde::Deserialize;
use serde_json::Value;

use super::Relay;
use super::brands::{RelayBrand, check_name};
use super::error::RelayError;
use crate::crypto::relay_jwks;

/// Admissions sent to NATS at once.
pub const BATCH_IN_FLIGHT: usize = 32;

/// One line of a batch, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchEntry {
    /// The line's number in the file, from 1.
    pub line: usize,
    pub name: String,
    pub jwks: Value,
}

/// A batch line that cannot be admitted: its number and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct BatchLineError {
    pub line: usize,
    pub message: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    name: String,
    jwks: Value,
}

/// Reads and checks every line of a batch file; the first bad line is the error.
pub fn parse_batch(text: &str) -> Result<Vec<BatchEntry>, BatchLineError> {
    let mut entries = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        if raw.trim().is_empty() {
            continue;
        }
        let fail = |message: String| BatchLineError { line, message };
        let parsed: Line = serde_json::from_str(raw).map_err(|e| {
            fail(format!(
                "expected {{\"name\": \"...\", \"jwks\": {{...}}}} on one line: {e}"
            ))
        })?;
        let name = check_name(&parsed.name).map_err(|e| fail(e.to_string()))?;
        let jwks = relay_jwks::check_relay_jwks(&parsed.jwks).map_err(|e| fail(e.0))?;
        entries.push(BatchEntry { line, name, jwks });
    }
    if entries.is_empty() {
        return Err(BatchLineError {
            line: 0,
            message: "the batch holds no brand".into(),
        });
    }
    Ok(entries)
}

impl Relay {
    /// Admits every entry, [`BATCH_IN_FLIGHT`] at a time, calling `admitted` for each brand
    /// stored, in the entries' order. After the first failure no further admission starts;
    /// those already in flight finish (and are reported), so `admitted` is called for exactly
    /// the brands that were stored. Returns how many were, or the first failure's line.
    pub async fn admit_batch(
        &self,
        entries: Vec<BatchEntry>,
        mut admitted: impl FnMut(&BatchEntry, &RelayBrand),
    ) -> Result<usize, (usize, RelayError)> {
        let failed = AtomicBool::new(false);
        let failed = &failed;
        let mut results = futures_util::stream::iter(entries)
            .map(|entry| async move {
                if failed.load(Ordering::SeqCst) {
                    return (entry, None);
                }
                let result = self.admit(&entry.name, &entry.jwks).await;
                if result.is_err() {
                    failed.store(true, Ordering::SeqCst);
                }
                (entry, Some(result))
            })
            .buffered(BATCH_IN_FLIGHT);
        let mut count = 0;
        let mut first_error = None;
        while let Some((entry, result)) = results.next().await {
            match result {
                Some(Ok(brand)) => {
                    admitted(&entry, &brand);
                    count += 1;
                }
                Some(Err(e)) if first_error.is_none() => first_error = Some((entry.line, e)),
                Some(Err(_)) | None => {}
            }
        }
        match first_error {
            None => Ok(count),
            Some(error) => Err(error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::jwt::SigningKey;
    use serde_json::json;

    fn jwks() -> Value {
        let key = |kid: &str, usage: &str| {
            let signing = SigningKey::generate().unwrap_or_else(|_| unreachable!());
            let mut jwk = serde_json::to_value(signing.public_jwk()).unwrap_or_default();
            jwk["kid"] = json!(kid);
            jwk["use"] = json!(usage);
            jwk["alg"] = json!(if usage == "sig" {
                "ES256"
            } else {
                "ECDH-ES+A256KW"
            });
            jwk
        };
        json!({"keys": [key("s", "sig"), key("e", "enc")]})
    }

    fn line(name: &str) -> String {
        json!({"name": name, "jwks": jwks()}).to_string()
    }

    #[test]
    fn every_line_is_one_brand_in_order_and_blank_lines_are_skipped() {
        let text = format!("{}\n\n{}\n", line("Chez Lulu"), line("  Pizzeria Nord "));
        let entries = parse_batch(&text).unwrap_or_default();
        let seen: Vec<(usize, &str)> = entries.iter().map(|e| (e.line, e.name.as_str())).collect();
        assert_eq!(seen, [(1, "Chez Lulu"), (3, "Pizzeria Nord")]);
    }

    #[test]
    fn the_first_bad_line_is_named_and_nothing_is_returned() {
        let no_enc = json!({"name": "A", "jwks": {"keys": [jwks()["keys"][0].clone()]}});
        let cases = [
            (format!("{}\nnot json", line("A")), 2, "expected"),
            (format!("{}\n{}", line("A"), line("")), 2, "name"),
            (format!("{no_enc}\n{}", line("B")), 1, "encryption"),
            (
                json!({"name": "A", "jwks": jwks(), "extra": 1}).to_string(),
                1,
                "unknown field",
            ),
            ("\n\n".to_owned(), 0, "no brand"),
        ];
        for (text, want_line, want_words) in cases {
            let result = parse_batch(&text);
            assert!(result.is_err(), "accepted {text:?}");
            if let Err(e) = result {
                assert_eq!(e.line, want_line, "{e}");
                assert!(e.message.contains(want_words), "{e}");
            }
        }
    }
}
