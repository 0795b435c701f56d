//! Terms: the person's own terms of service, and the rule that decides what a brand may do under
//! them.
//!
//! Terms are JSON that is also JSON-LD (design §5): an ODRL 2.2 `Offer` whose permissions,
//! prohibitions and obligations name W3C DPV data categories as targets and are constrained by
//! `purpose`, `dateTime`, `count` and `elapsedTime`, on a `basis` that names an IEEE 7012 (MyTerms)
//! roster agreement. The basis is a ceiling the person can only narrow:
//!
//! - [`Terms::parse`] rejects a document that would widen its basis — a permission for a purpose or
//!   an action the basis does not allow, or a missing prohibition or duty the basis requires (the
//!   document must say them itself, because brands read the document, not this code);
//! - [`evaluate()`] checks the basis before the person's own rules, so even terms that had slipped
//!   past validation could not permit what their basis forbids; then any matching prohibition
//!   denies, whatever the permissions say.
//!
//! The vocabulary is closed on purpose. An operand, purpose or category this module did not
//! understand could only be ignored, and ignoring part of a person's terms is how terms get
//! widened by accident. `policies/README.md` lists every name and where it comes from; the
//! templates and the JSON Schema live next to it and are compiled in here.
//!
//! Pure: no I/O, no clock (the time of a request is a field of it), no hashing (the canonical
//! bytes of [`Terms::document`] are hashed elsewhere).
//!
//! The module is split along the path a document takes:
//!
//! - `vocabulary`: the closed lists — purposes, rule actions and request actions, the bases and their ceilings, the
//!   templates, the context and the schema;
//! - `error`: [`TermsError`], what a rejected document is told;
//! - `parse`: shape and vocabulary, then "the basis is a ceiling" (what [`Terms::parse`] runs);
//! - `duration`: the `xsd:duration` subset a limit may be written in;
//! - `evaluate`: [`AccessRequest`], [`Decision`] and [`evaluate()`];
//! - `summary`: [`Terms::summary`], the terms in plain words;
//! - `guided`: terms made from a template by choosing, for the person who never writes JSON.
//!
//! This file keeps the parsed form ([`Terms`] and its rules and constraints), which every part
//! reads; only what other modules use is re-exported, so every `crate::domain::terms::X` path is
//! the same as when the module was one file.

mod duration;
mod error;
mod evaluate;
pub mod guided;
mod parse;
mod summary;
mod vocabulary;

pub use error::TermsError;
pub use evaluate::{AccessRequest, Decision, evaluate};
pub use vocabulary::{
    ALL_PERSONAL_DATA, Action, Basis, BasisProhibition, INTENTCASTING_PURPOSE, ODRL_CONTEXT,
    PURPOSES, Purpose, RuleAction, SCHEMA, TEMPLATES, Template, context,
};

use std::fmt;

use serde_json::Value;
use time::{Duration, OffsetDateTime};

use crate::domain::records::CATEGORIES;

/// A validated terms document.
#[derive(Debug, Clone, PartialEq)]
pub struct Terms {
    document: Value,
    basis: Basis,
    title: Option<String>,
    permissions: Vec<Rule>,
    prohibitions: Vec<Rule>,
    obligations: Vec<Rule>,
}

/// A permission, prohibition or obligation.
#[derive(Debug, Clone, PartialEq)]
struct Rule {
    action: RuleAction,
    targets: Vec<&'static str>,
    constraints: Vec<Constraint>,
}

