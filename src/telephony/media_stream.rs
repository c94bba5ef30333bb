//! Twilio Media Streams wire format (bidirectional `<Connect><Stream>`): JSON text frames
//! in, JSON text frames out. Frames become [`StreamEvent`]s here and nowhere else.

use std::collections::HashMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;

/// What Twilio tells us, in our own terms.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamEvent {
    Connected,
    Start(StreamStart),
    /// Caller audio: 8 kHz μ-law bytes (160 per 20 ms frame in practice), and Twilio's
    /// milliseconds since the stream started when the frame carries them.
    Audio {
        bytes: Vec<u8>,
        timestamp_ms: Option<u64>,
    },
    Dtmf(char),
    /// A mark we sent came back: the audio before it played (or was cleared).
    Mark(String),
    Stop,
}

/// The `start` frame: who is calling and which stream to answer on.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StreamStart {
    pub stream_sid: String,
    pub call_sid: String,
    pub account_sid: String,
    pub parameters: HashMap<String, String>,
    pub encoding: String,
    pub sample_rate: u32,
}

/// Why a frame could not be used. The socket stays open: the frame is logged and skipped.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum FrameError {
    #[error("frame is not valid Media Streams JSON: {0}")]
    Json(String),
    #[error("unknown event {0:?}")]
    UnknownEvent(String),
    #[error("media payload is not base64")]
    Base64,
    #[error("dtmf digit {0:?} is not a key")]
    Digit(String),
}

#[derive(Deserialize)]
struct Frame<'a> {
    #[serde(borrow)]
    event: &'a str,
    #[serde(default, rename = "streamSid")]
    stream_sid: Option<String>,
    #[serde(default)]
    start: Option<StartPayload>,
    #[serde(default, borrow)]
    media: Option<MediaPayload<'a>>,
    #[serde(default)]
    dtmf: Option<DtmfPayload>,
    #[serde(default)]
    mark: Option<MarkPayload>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StartPayload {
    #[serde(default)]
    stream_sid: Option<String>,
    #[serde(default)]
    call_sid: String,
    #[serde(default)]
    account_sid: String,
    #[serde(default)]
    custom_parameters: HashMap<String, String>,
    #[serde(default)]
    media_format: Option<MediaFormat>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MediaFormat {
    #[serde(default)]
    encoding: String,
    #[serde(default)]
    sample_rate: u32,
}

#[derive(Deserialize)]
struct MediaPayload<'a> {
    #[serde(borrow)]
    payload: std::borrow::Cow<'a, str>,
    #[serde(default)]
    track: Option<String>,
    /// Milliseconds since the stream started: a decimal string (a number is taken too).
    #[serde(default, deserialize_with = "lenient_millis")]
    timestamp: Option<u64>,
}

/// Reads a millisecond count given as a string or a number; anything unreadable is `None`,
/// so an odd timestamp never costs the frame its audio.
fn lenient_millis<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    struct Millis;
    impl serde::de::Visitor<'_> for Millis {
        type Value = Option<u64>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("milliseconds as a string or a number")
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(v.trim().parse().ok())
        }
        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Self::Value, E> {
            Ok(Some(v))
        }
        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Self::Value, E> {
            Ok(u64::try_from(v).ok())
        }
        fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Self::Value, E> {
            Ok((v.is_finite() && v >= 0.0).then_some(v as u64))
        }
        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
    }
    d.deserialize_any(Millis)
}

#[derive(Deserialize)]
struct DtmfPayload {
    digit: String,
}

#[derive(Deserialize)]
struct MarkPayload {
    name: String,
}

