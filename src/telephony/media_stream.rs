//! Twilio Media Streams wire format (bidirectional `<Connect><Stream>`): JSON text frames
//! in, JSON text frames out, one typed definition for both ends. The server reads
//! Twilio's frames ([`parse`]) and writes its own ([`Outbound`]); the simulated caller
//! writes Twilio's ([`TwilioStream`]) and reads the server's ([`parse_outbound`]).

use std::borrow::Cow;
use std::collections::HashMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

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

/// One frame on the wire, either way. Reading borrows what it can (a media payload is
/// not copied before it is decoded); fields only Twilio's side writes and nobody reads
/// (sequence numbers, chunk numbers, tracks) are skipped when reading.
#[derive(Deserialize, Serialize, Default)]
struct Frame<'a> {
    #[serde(borrow)]
    event: &'a str,
    #[serde(rename = "sequenceNumber", skip_deserializing, skip_serializing_if = "Option::is_none")]
    sequence_number: Option<String>,
    #[serde(default, rename = "streamSid", borrow, skip_serializing_if = "Option::is_none")]
    stream_sid: Option<Cow<'a, str>>,
    #[serde(skip_deserializing, skip_serializing_if = "Option::is_none")]
    protocol: Option<&'a str>,
    #[serde(skip_deserializing, skip_serializing_if = "Option::is_none")]
    version: Option<&'a str>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    start: Option<StartPayload>,
    #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
    media: Option<MediaPayload<'a>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    dtmf: Option<DtmfPayload>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    mark: Option<MarkPayload>,
    #[serde(skip_deserializing, skip_serializing_if = "Option::is_none")]
    stop: Option<StopPayload>,
}

impl Frame<'_> {
    fn to_json(&self) -> String {
        // Plain strings, numbers and maps: serialising them cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

#[derive(Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
struct StartPayload {
    #[serde(default)]
    stream_sid: Option<String>,
    #[serde(default)]
    call_sid: String,
    #[serde(default)]
    account_sid: String,
    #[serde(skip_deserializing)]
    tracks: Vec<String>,
    #[serde(default)]
    custom_parameters: HashMap<String, String>,
    #[serde(default)]
    media_format: Option<MediaFormat>,
}

#[derive(Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
struct MediaFormat {
    #[serde(default)]
    encoding: String,
    #[serde(default)]
    sample_rate: u32,
    #[serde(skip_deserializing)]
    channels: u32,
}

#[derive(Deserialize, Serialize)]
struct MediaPayload<'a> {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    track: Option<String>,
    #[serde(skip_deserializing, skip_serializing_if = "Option::is_none")]
    chunk: Option<String>,
    /// Milliseconds since the stream started: a decimal string (a number is taken too).
    #[serde(
        default,
        deserialize_with = "lenient_millis",
        serialize_with = "millis_as_text",
        skip_serializing_if = "Option::is_none"
    )]
    timestamp: Option<u64>,
    #[serde(borrow)]
    payload: Cow<'a, str>,
}

