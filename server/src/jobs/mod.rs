//! Background work. Each job claims its work through Postgres (DESIGN.md §9), so any
//! number of portal replicas can run it side by side.

pub mod policy;
pub mod sync;
pub mod usage;
