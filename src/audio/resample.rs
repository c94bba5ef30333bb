//! Streaming sample-rate conversion of mono 16-bit audio (rubato's FFT resampler underneath).
//! Accepts input in any slice sizes; owns only its own buffers, never a stream or a call.

use anyhow::Context;
use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Resampler as _};

/// Upper bound on zero chunks pushed by [`Resampler::flush`]; far more than any delay needs.
const MAX_FLUSH_CHUNKS: usize = 64;

/// A mono resampler for a stream of i16 samples. Input is cut into fixed 20 ms chunks; a
/// partial chunk waits inside until the next call or [`Resampler::flush`].
///
/// Output lags input by [`Resampler::delay_samples`] output samples (the FFT block's
/// half-width, about 10 ms for telephone rates); that lag is not trimmed, so a stream stays
/// continuous across calls.
pub struct Resampler {
    engine: Engine,
    from_hz: u32,
    to_hz: u32,
    /// Input samples consumed since creation or the last flush.
    consumed: u64,
    /// Output samples produced since creation or the last flush.
    produced: u64,
}

enum Engine {
    /// Same rate on both sides: samples pass straight through.
    Passthrough,
    Fft(Box<FftEngine>),
}

struct FftEngine {
    fft: Fft<f32>,
    chunk_in: usize,
    /// Input waiting for a full chunk; never longer than `chunk_in`.
    pending: Vec<f32>,
    /// Scratch output of one chunk, sized once for the largest chunk rubato can return.
    scratch_out: Vec<f32>,
}

impl Resampler {
    /// A resampler from `from_hz` to `to_hz`, processing 20 ms of input at a time.
    pub fn new(from_hz: u32, to_hz: u32) -> anyhow::Result<Self> {
        anyhow::ensure!(from_hz > 0 && to_hz > 0, "sample rates must be positive ({from_hz} -> {to_hz})");
        let engine = if from_hz == to_hz {
            Engine::Passthrough
        } else {
            let chunk_in = (from_hz as usize / 50).max(1);
            let fft = Fft::<f32>::new(from_hz as usize, to_hz as usize, chunk_in, 1, FixedSync::Input)
                .with_context(|| format!("creating a {from_hz} -> {to_hz} Hz resampler"))?;
            let scratch_out = vec![0.0; fft.output_frames_max()];
            Engine::Fft(Box::new(FftEngine { fft, chunk_in, pending: Vec::with_capacity(chunk_in), scratch_out }))
        };
        Ok(Self { engine, from_hz, to_hz, consumed: 0, produced: 0 })
    }

    /// The input rate.
    pub fn from_hz(&self) -> u32 {
        self.from_hz
    }

    /// The output rate.
    pub fn to_hz(&self) -> u32 {
        self.to_hz
    }

    /// How many output samples the output lags the input by.
    pub fn delay_samples(&self) -> usize {
        match &self.engine {
            Engine::Passthrough => 0,
            Engine::Fft(e) => e.fft.output_delay(),
        }
    }

    /// Resamples `input` and appends every complete output sample to `out`.
    /// Input that does not fill a chunk is kept for the next call.
    pub fn process(&mut self, input: &[i16], out: &mut Vec<i16>) {
        self.consumed += input.len() as u64;
        match &mut self.engine {
            Engine::Passthrough => {
                out.extend_from_slice(input);
                self.produced += input.len() as u64;
            }
            Engine::Fft(e) => {
                let mut rest = input;
                while !rest.is_empty() {
                    let take = (e.chunk_in - e.pending.len()).min(rest.len());
                    e.pending.extend(rest[..take].iter().map(|&s| s as f32));
                    rest = &rest[take..];
                    if e.pending.len() == e.chunk_in {
                        self.produced += e.run_chunk(out, usize::MAX) as u64;
                    }
                }
            }
        }
    }

    /// Pushes out everything still inside (the partial chunk and the delay line) by feeding
    /// zeros, then resets, ready for an unrelated stream. After a flush the total output is
    /// `delay_samples() + ceil(total_input * to_hz / from_hz)`.
    pub fn flush(&mut self, out: &mut Vec<i16>) {
        let expected = self.delay_samples() as u64 + (self.consumed * self.to_hz as u64).div_ceil(self.from_hz as u64);
        if let Engine::Fft(e) = &mut self.engine {
            for _ in 0..MAX_FLUSH_CHUNKS {
                if self.produced >= expected {
                    break;
                }
                e.pending.resize(e.chunk_in, 0.0);
                let wanted = usize::try_from(expected - self.produced).unwrap_or(usize::MAX);
                self.produced += e.run_chunk(out, wanted) as u64;
            }
            e.pending.clear();
            e.fft.reset();
        }
        self.consumed = 0;
        self.produced = 0;
    }
}

