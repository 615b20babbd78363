//! The axum server around the Leptos app: configuration, startup, sign-in routes,
//! request safety, health probes, background jobs (the shard sync) and the admin
//! command line. `main.rs` only boots.

pub mod audit_export;
pub mod auth_layer;
pub mod billing;
pub mod cli;
pub mod config;
pub mod health;
pub mod jobs;
pub mod metrics;
pub mod oidc;
pub mod resilience;
pub mod rest;
pub mod security;
pub mod startup;
pub mod telemetry;
