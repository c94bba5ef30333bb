//! TwiML documents we answer Twilio's voice webhooks with.

/// Escapes text for an XML attribute or element.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// An empty answer: nothing to say back (to an inbound text, for one).
pub fn empty() -> String {
    r#"<?xml version="1.0" encoding="UTF-8"?><Response/>"#.to_owned()
}

/// An answer to an inbound text: one `<Message>` back to its sender.
pub fn message(text: &str) -> String {
    format!(r#"<?xml version="1.0" encoding="UTF-8"?><Response><Message>{}</Message></Response>"#, escape(text))
}

fn document(body: &str) -> String {
    format!(r#"<?xml version="1.0" encoding="UTF-8"?><Response>{body}</Response>"#)
}

/// Connects the call to our Media Streams socket. `after` is fetched once the socket
/// closes (TwiML after `<Connect>` runs only then): it decides between a transfer and a
/// hang-up.
pub fn connect_stream(stream_url: &str, parameters: &[(&str, &str)], after: &str) -> String {
    let params: String = parameters
        .iter()
        .map(|(name, value)| format!(r#"<Parameter name="{}" value="{}"/>"#, escape(name), escape(value)))
        .collect();
    document(&format!(
        r#"<Connect><Stream url="{}">{params}</Stream></Connect><Redirect method="POST">{}</Redirect>"#,
        escape(stream_url),
        escape(after)
    ))
}

/// What a ConversationRelay session needs to be told.
pub struct Relay<'a> {
    pub url: &'a str,
    pub welcome_greeting: &'a str,
    pub language: &'a str,
    pub voice: &'a str,
    pub spanish_voice: &'a str,
    pub parameters: &'a [(&'a str, &'a str)],
    /// Fetched when the session ends (transfer or hang up).
    pub action: &'a str,
}

/// Connects the call to ConversationRelay: Twilio recognises and speaks, we exchange text.
pub fn connect_relay(relay: &Relay<'_>) -> String {
    let params: String = relay
        .parameters
        .iter()
        .map(|(name, value)| format!(r#"<Parameter name="{}" value="{}"/>"#, escape(name), escape(value)))
        .collect();
    document(&format!(
        r#"<Connect action="{}"><ConversationRelay url="{}" language="{}" ttsProvider="ElevenLabs" voice="{}" welcomeGreeting="{}" interruptible="any" dtmfDetection="true"><Language code="es-MX" ttsProvider="ElevenLabs" voice="{}"/>{params}</ConversationRelay></Connect>"#,
        escape(relay.action),
        escape(relay.url),
        escape(relay.language),
        escape(relay.voice),
        escape(relay.welcome_greeting),
        escape(relay.spanish_voice),
    ))
}

/// Rings the owner's phone; the caller hears it ring as with any forward.
pub fn dial(number: &str, caller_id: Option<&str>) -> String {
    let caller_id = caller_id.map(|c| format!(r#" callerId="{}""#, escape(c))).unwrap_or_default();
    document(&format!(r#"<Dial{caller_id}>{}</Dial>"#, escape(number)))
}

/// Speaks a short line and hangs up.
pub fn say_and_hang_up(text: &str, language: &str) -> String {
    document(&format!(r#"<Say language="{}">{}</Say><Hangup/>"#, escape(language), escape(text)))
}

/// Speaks a short line, then rings the owner's phone (a call taken over from outside
/// our stream).
pub fn say_and_dial(text: &str, language: &str, number: &str, caller_id: Option<&str>) -> String {
    let caller_id = caller_id.map(|c| format!(r#" callerId="{}""#, escape(c))).unwrap_or_default();
    document(&format!(
        r#"<Say language="{}">{}</Say><Dial{caller_id}>{}</Dial>"#,
        escape(language),
        escape(text),
        escape(number)
    ))
}

/// Ends the call.
pub fn hang_up() -> String {
    document("<Hangup/>")
}

/// A parsed view of the TwiML above, for the simulated caller (which plays Twilio's part).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Instructions {
    pub stream_url: Option<String>,
    /// ConversationRelay's socket and greeting, when the call was connected to it.
    pub relay_url: Option<String>,
    pub welcome_greeting: Option<String>,
    pub parameters: Vec<(String, String)>,
    pub redirect: Option<String>,
    pub dial: Option<String>,
    pub say: Option<String>,
    pub hang_up: bool,
}

/// Reads back the verbs this module writes (a tolerant reader, not a general XML parser).
pub fn read(document: &str) -> Instructions {
    fn unescape(s: &str) -> String {
        s.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", "\"").replace("&apos;", "'").replace("&amp;", "&")
    }
    fn attr(tag: &str, name: &str) -> Option<String> {
        let key = format!(r#"{name}=""#);
        let start = tag.find(&key)? + key.len();
        let end = tag[start..].find('"')? + start;
        Some(unescape(&tag[start..end]))
    }
    fn element(doc: &str, name: &str) -> Option<(String, String)> {
        let open = doc.find(&format!("<{name}"))?;
        let tag_end = doc[open..].find('>')? + open;
        let tag = doc[open..=tag_end].to_owned();
        if tag.ends_with("/>") {
            return Some((tag, String::new()));
        }
        let close = format!("</{name}>");
        let body_end = doc[tag_end..].find(&close)? + tag_end;
        Some((tag, unescape(&doc[tag_end + 1..body_end])))
    }
    let mut out = Instructions::default();
    if let Some((tag, _)) = element(document, "ConversationRelay") {
        out.relay_url = attr(&tag, "url");
        out.welcome_greeting = attr(&tag, "welcomeGreeting");
        if let Some((connect, _)) = element(document, "Connect") {
            out.redirect = attr(&connect, "action");
        }
    }
    let stream = element(document, "Stream");
    if stream.is_some() || out.relay_url.is_some() {
        out.stream_url = stream.and_then(|(tag, _)| attr(&tag, "url"));
        let mut rest = document;
        while let Some(pos) = rest.find("<Parameter ") {
            let end = rest[pos..].find("/>").map(|e| e + pos).unwrap_or(rest.len());
            let tag = &rest[pos..end];
            if let (Some(n), Some(v)) = (attr(tag, "name"), attr(tag, "value")) {
                out.parameters.push((n, v));
            }
            rest = &rest[end..];
        }
    }
    if out.redirect.is_none() {
        out.redirect = element(document, "Redirect").map(|(_, body)| body);
    }
    out.dial = element(document, "Dial").map(|(_, body)| body);
    out.say = element(document, "Say").map(|(_, body)| body);
    out.hang_up = document.contains("<Hangup");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_twiml_carries_parameters_and_a_redirect_after_the_stream() {
        let doc = connect_stream(
            "wss://h.example/twilio/media",
            &[("tenant_id", "42"), ("call_sid", "CA1")],
            "https://h.example/twilio/after?x=1&y=2",
        );
        assert!(doc.starts_with(
            r#"<?xml version="1.0" encoding="UTF-8"?><Response><Connect><Stream url="wss://h.example/twilio/media">"#
        ));
        assert!(doc.contains(r#"<Parameter name="tenant_id" value="42"/>"#));
        assert!(doc.contains("x=1&amp;y=2"));
        let read_back = read(&doc);
        assert_eq!(read_back.stream_url.as_deref(), Some("wss://h.example/twilio/media"));
        assert_eq!(read_back.parameters.len(), 2);
        assert_eq!(read_back.redirect.as_deref(), Some("https://h.example/twilio/after?x=1&y=2"));
        assert!(!read_back.hang_up);
    }

    #[test]
    fn relay_twiml_names_socket_voices_greeting_and_action() {
        let doc = connect_relay(&Relay {
            url: "wss://h.example/twilio/relay",
            welcome_greeting: "Hi & welcome",
            language: "en-US",
            voice: "21m00Tcm4TlvDq8ikWAM",
            spanish_voice: "ThT5KcBeYPX3keUQqHPh",
            parameters: &[("tenant_id", "7")],
            action: "https://h.example/twilio/relay-ended",
        });
        assert!(doc.contains(r#"<Connect action="https://h.example/twilio/relay-ended"><ConversationRelay url="wss://h.example/twilio/relay""#));
        assert!(doc.contains(r#"interruptible="any""#) && doc.contains(r#"dtmfDetection="true""#));
        assert!(doc.contains(r#"<Language code="es-MX" ttsProvider="ElevenLabs" voice="ThT5KcBeYPX3keUQqHPh"/>"#));
        let read_back = read(&doc);
        assert_eq!(read_back.relay_url.as_deref(), Some("wss://h.example/twilio/relay"));
        assert_eq!(read_back.welcome_greeting.as_deref(), Some("Hi & welcome"));
        assert_eq!(read_back.redirect.as_deref(), Some("https://h.example/twilio/relay-ended"));
        assert_eq!(read_back.parameters, vec![("tenant_id".to_string(), "7".to_string())]);
    }

    #[test]
    fn text_is_escaped() {
        let doc = say_and_hang_up("Tom & Jerry's <shop>", "en-US");
        assert!(doc.contains("Tom &amp; Jerry&apos;s &lt;shop&gt;"));
        assert_eq!(read(&doc).say.as_deref(), Some("Tom & Jerry's <shop>"));
        assert!(read(&doc).hang_up);
    }

    #[test]
    fn dial_names_the_owner() {
        let doc = dial("+15551234567", Some("+15557654321"));
        assert!(doc.contains(r#"<Dial callerId="+15557654321">+15551234567</Dial>"#));
        assert_eq!(read(&doc).dial.as_deref(), Some("+15551234567"));
    }
}
