//! The Today page (`/app`): the signed-in tenant's calls, bookings and messages of the
//! day in its own time zone, free minutes and balance, and the Rachel on/off switch.
//! Reads only through a tenant transaction.

use axum::Form;
use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use minijinja::context;

use crate::domain::calls::HandledBy;
use crate::domain::phone::PhoneNumber;
use crate::storage::postgres::{begin_tenant, today};
use crate::web::Error;
use crate::web::WebState;
use crate::web::auth::Owner;
use crate::web::settings::{SwitchForm, switch_rachel};
use crate::web::shell::render;

/// The start of `date` in `tz`, as UTC. A midnight that does not exist (a DST jump at
/// midnight) starts the day at the first instant that does.
fn start_of(date: NaiveDate, tz: Tz) -> DateTime<Utc> {
    let midnight = date.and_time(chrono::NaiveTime::MIN);
    (0..=3)
        .find_map(|h| tz.from_local_datetime(&(midnight + Duration::hours(h))).earliest())
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(|| Utc.from_utc_datetime(&midnight))
}

/// `[start, end)` of the local day containing `now` in `tz`.
pub fn day_bounds(tz: Tz, now: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
    let date = now.with_timezone(&tz).date_naive();
    let next = date.succ_opt().unwrap_or(date);
    (start_of(date, tz), start_of(next, tz))
}

/// Cents as dollars, e.g. `$12.34`.
pub(crate) fn money(cents: i64) -> String {
    format!("${}.{:02}", cents / 100, cents.rem_euclid(100))
}

fn minutes_and_seconds(seconds: i32) -> String {
    format!("{}:{:02}", seconds / 60, seconds % 60)
}

/// `GET /app`
pub async fn page(State(app): State<WebState>, owner: Owner) -> Result<Response, Error> {
    let mut tx = begin_tenant(&app.pool, owner.client_id).await?;
    let tenant = today::tenant_header(&mut tx, owner.client_id)
        .await?
        .ok_or_else(|| Error::NotFound("this account's business no longer exists".into()))?;
    let tz = tenant.timezone;
    let now = Utc::now();
    let (from, to) = day_bounds(tz, now);
    let calls = today::calls(&mut tx, owner.client_id, from, to).await?;
    let bookings = today::bookings(&mut tx, owner.client_id, from, to).await?;
    let messages = today::messages(&mut tx, owner.client_id, from, to).await?;
    let credits = today::credits(&mut tx, owner.client_id).await?;
    let reconnect = today::reconnect_needed(&mut tx, owner.client_id).await?;
    tx.commit().await?;

    let time = |t: DateTime<Utc>| t.with_timezone(&tz).format("%-I:%M %p").to_string();
    let calls: Vec<_> = calls
        .iter()
        .map(|c| {
            context! {
                time => time(c.started_at),
                from => if c.from_number.is_empty() { "Unknown caller".to_owned() } else { c.from_number.clone() },
                outcome => if c.handled_by == HandledBy::Owner { "sent to you".to_owned() } else { c.outcome.as_str().replace('_', " ") },
                duration => c.duration_seconds.map(minutes_and_seconds),
            }
        })
        .collect();
    let appointments: Vec<_> = bookings
        .iter()
        .map(|b| {
            context! { time => time(b.starts_at), name => b.customer_name.as_str(), phone => b.customer_phone.as_str(), status => b.status.as_str() }
        })
        .collect();
    let messages: Vec<_> = messages
        .iter()
        .map(|m| context! { time => time(m.created_at), from => m.from_number.as_str(), body => m.body.as_str() })
        .collect();
    let (free_left, free_limit, balance, locked, low) = match &credits {
        Some(c) => {
            let free_left = (c.free_minutes_limit - c.free_minutes_used).max(0);
            let low = crate::domain::credits::is_low(free_left, c.balance_cents);
            (free_left, c.free_minutes_limit, money(c.balance_cents), c.locked, low)
        }
        None => (0, 0, money(0), false, false),
    };
    let number_formatted = tenant
        .ringlypro_number
        .as_deref()
        .map(|n| PhoneNumber::parse(n).map(|p| p.formatted()).unwrap_or(n.to_owned()));
    // A number Twilio has not sold us yet, after a failed try: say so, and that it goes on.
    let number_trouble = match tenant.ringlypro_number {
        Some(_) => false,
        None => crate::services::numbers::order_state(&app.pool, owner.client_id)
            .await?
            .is_some_and(|o| o.action == "buy" && o.last_error.is_some()),
    };
    render(
        &app.templates,
        "today.html",
        context! {
            owner => minijinja::Value::from(minijinja::value::Serde(&owner)),
            active => "today",
            number_trouble,
            reconnect,
            business_name => tenant.business_name,
            today => now.with_timezone(&tz).format("%A, %B %-d").to_string(),
            number => tenant.ringlypro_number,
            number_formatted,
            owner_phone => tenant.owner_phone,
            rachel_enabled => tenant.rachel_enabled,
            calls,
            appointments,
            messages,
            free_minutes_left => free_left,
            free_minutes_limit => free_limit,
            balance,
            locked,
            low,
        },
    )
}

/// `POST /app/rachel` (`enabled=true|false`, with the CSRF token): turns the voice
/// agent on or off for the signed-in tenant from its next call.
pub async fn set_rachel(
    State(app): State<WebState>,
    owner: Owner,
    Form(form): Form<SwitchForm>,
) -> Result<Response, Error> {
    switch_rachel(&app, &owner, &form).await?;
    Ok(Redirect::to("/app").into_response())
}

/// `GET /`: the dashboard for a signed-in owner, the sign-in page otherwise.
pub async fn home(owner: Option<Owner>) -> Redirect {
    Redirect::to(if owner.is_some() { "/app" } else { "/login" })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_day_is_bounded_by_local_midnights() {
        let tz = chrono_tz::America::New_York;
        // 02:30 UTC on 10 March is still 9 March in New York (EST, UTC-5).
        let now = Utc.with_ymd_and_hms(2025, 3, 10, 2, 30, 0).unwrap();
        let (from, to) = day_bounds(tz, now);
        assert_eq!(from, Utc.with_ymd_and_hms(2025, 3, 9, 5, 0, 0).unwrap());
        // 9 March 2025 is the spring-forward day: 23 hours long.
        assert_eq!(to, Utc.with_ymd_and_hms(2025, 3, 10, 4, 0, 0).unwrap());
    }

    #[test]
    fn a_missing_local_midnight_starts_the_day_at_the_first_real_instant() {
        // Santiago skips from 00:00 to 01:00 on 7 September 2025.
        let tz = chrono_tz::America::Santiago;
        let now = Utc.with_ymd_and_hms(2025, 9, 7, 15, 0, 0).unwrap();
        let (from, _) = day_bounds(tz, now);
        assert_eq!(from.with_timezone(&tz).format("%H:%M").to_string(), "01:00");
    }

    #[test]
    fn money_is_shown_in_dollars_and_cents() {
        assert_eq!(money(0), "$0.00");
        assert_eq!(money(1234), "$12.34");
        assert_eq!(money(5), "$0.05");
    }
}
