//! Pure types and rules of the portal. No I/O here, so everything is unit-testable.

pub mod csv;
pub mod devices;
pub mod groups;
pub mod keys;
pub mod members;
pub mod placement;
pub mod policy;
pub mod role;
pub mod routes;
pub mod shard;
pub mod shard_users;
pub mod sync;
pub mod tags;
pub mod tenant;
pub mod theme;
pub mod tokens;
pub mod usage;
