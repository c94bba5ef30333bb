//! What an appointment is in, and how it came to be booked. Names only; the exclusion
//! and check constraints that guard them belong to storage.

use super::language::Language;
use super::names::named;

named! {
    /// Where an appointment stands. Cancelled ones free their time.
    pub enum AppointmentStatus {
        Confirmed = "confirmed",
        Pending = "pending",
        Completed = "completed",
        NoShow = "no_show",
        Cancelled = "cancelled",
    }
}

named! {
    /// How an appointment was booked.
    pub enum BookingSource {
        VoiceBooking = "voice_booking",
        VoiceBookingSpanish = "voice_booking_spanish",
        Online = "online",
        Manual = "manual",
        WalkIn = "walk_in",
    }
}

impl BookingSource {
    /// A booking made on a call in `language`.
    pub fn voice(language: Language) -> Self {
        match language {
            Language::English => BookingSource::VoiceBooking,
            Language::Spanish => BookingSource::VoiceBookingSpanish,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_and_sources_read_back_from_their_stored_names() {
        assert_eq!("no_show".parse::<AppointmentStatus>(), Ok(AppointmentStatus::NoShow));
        assert_eq!(AppointmentStatus::NoShow.as_str(), "no_show");
        assert_eq!("walk_in".parse::<BookingSource>(), Ok(BookingSource::WalkIn));
        assert!("No_Show".parse::<AppointmentStatus>().is_err());
    }

    #[test]
    fn a_call_in_spanish_books_with_the_spanish_voice_source() {
        assert_eq!(BookingSource::voice(Language::Spanish).as_str(), "voice_booking_spanish");
        assert_eq!(BookingSource::voice(Language::English).as_str(), "voice_booking");
    }
}
