//! What an owner's account must satisfy before anything is written: the email address,
//! the password's strength, and the signup form as a whole. Pure rules with messages a
//! person can act on; hashing and storage live in `services::accounts`.

use std::fmt;

use serde::Deserialize;

use crate::domain::phone::PhoneNumber;

/// Fewest characters a password may have. Length is what makes a password hard to
/// guess, so it is the rule (with a short list of passwords everyone tries first).
pub const MIN_PASSWORD_CHARS: usize = 10;
/// Most characters a password may have: enough for any passphrase, and a bound on the
/// work one login asks of the hasher.
pub const MAX_PASSWORD_CHARS: usize = 128;

/// An email address, trimmed and lower-cased (addresses are compared without case).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmailError {
    #[error("enter your email address")]
    Empty,
    #[error("that does not look like an email address; it should look like name@example.com")]
    Malformed,
    #[error("that email address is too long (254 characters at most)")]
    TooLong,
}

impl Email {
    /// Accepts `local@domain.tld` with no spaces; anything finer is for the mailbox to judge.
    pub fn parse(text: &str) -> Result<Self, EmailError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(EmailError::Empty);
        }
        if text.len() > 254 {
            return Err(EmailError::TooLong);
        }
        let (local, domain) = text.split_once('@').ok_or(EmailError::Malformed)?;
        let well_formed = !local.is_empty()
            && !domain.contains('@')
            && domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !domain.contains("..")
            && !text.chars().any(|c| c.is_whitespace() || c.is_control() || c == '<' || c == '>');
        if !well_formed {
            return Err(EmailError::Malformed);
        }
        Ok(Email(text.to_lowercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why a password is refused; each message says what would be accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    #[error("use at least {MIN_PASSWORD_CHARS} characters; a short phrase of a few words is easy to remember")]
    TooShort,
    #[error("use at most {MAX_PASSWORD_CHARS} characters")]
    TooLong,
    #[error(
        "that password is one of the first ones attackers try; use at least {MIN_PASSWORD_CHARS} characters \
         that are not a common password, a single repeated character or a simple sequence"
    )]
    TooCommon,
    #[error("do not use your email address as your password")]
    SameAsEmail,
}

/// Passwords long enough to pass the length rule that are still guessed first.
const COMMON_PASSWORDS: &[&str] = &[
    "1234567890",
    "12345678910",
    "0123456789",
    "9876543210",
    "qwertyuiop",
    "1q2w3e4r5t",
    "password12",
    "password123",
    "password1234",
    "passw0rd123",
    "iloveyou123",
    "abcdefghij",
    "qwerty1234",
    "qwerty12345",
    "letmein123",
    "welcome123",
    "administrator",
    "changeme123",
];

/// Checks a new password against the rules (the email, when known, must not be reused).
pub fn check_password(password: &str, email: Option<&str>) -> Result<(), PasswordError> {
    let chars = password.chars().count();
    if chars < MIN_PASSWORD_CHARS {
        return Err(PasswordError::TooShort);
    }
    if chars > MAX_PASSWORD_CHARS {
        return Err(PasswordError::TooLong);
    }
    let lowered = password.to_lowercase();
    if let Some(email) = email
        && (lowered == email.trim().to_lowercase()
            || email.split('@').next().is_some_and(|local| local.len() >= 4 && lowered == local.to_lowercase()))
    {
        return Err(PasswordError::SameAsEmail);
    }
    let first = lowered.chars().next();
    let repeated = lowered.chars().all(|c| Some(c) == first);
    if repeated || COMMON_PASSWORDS.contains(&lowered.as_str()) || is_simple_sequence(&lowered) {
        return Err(PasswordError::TooCommon);
    }
    Ok(())
}

/// `abcdefghijk`, `3456789012`: each character one step from the last.
fn is_simple_sequence(text: &str) -> bool {
    let codes: Vec<u32> = text.chars().map(u32::from).collect();
    let steps = |delta: i64| codes.windows(2).all(|w| i64::from(w[1]) - i64::from(w[0]) == delta);
    steps(1) || steps(-1)
}

/// A problem with one field of a form, said to the person who filled it in.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FieldError {
    pub field: &'static str,
    pub message: String,
}

impl FieldError {
    pub fn new(field: &'static str, message: impl Into<String>) -> Self {
        Self { field, message: message.into() }
    }
}

/// The signup form as typed.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct SignupForm {
    pub email: String,
    pub password: String,
    pub business_name: String,
    pub business_phone: String,
    pub business_type: String,
    pub owner_name: String,
    pub owner_phone: String,
    pub timezone: String,
}

/// A signup that passed every rule.
#[derive(Clone)]
pub struct ValidSignup {
    pub email: Email,
    pub password: String,
    pub business_name: String,
    pub business_phone: PhoneNumber,
    pub business_type: Option<String>,
    pub owner_name: String,
    pub owner_phone: PhoneNumber,
    pub timezone: chrono_tz::Tz,
}

impl fmt::Debug for ValidSignup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ValidSignup")
            .field("email", &self.email)
            .field("business_name", &self.business_name)
            .field("timezone", &self.timezone)
            .finish_non_exhaustive()
    }
}

