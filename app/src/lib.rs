//! The portal's Leptos application: pages, components and server functions.
//!
//! Layout (see STYLE.md): `domain` holds pure types and rules, `api` the server
//! functions (thin: authorize → domain → data), `ui` the components. `auth` and `data`
//! exist only on the server (feature `ssr`).
#![recursion_limit = "256"]
// `#[server]` generates a browser-side stub with the server function's argument list, and
// does not carry an `allow` on the function over to it; form-backed server functions take
// one argument per form field.
#![cfg_attr(feature = "hydrate", allow(clippy::too_many_arguments))]

pub mod api;
pub mod domain;
pub mod error;
pub mod ui;

#[cfg(feature = "ssr")]
pub mod auth;
#[cfg(feature = "ssr")]
pub mod data;
#[cfg(feature = "ssr")]
pub mod headscale;
#[cfg(feature = "ssr")]
pub mod state;

pub use ui::app::{shell, App};

/// Entry point of the browser bundle: attaches the server-rendered page.
#[cfg(feature = "hydrate")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_body(App);
}
