//! The arithmetic of credit: what a call costs, when the free minutes reset, when an account
//! locks, when to warn the owner and when to reload a saved card. Plain functions on plain
//! numbers (integer cents, whole minutes); storage and Stripe live elsewhere.

use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;

use crate::domain::names::named;

/// Free minutes each calendar month.
pub const FREE_MINUTES_PER_MONTH: i32 = 100;
/// A call shorter than this is not charged (a wrong number, a hang-up during the greeting).
pub const SHORTEST_CHARGED_SECONDS: i32 = 15;
/// Reload amounts an owner can buy, in cents.
pub const RELOAD_AMOUNTS_CENTS: [i64; 4] = [1000, 2000, 5000, 10000];
/// Below this balance (with the free minutes gone) the owner is warned.
pub const LOW_BALANCE_CENTS: i64 = 100;
/// Below this many free minutes (with no balance) the owner is warned.
pub const LOW_FREE_MINUTES: i32 = 10;

/// A tenant's credit as the ledger leaves it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Account {
    pub balance_cents: i64,
    pub free_minutes_limit: i32,
    pub free_minutes_used: i32,
    pub rate_cents_per_minute: i32,
    /// The first day of the free-minute cycle, in the tenant's zone.
    pub cycle_start: NaiveDate,
}

impl Account {
    pub fn free_minutes_left(&self) -> i32 {
        (self.free_minutes_limit - self.free_minutes_used).max(0)
    }

    /// Whether the agent may answer: some free minutes left, or the balance pays for one
    /// more minute. At a rate of zero the balance is never needed.
    pub fn can_answer(&self) -> bool {
        self.free_minutes_left() > 0 || self.balance_cents >= i64::from(self.rate_cents_per_minute)
    }

    /// Low enough to warn the owner: the free minutes gone and under $1.00 left, or fewer
    /// than ten free minutes and no balance behind them.
    pub fn is_low(&self) -> bool {
        is_low(self.free_minutes_left(), self.balance_cents)
    }
}

/// The low-credit rule on its two figures: no free minutes and under $1.00, or fewer than
/// ten free minutes and no balance behind them.
pub fn is_low(free_minutes_left: i32, balance_cents: i64) -> bool {
    (free_minutes_left == 0 && balance_cents < LOW_BALANCE_CENTS)
        || (free_minutes_left < LOW_FREE_MINUTES && balance_cents <= 0)
}

named! {
    /// Why a call that ended cost nothing.
    pub enum NotCharged {
        /// The owner took the call: the agent was off, the account locked, or the call was
        /// handed over before the agent said a word.
        OwnerAnswered = "owner_answered",
        /// Shorter than [`SHORTEST_CHARGED_SECONDS`].
        TooShort = "too_short",
        /// From a number on the tenant's block list.
        BlockedCaller = "blocked_caller",
        /// Busy, failed, no answer or cancelled: nobody talked.
        NotAnswered = "not_answered",
    }
}

impl NotCharged {
    /// The reason as the call page states it.
    pub fn explanation(self) -> &'static str {
        match self {
            NotCharged::OwnerAnswered => "Not charged: the call went to the owner, not to the assistant.",
            NotCharged::TooShort => "Not charged: the call lasted less than 15 seconds.",
            NotCharged::BlockedCaller => "Not charged: the caller is on the block list.",
            NotCharged::NotAnswered => "Not charged: the call was never answered.",
        }
    }
}

/// What one call takes from the account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Charge {
    pub minutes: i32,
    pub free_minutes: i32,
    pub paid_minutes: i32,
    pub cost_cents: i64,
}

/// Whole minutes, rounded up.
pub fn billable_minutes(duration_seconds: i32) -> i32 {
    let seconds = duration_seconds.max(0);
    seconds / 60 + i32::from(seconds % 60 != 0)
}

/// Free minutes first, then the balance at the account's rate. The balance may go below
/// zero for the minutes of a call already under way when it ran out.
pub fn price(account: &Account, minutes: i32) -> Charge {
    let minutes = minutes.max(0);
    let free_minutes = minutes.min(account.free_minutes_left());
    let paid_minutes = minutes - free_minutes;
    Charge {
        minutes,
        free_minutes,
        paid_minutes,
        cost_cents: i64::from(paid_minutes) * i64::from(account.rate_cents_per_minute),
    }
}

/// The account after `charge`.
pub fn apply(account: &Account, charge: &Charge) -> Account {
    Account {
        free_minutes_used: account.free_minutes_used + charge.free_minutes,
        balance_cents: account.balance_cents - charge.cost_cents,
        ..*account
    }
}

