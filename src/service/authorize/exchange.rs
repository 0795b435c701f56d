//! The token endpoint's side of the authorization-code flow: exchanging a code checked with
//! PKCE, rotating refresh tokens, revoking them, and tokens for a grant the brand names.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;

use super::{
    CODE_LIFETIME, REFRESH_TOKEN_PREFIX, REFRESH_TOKENS, RefreshRecord, invalid_grant,
    valid_pkce_text,
};
use crate::crypto::{constant_time_eq, random_token, sha256};
use crate::domain::audit::{Actor, Event};
use crate::domain::brands::Brand;
use crate::domain::grants::{AccessRequestDetail, GrantStatus, parse_authorization_details};
use crate::error::{AppError, OAuthError};
use crate::service::OpenVault;
use crate::service::tables::GRANTS;
use crate::service::tokens::IssuedToken;

impl OpenVault {
    /// Exchanges an authorization code (RFC 6749 §4.1.3) checked with PKCE (RFC 7636 §4.6).
    /// A code used twice revokes the grant it made (RFC 6749 §4.1.2).
    pub async fn exchange_code(
        &self,
        brand: &Brand,
        code: &str,
        redirect_uri: Option<&str>,
        verifier: Option<&str>,
    ) -> Result<IssuedToken, OAuthError> {
        let now = self.now();
        let key = sha256(code.as_bytes());
        let entry = {
            let mut pending = self.pending()?;
            pending.prune(now);
            let Some(entry) = pending.codes.get_mut(&key) else {
                return Err(invalid_grant("unknown or expired authorization code"));
            };
            if entry.client_id != brand.client_id {
                return Err(invalid_grant("unknown or expired authorization code"));
            }
            let first_use = !entry.used;
            entry.used = true;
            (entry.clone(), first_use)
        };
        let (entry, first_use) = entry;
        if !first_use {
            self.revoke_grant(&entry.grant_id, Actor::System).await?;
            return Err(invalid_grant(
                "this authorization code was already used; the grant it made is revoked",
            ));
        }
        if now >= entry.created_at + CODE_LIFETIME {
            return Err(invalid_grant("the authorization code has expired"));
        }
        if redirect_uri != Some(entry.redirect_uri.as_str()) {
            return Err(invalid_grant(
                "redirect_uri must be the one of the authorization request",
            ));
        }
        let verifier = verifier.ok_or_else(|| invalid_grant("code_verifier is required (PKCE)"))?;
        let computed = B64.encode(sha256(verifier.as_bytes()));
        if !valid_pkce_text(verifier)
            || !constant_time_eq(computed.as_bytes(), entry.code_challenge.as_bytes())
        {
            return Err(invalid_grant(
                "code_verifier does not match the code_challenge",
            ));
        }
        self.tokens_for_grant(brand, &entry.grant_id, None).await
    }

    /// An access token and a new refresh token for a grant.
    async fn tokens_for_grant(
        &self,
        brand: &Brand,
        grant_id: &str,
        previous_refresh: Option<[u8; 32]>,
    ) -> Result<IssuedToken, OAuthError> {
        let grant = self
            .grant_for(brand, grant_id)
            .map_err(|_| invalid_grant("the grant no longer exists"))?;
        if self.grant_status(&grant)? != GrantStatus::Active {
            return Err(invalid_grant("the grant has ended: ask the person again"));
        }
        let agreement = self.require_agreement(brand)?;
        let refresh = random_token(REFRESH_TOKEN_PREFIX)
            .map_err(|e| AppError::internal("drawing random bytes", e))?;
        let record = RefreshRecord {
            grant_id: grant.id.clone(),
            client_id: brand.client_id.clone(),
            generation: grant.refresh_generation,
            used: false,
        };
        let new_key = self.index_key("refresh", &refresh);
        let written = self
            .write(move |tx| {
                if let Some(old) = previous_refresh {
                    let Some(mut old_record) = tx.read(&REFRESH_TOKENS, &old)? else {
                        return Ok(false);
                    };
                    if old_record.used {
                        return Ok(false);
                    }
                    old_record.used = true;
                    tx.write(&REFRESH_TOKENS, &old, &old_record)?;
                }
                tx.write(&REFRESH_TOKENS, &new_key, &record)?;
                Ok(true)
            })
            .await;
        if !written? {
            return Err(invalid_grant("this refresh token was already used"));
        }
        let mut issued = self
            .mint(brand, String::new(), agreement, Some(&grant))
            .await?;
        issued.refresh_token = Some(refresh);
        Ok(issued)
    }

