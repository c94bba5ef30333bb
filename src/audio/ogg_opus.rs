//! Ogg Opus encoding (RFC 7845) of 8 kHz mono speech, one 20 ms frame at a time, into an
//! in-memory stream: only compressed pages are kept, never the PCM. Knows nothing of calls;
//! the Ogg page framing (and its CRC) is the `ogg` crate's.

use std::borrow::Cow;
use std::io::{self, Write};
use std::sync::{Mutex, PoisonError};

use audiopus::coder::Encoder;
use audiopus::{Application, Bitrate, Channels, SampleRate};
use ogg::writing::{PacketWriteEndInfo, PacketWriter};

/// Input sample rate: telephone audio, handed to Opus as it is.
pub const SAMPLE_RATE: u32 = 8000;
/// One Opus frame: 20 ms at 8 kHz.
pub const FRAME_SAMPLES: usize = 160;
/// Ogg Opus counts granule positions at 48 kHz whatever the input rate.
const GRANULES_PER_SAMPLE: u64 = (48_000 / SAMPLE_RATE) as u64;
const GRANULES_PER_FRAME: u64 = FRAME_SAMPLES as u64 * GRANULES_PER_SAMPLE;
/// Packets per Ogg page: one page a second keeps seeking fine and the overhead small.
const FRAMES_PER_PAGE: u32 = 50;
/// Room for one encoded packet; at 16 kb/s a 20 ms packet is about 40 bytes.
const MAX_PACKET: usize = 1275;
/// Compressed pages are kept in blocks of this size (about five seconds of speech).
const BLOCK: usize = 8 * 1024;
/// `OPUS_SET_DTX_REQUEST` from opus_defines.h: near-silent frames shrink to a byte or two.
const OPUS_SET_DTX_REQUEST: i32 = 4016;

/// How the encoder is set up.
#[derive(Debug, Clone, Copy)]
pub struct OpusSettings {
    pub bitrate: i32,
    /// 0–10: the encoder's CPU/quality trade-off.
    pub complexity: u8,
    /// Discontinuous transmission: silence costs almost nothing.
    pub dtx: bool,
}

impl Default for OpusSettings {
    /// Speech at 16 kb/s. Complexity 1: at 8 kHz it costs about a third of complexity 5
    /// per frame for files within a few percent of the same size.
    fn default() -> Self {
        Self { bitrate: 16_000, complexity: 1, dtx: true }
    }
}