/// The first day of the month `now` falls in, in `zone`.
pub fn cycle_start(now: DateTime<Utc>, zone: Tz) -> NaiveDate {
    let local = now.with_timezone(&zone).date_naive();
    local.with_day(1).unwrap_or(local) // day 1 exists in every month
}

/// When the free minutes next reset: midnight on the 1st of next month in `zone` (or the
/// first instant of that day where a clock change skips midnight).
pub fn next_reset(now: DateTime<Utc>, zone: Tz) -> DateTime<Utc> {
    let start = cycle_start(now, zone);
    let next = start.checked_add_months(chrono::Months::new(1)).unwrap_or(start);
    first_instant(next, zone)
}

fn first_instant(day: NaiveDate, zone: Tz) -> DateTime<Utc> {
    // A zone whose clocks jump at midnight has no 00:00 that day: take the first minute
    // that exists.
    (0..24 * 60)
        .filter_map(|m| day.and_hms_opt(m / 60, m % 60, 0))
        .find_map(|t| zone.from_local_datetime(&t).earliest())
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(|| day.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc())
}

/// A monthly reset of the free minutes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reset {
    pub cycle_start: NaiveDate,
    pub free_used_before: i32,
}

/// The account in the cycle `now` falls in: unchanged within its cycle, the free minutes
/// reset when a new month has begun in the tenant's zone. Never moves a cycle backwards.
pub fn roll(account: &Account, now: DateTime<Utc>, zone: Tz) -> (Account, Option<Reset>) {
    let current = cycle_start(now, zone);
    if current <= account.cycle_start {
        return (*account, None);
    }
    let reset = Reset { cycle_start: current, free_used_before: account.free_minutes_used };
    (Account { free_minutes_used: 0, cycle_start: current, ..*account }, Some(reset))
}

/// Whether a change of balance from `before` to `after` crossed the auto-reload threshold
/// downwards: one crossing, one automatic charge.
pub fn crossed_threshold(threshold_cents: i64, before: i64, after: i64) -> bool {
    before >= threshold_cents && after < threshold_cents
}

