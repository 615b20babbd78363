//! Personal preferences that do not need an account: the colour scheme.

use crate::error::AppError;
use leptos::prelude::*;

/// Stores the chosen colour scheme in a cookie (one year). Works as a plain form post.
#[server(prefix = "/api", endpoint = "set_theme")]
pub async fn set_theme(theme: String) -> Result<String, AppError> {
    use crate::domain::theme::Theme;
    use crate::error::fail;
    let theme = Theme::parse(&theme)
        .ok_or_else(|| fail(AppError::Invalid("Choose system, light or dark.".into())))?;
    let state = crate::state::app_state().map_err(fail)?;
    let secure = if state.public_origin.starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    let cookie = format!(
        "{}={}; Path=/; Max-Age=31536000; SameSite=Lax{secure}",
        Theme::COOKIE,
        theme.as_str()
    );
    if let Some(res) = use_context::<leptos_axum::ResponseOptions>() {
        if let Ok(value) = http::HeaderValue::from_str(&cookie) {
            res.append_header(http::header::SET_COOKIE, value);
        }
    }
    Ok(theme.as_str().to_string())
}
