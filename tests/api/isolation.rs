//! Tenant isolation in the database itself: row-level security hides other tenants' rows
//! from a tenant transaction even when a query forgets its WHERE client_id.

use chrono::{Duration, DurationRound, Utc};
use ringlypro::domain::language::Language;
use ringlypro::domain::scheduling::Slot;
use ringlypro::services::booking::{self, BookingRequest};
use ringlypro::storage::postgres::{begin_tenant, tenants};

use crate::helpers::{add_tenant, fresh_database};

#[tokio::test]
async fn a_tenant_transaction_sees_only_its_own_rows_without_any_where_clause() {
    let (_, pool) = fresh_database().await;
    let a = add_tenant(&pool, "A", "+15550001111", "America/New_York").await;
    let b = add_tenant(&pool, "B", "+15550002222", "America/New_York").await;
    let starts_at = (Utc::now() + Duration::days(2)).duration_trunc(Duration::hours(1)).unwrap();
    for id in [a, b] {
        let tenant = tenants::find(&pool, id).await.unwrap().unwrap();
        let req = BookingRequest {
            name: format!("Caller of {id}"),
            phone: "+15557654321".into(),
            slot: Slot { starts_at, ends_at: starts_at + Duration::minutes(30) },
            call_id: None,
            language: Language::English,
            source: "voice_booking",
        };
        booking::book(&pool, &tenant, &req, Utc::now()).await.unwrap();
    }
    let mut tx = begin_tenant(&pool, a).await.unwrap();
    let seen: Vec<i64> = sqlx::query_scalar("SELECT client_id FROM appointments").fetch_all(&mut *tx).await.unwrap();
    assert_eq!(seen, vec![a]);
    let contacts: Vec<i64> = sqlx::query_scalar("SELECT client_id FROM contacts").fetch_all(&mut *tx).await.unwrap();
    assert_eq!(contacts, vec![a]);
    let clients: Vec<i64> = sqlx::query_scalar("SELECT id FROM clients").fetch_all(&mut *tx).await.unwrap();
    assert_eq!(clients, vec![a]);
    // Writing another tenant's rows is refused too.
    let err = sqlx::query("INSERT INTO contacts (client_id, phone) VALUES ($1, '+15550000000')")
        .bind(b)
        .execute(&mut *tx)
        .await;
    assert!(err.is_err(), "row-level security must refuse a write for another tenant");
    tx.rollback().await.unwrap();
    let updated = {
        let mut tx = begin_tenant(&pool, a).await.unwrap();
        let n = sqlx::query("UPDATE appointments SET notes = 'x'").execute(&mut *tx).await.unwrap().rows_affected();
        tx.commit().await.unwrap();
        n
    };
    assert_eq!(updated, 1, "an unscoped update touches only the tenant's own row");
}
