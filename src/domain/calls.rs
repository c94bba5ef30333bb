//! What is recorded about a call: who handled it, who spoke each line and what it
//! achieved. Names only; storing and showing them is for storage and web.

use super::names::named;

named! {
    /// What the call achieved, as stored on the call.
    #[derive(Default)]
    pub enum Outcome {
        #[default]
        None = "none",
        Booked = "booked",
        Cancelled = "cancelled",
        Rescheduled = "rescheduled",
        Message = "message",
        Transfer = "transfer",
        Info = "info",
    }
}

named! {
    /// Who answered the call: the agent, the owner (the agent was off), or nobody.
    pub enum HandledBy {
        Agent = "agent",
        Owner = "owner",
        None = "none",
    }
}

named! {
    /// Who said a line of the transcript.
    #[derive(Default)]
    pub enum Speaker {
        #[default]
        Caller = "caller",
        Agent = "agent",
        System = "system",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_name_reads_back_as_its_variant_and_nothing_else_reads() {
        for outcome in Outcome::ALL {
            assert_eq!(outcome.as_str().parse::<Outcome>(), Ok(*outcome));
        }
        for speaker in Speaker::ALL {
            assert_eq!(speaker.to_string().parse::<Speaker>(), Ok(*speaker));
        }
        assert!("Transfer".parse::<Outcome>().is_err());
        assert!("robot".parse::<HandledBy>().is_err());
    }

    #[test]
    fn json_names_are_the_stored_names() {
        assert_eq!(serde_json::to_string(&Outcome::Transfer).unwrap(), r#""transfer""#);
        assert_eq!(serde_json::from_str::<Speaker>(r#""agent""#).unwrap(), Speaker::Agent);
        assert_eq!(serde_json::to_string(&HandledBy::None).unwrap(), r#""none""#);
    }
}
