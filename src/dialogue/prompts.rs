//! The agent's phrasings and the wording of the texts and e-mails the business sends, kept
//! in `prompts/` (one file per persona or purpose and language) and rendered with minijinja.
//! Files are embedded so the binary speaks wherever it runs; nothing here sends anything.

use std::collections::HashMap;
use std::sync::LazyLock;

use anyhow::{Context as _, anyhow};
use minijinja::{Environment, Value};

use crate::domain::language::Language;

const RACHEL_EN: &str = include_str!("../../prompts/rachel.en.txt");
const LINA_ES: &str = include_str!("../../prompts/lina.es.txt");
const RACHEL_SYSTEM_EN: &str = include_str!("../../prompts/rachel.system.en.md");
const LINA_SYSTEM_ES: &str = include_str!("../../prompts/lina.system.es.md");
const TEXTS_EN: &str = include_str!("../../prompts/texts.en.txt");
const TEXTS_ES: &str = include_str!("../../prompts/texts.es.txt");

/// Both personas' templates, parsed once at start-up.
pub struct Prompts {
    env: Environment<'static>,
}

/// Splits a prompts file into `[section]` → its lines, trimmed. Lines starting with `#`
/// are comments, wherever they stand (a file's parts are headed by one).
fn section_lines(file: &str) -> HashMap<String, Vec<&str>> {
    let mut out = HashMap::new();
    let mut current: Option<(String, Vec<&str>)> = None;
    for line in file.lines() {
        let trimmed = line.trim();
        if let Some(name) = trimmed.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            if let Some((key, lines)) = current.take() {
                out.insert(key, lines);
            }
            current = Some((name.to_owned(), Vec::new()));
        } else if trimmed.starts_with('#') {
            continue;
        } else if let Some((_, lines)) = current.as_mut() {
            lines.push(trimmed);
        }
    }
    if let Some((key, lines)) = current {
        out.insert(key, lines);
    }
    out
}

/// A spoken prompts file: each section's lines run together into one utterance.
fn sections(file: &str) -> HashMap<String, String> {
    section_lines(file)
        .into_iter()
        .map(|(key, lines)| {
            let text = lines.into_iter().filter(|l| !l.is_empty()).collect::<Vec<_>>().join(" ");
            (key, text)
        })
        .collect()
}

