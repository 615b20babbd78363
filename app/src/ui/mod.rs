//! Components by area. `*_page.rs` are routes; `common` holds shared widgets.

pub mod app;
pub mod audit_page;
pub mod charts;
pub mod common;
pub mod device_page;
pub mod devices_page;
pub mod home_page;
pub mod keys_page;
pub mod layout;
pub mod login_page;
pub mod members_page;
pub mod not_found_page;
pub mod operator_page;
pub mod operator_usage_page;
pub mod policy_page;
pub mod quotas_page;
pub mod shard_detail_page;
pub mod shard_form;
pub mod shard_new_page;
pub mod tenant_admin_page;
pub mod tenant_dashboard_page;
pub mod tenant_new_page;
pub mod tokens_page;
pub mod usage_page;
