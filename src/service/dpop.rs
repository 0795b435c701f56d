//! DPoP (RFC 9449) at the vault's endpoints: whether a proof fits its request (method, URL,
//! time, replay, token hash), and binding an access token to the proof's key (`cnf.jkt`).
//!
//! Replay: a proof's `jti` is remembered, per key, for as long as its `iat` is acceptable
//! ([`PROOF_WINDOW`] either side of now), in memory and bounded ([`MAX_REMEMBERED`]); a restart
//! forgets them, which leaves a proof captured in the last minute replayable once against a
//! restarted vault.
//!
//! Nonces (RFC 9449 §8, §9): every proof must carry a nonce the vault issued, so a proof cannot
//! be made ahead of time. A nonce is the current [`NONCE_PERIOD`] number and a keyed hash of it
//! (the vault's index key, which never leaves it): no nonce is stored, each is good for the
//! period it was made in and the next, and a proof without a good one is answered
//! `use_dpop_nonce` with a fresh nonce in `DPoP-Nonce`.

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
/// How long a nonce period lasts, in seconds; a nonce is accepted in its period and the next.
pub const NONCE_PERIOD: i64 = 300;

/// Why a DPoP proof was refused: a bad proof, or one whose nonce is missing or stale (the
/// client should retry with the nonce given).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProofRefusal {
    Invalid(String),
    UseNonce(String),
}

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
    ) -> Result<String, ProofRefusal> {
        let proof = verify_proof(proof).map_err(|e| ProofRefusal::Invalid(e.to_string()))?;
        self.check_proof(proof, method, url, access_token)
            .map_err(ProofRefusal::Invalid)?
    }

    /// The nonce of the current period, for `DPoP-Nonce`.
    pub fn dpop_nonce(&self) -> String {
        self.nonce_for(self.now().unix_timestamp().div_euclid(NONCE_PERIOD))
    }

    fn nonce_for(&self, period: i64) -> String {
        let mac = self.index_key("dpop-nonce", &period.to_string());
        format!(
            "{period}.{}",
            base64::Engine::encode(
                &base64::engine::general_purpose::URL_SAFE_NO_PAD,
                &mac[..16]
            )
        )
    }

    fn nonce_is_fresh(&self, nonce: Option<&str>) -> bool {
        let Some(nonce) = nonce else { return false };
        let Some(period) = nonce.split('.').next().and_then(|p| p.parse::<i64>().ok()) else {
            return false;
        };
        let current = self.now().unix_timestamp().div_euclid(NONCE_PERIOD);
        (period == current || period == current - 1)
            && crate::crypto::constant_time_eq(nonce.as_bytes(), self.nonce_for(period).as_bytes())
    }

    fn check_proof(
        &self,
        proof: crate::crypto::dpop::DpopProof,
        method: &str,
        url: &str,
        access_token: Option<&str>,
    ) -> Result<Result<String, ProofRefusal>, String> {
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
        if !self.nonce_is_fresh(proof.nonce.as_deref()) {
            // Not remembered: the same key retries at once with the nonce.
            return Ok(Err(ProofRefusal::UseNonce(self.dpop_nonce())));
        }
        seen.insert(key, proof.iat + PROOF_WINDOW + 1);
        Ok(Ok(proof.jkt))
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
                match self.check_dpop(proof, "POST", &url, None) {
                    Ok(jkt) => Ok(Some(jkt)),
                    Err(ProofRefusal::Invalid(reason)) => Err(refused(reason)),
                    Err(ProofRefusal::UseNonce(nonce)) => {
                        let mut e = OAuthError::new(
                            400,
                            "use_dpop_nonce",
                            "send the DPoP proof again with the nonce in the DPoP-Nonce header",
                        );
                        e.dpop_nonce = Some(nonce);
                        Err(e)
                    }
                }
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
