//! Tenant ACL policies (DESIGN.md §2): the tenant's HuJSON text, parsed with positions
//! (`hujson`), checked against the tenant's own names, and compiled with every other
//! tenant's policy on the shard into the one Headscale policy.

pub mod compile;
#[cfg(test)]
mod corpus_tests;
pub mod diff;
pub mod eval;
pub mod highlight;
pub mod hujson;
pub mod isolation;
pub mod model;
#[cfg(test)]
mod proptests;
pub mod reach;

use serde::{Deserialize, Serialize};

pub use model::principal_of as preview_principal;

/// A problem in a tenant's text, where it is and what, in a sentence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    pub line: u32,
    pub col: u32,
    pub message: String,
}

/// What the portal says about a tenant's policy text before it may be saved.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Validation {
    /// Syntax errors, or every problem the checks found, in text order.
    pub errors: Vec<Problem>,
    /// The outcome of each entry of the policy's `tests` (when it has no errors).
    pub tests: Vec<eval::TestOutcome>,
}

impl Validation {
    /// A text may be saved when it has no errors and every test passes.
    pub fn saveable(&self) -> bool {
        self.errors.is_empty() && self.tests.iter().all(|t| t.passed)
    }
}

/// Parses, checks and runs the tests of a tenant's policy text.
pub fn validate(
    text: &str,
    ctx: &model::TenantContext,
) -> (Validation, Option<model::TenantPolicy>) {
    let root = match hujson::parse(text) {
        Ok(root) => root,
        Err(e) => {
            return (
                Validation {
                    errors: vec![Problem {
                        line: e.pos.line,
                        col: e.pos.col,
                        message: e.message,
                    }],
                    tests: vec![],
                },
                None,
            )
        }
    };
    match model::check(&root, ctx) {
        Ok(policy) => (
            Validation {
                errors: vec![],
                tests: eval::run_tests(&policy),
            },
            Some(policy),
        ),
        Err(errors) => (
            Validation {
                errors: errors
                    .into_iter()
                    .map(|e| Problem {
                        line: e.pos.line,
                        col: e.pos.col,
                        message: e.message,
                    })
                    .collect(),
                tests: vec![],
            },
            None,
        ),
    }
}
