//! The ids of the things RinglyPro keeps, one type each, so a call's id cannot be passed
//! where a tenant's is wanted. Pure: storage maps them to `bigint` columns (see
//! `storage::postgres`), keeping sqlx out of the domain.

use std::fmt;
use std::num::ParseIntError;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

macro_rules! ids {
    ($($(#[$meta:meta])* $name:ident),+ $(,)?) => {$(
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub i64);

        impl $name {
            /// The number as stored.
            pub fn get(self) -> i64 {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = ParseIntError;

            fn from_str(text: &str) -> Result<Self, ParseIntError> {
                text.parse().map($name)
            }
        }
    )+};
}

ids!(
    /// A tenant (a row of `clients`).
    TenantId,
    /// A call.
    CallId,
    /// A tenant's contact.
    ContactId,
    /// An appointment.
    AppointmentId,
    /// A user who signs in.
    UserId,
    /// A text message.
    MessageId,
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_reads_and_writes_as_its_bare_number() {
        let id: TenantId = "42".parse().unwrap();
        assert_eq!(id, TenantId(42));
        assert_eq!(id.to_string(), "42");
        assert_eq!(serde_json::to_string(&CallId(7)).unwrap(), "7");
        assert_eq!(serde_json::from_str::<ContactId>("9").unwrap(), ContactId(9));
        assert!("x1".parse::<AppointmentId>().is_err());
    }
}