    /// The refresh-token grant (RFC 6749 §6) with rotation: the old token stops working; replaying
    /// a used one kills every refresh token of its grant.
    pub async fn refresh(
        &self,
        brand: &Brand,
        refresh_token: &str,
    ) -> Result<IssuedToken, OAuthError> {
        let key = self.index_key("refresh", refresh_token);
        let Some(record) = self
            .store()
            .read(&REFRESH_TOKENS, &key)
            .map_err(AppError::from)?
        else {
            return Err(invalid_grant("unknown refresh token"));
        };
        if record.client_id != brand.client_id {
            return Err(invalid_grant("unknown refresh token"));
        }
        let grant = self
            .grant_for(brand, &record.grant_id)
            .map_err(|_| invalid_grant("the grant no longer exists"))?;
        if record.used || record.generation != grant.refresh_generation {
            self.kill_refresh_tokens(&grant.id).await?;
            return Err(invalid_grant(
                "this refresh token was already used; every refresh token of the grant is now dead",
            ));
        }
        match self
            .tokens_for_grant(brand, &record.grant_id, Some(key))
            .await
        {
            Err(e) if e.description == "this refresh token was already used" => {
                self.kill_refresh_tokens(&grant.id).await?;
                Err(e)
            }
            other => other,
        }
    }

    /// RFC 7009 for a refresh token: the brand gives up the grant behind it, so its refresh
    /// tokens and every access token of the grant stop working (§2.1). Unknown or foreign
    /// tokens are ignored.
    pub async fn revoke_refresh_token(
        &self,
        brand: &Brand,
        refresh_token: &str,
    ) -> Result<(), AppError> {
        let key = self.index_key("refresh", refresh_token);
        let Some(record) = self.store().read(&REFRESH_TOKENS, &key)? else {
            return Ok(());
        };
        if record.client_id != brand.client_id {
            return Ok(());
        }
        self.kill_refresh_tokens(&record.grant_id).await?;
        self.revoke_grant(&record.grant_id, Actor::Brand).await?;
        Ok(())
    }

    async fn kill_refresh_tokens(&self, grant_id: &str) -> Result<(), AppError> {
        let key = self.index_key("grant", grant_id);
        self.change(move |tx| {
            let mut grant = crate::service::grants::load(tx, &key)?;
            grant.refresh_generation += 1;
            tx.write(&GRANTS, &key, &grant)?;
            let mut event = Event::system("refresh_token.replayed");
            event.target = Some(grant.client_id.clone());
            Ok((
                (),
                event.with_detail(serde_json::json!({ "grant": grant.id })),
            ))
        })
        .await
    }

    /// A token for an owner-made grant named by `authorization_details` (client credentials).
    pub async fn token_for_named_grant(
        &self,
        brand: &Brand,
        scope: Option<&str>,
        details: &str,
    ) -> Result<IssuedToken, OAuthError> {
        let grant_id = match parse_authorization_details(details, &self.resource()) {
            Ok(AccessRequestDetail::Existing { grant_id }) => grant_id,
            Ok(AccessRequestDetail::Ask(_)) => {
                return Err(OAuthError::new(
                    400,
                    "invalid_authorization_details",
                    "with client_credentials, authorization_details names a grant the person made (grant_id); to ask for data, use the authorization endpoint",
                ));
            }
            Err(e) => return Err(OAuthError::new(400, "invalid_authorization_details", e)),
        };
        let grant = self.grant_for(brand, &grant_id).map_err(|_| {
            OAuthError::new(
                400,
                "invalid_authorization_details",
                "no such grant for this client",
            )
        })?;
        if self.grant_status(&grant)? != GrantStatus::Active {
            return Err(invalid_grant("the grant has ended"));
        }
        self.issue_token(brand, Some(scope.unwrap_or("")), Some(&grant))
            .await
    }
}
