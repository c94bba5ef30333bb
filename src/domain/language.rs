//! The languages a caller can be served in.

use serde::{Deserialize, Serialize};

/// A lower-case letter without its accent ("é" → "e", "ñ" → "n"), so that callers'
/// and texters' words match however they were written.
pub fn fold_accent(c: char) -> char {
    match c {
        'á' | 'à' | 'â' | 'ä' => 'a',
        'é' | 'è' | 'ê' | 'ë' => 'e',
        'í' | 'ì' | 'î' | 'ï' => 'i',
        'ó' | 'ò' | 'ô' | 'ö' => 'o',
        'ú' | 'ù' | 'û' | 'ü' => 'u',
        'ñ' => 'n',
        'ç' => 'c',
        other => other,
    }
}

/// A conversation language: Rachel speaks English, Lina Spanish.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    #[default]
    English,
    Spanish,
}

impl Language {
    /// The short code stored in the database and used in prompt file names.
    pub fn code(self) -> &'static str {
        match self {
            Language::English => "en",
            Language::Spanish => "es",
        }
    }

    /// The locale Twilio speaks and listens in for this language.
    pub fn twilio_locale(self) -> &'static str {
        match self {
            Language::English => "en-US",
            Language::Spanish => "es-MX",
        }
    }

    /// Parses "en"/"es" (and the long forms); anything else is `None`.
    pub fn from_code(code: &str) -> Option<Self> {
        match code.trim().to_ascii_lowercase().as_str() {
            "en" | "en-us" | "english" => Some(Language::English),
            "es" | "es-mx" | "es-us" | "spanish" | "español" => Some(Language::Spanish),
            _ => None,
        }
    }
}
