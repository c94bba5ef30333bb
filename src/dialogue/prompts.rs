//! The agent's phrasings, kept in `prompts/` (one file per persona and language) and
//! rendered with minijinja. Files are embedded so the binary speaks wherever it runs.

use std::collections::HashMap;

use minijinja::{Environment, Value};

use crate::domain::language::Language;

const RACHEL_EN: &str = include_str!("../../prompts/rachel.en.txt");
const LINA_ES: &str = include_str!("../../prompts/lina.es.txt");
const RACHEL_SYSTEM_EN: &str = include_str!("../../prompts/rachel.system.en.md");
const LINA_SYSTEM_ES: &str = include_str!("../../prompts/lina.system.es.md");

/// Both personas' templates, parsed once at start-up.
pub struct Prompts {
    env: Environment<'static>,
}

/// Splits a prompts file into `[section]` → template text. Lines starting with `#` before
/// the first section are comments.
fn sections(file: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let mut current: Option<(String, Vec<&str>)> = None;
    for line in file.lines() {
        let trimmed = line.trim();
        if let Some(name) = trimmed.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            if let Some((key, lines)) = current.take() {
                out.insert(key, lines.join(" ").trim().to_owned());
            }
            current = Some((name.to_owned(), Vec::new()));
        } else if let Some((_, lines)) = current.as_mut()
            && !trimmed.is_empty()
        {
            lines.push(trimmed);
        }
    }
    if let Some((key, lines)) = current {
        out.insert(key, lines.join(" ").trim().to_owned());
    }
    out
}

impl Prompts {
    pub fn load() -> anyhow::Result<Self> {
        let mut env = Environment::new();
        for (lang, file) in [(Language::English, RACHEL_EN), (Language::Spanish, LINA_ES)] {
            for (key, text) in sections(file) {
                env.add_template_owned(format!("{}.{key}", lang.code()), text)?;
            }
        }
        env.add_template("en.system", RACHEL_SYSTEM_EN)?;
        env.add_template("es.system", LINA_SYSTEM_ES)?;
        Ok(Self { env })
    }

    /// The language model's system prompt for a persona, with the tenant's facts.
    pub fn system(&self, lang: Language, ctx: &Value) -> String {
        match self.env.get_template(&format!("{}.system", lang.code())).and_then(|t| t.render(ctx)) {
            Ok(text) => text,
            Err(e) => {
                tracing::error!(error = %e, "system prompt failed to render");
                String::new()
            }
        }
    }

    /// Renders `key` in `lang`, falling back to English; a missing or broken template
    /// yields an empty line (logged) rather than failing a live call.
    pub fn render(&self, lang: Language, key: &str, ctx: &Value) -> String {
        for code in [lang.code(), "en"] {
            if let Ok(template) = self.env.get_template(&format!("{code}.{key}")) {
                match template.render(ctx) {
                    Ok(text) => return text.split_whitespace().collect::<Vec<_>>().join(" "),
                    Err(e) => tracing::error!(key, error = %e, "prompt failed to render"),
                }
            }
        }
        tracing::error!(key, "no such prompt");
        String::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use minijinja::context;

    #[test]
    fn every_english_section_exists_in_spanish() {
        let en = sections(RACHEL_EN);
        let es = sections(LINA_ES);
        let mut missing: Vec<_> = en.keys().filter(|k| !es.contains_key(*k)).collect();
        missing.sort();
        assert!(missing.is_empty(), "missing in lina.es.txt: {missing:?}");
    }

    #[test]
    fn greeting_uses_the_custom_greeting_or_the_business_name() {
        let p = Prompts::load().unwrap();
        let plain = p.render(Language::English, "greeting", &context! { business_name => "Bright Smile Dental" });
        assert!(plain.contains("Bright Smile Dental"), "{plain}");
        let custom = p.render(
            Language::English,
            "greeting",
            &context! { business_name => "X", greeting => "Hi, you've reached X!" },
        );
        assert_eq!(custom, "Hi, you've reached X!");
    }

    #[test]
    fn system_prompts_carry_the_tenants_facts() {
        let p = Prompts::load().unwrap();
        let ctx = context! { business_name => "Bright Smile Dental", hours => "Monday to Friday", services => "cleanings are $99",
        timezone => "America/New_York", today => "Monday", now => "10:00 AM", caller_phone => "+15557654321" };
        let en = p.system(Language::English, &ctx);
        assert!(
            en.contains("Rachel") && en.contains("Bright Smile Dental") && en.contains("cleanings are $99"),
            "{en}"
        );
        let es = p.system(Language::Spanish, &ctx);
        assert!(es.contains("Lina") && es.contains("Bright Smile Dental"), "{es}");
    }

    #[test]
    fn offers_list_three_slots() {
        let p = Prompts::load().unwrap();
        let text = p.render(Language::English, "offer", &context! { slots => vec!["A", "B", "C"] });
        assert_eq!(text, "I have A, B, or C. Which works best for you?");
    }
}
