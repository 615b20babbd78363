//! Server functions, one area per module. Each is a public endpoint: it authenticates
//! and authorizes inside itself (`current_principal()` → scope → data).

pub mod audit;
pub mod devices;
#[cfg(feature = "ssr")]
pub mod handoff;
pub mod keys;
pub mod members;
pub mod operator;
pub mod policy;
pub mod preferences;
pub mod shards;
pub mod tenant;
pub mod tenants;
pub mod tokens;
pub mod usage;
pub mod viewer;