/// Why encoding failed. Neither should happen with valid settings; the caller drops the
/// recording rather than the call.
#[derive(Debug, thiserror::Error)]
pub enum OggOpusError {
    #[error("opus encoder: {0}")]
    Codec(#[from] audiopus::Error),
    #[error("ogg framing: {0}")]
    Framing(#[from] std::io::Error),
}

/// An Ogg Opus stream being written: feed PCM with [`OggOpusWriter::push`], end with
/// [`OggOpusWriter::finish`].
pub struct OggOpusWriter {
    /// Only ever reached through `&mut self` (`Mutex::get_mut`, no locking): the mutex just
    /// lets a call's state be shared by reference across awaits, which the raw encoder
    /// (`Send` but not `Sync`) would forbid.
    encoder: Mutex<Encoder>,
    pages: PacketWriter<'static, Blocks>,
    serial: u32,
    /// Encoder delay, in 48 kHz samples: what a player skips at the start.
    pre_skip: u64,
    /// The frame being filled.
    frame: [i16; FRAME_SAMPLES],
    filled: usize,
    packet: Box<[u8; MAX_PACKET]>,
    frames_encoded: u64,
    frames_in_page: u32,
    /// Samples pushed (real audio, not the padding added at the end).
    samples: u64,
}

impl OggOpusWriter {
    /// Starts a stream: writes the `OpusHead` and `OpusTags` pages.
    pub fn new(settings: OpusSettings, serial: u32) -> Result<Self, OggOpusError> {
        let mut encoder = Encoder::new(SampleRate::Hz8000, Channels::Mono, Application::Voip)?;
        encoder.set_bitrate(Bitrate::BitsPerSecond(settings.bitrate))?;
        encoder.set_complexity(settings.complexity)?;
        if settings.dtx {
            encoder.set_encoder_ctl_request(OPUS_SET_DTX_REQUEST, 1)?;
        }
        let pre_skip = u64::from(encoder.lookahead()?) * GRANULES_PER_SAMPLE;
        let mut pages = PacketWriter::new(Blocks::default());
        pages.write_packet(opus_head(pre_skip as u16), serial, PacketWriteEndInfo::EndPage, 0)?;
        pages.write_packet(opus_tags(), serial, PacketWriteEndInfo::EndPage, 0)?;
        Ok(Self {
            encoder: Mutex::new(encoder),
            pages,
            serial,
            pre_skip,
            frame: [0; FRAME_SAMPLES],
            filled: 0,
            packet: Box::new([0; MAX_PACKET]),
            frames_encoded: 0,
            frames_in_page: 0,
            samples: 0,
        })
    }

    /// Appends 8 kHz samples; every complete 20 ms frame is encoded at once.
    pub fn push(&mut self, mut pcm: &[i16]) -> Result<(), OggOpusError> {
        self.samples += pcm.len() as u64;
        while !pcm.is_empty() {
            let take = (FRAME_SAMPLES - self.filled).min(pcm.len());
            self.frame[self.filled..self.filled + take].copy_from_slice(&pcm[..take]);
            self.filled += take;
            pcm = &pcm[take..];
            if self.filled == FRAME_SAMPLES {
                self.encode_frame(None)?;
            }
        }
        Ok(())
    }

    /// Samples pushed so far.
    pub fn samples(&self) -> u64 {
        self.samples
    }

    /// Compressed bytes written so far (complete pages only).
    pub fn len(&self) -> usize {
        self.pages.inner().len
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Ends the stream: encodes the encoder's delay out with silence and marks the last
    /// page so that players stop exactly after the last real sample.
    pub fn finish(mut self) -> Result<Vec<u8>, OggOpusError> {
        let lookahead = self.pre_skip / GRANULES_PER_SAMPLE;
        let needed = (self.samples + lookahead).div_ceil(FRAME_SAMPLES as u64);
        // At least one more packet, to carry the end-of-stream flag.
        let remaining = needed.saturating_sub(self.frames_encoded).max(1);
        let final_granule = self.pre_skip + self.samples * GRANULES_PER_SAMPLE;
        for i in 0..remaining {
            self.frame[self.filled..].fill(0);
            self.filled = FRAME_SAMPLES;
            let last = i + 1 == remaining;
            self.encode_frame(last.then_some(final_granule))?;
        }
        Ok(self.pages.into_inner().concat())
    }

    /// Encodes the full frame; `end` carries the final granule position of the stream.
    fn encode_frame(&mut self, end: Option<u64>) -> Result<(), OggOpusError> {
        let encoder = self.encoder.get_mut().unwrap_or_else(PoisonError::into_inner);
        let len = encoder.encode(&self.frame, &mut self.packet[..])?;
        self.filled = 0;
        self.frames_encoded += 1;
        self.frames_in_page += 1;
        let (info, granule) = match end {
            Some(granule) => (PacketWriteEndInfo::EndStream, granule),
            None if self.frames_in_page >= FRAMES_PER_PAGE => {
                (PacketWriteEndInfo::EndPage, self.frames_encoded * GRANULES_PER_FRAME)
            }
            None => (PacketWriteEndInfo::NormalPacket, self.frames_encoded * GRANULES_PER_FRAME),
        };
        if info != PacketWriteEndInfo::NormalPacket {
            self.frames_in_page = 0;
        }
        let packet: Cow<'static, [u8]> = Cow::Owned(self.packet[..len].to_vec());
        self.pages.write_packet(packet, self.serial, info, granule)?;
        Ok(())
    }
}

/// Where pages go while the stream grows: fixed-size blocks, so a long recording neither
/// sits in a buffer up to twice its size nor is copied each time it outgrows one.
#[derive(Default)]
struct Blocks {
    full: Vec<Box<[u8]>>,
    current: Vec<u8>,
    len: usize,
}

impl Blocks {
    fn concat(self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.len);
        for block in &self.full {
            out.extend_from_slice(block);
        }
        out.extend_from_slice(&self.current);
        out
    }
}

impl Write for Blocks {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.current.capacity() == 0 {
            self.current.reserve_exact(BLOCK);
        }
        let n = (BLOCK - self.current.len()).min(buf.len());
        self.current.extend_from_slice(&buf[..n]);
        self.len += n;
        if self.current.len() == BLOCK {
            self.full.push(std::mem::take(&mut self.current).into_boxed_slice());
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The identification header (RFC 7845 §5.1): mono, channel mapping family 0.
fn opus_head(pre_skip: u16) -> Vec<u8> {
    let mut head = Vec::with_capacity(19);
    head.extend_from_slice(b"OpusHead");
    head.push(1); // version
    head.push(1); // channels
    head.extend_from_slice(&pre_skip.to_le_bytes());
    head.extend_from_slice(&SAMPLE_RATE.to_le_bytes()); // the input's rate, for information
    head.extend_from_slice(&0i16.to_le_bytes()); // output gain
    head.push(0); // mapping family: mono/stereo, no table
    head
}

/// The comment header (RFC 7845 §5.2): the vendor string and no comments.
fn opus_tags() -> Vec<u8> {
    const VENDOR: &[u8] = b"ringlypro";
    let mut tags = Vec::with_capacity(8 + 4 + VENDOR.len() + 4);
    tags.extend_from_slice(b"OpusTags");
    tags.extend_from_slice(&(VENDOR.len() as u32).to_le_bytes());
    tags.extend_from_slice(VENDOR);
    tags.extend_from_slice(&0u32.to_le_bytes());
    tags
}

/// A decoded Ogg Opus stream, for tests and checks: the headers' facts and the PCM.
#[derive(Debug, Clone)]
pub struct Decoded {
    pub channels: u8,
    pub pre_skip: u64,
    pub input_rate: u32,
    /// Granule position of the last page.
    pub final_granule: u64,
    /// 8 kHz samples after pre-skip and end trimming.
    pub samples: Vec<i16>,
    pub packets: usize,
}

/// Why a stream could not be read back.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("not an Ogg stream: {0}")]
    Ogg(#[from] ogg::OggReadError),
    #[error("{0}")]
    Header(&'static str),
    #[error("opus decoder: {0}")]
    Codec(#[from] audiopus::Error),
}

/// Reads an Ogg Opus stream back to 8 kHz PCM, honouring pre-skip and the final granule
/// position as a player does.
pub fn decode(bytes: &[u8]) -> Result<Decoded, ReadError> {
    let mut reader = ogg::PacketReader::new(std::io::Cursor::new(bytes));
    let head = reader.read_packet()?.ok_or(ReadError::Header("empty stream"))?;
    let data = &head.data;
    if data.len() < 19 || &data[..8] != b"OpusHead" || data[8] != 1 || !head.first_in_stream() {
        return Err(ReadError::Header("first packet is not an OpusHead"));
    }
    let channels = data[9];
    let pre_skip = u64::from(u16::from_le_bytes([data[10], data[11]]));
    let input_rate = u32::from_le_bytes([data[12], data[13], data[14], data[15]]);
    let tags = reader.read_packet()?.ok_or(ReadError::Header("no OpusTags"))?;
    if tags.data.len() < 16 || &tags.data[..8] != b"OpusTags" {
        return Err(ReadError::Header("second packet is not OpusTags"));
    }
    let mut decoder = audiopus::coder::Decoder::new(SampleRate::Hz8000, Channels::Mono)?;
    let mut pcm = Vec::new();
    let mut out = [0i16; FRAME_SAMPLES * 6];
    let mut final_granule = 0;
    let mut packets = 0;
    let mut ended = false;
    while let Some(packet) = reader.read_packet()? {
        let n = decoder.decode(Some(&packet.data[..]), &mut out[..], false)?;
        pcm.extend_from_slice(&out[..n]);
        packets += 1;
        if packet.last_in_page() {
            final_granule = packet.absgp_page();
        }
        ended = packet.last_in_stream();
    }
    if !ended {
        return Err(ReadError::Header("stream has no end-of-stream page"));
    }
    let skip = (pre_skip / GRANULES_PER_SAMPLE) as usize;
    let total = (final_granule.saturating_sub(pre_skip) / GRANULES_PER_SAMPLE) as usize;
    let samples = pcm.get(skip..).unwrap_or_default().iter().take(total).copied().collect();
    Ok(Decoded { channels, pre_skip, input_rate, final_granule, samples, packets })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(samples: usize, hz: f32, amplitude: f32) -> Vec<i16> {
        (0..samples)
            .map(|i| ((i as f32 * hz * std::f32::consts::TAU / SAMPLE_RATE as f32).sin() * amplitude) as i16)
            .collect()
    }

    fn rms(samples: &[i16]) -> f64 {
        if samples.is_empty() {
            return 0.0;
        }
        (samples.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / samples.len() as f64).sqrt()
    }

    #[test]
    fn a_written_stream_reads_back_with_correct_headers_and_exact_length() {
        let mut writer = OggOpusWriter::new(OpusSettings::default(), 7).unwrap();
        // 1.23 s: not a whole number of frames, pushed in odd-sized pieces.
        let pcm = tone(9840, 440.0, 8000.0);
        for piece in pcm.chunks(333) {
            writer.push(piece).unwrap();
        }
        assert_eq!(writer.samples(), 9840);
        let bytes = writer.finish().unwrap();
        let decoded = decode(&bytes).unwrap();
        assert_eq!(decoded.channels, 1);
        assert_eq!(decoded.input_rate, 8000);
        assert!(decoded.pre_skip > 0, "the encoder's delay is declared");
        assert_eq!(decoded.final_granule, decoded.pre_skip + 9840 * 6);
        assert_eq!(decoded.samples.len(), 9840, "exactly the samples pushed");
        // Speech-grade, not bit-exact: the tone survives at about its level.
        let level = rms(&decoded.samples[800..9000]);
        assert!((4000.0..7500.0).contains(&level), "tone level {level}");
    }

    #[test]
    fn every_page_parses_and_carries_granules_at_48_khz() {
        let mut writer = OggOpusWriter::new(OpusSettings::default(), 42).unwrap();
        writer.push(&tone(8000 * 3, 300.0, 6000.0)).unwrap();
        let bytes = writer.finish().unwrap();
        let mut reader = ogg::PacketReader::new(std::io::Cursor::new(&bytes[..]));
        let head = reader.read_packet().unwrap().unwrap();
        assert!(head.first_in_stream() && head.last_in_page(), "OpusHead alone on the first page");
        assert_eq!(head.absgp_page(), 0);
        assert_eq!(head.stream_serial(), 42);
        let tags = reader.read_packet().unwrap().unwrap();
        assert!(tags.last_in_page(), "OpusTags ends its page");
        assert_eq!(&tags.data[..8], b"OpusTags");
        let mut granules = Vec::new();
        let mut last = None;
        while let Some(p) = reader.read_packet().unwrap() {
            if p.last_in_page() {
                granules.push(p.absgp_page());
            }
            last = Some(p);
        }
        assert!(last.unwrap().last_in_stream(), "the final page is marked end of stream");
        assert!(granules.windows(2).all(|w| w[0] < w[1]), "granules grow: {granules:?}");
        assert_eq!(granules[0], 50 * 960, "one second per page, counted at 48 kHz");
        assert!(granules.len() >= 3);
    }

    #[test]
    fn an_empty_recording_is_still_a_valid_stream() {
        let bytes = OggOpusWriter::new(OpusSettings::default(), 1).unwrap().finish().unwrap();
        let decoded = decode(&bytes).unwrap();
        assert!(decoded.samples.is_empty());
        assert!(decoded.packets >= 1);
    }

    /// Tone bursts over noise: busy enough that the encoder spends its bit rate.
    fn busy(samples: usize) -> Vec<i16> {
        let mut seed = 1u32;
        (0..samples)
            .map(|i| {
                seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                let envelope = (i as f32 / 800.0).sin().abs() * 6000.0;
                let noise = (seed >> 16) as i16 as f32 / 32768.0;
                let voice = (i as f32 * 180.0 * std::f32::consts::TAU / 8000.0).sin();
                ((noise + voice) * envelope) as i16
            })
            .collect()
    }

    fn encoded_len(settings: OpusSettings, pcm: &[i16]) -> usize {
        let mut writer = OggOpusWriter::new(settings, 1).unwrap();
        writer.push(pcm).unwrap();
        writer.finish().unwrap().len()
    }

    #[test]
    fn sound_costs_about_the_bit_rate_and_silence_far_less() {
        let ten_seconds = 8000 * 10;
        let busy = encoded_len(OpusSettings::default(), &busy(ten_seconds));
        assert!((14_000..24_000).contains(&busy), "about 16 kb/s: {busy} bytes for 10 s");
        let silent = encoded_len(OpusSettings::default(), &vec![0; ten_seconds]);
        let silent_without_dtx =
            encoded_len(OpusSettings { dtx: false, ..OpusSettings::default() }, &vec![0; ten_seconds]);
        assert!(silent * 2 < silent_without_dtx, "DTX: {silent} bytes, without: {silent_without_dtx}");
        assert!(silent < 2_000, "10 s of silence took {silent} bytes");
    }

    #[test]
    fn pages_spanning_several_blocks_come_back_in_order() {
        let mut blocks = Blocks::default();
        let data: Vec<u8> = (0..BLOCK * 2 + 100).map(|i| (i % 251) as u8).collect();
        for piece in data.chunks(999) {
            blocks.write_all(piece).unwrap();
        }
        assert_eq!(blocks.full.len(), 2);
        assert_eq!(blocks.len, data.len());
        assert_eq!(blocks.concat(), data);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(decode(b"").is_err());
        assert!(decode(b"OggS not really").is_err());
        let mut bytes = OggOpusWriter::new(OpusSettings::default(), 1).unwrap().finish().unwrap();
        bytes.truncate(bytes.len() / 2);
        assert!(decode(&bytes).is_err());
    }
}