impl FftEngine {
    /// Resamples the full `pending` chunk, appends at most `limit` samples to `out` and
    /// returns how many were appended.
    fn run_chunk(&mut self, out: &mut Vec<i16>, limit: usize) -> usize {
        let frames_out = self.scratch_out.len();
        let result =
            InterleavedSlice::new(&self.pending[..], 1, self.chunk_in).map_err(anyhow::Error::from).and_then(|input| {
                let mut output = InterleavedSlice::new_mut(&mut self.scratch_out[..], 1, frames_out)?;
                Ok(self.fft.process_into_buffer(&input, &mut output, None)?)
            });
        self.pending.clear();
        match result {
            Ok((_, written)) => {
                let written = written.min(limit);
                out.extend(self.scratch_out[..written].iter().map(|&s| to_i16(s)));
                written
            }
            Err(e) => {
                // Both buffers are sized from rubato's own limits, so this is unreachable in
                // practice; dropping one 20 ms chunk beats taking a call down.
                tracing::error!(error = %e, "resampler rejected a chunk");
                0
            }
        }
    }
}

fn to_i16(sample: f32) -> i16 {
    // `as` saturates on overflow and maps NaN to 0.
    sample.round() as i16
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(rate: u32, hz: f32, amplitude: f32, len: usize) -> Vec<i16> {
        (0..len)
            .map(|i| (amplitude * (2.0 * std::f32::consts::PI * hz * i as f32 / rate as f32).sin()) as i16)
            .collect()
    }

    /// Amplitude and phase of `hz` in `signal`, by correlating with a sine and a cosine.
    fn tone(signal: &[i16], rate: u32, hz: f32) -> (f32, f32) {
        let (mut s, mut c) = (0.0f64, 0.0f64);
        for (i, &x) in signal.iter().enumerate() {
            let phase = 2.0 * std::f64::consts::PI * hz as f64 * i as f64 / rate as f64;
            s += x as f64 * phase.sin();
            c += x as f64 * phase.cos();
        }
        let n = signal.len() as f64;
        (((s * s + c * c).sqrt() * 2.0 / n) as f32, c.atan2(s) as f32)
    }

    fn rms(signal: &[i16]) -> f32 {
        (signal.iter().map(|&x| (x as f64).powi(2)).sum::<f64>() / signal.len() as f64).sqrt() as f32
    }

    #[test]
    fn a_sine_keeps_its_frequency_and_amplitude_through_8k_to_16k_and_back() {
        let input = sine(8000, 440.0, 10_000.0, 8000);
        let mut up = Resampler::new(8000, 16000).unwrap();
        let mut down = Resampler::new(16000, 8000).unwrap();
        let mut wide = Vec::new();
        up.process(&input, &mut wide);
        let mut narrow = Vec::new();
        down.process(&wide, &mut narrow);

        // Skip the combined delay (in 8 kHz samples) plus some settling, and keep whole chunks.
        let delay = up.delay_samples() / 2 + down.delay_samples();
        let steady = &narrow[delay + 400..narrow.len() - 400];
        let (amplitude, _) = tone(steady, 8000, 440.0);
        assert!((amplitude - 10_000.0).abs() < 300.0, "amplitude {amplitude}");
        // Everything else (distortion, other frequencies) is small.
        let expected = sine(8000, 440.0, 10_000.0, narrow.len());
        let residual_rms = {
            let shifted: Vec<i16> = steady.iter().zip(&expected[400..]).map(|(&y, &x)| y.saturating_sub(x)).collect();
            rms(&shifted)
        };
        assert!(residual_rms < 200.0, "residual after delay compensation: {residual_rms}");
    }

    #[test]
    fn upsampling_doubles_the_tone_rate_without_moving_its_pitch() {
        let input = sine(8000, 440.0, 8000.0, 4000);
        let mut up = Resampler::new(8000, 16000).unwrap();
        let mut wide = Vec::new();
        up.process(&input, &mut wide);
        let steady = &wide[up.delay_samples() + 320..];
        let (at_440, _) = tone(steady, 16000, 440.0);
        let (at_880, _) = tone(steady, 16000, 880.0);
        assert!((at_440 - 8000.0).abs() < 300.0, "440 Hz amplitude {at_440}");
        assert!(at_880 < 100.0, "energy leaked to 880 Hz: {at_880}");
    }

    #[test]
    fn output_length_tracks_the_rate_ratio_over_many_odd_sized_inputs() {
        for (from, to) in [(8000u32, 16000u32), (16000, 8000), (22050, 8000), (8000, 8000)] {
            let mut r = Resampler::new(from, to).unwrap();
            let mut out = Vec::new();
            let mut fed = 0usize;
            let mut size = 1usize;
            while fed < from as usize * 3 {
                let block = vec![1000i16; size];
                r.process(&block, &mut out);
                fed += size;
                // Sizes 1, 8, 22, 50, ... wrap around, odd and even alike.
                size = (size * 7 + 1) % 997 + 1;
            }
            let ideal = fed as f64 * to as f64 / from as f64;
            // Only the partial input chunk (at most 20 ms) may still be inside.
            let chunk_out = to as f64 / 50.0;
            assert!(out.len() as f64 <= ideal + 1.0, "{from}->{to}: {} > {ideal}", out.len());
            assert!(out.len() as f64 >= ideal - chunk_out - 1.0, "{from}->{to}: {} < {ideal}", out.len());

            r.flush(&mut out);
            let flushed = r.delay_samples() + ideal.ceil() as usize;
            assert_eq!(out.len(), flushed, "{from}->{to} after flush");
        }
    }

    #[test]
    fn espeak_rate_22050_converts_to_telephone_rate() {
        let input = sine(22050, 1000.0, 12_000.0, 22050);
        let mut r = Resampler::new(22050, 8000).unwrap();
        let mut out = Vec::new();
        // Pipe-sized reads that do not line up with the 441-sample chunks.
        for block in input.chunks(1000) {
            r.process(block, &mut out);
        }
        r.flush(&mut out);
        assert_eq!(out.len(), r.delay_samples() + 8000);
        let steady = &out[r.delay_samples() + 200..out.len() - 400];
        let (amplitude, _) = tone(steady, 8000, 1000.0);
        assert!((amplitude - 12_000.0).abs() < 400.0, "amplitude {amplitude}");
    }

    #[test]
    fn content_above_the_new_nyquist_is_filtered_out_when_downsampling() {
        // 6 kHz cannot exist at 8 kHz; it must not fold back to 2 kHz.
        let input = sine(22050, 6000.0, 12_000.0, 22050);
        let mut r = Resampler::new(22050, 8000).unwrap();
        let mut out = Vec::new();
        r.process(&input, &mut out);
        let steady = &out[r.delay_samples() + 200..];
        assert!(rms(steady) < 200.0, "aliased energy {}", rms(steady));
    }

    #[test]
    fn a_flushed_resampler_starts_the_next_stream_from_silence() {
        let mut r = Resampler::new(8000, 16000).unwrap();
        let mut out = Vec::new();
        r.process(&vec![20_000i16; 500], &mut out);
        r.flush(&mut out);
        out.clear();
        r.process(&vec![0i16; 800], &mut out);
        assert!(out.iter().all(|&s| s.abs() < 2), "leftover energy after flush");
    }

    #[test]
    fn zero_rates_are_rejected() {
        assert!(Resampler::new(0, 8000).is_err());
        assert!(Resampler::new(8000, 0).is_err());
    }

    #[test]
    fn loud_input_saturates_instead_of_wrapping() {
        // A full-scale square wave overshoots after filtering (Gibbs); it must clamp.
        let square: Vec<i16> = (0..1600).map(|i| if (i / 20) % 2 == 0 { i16::MAX } else { i16::MIN }).collect();
        let mut r = Resampler::new(8000, 16000).unwrap();
        let mut out = Vec::new();
        r.process(&square, &mut out);
        // Wrapping would put large values of the wrong sign next to each other.
        for pair in out.windows(2) {
            let jump = (pair[0] as i32 - pair[1] as i32).abs();
            assert!(jump < 60_000, "wrapped sample pair {pair:?}");
        }
    }
}
