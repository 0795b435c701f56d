//! What the terms would say to sharing some fields with a brand, asked before sharing: per
//! purpose, per field, allowed or refused with the plain reason. The Sharing screen marks the
//! purposes the terms forbid and the offers list preselects only the fields they allow, so the
//! person never finds the terms' limits by trial and error. Nothing is written.

use serde::Serialize;
use time::OffsetDateTime;

use super::OpenVault;
use crate::domain::grants::disclosure::{
    FieldToShare, FieldVerdict, field_verdicts, grant_refusal,
};
use crate::domain::grants::{FieldSpec, GrantAction};
use crate::domain::terms::Purpose;
use crate::error::AppError;

/// The terms' answer for one purpose: allowed when every field is.
#[derive(Debug, Clone, Serialize)]
pub struct PurposeVerdict {
    pub purpose: String,
    /// The purpose's name in the vocabulary ("Requested service provision").
    pub label: String,
    pub allowed: bool,
    /// Why not, in plain words, naming only the refused fields; empty when allowed.
    pub reason: String,
    pub fields: Vec<FieldVerdict>,
}

impl OpenVault {
    /// Each field with the category that decides it.
    pub(crate) fn fields_to_share(
        &self,
        fields: &[FieldSpec],
    ) -> Result<Vec<FieldToShare>, AppError> {
        fields
            .iter()
            .map(|f| {
                Ok(FieldToShare {
                    field: f.as_str().to_owned(),
                    category: match f {
                        FieldSpec::Path(path) => self.category_of(path)?.to_owned(),
                        FieldSpec::Category(c) => (*c).to_owned(),
                    },
                })
            })
            .collect()
    }

    /// The terms' verdict on sharing `fields` with the brand for each of `purposes`, as a grant
    /// made now would get it. A brand without an agreement on the current terms can be given
    /// nothing: that is the answer then, whatever the fields.
    pub fn check_sharing(
        &self,
        client_id: &str,
        fields: &[FieldSpec],
        actions: &[GrantAction],
        purposes: &[String],
    ) -> Result<Vec<PurposeVerdict>, AppError> {
        let brand = self.brand(client_id)?;
        let agreement_id = self.current_agreement(&brand)?.ok_or_else(|| {
            AppError::NoAgreement(format!(
                "{} has not accepted your current terms, so nothing can be shared with it yet",
                brand.client_name
            ))
        })?;
        let agreed_at = self.agreed_at(&agreement_id)?;
        let to_share = self.fields_to_share(fields)?;
        let terms = self.current_terms()?;
        let now = self.now();
        Ok(purposes
            .iter()
            .map(|purpose| {
                let fields =
                    field_verdicts(&terms.terms, actions, &to_share, purpose, now, agreed_at);
                let allowed = fields.iter().all(|f| f.allowed);
                PurposeVerdict {
                    purpose: purpose.clone(),
                    label: Purpose::find(purpose)
                        .map_or_else(|| purpose.clone(), |p| p.label.to_owned()),
                    allowed,
                    reason: if allowed {
                        String::new()
                    } else {
                        grant_refusal(&fields)
                    },
                    fields,
                }
            })
            .collect())
    }

    /// The refusal of a grant the terms do not permit, in words: which of its fields are refused
    /// and why, and that the others could be shared alone. Keeps the deciding rule.
    pub(crate) fn explain_refusal(
        &self,
        rule: String,
        fields: &[FieldToShare],
        actions: &[GrantAction],
        purpose: &str,
        agreed_at: OffsetDateTime,
    ) -> Result<AppError, AppError> {
        let terms = self.current_terms()?;
        let verdicts = field_verdicts(
            &terms.terms,
            actions,
            fields,
            purpose,
            self.now(),
            agreed_at,
        );
        Ok(AppError::GrantNotPermitted {
            rule,
            reason: grant_refusal(&verdicts),
        })
    }
}