/// Dollars and cents for people (`$12.30`, `-$0.40`).
pub fn dollars(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let abs = cents.unsigned_abs();
    format!("{sign}${}.{:02}", abs / 100, abs % 100)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn account(balance_cents: i64, free_used: i32) -> Account {
        Account {
            balance_cents,
            free_minutes_limit: 100,
            free_minutes_used: free_used,
            rate_cents_per_minute: 10,
            cycle_start: NaiveDate::from_ymd_opt(2026, 11, 1).unwrap(),
        }
    }

    #[test]
    fn minutes_are_whole_and_rounded_up() {
        assert_eq!(billable_minutes(0), 0);
        assert_eq!(billable_minutes(1), 1);
        assert_eq!(billable_minutes(59), 1);
        assert_eq!(billable_minutes(60), 1);
        assert_eq!(billable_minutes(61), 2);
        assert_eq!(billable_minutes(3599), 60);
        assert_eq!(billable_minutes(-5), 0);
    }

    #[test]
    fn free_minutes_go_first_then_the_balance_at_the_rate() {
        let a = account(500, 97);
        let c = price(&a, 5);
        assert_eq!(c, Charge { minutes: 5, free_minutes: 3, paid_minutes: 2, cost_cents: 20 });
        let after = apply(&a, &c);
        assert_eq!(after.free_minutes_used, 100);
        assert_eq!(after.balance_cents, 480);
    }

    #[test]
    fn a_call_already_under_way_may_take_the_balance_below_zero_and_then_the_account_locks() {
        let a = account(15, 100);
        let after = apply(&a, &price(&a, 3));
        assert_eq!(after.balance_cents, -15);
        assert!(!after.can_answer());
    }

    #[test]
    fn an_account_locks_only_when_free_minutes_are_gone_and_the_balance_cannot_pay_a_minute() {
        assert!(account(0, 99).can_answer());
        assert!(!account(0, 100).can_answer());
        assert!(!account(9, 100).can_answer());
        assert!(account(10, 100).can_answer());
        let free_rate = Account { rate_cents_per_minute: 0, ..account(0, 100) };
        assert!(free_rate.can_answer());
    }

    #[test]
    fn the_owner_is_warned_under_a_dollar_or_under_ten_free_minutes_with_nothing_behind_them() {
        assert!(!account(0, 50).is_low());
        assert!(account(0, 91).is_low());
        assert!(!account(500, 95).is_low());
        assert!(account(99, 100).is_low());
        assert!(!account(100, 100).is_low());
    }

    #[test]
    fn the_cycle_starts_on_the_first_in_the_tenants_zone_not_in_utc() {
        // 03:00 UTC on 1 December is still 30 November in New York and Los Angeles.
        let now = Utc.with_ymd_and_hms(2026, 12, 1, 3, 0, 0).unwrap();
        assert_eq!(cycle_start(now, chrono_tz::America::New_York), NaiveDate::from_ymd_opt(2026, 11, 1).unwrap());
        assert_eq!(cycle_start(now, chrono_tz::Europe::Madrid), NaiveDate::from_ymd_opt(2026, 12, 1).unwrap());
    }

    #[test]
    fn the_reset_is_at_local_midnight_across_a_clock_change() {
        // New York leaves daylight time on 1 November 2026: October's reset is at
        // 04:00 UTC (EDT), December's at 05:00 UTC (EST).
        let ny = chrono_tz::America::New_York;
        let in_october = Utc.with_ymd_and_hms(2026, 10, 15, 12, 0, 0).unwrap();
        assert_eq!(next_reset(in_october, ny), Utc.with_ymd_and_hms(2026, 11, 1, 4, 0, 0).unwrap());
        let in_november = Utc.with_ymd_and_hms(2026, 11, 15, 12, 0, 0).unwrap();
        assert_eq!(next_reset(in_november, ny), Utc.with_ymd_and_hms(2026, 12, 1, 5, 0, 0).unwrap());
        // Tokyo, no daylight time: 15:00 UTC the day before.
        let tokyo = chrono_tz::Asia::Tokyo;
        assert_eq!(next_reset(in_november, tokyo), Utc.with_ymd_and_hms(2026, 11, 30, 15, 0, 0).unwrap());
    }

    #[test]
    fn a_zone_whose_clocks_jump_at_midnight_resets_at_the_first_minute_that_exists() {
        // Santiago moved its clocks forward at midnight on 9 September 2023 (00:00 → 01:00);
        // a 1 September-style boundary is what matters here, so check the helper directly.
        let santiago = chrono_tz::America::Santiago;
        let first = first_instant(NaiveDate::from_ymd_opt(2023, 9, 3).unwrap(), santiago);
        assert_eq!(first, Utc.with_ymd_and_hms(2023, 9, 3, 4, 0, 0).unwrap());
    }

    #[test]
    fn a_new_month_resets_the_free_minutes_once_and_keeps_the_balance() {
        let a = account(730, 100);
        let december = Utc.with_ymd_and_hms(2026, 12, 1, 6, 0, 0).unwrap();
        let (rolled, reset) = roll(&a, december, chrono_tz::America::New_York);
        assert_eq!(
            reset,
            Some(Reset { cycle_start: NaiveDate::from_ymd_opt(2026, 12, 1).unwrap(), free_used_before: 100 })
        );
        assert_eq!(rolled.free_minutes_used, 0);
        assert_eq!(rolled.balance_cents, 730);
        let (again, none) = roll(&rolled, december, chrono_tz::America::New_York);
        assert_eq!(none, None);
        assert_eq!(again, rolled);
        // An instant still in November locally changes nothing.
        let late_november = Utc.with_ymd_and_hms(2026, 12, 1, 3, 0, 0).unwrap();
        assert_eq!(roll(&a, late_november, chrono_tz::America::New_York).1, None);
    }

    #[test]
    fn a_cycle_never_moves_backwards() {
        let a = Account { cycle_start: NaiveDate::from_ymd_opt(2026, 12, 1).unwrap(), ..account(0, 40) };
        let november = Utc.with_ymd_and_hms(2026, 11, 20, 0, 0, 0).unwrap();
        assert_eq!(roll(&a, november, chrono_tz::UTC), (a, None));
    }

    #[test]
    fn only_a_downward_crossing_of_the_threshold_reloads() {
        assert!(crossed_threshold(500, 520, 480));
        assert!(crossed_threshold(500, 500, 490));
        assert!(!crossed_threshold(500, 480, 470));
        assert!(!crossed_threshold(500, 480, 2480));
        assert!(!crossed_threshold(500, 900, 600));
    }

    #[test]
    fn money_reads_as_dollars_and_cents() {
        assert_eq!(dollars(0), "$0.00");
        assert_eq!(dollars(1230), "$12.30");
        assert_eq!(dollars(-40), "-$0.40");
        assert_eq!(dollars(5), "$0.05");
    }
}
