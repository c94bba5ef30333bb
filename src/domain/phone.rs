//! Phone numbers as E.164 strings: parsed once at the edge, then trusted everywhere.
//! Owns formatting for reading a number aloud; knows nothing about carriers or Twilio.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A phone number in E.164 form (`+15551234567`).
///
/// Only [`PhoneNumber::parse`] builds one, so holding a `PhoneNumber` means the digits were
/// checked. North American numbers may be written without the country code.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PhoneNumber(String);

/// Why a piece of text is not a phone number. Messages are meant for the person who typed it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PhoneError {
    #[error("phone number is empty")]
    Empty,
    #[error("phone number contains {0:?}; use digits, spaces, dashes, dots, brackets and a leading +")]
    InvalidCharacter(char),
    #[error("phone number has {0} digits; expected 10 digits (US/Canada) or + and 8 to 15 digits")]
    WrongLength(usize),
    #[error("US/Canada area codes cannot start with 0 or 1")]
    InvalidAreaCode,
}

impl PhoneNumber {
    /// Parses a number as people type or say it.
    ///
    /// Accepted: `+15551234567`, `(555) 123-4567`, `555-123-4567`, `555.123.4567`,
    /// `1 555 123 4567`, `+44 20 7946 0958`. Ten digits mean a North American number
    /// (+1); eleven digits starting with 1 likewise. Any other number needs a leading `+`
    /// and 8 to 15 digits (the E.164 maximum).
    pub fn parse(text: &str) -> Result<Self, PhoneError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(PhoneError::Empty);
        }
        let (has_plus, rest) = match text.strip_prefix('+') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let mut digits = String::with_capacity(15);
        for c in rest.chars() {
            match c {
                '0'..='9' => digits.push(c),
                ' ' | '-' | '.' | '(' | ')' | '\u{a0}' => {}
                other => return Err(PhoneError::InvalidCharacter(other)),
            }
        }
        if digits.is_empty() {
            return Err(PhoneError::Empty);
        }
        let national = match (has_plus, digits.len()) {
            (false, 10) => Some(digits.as_str()),
            (_, 11) if digits.starts_with('1') => Some(&digits[1..]),
            (true, _) if digits.starts_with('1') => {
                return Err(PhoneError::WrongLength(digits.len()));
            }
            (true, 8..=15) => None,
            (_, n) => return Err(PhoneError::WrongLength(n)),
        };
        match national {
            Some(nanp) => {
                if nanp.starts_with('0') || nanp.starts_with('1') {
                    return Err(PhoneError::InvalidAreaCode);
                }
                Ok(PhoneNumber(format!("+1{nanp}")))
            }
            None => Ok(PhoneNumber(format!("+{digits}"))),
        }
    }

    /// The E.164 text, e.g. `+15551234567`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this is a North American Numbering Plan number (+1).
    pub fn is_nanp(&self) -> bool {
        self.0.starts_with("+1") && self.0.len() == 12
    }

    /// The last four digits, as read back to a caller to confirm a number.
    pub fn last4(&self) -> &str {
        // E.164 text is ASCII with at least 8 digits, so slicing by bytes is safe.
        &self.0[self.0.len() - 4..]
    }

    /// The digits grouped for reading aloud, e.g. `5 5 5, 1 2 3, 4 5 6 7`.
    ///
    /// North American numbers drop the country code (callers never say it). Other numbers
    /// keep it and are grouped in threes, with a final group of up to four.
    pub fn spoken(&self) -> String {
        let digits = if self.is_nanp() { &self.0[2..] } else { &self.0[1..] };
        let groups: Vec<&str> =
            if self.is_nanp() { vec![&digits[..3], &digits[3..6], &digits[6..]] } else { group_in_threes(digits) };
        groups.iter().map(|g| g.chars().map(String::from).collect::<Vec<_>>().join(" ")).collect::<Vec<_>>().join(", ")
    }

    /// A human display form: `(555) 123-4567` for North America, E.164 otherwise.
    pub fn formatted(&self) -> String {
        if self.is_nanp() {
            let d = &self.0[2..];
            format!("({}) {}-{}", &d[..3], &d[3..6], &d[6..])
        } else {
            self.0.clone()
        }
    }
}

/// Groups of three digits while more than four remain, then the rest (two to four digits
/// for any valid number), which is how numbers are commonly read out.
fn group_in_threes(digits: &str) -> Vec<&str> {
    let mut groups = Vec::new();
    let mut start = 0;
    while digits.len() - start > 4 {
        groups.push(&digits[start..start + 3]);
        start += 3;
    }
    groups.push(&digits[start..]);
    groups
}

impl fmt::Display for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for PhoneNumber {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl FromStr for PhoneNumber {
    type Err = PhoneError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PhoneNumber::parse(s)
    }
}

impl TryFrom<String> for PhoneNumber {
    type Error = PhoneError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        PhoneNumber::parse(&value)
    }
}