/// Twilio writes its millisecond counts as decimal strings.
fn millis_as_text<S: serde::Serializer>(millis: &Option<u64>, s: S) -> Result<S::Ok, S::Error> {
    match millis {
        Some(ms) => s.collect_str(ms),
        None => s.serialize_none(),
    }
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

#[derive(Deserialize, Serialize)]
struct DtmfPayload {
    digit: String,
}

#[derive(Deserialize, Serialize)]
struct MarkPayload {
    name: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct StopPayload {
    account_sid: String,
    call_sid: String,
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
                stream_sid: start.stream_sid.or(frame.stream_sid.map(Cow::into_owned)).unwrap_or_default(),
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
        let mark = Some(MarkPayload { name: name.to_owned() });
        Frame { event: "mark", stream_sid: Some(stream_sid.into()), mark, ..Frame::default() }.to_json()
    }

    /// A `clear` frame: Twilio drops its queued audio and echoes every pending mark.
    pub fn clear(stream_sid: &str) -> String {
        Frame { event: "clear", stream_sid: Some(stream_sid.into()), ..Frame::default() }.to_json()
    }
}

/// What the server tells Twilio, as Twilio's side reads it.
#[derive(Debug, Clone, PartialEq)]
pub enum OutboundEvent {
    /// 8 kHz μ-law audio to play.
    Media(Vec<u8>),
    /// Echo this name back once the audio before it has played.
    Mark(String),
    /// Drop the queued audio and echo every pending mark.
    Clear,
}

/// Parses one text frame the server sent (what Twilio, or the simulated caller, reads).
pub fn parse_outbound(text: &str) -> Result<OutboundEvent, FrameError> {
    let frame: Frame<'_> = serde_json::from_str(text).map_err(|e| FrameError::Json(e.to_string()))?;
    let missing = |what: &str| FrameError::Json(format!("{} event without its {what} object", frame.event));
    match frame.event {
        "media" => {
            let media = frame.media.ok_or_else(|| missing("media"))?;
            Ok(OutboundEvent::Media(STANDARD.decode(media.payload.as_bytes()).map_err(|_| FrameError::Base64)?))
        }
        "mark" => Ok(OutboundEvent::Mark(frame.mark.ok_or_else(|| missing("mark"))?.name)),
        "clear" => Ok(OutboundEvent::Clear),
        other => Err(FrameError::UnknownEvent(other.to_owned())),
    }
}

/// Writes the frames Twilio sends on one stream, numbered as Twilio numbers them: what
/// the simulated caller speaks into the server.
#[derive(Debug, Clone)]
pub struct TwilioStream {
    stream_sid: String,
    call_sid: String,
    account_sid: String,
    sequence: u64,
    /// Media chunks sent; each is 20 ms, so this also dates them.
    chunks: u64,
}

impl TwilioStream {
    pub fn new(stream_sid: &str, call_sid: &str, account_sid: &str) -> Self {
        Self {
            stream_sid: stream_sid.to_owned(),
            call_sid: call_sid.to_owned(),
            account_sid: account_sid.to_owned(),
            sequence: 0,
            chunks: 0,
        }
    }

    fn next_sequence(&mut self) -> Option<String> {
        self.sequence += 1;
        Some(self.sequence.to_string())
    }

    fn frame<'a>(&'a self, event: &'a str) -> Frame<'a> {
        Frame { event, stream_sid: Some(Cow::Borrowed(&self.stream_sid)), ..Frame::default() }
    }

    /// The `connected` frame that opens the socket.
    pub fn connected(&self) -> String {
        Frame { event: "connected", protocol: Some("Call"), version: Some("1.0.0"), ..Frame::default() }.to_json()
    }

    /// The `start` frame: the call, and the `<Parameter>`s of the TwiML that opened it.
    pub fn start(&mut self, parameters: HashMap<String, String>) -> String {
        let sequence_number = self.next_sequence();
        let start = StartPayload {
            stream_sid: Some(self.stream_sid.clone()),
            call_sid: self.call_sid.clone(),
            account_sid: self.account_sid.clone(),
            tracks: vec!["inbound".to_owned()],
            custom_parameters: parameters,
            media_format: Some(MediaFormat { encoding: "audio/x-mulaw".to_owned(), sample_rate: 8000, channels: 1 }),
        };
        Frame { sequence_number, start: Some(start), ..self.frame("start") }.to_json()
    }

    /// A `media` frame of the caller's 8 kHz μ-law audio (20 ms).
    pub fn media(&mut self, mulaw: &[u8]) -> String {
        // Written directly, as Twilio lays it out: a load run sends fifty a second per call.
        use std::fmt::Write as _;
        self.sequence += 1;
        self.chunks += 1;
        let mut out = String::with_capacity(160 + self.stream_sid.len() + mulaw.len().div_ceil(3) * 4);
        let _ = write!(out, r#"{{"event":"media","sequenceNumber":"{}","streamSid":"#, self.sequence);
        push_json_str(&mut out, &self.stream_sid);
        let _ = write!(
            out,
            r#","media":{{"track":"inbound","chunk":"{}","timestamp":"{}","payload":""#,
            self.chunks,
            self.chunks * 20
        );
        STANDARD.encode_string(mulaw, &mut out);
        out.push_str("\"}}");
        out
    }

    /// A `mark` frame echoing one the server sent, once its audio has played.
    pub fn mark(&mut self, name: &str) -> String {
        let sequence_number = self.next_sequence();
        let mark = Some(MarkPayload { name: name.to_owned() });
        Frame { sequence_number, mark, ..self.frame("mark") }.to_json()
    }

    /// The `stop` frame: the caller hung up.
    pub fn stop(&mut self) -> String {
        let sequence_number = self.next_sequence();
        let stop = Some(StopPayload { account_sid: self.account_sid.clone(), call_sid: self.call_sid.clone() });
        Frame { sequence_number, stop, ..self.frame("stop") }.to_json()
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

    #[test]
    fn what_twilios_side_writes_the_server_reads() {
        let mut twilio = TwilioStream::new("MZ1", "CA1", "AC1");
        assert_eq!(parse(&twilio.connected()), Ok(StreamEvent::Connected));
        let parameters = HashMap::from([("tenant_id".to_owned(), "42".to_owned())]);
        let StreamEvent::Start(start) = parse(&twilio.start(parameters.clone())).unwrap() else {
            panic!("not a start")
        };
        assert_eq!(
            start,
            StreamStart {
                stream_sid: "MZ1".into(),
                call_sid: "CA1".into(),
                account_sid: "AC1".into(),
                parameters,
                encoding: "audio/x-mulaw".into(),
                sample_rate: 8000,
            }
        );
        assert_eq!(
            parse(&twilio.media(&[1, 2, 3])),
            Ok(StreamEvent::Audio { bytes: vec![1, 2, 3], timestamp_ms: Some(20) })
        );
        assert_eq!(parse(&twilio.media(&[4])), Ok(StreamEvent::Audio { bytes: vec![4], timestamp_ms: Some(40) }));
        assert_eq!(parse(&twilio.mark("1-2")), Ok(StreamEvent::Mark("1-2".into())));
        assert_eq!(parse(&twilio.stop()), Ok(StreamEvent::Stop));
    }

    #[test]
    fn twilios_side_numbers_its_frames_as_twilio_does() {
        let mut twilio = TwilioStream::new("MZ1", "CA1", "AC1");
        let connected: serde_json::Value = serde_json::from_str(&twilio.connected()).unwrap();
        assert_eq!(connected, serde_json::json!({"event": "connected", "protocol": "Call", "version": "1.0.0"}));
        let start: serde_json::Value = serde_json::from_str(&twilio.start(HashMap::new())).unwrap();
        assert_eq!(start["sequenceNumber"], "1");
        assert_eq!(start["start"]["tracks"], serde_json::json!(["inbound"]));
        assert_eq!(start["start"]["mediaFormat"]["channels"], 1);
        let media: serde_json::Value = serde_json::from_str(&twilio.media(&[0xff])).unwrap();
        assert_eq!(
            media,
            serde_json::json!({"event": "media", "sequenceNumber": "2", "streamSid": "MZ1",
                "media": {"track": "inbound", "chunk": "1", "timestamp": "20", "payload": "/w=="}})
        );
        let stop: serde_json::Value = serde_json::from_str(&twilio.stop()).unwrap();
        assert_eq!(
            stop,
            serde_json::json!({"event": "stop", "sequenceNumber": "3", "streamSid": "MZ1",
                "stop": {"accountSid": "AC1", "callSid": "CA1"}})
        );
    }

    #[test]
    fn what_the_server_writes_twilios_side_reads() {
        assert_eq!(
            parse_outbound(&Outbound::media("MZ\"1", &[0xff, 0x0f, 0xff])),
            Ok(OutboundEvent::Media(vec![0xff, 0x0f, 0xff]))
        );
        assert_eq!(parse_outbound(&Outbound::mark("MZ1", "2-5")), Ok(OutboundEvent::Mark("2-5".into())));
        assert_eq!(parse_outbound(&Outbound::clear("MZ1")), Ok(OutboundEvent::Clear));
        for bad in
            ["", "{}", r#"{"event":"media"}"#, r#"{"event":"media","media":{"payload":"!!"}}"#, r#"{"event":"start"}"#]
        {
            assert!(parse_outbound(bad).is_err(), "{bad:?} should be rejected");
        }
    }
}
