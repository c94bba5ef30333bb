//! What a business's own systems can be told about, by signed webhook: the event names
//! and how a delivery is signed. Sending them is `services::webhooks`.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use super::names::named;

named! {
    /// Something that happened at a business.
    pub enum EventKind {
        /// A call ended and was summarised: its transcript, outcome and summary.
        CallCompleted = "call.completed",
        AppointmentBooked = "appointment.booked",
        AppointmentRescheduled = "appointment.rescheduled",
        AppointmentCancelled = "appointment.cancelled",
        /// A text came in from a caller.
        MessageReceived = "message.received",
        /// A new caller, texter or hand-made contact.
        ContactCreated = "contact.created",
    }
}

/// The header a delivery's signature travels in.
pub const SIGNATURE_HEADER: &str = "RinglyPro-Signature";

/// The signature of a delivery: `t=<unix seconds>,v1=<hex HMAC-SHA256>` over the text
/// `<unix seconds>.<body>` with the endpoint's secret as the key. Checking the time too
/// lets a receiver refuse an old delivery replayed.
pub fn signature(secret: &str, unix_seconds: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(unix_seconds.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("t={unix_seconds},v1={}", hex::encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_read_back_and_the_signature_covers_time_and_body() {
        for kind in EventKind::ALL {
            assert_eq!(kind.as_str().parse::<EventKind>().unwrap(), *kind);
        }
        assert!("call.started".parse::<EventKind>().is_err());
        let a = signature("whsec_1", 1_700_000_000, b"{}");
        assert!(a.starts_with("t=1700000000,v1=") && a.len() == "t=1700000000,v1=".len() + 64, "{a}");
        assert_ne!(a, signature("whsec_1", 1_700_000_001, b"{}"));
        assert_ne!(a, signature("whsec_1", 1_700_000_000, b"{ }"));
        assert_ne!(a, signature("whsec_2", 1_700_000_000, b"{}"));
    }
}