/// A written texts file: each section's lines kept as they are, blank lines inside it
/// being an e-mail's paragraphs; the blank lines around it are dropped.
fn written_sections(file: &str) -> HashMap<String, String> {
    section_lines(file).into_iter().map(|(key, lines)| (key, lines.join("\n").trim().to_owned())).collect()
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

/// The texts and e-mails, parsed on first use.
struct Texts {
    env: Environment<'static>,
}

impl Texts {
    fn load() -> anyhow::Result<Self> {
        let mut env = Environment::new();
        for (lang, file) in [(Language::English, TEXTS_EN), (Language::Spanish, TEXTS_ES)] {
            for (key, text) in written_sections(file) {
                env.add_template_owned(format!("{}.{key}", lang.code()), text)?;
            }
        }
        Ok(Self { env })
    }
}

/// The text or e-mail part `key` in `lang`, falling back to English. Unlike a spoken prompt
/// it fails rather than coming out empty: it is queued for sending, not said in a live call.
pub fn written(lang: Language, key: &str, ctx: &Value) -> anyhow::Result<String> {
    // The files are embedded and every section is rendered by the tests, so a file that
    // does not parse is a defect; it is reported by each text asked for.
    static TEXTS: LazyLock<Result<Texts, String>> = LazyLock::new(|| Texts::load().map_err(|e| format!("{e:#}")));
    let texts = TEXTS.as_ref().map_err(|e| anyhow!("the texts in prompts/ do not parse: {e}"))?;
    let template = [lang.code(), "en"]
        .into_iter()
        .find_map(|code| texts.env.get_template(&format!("{code}.{key}")).ok())
        .with_context(|| format!("no text {key:?} in prompts/"))?;
    template.render(ctx).with_context(|| format!("rendering the text {key:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use minijinja::context;

    #[test]
    fn every_english_section_exists_in_spanish() {
        for (en, es, file) in [
            (section_lines(RACHEL_EN), section_lines(LINA_ES), "lina.es.txt"),
            (section_lines(TEXTS_EN), section_lines(TEXTS_ES), "texts.es.txt"),
        ] {
            let mut missing: Vec<_> = en.keys().filter(|k| !es.contains_key(*k)).collect();
            missing.sort();
            assert!(missing.is_empty(), "missing in {file}: {missing:?}");
        }
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

    #[test]
    fn texts_render_in_the_language_asked_for() {
        let ctx =
            context! { business_name => "Bright Smile Dental", when => "Friday March 7th at 9 AM", code => "K7M2QX" };
        let en = written(Language::English, "booking_confirmation", &ctx).unwrap();
        assert_eq!(
            en,
            "Bright Smile Dental: you're booked for Friday March 7th at 9 AM. Confirmation code K7M2QX. \
             Reply CANCEL to cancel or call us to reschedule."
        );
        let es = written(Language::Spanish, "booking_confirmation", &ctx).unwrap();
        assert!(es.starts_with("Bright Smile Dental: su cita es Friday March 7th at 9 AM."), "{es}");
        assert!(es.contains("K7M2QX") && es.contains("CANCEL"), "{es}");
        let ctx = context! { name => "Ann Lee", phone => "+15557654321", when => "today at 11 AM", code => "K7M2QX" };
        let alert = written(Language::English, "owner_booking_alert", &ctx).unwrap();
        assert_eq!(alert, "New booking: Ann Lee (+15557654321) for today at 11 AM. Code K7M2QX.");
        let ctx = context! { name => "Ann Lee", phone => "+15557654321", when => "today at 11 AM" };
        let alert = written(Language::English, "owner_cancellation_alert", &ctx).unwrap();
        assert_eq!(
            alert,
            "Ann Lee (+15557654321) cancelled their appointment for today at 11 AM. The time is free again."
        );
    }

    #[test]
    fn a_comment_between_sections_belongs_to_neither() {
        let file = "# head\n[a]\none\n\n# part two\n[b]\ntwo\n";
        let texts = written_sections(file);
        assert_eq!(texts["a"], "one");
        assert_eq!(texts["b"], "two");
    }

    #[test]
    fn a_message_alert_names_the_number_or_a_caller() {
        let from =
            |from: &str| written(Language::English, "owner_message_alert", &context! { from, text => "call me" });
        assert_eq!(from("+15557654321").unwrap(), "Message from +15557654321: call me");
        assert_eq!(from("").unwrap(), "Message from a caller: call me");
    }

    #[test]
    fn e_mails_keep_their_paragraphs() {
        let link = "https://example.com/password/reset?token=abc";
        for lang in [Language::English, Language::Spanish] {
            let body = written(lang, "password_reset_body", &context! { link }).unwrap();
            let paragraphs: Vec<&str> = body.split("\n\n").collect();
            assert_eq!(paragraphs.len(), 3, "{body}");
            assert!(paragraphs[1].ends_with(&format!(":\n{link}")), "{body}");
            assert!(!written(lang, "password_reset_subject", &context! {}).unwrap().contains('\n'));
        }
        assert_eq!(
            written(Language::English, "password_reset_body", &context! { link }).unwrap(),
            format!(
                "Someone asked to reset the password of your RinglyPro account.\n\n\
                 To choose a new password, open this link within the next hour:\n{link}\n\n\
                 The link works once. If you did not ask for this, ignore this email; your password stays as it is."
            )
        );
        assert_eq!(
            written(Language::English, "password_reset_subject", &context! {}).unwrap(),
            "Reset your RinglyPro password"
        );
    }

    #[test]
    fn an_unknown_text_is_an_error_not_an_empty_message() {
        assert!(written(Language::Spanish, "no_such_text", &context! {}).is_err());
    }
}
