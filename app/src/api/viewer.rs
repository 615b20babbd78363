//! Who is signed in, for the navigation and the home page.

use crate::domain::role::TenantRole;
use crate::error::AppError;
use leptos::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Viewer {
    pub display_name: String,
    pub email: Option<String>,
    pub is_operator: bool,
    pub memberships: Vec<MembershipView>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MembershipView {
    pub slug: String,
    pub display_name: String,
    pub role: TenantRole,
    pub from_idp: bool,
}

/// The signed-in person, or `None` when nobody is signed in (not an error: the login
/// page asks too).
#[server(prefix = "/api", endpoint = "get_viewer")]
pub async fn get_viewer() -> Result<Option<Viewer>, AppError> {
    match crate::auth::current_principal() {
        Ok(p) => Ok(Some(p.to_viewer())),
        Err(AppError::Unauthenticated) => Ok(None),
        Err(e) => Err(crate::error::fail(e)),
    }
}