impl From<PhoneNumber> for String {
    fn from(value: PhoneNumber) -> Self {
        value.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_ways_of_writing_a_number_are_normalised_to_e164() {
        let cases = [
            ("+15551234567", "+15551234567"),
            ("(555) 123-4567", "+15551234567"),
            ("555-123-4567", "+15551234567"),
            ("555.123.4567", "+15551234567"),
            ("5551234567", "+15551234567"),
            ("1 555 123 4567", "+15551234567"),
            ("1-555-123-4567", "+15551234567"),
            ("+1 (555) 123-4567", "+15551234567"),
            ("  555 123 4567  ", "+15551234567"),
            ("+44 20 7946 0958", "+442079460958"),
            ("+34 612 345 678", "+34612345678"),
            ("+91 98765 43210", "+919876543210"),
            ("+49 30 1234567", "+49301234567"),
            ("+234567890123456", "+234567890123456"),
        ];
        for (input, expected) in cases {
            let phone = PhoneNumber::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(phone.as_str(), expected, "{input}");
        }
    }

    #[test]
    fn garbage_is_rejected_with_the_reason() {
        let cases = [
            ("", PhoneError::Empty),
            ("   ", PhoneError::Empty),
            ("+", PhoneError::Empty),
            ("()-", PhoneError::Empty),
            ("555-CALL-NOW", PhoneError::InvalidCharacter('C')),
            ("555 123 4567 ext 2", PhoneError::InvalidCharacter('e')),
            ("1234567", PhoneError::WrongLength(7)),
            ("555123456", PhoneError::WrongLength(9)),
            ("25551234567", PhoneError::WrongLength(11)),
            ("+1234567", PhoneError::WrongLength(7)),
            ("+1234567890123456", PhoneError::WrongLength(16)),
            ("+1555123456", PhoneError::WrongLength(10)),
            ("+155512345678", PhoneError::WrongLength(12)),
            ("055-123-4567", PhoneError::InvalidAreaCode),
            ("+11551234567", PhoneError::InvalidAreaCode),
            ("++15551234567", PhoneError::InvalidCharacter('+')),
        ];
        for (input, expected) in cases {
            assert_eq!(PhoneNumber::parse(input), Err(expected), "{input}");
        }
    }

    #[test]
    fn error_messages_say_what_is_wrong() {
        let err = PhoneNumber::parse("12345").unwrap_err();
        assert_eq!(
            err.to_string(),
            "phone number has 5 digits; expected 10 digits (US/Canada) or + and 8 to 15 digits"
        );
        let err = PhoneNumber::parse("555#1234567").unwrap_err();
        assert!(err.to_string().contains("'#'"), "{err}");
    }

    #[test]
    fn north_american_numbers_are_spoken_in_three_groups_without_country_code() {
        let phone = PhoneNumber::parse("+15551234567").unwrap();
        assert_eq!(phone.spoken(), "5 5 5, 1 2 3, 4 5 6 7");
    }

    #[test]
    fn international_numbers_are_spoken_with_country_code_in_groups() {
        let cases = [
            ("+442079460958", "4 4 2, 0 7 9, 4 6 0, 9 5 8"),
            ("+34612345678", "3 4 6, 1 2 3, 4 5 6, 7 8"),
            ("+4930123456", "4 9 3, 0 1 2, 3 4 5 6"),
        ];
        for (input, expected) in cases {
            assert_eq!(PhoneNumber::parse(input).unwrap().spoken(), expected, "{input}");
        }
    }

    #[test]
    fn last4_is_the_final_four_digits() {
        assert_eq!(PhoneNumber::parse("555-123-4567").unwrap().last4(), "4567");
        assert_eq!(PhoneNumber::parse("+442079460958").unwrap().last4(), "0958");
    }

    #[test]
    fn display_and_formatted_forms() {
        let us = PhoneNumber::parse("5551234567").unwrap();
        assert_eq!(us.to_string(), "+15551234567");
        assert_eq!(us.formatted(), "(555) 123-4567");
        let uk = PhoneNumber::parse("+442079460958").unwrap();
        assert_eq!(uk.formatted(), "+442079460958");
        assert!(us.is_nanp());
        assert!(!uk.is_nanp());
    }

    #[test]
    fn serde_round_trips_as_a_plain_string_and_validates_on_the_way_in() {
        let phone = PhoneNumber::parse("555-123-4567").unwrap();
        let json = serde_json::to_string(&phone).unwrap();
        assert_eq!(json, "\"+15551234567\"");
        let back: PhoneNumber = serde_json::from_str("\"(555) 123-4567\"").unwrap();
        assert_eq!(back, phone);
        assert!(serde_json::from_str::<PhoneNumber>("\"hello\"").is_err());
    }

    #[test]
    fn from_str_matches_parse() {
        let phone: PhoneNumber = "1 555 123 4567".parse().unwrap();
        assert_eq!(phone.as_str(), "+15551234567");
    }
}
