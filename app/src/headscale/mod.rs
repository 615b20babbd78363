//! The Headscale REST client: how the portal drives a shard (DESIGN.md §1, §3).
//!
//! One `ShardClient` per shard, kept for the life of the process: it holds the shard's
//! circuit breaker and its detected Headscale version (0.28 or 0.29 behaviour, see
//! `version`). Calls return domain types normalised across versions (`types`) or a
//! `HeadscaleError` that names the shard in a plain sentence (`error`). The API key and
//! fresh pre-auth keys are wrapped so they cannot be printed (`secret`).
//!
//! Server only.

mod breaker;
mod client;
mod clients;
mod error;
mod retry;
mod secret;
mod types;
mod version;

#[cfg(test)]
mod fault_shard;
#[cfg(test)]
mod real_shard_tests;

pub use breaker::{BreakerState, InstantClock, ManualInstantClock, SystemInstantClock};
pub use client::{ShardClient, ShardClientOptions};
pub use clients::{ShardAccess, ShardClients};
pub use error::{HeadscaleError, HeadscaleErrorKind};
pub use secret::{ApiKey, PreAuthKeySecret};
pub use types::{
    ApiKeyId, ApiKeyInfo, CreatedPreAuthKey, NewPreAuthKey, NewUser, Node, NodeId, Policy,
    PreAuthKey, PreAuthKeyId, RegisterMethod, User, UserId,
};
pub use version::{HeadscaleVersion, RegistrationIdForm};
