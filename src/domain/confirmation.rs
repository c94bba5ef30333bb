//! Confirmation codes: short, spoken aloud and typed back, so built from characters that
//! cannot be confused on the phone or on a screen (no 0/O, 1/I/L, 5/S, 8/B, U/V).

use rand::Rng;

/// The characters a code is made of.
pub const ALPHABET: &[u8] = b"ACDEFGHJKMNPQRTWXY234679";
/// How many characters a code has.
pub const LENGTH: usize = 6;

/// A fresh random code.
pub fn generate() -> String {
    let mut rng = rand::rng();
    (0..LENGTH).map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char).collect()
}

/// Whether `text` has the shape of a code (case-insensitive).
pub fn is_code(text: &str) -> bool {
    text.len() == LENGTH && text.bytes().all(|b| ALPHABET.contains(&b.to_ascii_uppercase()))
}

/// The code as the agent reads it: one character at a time ("K, 7, M, 2, Q, X").
pub fn spoken(code: &str) -> String {
    code.chars().map(|c| c.to_string()).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_codes_use_only_unambiguous_characters() {
        for _ in 0..1000 {
            let code = generate();
            assert!(is_code(&code), "{code}");
            assert!(!code.contains(['0', 'O', '1', 'I', 'L', '5', 'S', '8', 'B', 'U', 'V']));
        }
    }

    #[test]
    fn codes_are_read_one_character_at_a_time() {
        assert_eq!(spoken("K7M2QX"), "K, 7, M, 2, Q, X");
    }

    #[test]
    fn shape_check_rejects_other_strings() {
        assert!(is_code("k7m2qx"));
        assert!(!is_code("K7M2Q"));
        assert!(!is_code("K7M2Q0"));
    }
}
