//! Who is asking, and what they may do. Server only.
//!
//! `session` keeps the signed-in person in a tower-sessions session with idle and
//! absolute limits; `principal` is the person as this request sees them; scopes
//! (`TenantScope`, `OperatorScope`) can only be made here, after the membership or
//! operator check, and every data function takes one.

pub mod clock;
pub mod principal;
pub mod session;

pub use principal::{current_principal, Actor, OperatorScope, Principal, TenantScope};
