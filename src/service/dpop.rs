//! DPoP (RFC 9449) at the vault's endpoints: whether a proof fits its request (method, URL,
//! time, replay, token hash), and binding an access token to the proof's key (`cnf.jkt`).
//!
//! Replay: a proof's `jti` is remembered, per key, for as long as its `iat` is acceptable
//! ([`PROOF_WINDOW`] either side of now), in memory and bounded ([`MAX_REMEMBERED`]); a restart
//! forgets them, which leaves a proof captured in the last minute replayable once against a
//! restarted vault. Server nonces (`use_dpop_nonce`) are not issued.

use std::collections::HashMap;
use std::sync::Mutex;

use super::OpenVault;
use super::tokens::{Confirmation, IssuedToken};
use crate::crypto::dpop::{access_token_hash, verify_proof};
use crate::crypto::sha256;
use crate::error::{AppError, OAuthError};

/// How far a proof's `iat` may be from the vault's clock, in seconds.
pub const PROOF_WINDOW: i64 = 60;
/// Most proof ids remembered at once; beyond that, proofs are refused until some expire.
pub const MAX_REMEMBERED: usize = 100_000;

/// The proof ids seen recently, with when each may be forgotten.
#[derive(Debug, Default)]
pub(crate) struct DpopState {
    seen: Mutex<HashMap<[u8; 32], i64>>,
}

impl OpenVault {
    /// Checks the DPoP proof of a request: signature and key, `htm` = `method`, `htu` = `url`
    /// (without query or fragment), `iat` within [`PROOF_WINDOW`], a `jti` not seen before, and,
    /// with an access token, `ath`. Returns the key's thumbprint, or why the proof is refused.
    pub fn check_dpop(
        &self,
        proof: &str,
        method: &str,
        url: &str,
        access_token: Option<&str>,
    ) -> Result<String, String> {
        let proof = verify_proof(proof).map_err(|e| e.to_string())?;
        if !proof.htm.eq_ignore_ascii_case(method) {
            return Err(format!("htm must be {method}"));
        }
        let htu = proof.htu.split(['?', '#']).next().unwrap_or_default();
        if htu != url {
            return Err(format!("htu must be {url}"));
        }
        let now = self.now().unix_timestamp();
        if (proof.iat - now).abs() > PROOF_WINDOW {
            return Err("iat is too far from the vault's clock (60 seconds either way)".into());
        }
        if let Some(token) = access_token
            && proof.ath.as_deref() != Some(access_token_hash(token).as_str())
        {
            return Err("ath must be the base64url SHA-256 of the access token".into());
        }
        let key = sha256(format!("{}.{}", proof.jkt, proof.jti).as_bytes());
        let mut seen = self
            .dpop
            .seen
            .lock()
            .map_err(|_| "the proof store is unavailable".to_owned())?;
        if seen.len() >= MAX_REMEMBERED {
            seen.retain(|_, until| *until > now);
            if seen.len() >= MAX_REMEMBERED {
                return Err("too many recent proofs; try again in a minute".into());
            }
        }
        if seen.get(&key).is_some_and(|until| *until > now) {
            return Err("this proof was already used (jti)".into());
        }
        seen.insert(key, proof.iat + PROOF_WINDOW + 1);
        Ok(proof.jkt)
    }

    /// The DPoP key a token request binds its token to: the proof's, when one is sent; a brand
    /// registered with `dpop_bound_access_tokens` must send one.
    pub fn token_request_key(
        &self,
        brand: &crate::domain::brands::Brand,
        proof: Option<&str>,
    ) -> Result<Option<String>, OAuthError> {
        let refused = |reason: String| {
            OAuthError::new(
                400,
                "invalid_dpop_proof",
                format!("the DPoP proof is not valid: {reason}"),
            )
        };
        match proof {
            Some(proof) => {
                let url = format!("{}/oauth/token", self.issuer());
                self.check_dpop(proof, "POST", &url, None)
                    .map(Some)
                    .map_err(refused)
            }
            None if brand.dpop_bound_access_tokens => Err(refused(
                "this client registered dpop_bound_access_tokens: send a DPoP header".into(),
            )),
            None => Ok(None),
        }
    }

    /// `issued`, bound to the DPoP key `jkt`: the same token (same `jti`, times and grant) with
    /// `cnf.jkt`, signed again. The unbound one is never handed out.
    pub fn bind_token(
        &self,
        mut issued: IssuedToken,
        jkt: String,
    ) -> Result<IssuedToken, AppError> {
        let mut claims = self.claims_of_new_token(&issued.access_token)?;
        claims.cnf = Some(Confirmation { jkt });
        issued.access_token = self
            .key_ring()
            .active
            .sign_jwt(super::tokens::ACCESS_TOKEN_TYP, &claims)
            .map_err(|e| AppError::internal("signing a token", e))?;
        Ok(issued)
    }
}
