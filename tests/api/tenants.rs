//! `ringlypro tenant add`: validation before anything is written.

use ringlypro::cli::{TenantAddArgs, add_tenant};
use ringlypro::storage::postgres::tenants;

use crate::helpers::fresh_database;

fn args(number: &str) -> TenantAddArgs {
    TenantAddArgs {
        name: "Bright Smile Dental".into(),
        number: number.into(),
        owner_phone: "+15551230000".into(),
        timezone: "America/New_York".into(),
        days: "mon-fri".into(),
        hours: "09:00-17:00".into(),
        slot_minutes: 30,
        buffer_minutes: 0,
        greeting: None,
        services: String::new(),
        description: String::new(),
        owner_name: String::new(),
        language: "en".into(),
        email: None,
        password: None,
    }
}

#[tokio::test]
async fn a_valid_tenant_is_created_with_its_credit_account() {
    let (_, pool) = fresh_database().await;
    let id = add_tenant(&pool, &args("+15550001111")).await.unwrap();
    let tenant = tenants::find(&pool, id).await.unwrap().unwrap();
    assert_eq!(tenant.ringlypro_number.as_deref(), Some("+15550001111"));
    let balance: i64 = sqlx::query_scalar("SELECT balance_cents FROM credit_accounts WHERE client_id = $1")
        .bind(id)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(balance, 0);
}

#[tokio::test]
async fn invalid_input_gets_a_clear_error_and_creates_nothing() {
    let (_, pool) = fresh_database().await;
    let cases: Vec<(TenantAddArgs, &str)> = vec![
        (args("5550001111"), "E.164"),
        (args("+1555"), "--number"),
        (TenantAddArgs { owner_phone: "call me".into(), ..args("+15550001111") }, "--owner-phone"),
        (TenantAddArgs { timezone: "Mars/Olympus".into(), ..args("+15550001111") }, "time zone"),
        (TenantAddArgs { hours: "17:00-09:00".into(), ..args("+15550001111") }, "--days/--hours"),
        (TenantAddArgs { days: "funday".into(), ..args("+15550001111") }, "--days/--hours"),
        (TenantAddArgs { slot_minutes: 0, ..args("+15550001111") }, "--slot-minutes"),
        (TenantAddArgs { name: "  ".into(), ..args("+15550001111") }, "--name"),
    ];
    for (bad, expected) in cases {
        let err = add_tenant(&pool, &bad).await.expect_err("invalid input must be refused");
        assert!(err.to_string().contains(expected), "{err} should mention {expected}");
    }
    assert!(tenants::list(&pool).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_number_already_taken_is_refused() {
    let (_, pool) = fresh_database().await;
    add_tenant(&pool, &args("+15550001111")).await.unwrap();
    let err = add_tenant(&pool, &TenantAddArgs { name: "Other".into(), ..args("+15550001111") }).await.unwrap_err();
    assert!(err.to_string().contains("already belongs"), "{err}");
    assert_eq!(tenants::list(&pool).await.unwrap().len(), 1);
}
