//! RIFF/WAVE reading for 16-bit PCM, whole files or streamed from a pipe (a TTS engine's
//! stdout), downmixed to mono. It returns errors on bad input and never trusts its sizes.

/// Largest header (everything before the samples) accepted while streaming, so that garbage
/// on a pipe cannot make us buffer without end.
const MAX_HEADER_BYTES: usize = 64 * 1024;

/// Why a WAV stream was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WavError {
    #[error("not a RIFF/WAVE stream")]
    NotWave,
    #[error("WAV stream ended early ({0})")]
    Truncated(&'static str),
    #[error("unsupported WAV format: {0}")]
    Unsupported(String),
    #[error("malformed WAV: {0}")]
    Malformed(&'static str),
}

/// What the `fmt ` chunk says, plus how long the data chunk claims to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WavFormat {
    /// Samples per second per channel.
    pub sample_rate: u32,
    /// Interleaved channels (the reader averages them to mono).
    pub channels: u16,
    /// Data bytes announced by the header; `None` when the writer did not know (streamed
    /// output announces 0 or a huge placeholder), meaning "until end of stream".
    pub data_len: Option<u32>,
}

/// Reads a complete WAV file held in memory: `(sample_rate, mono samples)`.
pub fn read(bytes: &[u8]) -> Result<(u32, Vec<i16>), WavError> {
    let (format, header_len) = parse_header(bytes)?.ok_or(WavError::Truncated("header"))?;
    let body = &bytes[header_len..];
    let body = match format.data_len {
        Some(len) => {
            let len = len as usize;
            if body.len() < len {
                return Err(WavError::Truncated("data chunk"));
            }
            &body[..len]
        }
        None => body,
    };
    let mut reader = PcmStream::new(format);
    let mut samples = Vec::with_capacity(body.len() / 2 / format.channels as usize);
    reader.push(body, &mut samples);
    Ok((format.sample_rate, samples))
}

/// Parses the header at the start of `buf`. `Ok(None)` means "need more bytes"; on success
/// returns the format and the offset of the first sample byte.
pub fn parse_header(buf: &[u8]) -> Result<Option<(WavFormat, usize)>, WavError> {
    if buf.len() < 12 {
        // Reject garbage as early as the bytes allow.
        let seen = buf.len().min(4);
        if buf[..seen] != b"RIFF"[..seen] {
            return Err(WavError::NotWave);
        }
        return Ok(None);
    }
    if &buf[0..4] != b"RIFF" || &buf[8..12] != b"WAVE" {
        return Err(WavError::NotWave);
    }
    let mut pos = 12;
    let mut fmt: Option<(u32, u16)> = None;
    loop {
        let Some(chunk_header) = buf.get(pos..pos + 8) else {
            return Ok(None);
        };
        let id = &chunk_header[0..4];
        let size = u32::from_le_bytes([chunk_header[4], chunk_header[5], chunk_header[6], chunk_header[7]]);
        let body_start = pos + 8;
        if id == b"data" {
            let (sample_rate, channels) = fmt.ok_or(WavError::Malformed("data chunk before fmt chunk"))?;
            let data_len = announced_len(size, channels);
            return Ok(Some((WavFormat { sample_rate, channels, data_len }, body_start)));
        }
        // Chunks are padded to an even length.
        let padded = (size as usize).checked_add(size as usize & 1).ok_or(WavError::Malformed("chunk size"))?;
        let body_end = body_start.checked_add(padded).ok_or(WavError::Malformed("chunk size"))?;
        if body_end > MAX_HEADER_BYTES {
            return Err(WavError::Malformed("header too large"));
        }
        if id == b"fmt " {
            let Some(body) = buf.get(body_start..body_start + size as usize) else {
                return Ok(None);
            };
            fmt = Some(parse_fmt(body)?);
        } else if buf.len() < body_end {
            return Ok(None);
        }
        pos = body_end;
    }
}

