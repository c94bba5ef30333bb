//! G.711 μ-law: the 8-bit telephone codec Twilio speaks, bit-exact with ITU-T G.711.
//! Pure arithmetic on samples; it knows nothing of frames, sockets or sample rates.

/// Added to the magnitude before the segment search so that every segment starts at a
/// power of two (G.711's 0x84 = 132).
const BIAS: i32 = 0x84;
/// Largest magnitude that still fits once the bias is added (32635 + 132 = 32767).
const CLIP: i32 = 32635;

/// Every code word decoded once, at compile time.
static DECODE: [i16; 256] = build_decode_table();

const fn decode_formula(byte: u8) -> i16 {
    // Code words are transmitted inverted (G.711 §A.2) so that silence has many ones.
    let b = !byte;
    let sign = b & 0x80;
    let exponent = (b >> 4) & 0x07;
    let mantissa = (b & 0x0F) as i32;
    let magnitude = (((mantissa << 3) + BIAS) << exponent) - BIAS;
    if sign != 0 { -magnitude as i16 } else { magnitude as i16 }
}

const fn build_decode_table() -> [i16; 256] {
    let mut table = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        table[i] = decode_formula(i as u8);
        i += 1;
    }
    table
}

/// Decodes one μ-law code word to a 16-bit linear sample.
#[inline]
pub fn decode(byte: u8) -> i16 {
    DECODE[byte as usize]
}

/// Encodes one 16-bit linear sample to a μ-law code word (truncating, as G.711 does).
#[inline]
pub fn encode(sample: i16) -> u8 {
    // i32 so that -(-32768) cannot overflow.
    let s = sample as i32;
    let (sign, magnitude) = if s < 0 { (0x80u8, -s) } else { (0u8, s) };
    let biased = magnitude.min(CLIP) + BIAS; // 132..=32767
    // The segment is the position of the highest set bit above bit 7.
    let high_bit = 31 - biased.leading_zeros() as i32; // 7..=14
    let exponent = (high_bit - 7).max(0);
    let mantissa = (biased >> (exponent + 3)) & 0x0F;
    !(sign | ((exponent as u8) << 4) | mantissa as u8)
}

/// The mean level at and above which 20 ms of telephone audio is a voice rather than line
/// noise.
pub const VOICE_LEVEL: u32 = 400;
/// 20 ms of 8 kHz μ-law.
const FRAME_BYTES: usize = 160;

/// Mean absolute sample level of μ-law audio (0 for silence): a cheap voice-activity cue.
pub fn mean_level(bytes: &[u8]) -> u32 {
    if bytes.is_empty() {
        return 0;
    }
    let sum: u32 = bytes.iter().map(|b| DECODE[*b as usize].unsigned_abs() as u32).sum();
    sum / bytes.len() as u32
}

/// Whether any 20 ms of `bytes` (8 kHz μ-law) is a voice ([`VOICE_LEVEL`]); a short loud
/// frame in a long quiet piece still counts.
pub fn has_voice(bytes: &[u8]) -> bool {
    bytes.chunks(FRAME_BYTES).any(|frame| mean_level(frame) >= VOICE_LEVEL)
}

/// Decodes `bytes` and appends the samples to `out`.
pub fn decode_into(bytes: &[u8], out: &mut Vec<i16>) {
    out.reserve(bytes.len());
    out.extend(bytes.iter().map(|&b| decode(b)));
}

/// Encodes `samples` and appends the code words to `out`.
pub fn encode_into(samples: &[i16], out: &mut Vec<u8>) {
    out.reserve(samples.len());
    out.extend(samples.iter().map(|&s| encode(s)));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_code_words_decode_to_the_g711_values() {
        assert_eq!(decode(0xFF), 0);
        assert_eq!(decode(0x7F), 0);
        assert_eq!(decode(0x00), -32124);
        assert_eq!(decode(0x80), 32124);
        // First step of the finest segment, both signs.
        assert_eq!(decode(0xFE), 8);
        assert_eq!(decode(0x7E), -8);
        // Start of the top segment: (0x84 << 7) - 0x84.
        assert_eq!(decode(0x8F), 16764);
    }

    #[test]
    fn known_samples_encode_to_the_g711_code_words() {
        assert_eq!(encode(0), 0xFF);
        assert_eq!(encode(-1), 0x7F);
        assert_eq!(encode(i16::MAX), 0x80);
        assert_eq!(encode(i16::MIN), 0x00);
        assert_eq!(encode(32124), 0x80);
        assert_eq!(encode(-32124), 0x00);
    }

    #[test]
    fn every_code_word_survives_decode_then_encode_except_negative_zero() {
        for b in 0..=255u8 {
            let again = encode(decode(b));
            if b == 0x7F {
                // Negative zero decodes to 0, which encodes as positive zero.
                assert_eq!(again, 0xFF);
            } else {
                assert_eq!(again, b, "code word {b:#04x}");
            }
        }
    }

    #[test]
    fn encoding_is_monotonic_over_the_whole_sample_range() {
        // Decoded values must never go down as the input goes up.
        let mut previous = decode(encode(i16::MIN));
        for s in i16::MIN..=i16::MAX {
            let value = decode(encode(s));
            assert!(value >= previous, "sample {s}: {value} < {previous}");
            previous = value;
        }
    }

    #[test]
    fn decode_table_is_ordered_within_each_sign() {
        // Positive code words 0x80..=0xFF run from loudest to silence.
        for b in 0x80..0xFFu8 {
            assert!(decode(b) > decode(b + 1));
        }
        for b in 0x00..0x7Fu8 {
            assert!(decode(b) < decode(b + 1));
        }
    }

    #[test]
    fn round_trip_error_stays_within_half_a_quantisation_step() {
        for s in -CLIP..=CLIP {
            let s = s as i16;
            let error = (decode(encode(s)) as i32 - s as i32).abs();
            // The step is 2^(segment+3) and the segment start is 2^(segment+7) - 132,
            // so half a step is at most (|s| + 132) / 32.
            let bound = (s as i32).abs().saturating_add(BIAS) / 32;
            assert!(error <= bound.max(4), "sample {s}: error {error} > {bound}");
        }
    }

    #[test]
    fn samples_beyond_the_clip_level_saturate() {
        for s in [CLIP + 1, 32700, i16::MAX as i32] {
            assert_eq!(decode(encode(s as i16)), 32124);
            assert_eq!(decode(encode(-s as i16)), -32124);
        }
    }

    #[test]
    fn slice_helpers_append_rather_than_overwrite() {
        let mut pcm = vec![7i16];
        decode_into(&[0xFF, 0x80], &mut pcm);
        assert_eq!(pcm, vec![7, 0, 32124]);

        let mut bytes = vec![1u8];
        encode_into(&[0, -32124], &mut bytes);
        assert_eq!(bytes, vec![1, 0xFF, 0x00]);
    }
}
