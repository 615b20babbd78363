//! Session limits with an injected clock: idle timeout and absolute lifetime.

mod common;

use common::{Idp, TestApp};
use sqlx::PgPool;
use time::Duration;

#[sqlx::test(migrator = "server::startup::MIGRATOR")]
async fn an_idle_session_ends_after_the_idle_timeout(owner: PgPool) {
    let app = TestApp::spawn(owner, Idp::real_rs256()).await;
    app.sign_in("alice").await;
    app.clock.advance(Duration::minutes(29));
    assert!(
        app.is_signed_in().await,
        "29 idle minutes are within the limit"
    );
    app.clock.advance(Duration::minutes(29));
    assert!(
        app.is_signed_in().await,
        "the last request reset the idle timer"
    );
    app.clock.advance(Duration::minutes(30));
    assert!(!app.is_signed_in().await, "30 idle minutes end the session");
    assert_eq!(app.session_rows().await, 0, "the ended session is deleted");
}

#[sqlx::test(migrator = "server::startup::MIGRATOR")]
async fn an_active_session_still_ends_at_its_absolute_lifetime(owner: PgPool) {
    let app = TestApp::spawn(owner, Idp::real_rs256()).await;
    app.sign_in("alice").await;
    // Active every 20 minutes for 11 h 40 min: never idle.
    for _ in 0..35 {
        app.clock.advance(Duration::minutes(20));
        assert!(app.is_signed_in().await);
    }
    app.clock.advance(Duration::minutes(20));
    assert!(
        !app.is_signed_in().await,
        "12 hours after sign-in the session ends"
    );
}

#[sqlx::test(migrator = "server::startup::MIGRATOR")]
async fn limits_are_configurable(owner: PgPool) {
    let app = TestApp::spawn_with(owner, Idp::real_rs256(), |c| {
        c.session_idle = Duration::minutes(5);
        c.session_absolute = Duration::hours(1);
    })
    .await;
    app.sign_in("alice").await;
    app.clock.advance(Duration::minutes(4));
    assert!(app.is_signed_in().await);
    app.clock.advance(Duration::minutes(5));
    assert!(!app.is_signed_in().await);
}