/// Streamed writers (espeak-ng, sox to a pipe) cannot seek back to fill in the size, so they
/// write 0 or a huge placeholder; both mean "until end of stream".
fn announced_len(size: u32, channels: u16) -> Option<u32> {
    let frame = 2 * channels as u32;
    if size == 0 || size >= 0x7FFF_0000 { None } else { Some(size - size % frame) }
}

fn parse_fmt(body: &[u8]) -> Result<(u32, u16), WavError> {
    if body.len() < 16 {
        return Err(WavError::Malformed("fmt chunk shorter than 16 bytes"));
    }
    let u16_at = |i: usize| u16::from_le_bytes([body[i], body[i + 1]]);
    let tag = u16_at(0);
    let channels = u16_at(2);
    let sample_rate = u32::from_le_bytes([body[4], body[5], body[6], body[7]]);
    let bits = u16_at(14);
    const PCM: u16 = 1;
    const EXTENSIBLE: u16 = 0xFFFE;
    let is_pcm = match tag {
        PCM => true,
        // WAVE_FORMAT_EXTENSIBLE keeps the real tag in the first two bytes of the GUID.
        EXTENSIBLE => body.len() >= 26 && u16_at(24) == PCM,
        _ => false,
    };
    if !is_pcm {
        return Err(WavError::Unsupported(format!("format tag {tag:#06x} (only PCM is read)")));
    }
    if bits != 16 {
        return Err(WavError::Unsupported(format!("{bits}-bit samples (only 16-bit is read)")));
    }
    if channels == 0 {
        return Err(WavError::Malformed("zero channels"));
    }
    if sample_rate == 0 {
        return Err(WavError::Malformed("zero sample rate"));
    }
    Ok((sample_rate, channels))
}

/// Turns the bytes after the header into mono samples, whatever sizes they arrive in.
#[derive(Debug)]
pub struct PcmStream {
    format: WavFormat,
    /// Bytes of an incomplete frame carried to the next push (fewer than one frame).
    partial: Vec<u8>,
    /// Data bytes still expected when the header announced a length.
    remaining: Option<u32>,
}

impl PcmStream {
    /// A converter for data bytes of the given format.
    pub fn new(format: WavFormat) -> Self {
        Self { format, partial: Vec::with_capacity(2 * format.channels as usize), remaining: format.data_len }
    }

    /// The format the bytes are read in.
    pub fn format(&self) -> WavFormat {
        self.format
    }

    /// Appends the mono samples in `bytes` to `out`; bytes past an announced data length
    /// (trailing chunks) are ignored.
    pub fn push(&mut self, mut bytes: &[u8], out: &mut Vec<i16>) {
        if let Some(remaining) = &mut self.remaining {
            let take = bytes.len().min(*remaining as usize);
            bytes = &bytes[..take];
            *remaining -= take as u32;
        }
        let frame = 2 * self.format.channels as usize;
        if !self.partial.is_empty() {
            let take = (frame - self.partial.len()).min(bytes.len());
            self.partial.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            if self.partial.len() < frame {
                return;
            }
            out.push(downmix(&self.partial));
            self.partial.clear();
        }
        let whole = bytes.len() - bytes.len() % frame;
        out.extend(bytes[..whole].chunks_exact(frame).map(downmix));
        self.partial.extend_from_slice(&bytes[whole..]);
    }

    /// True when a frame was cut off by the end of the stream.
    pub fn has_partial_frame(&self) -> bool {
        !self.partial.is_empty()
    }
}

/// Averages one interleaved 16-bit frame to a single sample.
fn downmix(frame: &[u8]) -> i16 {
    let mut sum = 0i32;
    let mut n = 0i32;
    for pair in frame.chunks_exact(2) {
        sum += i16::from_le_bytes([pair[0], pair[1]]) as i32;
        n += 1;
    }
    // n >= 1 (frames are at least one sample) and the mean of i16s fits in i16.
    (sum / n.max(1)) as i16
}

/// Reads a WAV stream that arrives piece by piece (for example a subprocess's stdout):
/// buffers until the header is complete, then yields mono samples as the bytes come.
#[derive(Debug, Default)]
pub struct WavStreamReader {
    header: Vec<u8>,
    pcm: Option<PcmStream>,
}

