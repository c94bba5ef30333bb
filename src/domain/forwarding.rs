//! Conditional call forwarding: the codes an owner dials on their own phone so that calls
//! they do not pick up (no answer, busy, unreachable) go to their RinglyPro number, and the
//! codes that undo it. Never unconditional forwarding: that would skip the owner entirely.

use serde::Serialize;

use crate::domain::phone::PhoneNumber;

/// Seconds the owner's phone rings before an unanswered call is forwarded (about three
/// rings). GSM networks accept 5 to 30 seconds in steps of 5.
pub const RING_SECONDS: u32 = 20;

/// The US carriers whose codes the settings screen shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Carrier {
    Att,
    Verizon,
    TMobile,
    Sprint,
    UsCellular,
    Boost,
    Metro,
    Visible,
    Cricket,
}

/// How a carrier's network takes forwarding codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scheme {
    /// The GSM supplementary-service codes (`**004*` registers forwarding on no answer,
    /// busy and unreachable together, with a ring time; `##004#` erases it).
    Gsm,
    /// Verizon's network: `*71` + number forwards busy and unanswered calls, `*73` stops.
    Verizon,
    /// Sprint's legacy network: `*73` + number for no answer/busy, `*730` stops.
    Sprint,
    /// U.S. Cellular: `*92` + number for no answer, `*93` stops.
    UsCellular,
}

impl Carrier {
    /// Every carrier, in the order the settings screen lists them.
    pub const ALL: [Carrier; 9] = [
        Carrier::Att,
        Carrier::Verizon,
        Carrier::TMobile,
        Carrier::Sprint,
        Carrier::UsCellular,
        Carrier::Boost,
        Carrier::Metro,
        Carrier::Visible,
        Carrier::Cricket,
    ];

    /// The carrier's name as owners know it.
    pub fn name(self) -> &'static str {
        match self {
            Carrier::Att => "AT&T",
            Carrier::Verizon => "Verizon",
            Carrier::TMobile => "T-Mobile",
            Carrier::Sprint => "Sprint",
            Carrier::UsCellular => "U.S. Cellular",
            Carrier::Boost => "Boost Mobile",
            Carrier::Metro => "Metro by T-Mobile",
            Carrier::Visible => "Visible",
            Carrier::Cricket => "Cricket Wireless",
        }
    }

    fn scheme(self) -> Scheme {
        match self {
            Carrier::Att | Carrier::TMobile | Carrier::Boost | Carrier::Metro | Carrier::Cricket => Scheme::Gsm,
            Carrier::Verizon | Carrier::Visible => Scheme::Verizon,
            Carrier::Sprint => Scheme::Sprint,
            Carrier::UsCellular => Scheme::UsCellular,
        }
    }
}

/// What one carrier's customer dials, with the RinglyPro number filled in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ForwardingCodes {
    pub carrier: Carrier,
    pub carrier_name: &'static str,
    /// Dial this (then call) to forward calls the owner does not answer.
    pub turn_on: String,
    /// Dial this to stop forwarding.
    pub turn_off: String,
    /// What the code covers, in the owner's words.
    pub covers: &'static str,
}

/// The digits a carrier expects for `number`: ten digits for North American numbers on
/// star-code networks, the full international form (`+` and digits) on GSM.
fn dialled(number: &PhoneNumber, scheme: Scheme) -> String {
    match scheme {
        Scheme::Gsm => number.as_str().to_owned(),
        _ if number.is_nanp() => number.as_str()[2..].to_owned(),
        _ => format!("011{}", &number.as_str()[1..]),
    }
}

/// The codes for `carrier` that forward to `number`.
pub fn codes(carrier: Carrier, number: &PhoneNumber) -> ForwardingCodes {
    let scheme = carrier.scheme();
    let to = dialled(number, scheme);
    let (turn_on, turn_off, covers) = match scheme {
        Scheme::Gsm => (
            format!("**004*{to}**{RING_SECONDS}#"),
            "##004#".to_owned(),
            "unanswered (after about 20 seconds), busy and unreachable calls",
        ),
        Scheme::Verizon => (format!("*71{to}"), "*73".to_owned(), "unanswered and busy calls"),
        Scheme::Sprint => (format!("*73{to}"), "*730".to_owned(), "unanswered and busy calls"),
        Scheme::UsCellular => (format!("*92{to}"), "*93".to_owned(), "unanswered calls"),
    };
    ForwardingCodes { carrier, carrier_name: carrier.name(), turn_on, turn_off, covers }
}

/// The codes of every carrier for `number`.
pub fn all_codes(number: &PhoneNumber) -> Vec<ForwardingCodes> {
    Carrier::ALL.iter().map(|&c| codes(c, number)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn number() -> PhoneNumber {
        PhoneNumber::parse("+15550001111").unwrap()
    }

    #[test]
    fn gsm_carriers_forward_unanswered_busy_and_unreachable_calls_after_twenty_seconds() {
        for carrier in [Carrier::Att, Carrier::TMobile, Carrier::Metro, Carrier::Cricket, Carrier::Boost] {
            let c = codes(carrier, &number());
            assert_eq!(c.turn_on, "**004*+15550001111**20#", "{carrier:?}");
            assert_eq!(c.turn_off, "##004#", "{carrier:?}");
        }
    }

    #[test]
    fn verizon_and_visible_use_the_busy_and_no_answer_code_with_ten_digits() {
        for carrier in [Carrier::Verizon, Carrier::Visible] {
            let c = codes(carrier, &number());
            assert_eq!(c.turn_on, "*715550001111");
            assert_eq!(c.turn_off, "*73");
        }
    }

    #[test]
    fn sprint_and_us_cellular_use_their_own_no_answer_codes() {
        assert_eq!(codes(Carrier::Sprint, &number()).turn_on, "*735550001111");
        assert_eq!(codes(Carrier::Sprint, &number()).turn_off, "*730");
        assert_eq!(codes(Carrier::UsCellular, &number()).turn_on, "*925550001111");
        assert_eq!(codes(Carrier::UsCellular, &number()).turn_off, "*93");
    }

    #[test]
    fn no_carrier_is_given_an_unconditional_forwarding_code() {
        for c in all_codes(&number()) {
            // *21 (GSM), *72 (Verizon/Sprint/U.S. Cellular) and *28 forward every call.
            for all_calls in ["*21", "**21", "*72", "*28"] {
                assert!(!c.turn_on.starts_with(all_calls), "{} uses {all_calls}: {}", c.carrier_name, c.turn_on);
            }
        }
    }

    #[test]
    fn every_listed_carrier_has_codes_and_a_name() {
        let all = all_codes(&number());
        assert_eq!(all.len(), 9);
        for name in ["AT&T", "Verizon", "T-Mobile", "Sprint", "U.S. Cellular", "Boost Mobile", "Metro by T-Mobile"] {
            assert!(all.iter().any(|c| c.carrier_name == name), "{name} missing");
        }
        assert!(all.iter().all(|c| c.turn_on.contains("5550001111") && !c.turn_off.is_empty()));
    }

    #[test]
    fn numbers_outside_north_america_are_dialled_internationally_on_star_code_networks() {
        let london = PhoneNumber::parse("+442079460958").unwrap();
        assert_eq!(codes(Carrier::Verizon, &london).turn_on, "*71011442079460958");
        assert_eq!(codes(Carrier::Att, &london).turn_on, "**004*+442079460958**20#");
    }
}