/// Parses one text frame from Twilio.
pub fn parse(text: &str) -> Result<StreamEvent, FrameError> {
    let frame: Frame<'_> = serde_json::from_str(text).map_err(|e| FrameError::Json(e.to_string()))?;
    let missing = |what: &str| FrameError::Json(format!("{} event without its {what} object", frame.event));
    match frame.event {
        "connected" => Ok(StreamEvent::Connected),
        "start" => {
            let start = frame.start.ok_or_else(|| missing("start"))?;
            let (encoding, sample_rate) = start
                .media_format
                .map(|f| (f.encoding, f.sample_rate))
                .unwrap_or_else(|| ("audio/x-mulaw".into(), 8000));
            Ok(StreamEvent::Start(StreamStart {
                stream_sid: start.stream_sid.or(frame.stream_sid).unwrap_or_default(),
                call_sid: start.call_sid,
                account_sid: start.account_sid,
                parameters: start.custom_parameters,
                encoding,
                sample_rate,
            }))
        }
        "media" => {
            let media = frame.media.ok_or_else(|| missing("media"))?;
            if media.track.as_deref().is_some_and(|t| t != "inbound" && t != "inbound_track") {
                // Only the caller's leg is ever sent with <Connect>; ignore anything else.
                return Ok(StreamEvent::Audio { bytes: Vec::new(), timestamp_ms: None });
            }
            let bytes = STANDARD.decode(media.payload.as_bytes()).map_err(|_| FrameError::Base64)?;
            Ok(StreamEvent::Audio { bytes, timestamp_ms: media.timestamp })
        }
        "dtmf" => {
            let digit = frame.dtmf.ok_or_else(|| missing("dtmf"))?.digit;
            let mut chars = digit.chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) if c.is_ascii_digit() || matches!(c, '*' | '#' | 'A'..='D') => Ok(StreamEvent::Dtmf(c)),
                _ => Err(FrameError::Digit(digit)),
            }
        }
        "mark" => Ok(StreamEvent::Mark(frame.mark.ok_or_else(|| missing("mark"))?.name)),
        "stop" => Ok(StreamEvent::Stop),
        other => Err(FrameError::UnknownEvent(other.to_owned())),
    }
}

/// What we send Twilio, already in wire form.
pub struct Outbound;

impl Outbound {
    /// A `media` frame carrying 8 kHz μ-law audio.
    pub fn media(stream_sid: &str, mulaw: &[u8]) -> String {
        let mut out = String::with_capacity(64 + stream_sid.len() + mulaw.len().div_ceil(3) * 4);
        out.push_str(r#"{"event":"media","streamSid":"#);
        push_json_str(&mut out, stream_sid);
        out.push_str(r#","media":{"payload":""#);
        STANDARD.encode_string(mulaw, &mut out);
        out.push_str("\"}}");
        out
    }

    /// A `mark` frame; Twilio echoes it once everything sent before it has played.
    pub fn mark(stream_sid: &str, name: &str) -> String {
        serde_json::json!({"event": "mark", "streamSid": stream_sid, "mark": {"name": name}}).to_string()
    }

    /// A `clear` frame: Twilio drops its queued audio and echoes every pending mark.
    pub fn clear(stream_sid: &str) -> String {
        serde_json::json!({"event": "clear", "streamSid": stream_sid}).to_string()
    }
}

fn push_json_str(out: &mut String, s: &str) {
    // serde_json escapes correctly; a String always serialises.
    out.push_str(&serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into()));
}

#[cfg(test)]
mod tests {
    use super::*;

    const START: &str = r#"{"event":"start","sequenceNumber":"1","start":{"accountSid":"AC123","streamSid":"MZ18ad3ab5a668481ce02b83e7395059f0","callSid":"CA123","tracks":["inbound"],"mediaFormat":{"encoding":"audio/x-mulaw","sampleRate":8000,"channels":1},"customParameters":{"tenant_id":"42","call_id":"7"}},"streamSid":"MZ18ad3ab5a668481ce02b83e7395059f0"}"#;