impl WavStreamReader {
    /// A reader waiting for the first header byte.
    pub fn new() -> Self {
        Self::default()
    }

    /// The format, once the header has been read.
    pub fn format(&self) -> Option<WavFormat> {
        self.pcm.as_ref().map(PcmStream::format)
    }

    /// Feeds the next bytes of the stream, appending any complete mono samples to `out`.
    pub fn push(&mut self, bytes: &[u8], out: &mut Vec<i16>) -> Result<(), WavError> {
        if let Some(pcm) = &mut self.pcm {
            pcm.push(bytes, out);
            return Ok(());
        }
        self.header.extend_from_slice(bytes);
        match parse_header(&self.header)? {
            None if self.header.len() > MAX_HEADER_BYTES => Err(WavError::Malformed("header too large")),
            None => Ok(()),
            Some((format, header_len)) => {
                let mut pcm = PcmStream::new(format);
                pcm.push(&self.header[header_len..], out);
                self.header = Vec::new();
                self.pcm = Some(pcm);
                Ok(())
            }
        }
    }

    /// Call at end of stream: an error if the header never completed. A cut-off final
    /// frame is dropped silently (pipes are cut on cancellation).
    pub fn finish(&self) -> Result<WavFormat, WavError> {
        self.format().ok_or(WavError::Truncated("header"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A canonical 44-byte-header WAV with the given announced data size.
    fn wav(rate: u32, channels: u16, samples: &[i16], announced: Option<u32>) -> Vec<u8> {
        let data: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
        let data_size = announced.unwrap_or(data.len() as u32);
        let mut out = Vec::new();
        out.extend_from_slice(b"RIFF");
        out.extend_from_slice(&(36u32.wrapping_add(data_size)).to_le_bytes());
        out.extend_from_slice(b"WAVE");
        out.extend_from_slice(b"fmt ");
        out.extend_from_slice(&16u32.to_le_bytes());
        out.extend_from_slice(&1u16.to_le_bytes());
        out.extend_from_slice(&channels.to_le_bytes());
        out.extend_from_slice(&rate.to_le_bytes());
        out.extend_from_slice(&(rate * 2 * channels as u32).to_le_bytes());
        out.extend_from_slice(&(2 * channels).to_le_bytes());
        out.extend_from_slice(&16u16.to_le_bytes());
        out.extend_from_slice(b"data");
        out.extend_from_slice(&data_size.to_le_bytes());
        out.extend_from_slice(&data);
        out
    }

    #[test]
    fn a_mono_file_reads_back_its_rate_and_samples() {
        let samples = [0i16, 1, -1, i16::MAX, i16::MIN, 1234];
        assert_eq!(read(&wav(8000, 1, &samples, None)), Ok((8000, samples.to_vec())));
    }

    #[test]
    fn stereo_is_averaged_to_mono() {
        let interleaved = [100i16, 300, -200, -400, i16::MAX, i16::MAX, i16::MIN, i16::MIN];
        assert_eq!(read(&wav(16000, 2, &interleaved, None)), Ok((16000, vec![200, -300, i16::MAX, i16::MIN])));
    }

    #[test]
    fn unknown_chunks_before_the_data_are_skipped() {
        let plain = wav(22050, 1, &[5, 6, 7], None);
        let mut with_list = plain[..36].to_vec();
        with_list.extend_from_slice(b"LIST");
        with_list.extend_from_slice(&3u32.to_le_bytes());
        with_list.extend_from_slice(b"abc\0"); // odd size, padded
        with_list.extend_from_slice(&plain[36..]);
        assert_eq!(read(&with_list), Ok((22050, vec![5, 6, 7])));
    }

    #[test]
    fn trailing_chunks_after_an_announced_data_length_are_ignored() {
        let mut bytes = wav(8000, 1, &[1, 2], None);
        bytes.extend_from_slice(b"LIST\x04\0\0\0junk");
        assert_eq!(read(&bytes), Ok((8000, vec![1, 2])));
    }

    #[test]
    fn a_streamed_placeholder_size_means_read_to_the_end() {
        for placeholder in [0u32, 0x7FFF_F000, 0x7FFF_FFFF, u32::MAX] {
            let bytes = wav(22050, 1, &[9, 8, 7], Some(placeholder));
            assert_eq!(read(&bytes), Ok((22050, vec![9, 8, 7])), "placeholder {placeholder:#x}");
        }
    }

    #[test]
    fn truncated_input_is_an_error_not_a_panic() {
        let bytes = wav(8000, 1, &[1, 2, 3, 4], None);
        for cut in 0..bytes.len() {
            let result = read(&bytes[..cut]);
            assert!(matches!(result, Err(WavError::Truncated(_))), "cut at {cut}: {result:?}");
        }
    }

    #[test]
    fn garbage_and_unsupported_formats_are_refused() {
        assert_eq!(read(b"MThd\0\0\0\x06 definitely not audio"), Err(WavError::NotWave));
        assert_eq!(read(b"RIFF\0\0\0\0AVI LIST"), Err(WavError::NotWave));

        let mut eight_bit = wav(8000, 1, &[0], None);
        eight_bit[34] = 8;
        assert!(matches!(read(&eight_bit), Err(WavError::Unsupported(_))));

        let mut mulaw = wav(8000, 1, &[0], None);
        mulaw[20] = 7;
        assert!(matches!(read(&mulaw), Err(WavError::Unsupported(_))));

        let mut no_channels = wav(8000, 1, &[0], None);
        no_channels[22] = 0;
        assert_eq!(read(&no_channels), Err(WavError::Malformed("zero channels")));

        let mut huge_chunk = wav(8000, 1, &[0], None);
        huge_chunk[36..40].copy_from_slice(b"junk");
        huge_chunk[40..44].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(read(&huge_chunk), Err(WavError::Malformed("header too large")));
    }

    #[test]
    fn random_bytes_never_panic() {
        // A fixed xorshift so failures reproduce.
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let base = wav(8000, 2, &[1, 2, 3, 4, 5, 6], None);
        for _ in 0..2000 {
            let mut bytes = base.clone();
            let flips = (next() % 6) as usize;
            for _ in 0..=flips {
                let i = (next() as usize) % bytes.len();
                bytes[i] = next() as u8;
            }
            bytes.truncate((next() as usize) % (bytes.len() + 1));
            let _ = read(&bytes);
            let mut reader = WavStreamReader::new();
            let _ = reader.push(&bytes, &mut Vec::new());
        }
    }

    #[test]
    fn a_stream_fed_one_byte_at_a_time_yields_the_same_samples() {
        let interleaved: Vec<i16> = (0..200).map(|i| (i * 97 - 5000) as i16).collect();
        let bytes = wav(22050, 2, &interleaved, Some(0x7FFF_F000));
        let mut reader = WavStreamReader::new();
        let mut out = Vec::new();
        for b in &bytes {
            reader.push(std::slice::from_ref(b), &mut out).unwrap();
        }
        let expected: Vec<i16> = interleaved.chunks(2).map(|f| ((f[0] as i32 + f[1] as i32) / 2) as i16).collect();
        assert_eq!(out, expected);
        assert_eq!(reader.finish().unwrap().sample_rate, 22050);
    }

    #[test]
    fn a_stream_that_ends_inside_the_header_reports_truncation() {
        let bytes = wav(8000, 1, &[1], None);
        let mut reader = WavStreamReader::new();
        reader.push(&bytes[..30], &mut Vec::new()).unwrap();
        assert_eq!(reader.finish(), Err(WavError::Truncated("header")));
    }

    #[test]
    fn a_stream_of_garbage_fails_on_the_first_bytes() {
        let mut reader = WavStreamReader::new();
        assert_eq!(reader.push(b"espeak: error", &mut Vec::new()), Err(WavError::NotWave));
    }
}
