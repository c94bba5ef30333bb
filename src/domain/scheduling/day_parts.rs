//! The parts of the day callers name ("in the morning"), by wall-clock time. Reading them
//! from words is the dialogue's job; here they are only hours.

use chrono::{NaiveTime, Timelike};
use serde::{Deserialize, Serialize};

/// A part of the day as callers name it: morning before 12:00, afternoon 12:00–17:00,
/// evening from 17:00.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DayPart {
    Morning,
    Afternoon,
    Evening,
}

impl DayPart {
    /// The part of the day a wall-clock time falls in.
    pub fn of(t: NaiveTime) -> DayPart {
        match t.hour() {
            0..=11 => DayPart::Morning,
            12..=16 => DayPart::Afternoon,
            _ => DayPart::Evening,
        }
    }

    /// Whether a wall-clock time falls in this part of the day.
    pub fn contains(self, t: NaiveTime) -> bool {
        DayPart::of(t) == self
    }

    /// "morning", "afternoon" or "evening".
    pub fn as_str(self) -> &'static str {
        match self {
            DayPart::Morning => "morning",
            DayPart::Afternoon => "afternoon",
            DayPart::Evening => "evening",
        }
    }

    /// Start and end in seconds after midnight.
    pub(super) fn bounds(self) -> (u32, u32) {
        match self {
            DayPart::Morning => (0, 12 * 3600),
            DayPart::Afternoon => (12 * 3600, 17 * 3600),
            DayPart::Evening => (17 * 3600, 24 * 3600),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::scheduling::tests::time;

    #[test]
    fn day_parts_split_at_noon_and_five() {
        assert_eq!(DayPart::of(time(11, 59)), DayPart::Morning);
        assert_eq!(DayPart::of(time(12, 0)), DayPart::Afternoon);
        assert_eq!(DayPart::of(time(16, 59)), DayPart::Afternoon);
        assert_eq!(DayPart::of(time(17, 0)), DayPart::Evening);
        assert!(DayPart::Morning.contains(time(0, 0)));
        assert_eq!(serde_json::to_string(&DayPart::Afternoon).unwrap(), "\"afternoon\"");
    }
}