#[derive(Debug, Clone, PartialEq)]
enum Constraint {
    Purpose {
        op: PurposeOp,
        purposes: Vec<&'static str>,
    },
    DateTime {
        op: Cmp,
        at: OffsetDateTime,
        text: String,
    },
    Count {
        op: Cmp,
        n: u64,
    },
    ElapsedTime {
        op: Cmp,
        period: Duration,
        text: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PurposeOp {
    Eq,
    Neq,
    IsA,
    IsAnyOf,
    IsNoneOf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cmp {
    Eq,
    Lt,
    Lteq,
    Gt,
    Gteq,
}

impl Terms {
    /// Validates a terms document: closed vocabulary, well-formed values, and nothing wider than
    /// its basis.
    pub fn parse(document: &Value) -> Result<Terms, TermsError> {
        parse::parse(document)
    }

    /// The templates the person can start from.
    pub fn templates() -> &'static [Template] {
        TEMPLATES
    }

    /// The document exactly as validated; its canonical form is what gets hashed and signed.
    pub fn document(&self) -> &Value {
        &self.document
    }

    pub fn basis(&self) -> Basis {
        self.basis
    }

    pub fn title(&self) -> Option<&str> {
        self.title.as_deref()
    }

    /// Every purpose some permission allows, in [`PURPOSES`] order.
    pub fn purposes(&self) -> Vec<&'static str> {
        PURPOSES
            .iter()
            .map(|p| p.id)
            .filter(|id| {
                self.permissions
                    .iter()
                    .any(|r| r.has_purpose_constraint() && r.purpose_applies(id))
            })
            .collect()
    }

    /// Every data category some permission targets, in [`CATEGORIES`] order.
    pub fn data_categories(&self) -> Vec<&'static str> {
        CATEGORIES
            .iter()
            .map(|c| c.id)
            .filter(|id| self.permissions.iter().any(|r| r.targets.contains(id)))
            .collect()
    }

    /// How long a brand may keep what it received: the shortest `elapsedTime` bound on a `delete`
    /// obligation. Counted from when the brand received the data.
    pub fn retention(&self) -> Option<Duration> {
        self.obligations
            .iter()
            .filter(|r| r.action == RuleAction::Delete)
            .flat_map(|r| &r.constraints)
            .filter_map(|c| match c {
                Constraint::ElapsedTime { period, .. } => Some(*period),
                _ => None,
            })
            .min()
    }

    /// Whether the basis puts the duty of data portability on the brand.
    pub fn requires_portability(&self) -> bool {
        self.basis.duties().contains(&RuleAction::Portability)
    }
}

impl Rule {
    fn covers_category(&self, category: &str) -> bool {
        self.targets
            .iter()
            .any(|t| *t == category || *t == ALL_PERSONAL_DATA)
    }

    fn has_purpose_constraint(&self) -> bool {
        self.constraints
            .iter()
            .any(|c| matches!(c, Constraint::Purpose { .. }))
    }

    /// Whether all of its purpose constraints let `purpose` through.
    fn purpose_applies(&self, purpose: &str) -> bool {
        self.constraints
            .iter()
            .filter(|c| matches!(c, Constraint::Purpose { .. }))
            .all(|c| c.purpose_holds(purpose))
    }
}

impl Constraint {
    fn purpose_holds(&self, purpose: &str) -> bool {
        match self {
            Constraint::Purpose { op, purposes } => match op {
                PurposeOp::Eq => purposes.first().is_some_and(|p| *p == purpose),
                PurposeOp::Neq => purposes.first().is_some_and(|p| *p != purpose),
                PurposeOp::IsA => purposes.first().is_some_and(|p| Purpose::is_a(purpose, p)),
                PurposeOp::IsAnyOf => purposes.contains(&purpose),
                PurposeOp::IsNoneOf => !purposes.contains(&purpose),
            },
            _ => true,
        }
    }
}

impl fmt::Display for Constraint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Constraint::Purpose { op, purposes } => {
                write!(f, "purpose {} {}", op.as_str(), purposes.join(", "))
            }
            Constraint::DateTime { op, text, .. } => write!(f, "dateTime {} {text}", op.as_str()),
            Constraint::Count { op, n } => write!(f, "count {} {n}", op.as_str()),
            Constraint::ElapsedTime { op, text, .. } => {
                write!(f, "elapsedTime {} {text}", op.as_str())
            }
        }
    }
}

impl PurposeOp {
    fn as_str(self) -> &'static str {
        match self {
            PurposeOp::Eq => "eq",
            PurposeOp::Neq => "neq",
            PurposeOp::IsA => "isA",
            PurposeOp::IsAnyOf => "isAnyOf",
            PurposeOp::IsNoneOf => "isNoneOf",
        }
    }
}

impl Cmp {
    fn as_str(self) -> &'static str {
        match self {
            Cmp::Eq => "eq",
            Cmp::Lt => "lt",
            Cmp::Lteq => "lteq",
            Cmp::Gt => "gt",
            Cmp::Gteq => "gteq",
        }
    }
}

#[cfg(test)]
mod testing;
#[cfg(test)]
mod tests;