    #[test]
    fn connected_frame_is_recognised() {
        assert_eq!(parse(r#"{"event":"connected","protocol":"Call","version":"1.0.0"}"#), Ok(StreamEvent::Connected));
    }

    #[test]
    fn start_frame_carries_call_and_custom_parameters() {
        let StreamEvent::Start(s) = parse(START).unwrap() else { panic!("not a start") };
        assert_eq!(s.stream_sid, "MZ18ad3ab5a668481ce02b83e7395059f0");
        assert_eq!(s.call_sid, "CA123");
        assert_eq!(s.account_sid, "AC123");
        assert_eq!(s.parameters.get("tenant_id").map(String::as_str), Some("42"));
        assert_eq!(s.sample_rate, 8000);
        assert_eq!(s.encoding, "audio/x-mulaw");
    }

    #[test]
    fn media_payload_is_decoded_from_base64() {
        let frame = r#"{"event":"media","sequenceNumber":"3","media":{"track":"inbound","chunk":"1","timestamp":"5","payload":"/w//"},"streamSid":"MZ1"}"#;
        assert_eq!(parse(frame), Ok(StreamEvent::Audio { bytes: vec![0xff, 0x0f, 0xff], timestamp_ms: Some(5) }));
        let untimed = r#"{"event":"media","media":{"payload":"/w//","timestamp":"soon"},"streamSid":"MZ1"}"#;
        assert_eq!(parse(untimed), Ok(StreamEvent::Audio { bytes: vec![0xff, 0x0f, 0xff], timestamp_ms: None }));
        let numeric = r#"{"event":"media","media":{"payload":"/w//","timestamp":40},"streamSid":"MZ1"}"#;
        assert_eq!(parse(numeric), Ok(StreamEvent::Audio { bytes: vec![0xff, 0x0f, 0xff], timestamp_ms: Some(40) }));
    }

    #[test]
    fn dtmf_and_mark_and_stop_frames_are_recognised() {
        assert_eq!(
            parse(
                r#"{"event":"dtmf","streamSid":"MZ1","sequenceNumber":"5","dtmf":{"track":"inbound_track","digit":"1"}}"#
            ),
            Ok(StreamEvent::Dtmf('1'))
        );
        assert_eq!(
            parse(r#"{"event":"mark","sequenceNumber":"4","streamSid":"MZ1","mark":{"name":"3-17"}}"#),
            Ok(StreamEvent::Mark("3-17".into()))
        );
        assert_eq!(
            parse(
                r#"{"event":"stop","sequenceNumber":"5","streamSid":"MZ1","stop":{"accountSid":"AC1","callSid":"CA1"}}"#
            ),
            Ok(StreamEvent::Stop)
        );
    }

    #[test]
    fn malformed_frames_are_errors_not_panics() {
        for bad in [
            "",
            "not json",
            "{}",
            "[1,2,3]",
            r#"{"event":"media"}"#,
            r#"{"event":"media","media":{"payload":"!!!"}}"#,
            r#"{"event":"media","media":{"payload":12}}"#,
            r#"{"event":"start"}"#,
            r#"{"event":"dtmf","dtmf":{"digit":"12"}}"#,
            r#"{"event":"dtmf","dtmf":{"digit":"x"}}"#,
            r#"{"event":"mark","mark":{}}"#,
            r#"{"event":"hello"}"#,
            r#"{"event":"media","media":{"payload":"/w//"#,
        ] {
            assert!(parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn outbound_frames_have_twilios_exact_shape() {
        let media: serde_json::Value = serde_json::from_str(&Outbound::media("MZ\"1", &[0xff, 0x0f, 0xff])).unwrap();
        assert_eq!(media, serde_json::json!({"event":"media","streamSid":"MZ\"1","media":{"payload":"/w//"}}));
        let mark: serde_json::Value = serde_json::from_str(&Outbound::mark("MZ1", "2-5")).unwrap();
        assert_eq!(mark, serde_json::json!({"event":"mark","streamSid":"MZ1","mark":{"name":"2-5"}}));
        let clear: serde_json::Value = serde_json::from_str(&Outbound::clear("MZ1")).unwrap();
        assert_eq!(clear, serde_json::json!({"event":"clear","streamSid":"MZ1"}));
    }
}
