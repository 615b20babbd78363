//! Tenant ACL policies (DESIGN.md §2): the tenant's HuJSON text, parsed with positions
//! (`hujson`), checked against the tenant's own names, and compiled with every other
//! tenant's policy on the shard into the one Headscale policy.

pub mod compile;
pub mod eval;
pub mod hujson;
pub mod isolation;
pub mod model;
#[cfg(test)]
mod proptests;
pub mod reach;