impl SignupForm {
    /// Every field's problem at once, so the form can show them all together.
    pub fn validate(&self) -> Result<ValidSignup, Vec<FieldError>> {
        let mut errors = Vec::new();
        let email = Email::parse(&self.email).map_err(|e| errors.push(FieldError::new("email", e.to_string()))).ok();
        if let Err(e) = check_password(&self.password, Some(&self.email)) {
            errors.push(FieldError::new("password", e.to_string()));
        }
        let business_name = self.business_name.trim();
        if business_name.is_empty() {
            errors.push(FieldError::new("business_name", "enter your business's name, as callers know it"));
        } else if business_name.chars().count() > 100 {
            errors.push(FieldError::new("business_name", "use at most 100 characters for the business name"));
        }
        let business_phone = parse_phone(&self.business_phone, "business_phone", "your business's phone number")
            .map_err(|e| errors.push(e))
            .ok();
        let business_type = self.business_type.trim();
        if business_type.chars().count() > 60 {
            errors.push(FieldError::new("business_type", "use at most 60 characters for the type of business"));
        }
        let owner_name = self.owner_name.trim();
        if owner_name.is_empty() {
            errors.push(FieldError::new("owner_name", "enter your name, so Rachel can say who she is transferring to"));
        } else if owner_name.chars().count() > 100 {
            errors.push(FieldError::new("owner_name", "use at most 100 characters for your name"));
        }
        let owner_phone =
            parse_phone(&self.owner_phone, "owner_phone", "the mobile number where transferred calls should ring")
                .map_err(|e| errors.push(e))
                .ok();
        let timezone = match self.timezone.trim() {
            "" => {
                errors.push(FieldError::new("timezone", "choose your business's time zone"));
                None
            }
            name => name
                .parse::<chrono_tz::Tz>()
                .map_err(|_| {
                    errors.push(FieldError::new(
                        "timezone",
                        format!("{name:?} is not a time zone we know; choose one like America/New_York"),
                    ))
                })
                .ok(),
        };
        match (email, business_phone, owner_phone, timezone) {
            (Some(email), Some(business_phone), Some(owner_phone), Some(timezone)) if errors.is_empty() => {
                Ok(ValidSignup {
                    email,
                    password: self.password.clone(),
                    business_name: business_name.to_owned(),
                    business_phone,
                    business_type: (!business_type.is_empty()).then(|| business_type.to_owned()),
                    owner_name: owner_name.to_owned(),
                    owner_phone,
                    timezone,
                })
            }
            _ => Err(errors),
        }
    }
}

fn parse_phone(text: &str, field: &'static str, what: &str) -> Result<PhoneNumber, FieldError> {
    if text.trim().is_empty() {
        return Err(FieldError::new(field, format!("enter {what}")));
    }
    PhoneNumber::parse(text).map_err(|e| FieldError::new(field, format!("{what}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form() -> SignupForm {
        SignupForm {
            email: "Owner@Example.com ".into(),
            password: "correct horse battery".into(),
            business_name: " Bright Smile Dental ".into(),
            business_phone: "(555) 123-4567".into(),
            business_type: "dental".into(),
            owner_name: "Dana Rivera".into(),
            owner_phone: "+1 555 987 6543".into(),
            timezone: "America/Chicago".into(),
        }
    }

    fn field_errors(form: SignupForm) -> Vec<&'static str> {
        form.validate().err().unwrap_or_default().into_iter().map(|e| e.field).collect()
    }

    #[test]
    fn a_complete_form_is_normalised() {
        let valid = form().validate().unwrap();
        assert_eq!(valid.email.as_str(), "owner@example.com");
        assert_eq!(valid.business_name, "Bright Smile Dental");
        assert_eq!(valid.business_phone.as_str(), "+15551234567");
        assert_eq!(valid.owner_phone.as_str(), "+15559876543");
        assert_eq!(valid.timezone, chrono_tz::America::Chicago);
    }

    #[test]
    fn every_bad_field_is_reported_together() {
        let bad = SignupForm {
            email: "not-an-email".into(),
            password: "short".into(),
            business_name: " ".into(),
            business_phone: "12".into(),
            owner_name: String::new(),
            owner_phone: "call me".into(),
            timezone: "Mars/Olympus".into(),
            ..form()
        };
        assert_eq!(
            field_errors(bad),
            vec!["email", "password", "business_name", "business_phone", "owner_name", "owner_phone", "timezone"]
        );
    }

    #[test]
    fn emails_need_a_domain_with_a_dot_and_no_spaces() {
        for bad in ["", "a@b", "@example.com", "a b@example.com", "a@@example.com", "a@example..com", "a@.com"] {
            assert!(Email::parse(bad).is_err(), "{bad:?} should be refused");
        }
        assert_eq!(Email::parse("  A.B+tag@Mail.Example.org ").unwrap().as_str(), "a.b+tag@mail.example.org");
    }

    #[test]
    fn short_common_repetitive_or_email_passwords_are_refused_with_what_is_needed() {
        assert_eq!(check_password("abc123", None), Err(PasswordError::TooShort));
        assert!(PasswordError::TooShort.to_string().contains("at least 10 characters"));
        assert_eq!(check_password("aaaaaaaaaaaa", None), Err(PasswordError::TooCommon));
        assert_eq!(check_password("Password123", None), Err(PasswordError::TooCommon));
        assert_eq!(check_password("abcdefghijkl", None), Err(PasswordError::TooCommon));
        assert_eq!(check_password("owner@example.com", Some("Owner@example.com")), Err(PasswordError::SameAsEmail));
        assert_eq!(check_password(&"x1".repeat(65), None), Err(PasswordError::TooLong));
        assert_eq!(check_password("tulips in april", Some("owner@example.com")), Ok(()));
    }

    #[test]
    fn an_empty_time_zone_asks_for_one() {
        let errors = SignupForm { timezone: String::new(), ..form() }.validate().unwrap_err();
        assert_eq!(errors, vec![FieldError::new("timezone", "choose your business's time zone")]);
    }
}
