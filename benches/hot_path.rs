//! Micro-benchmarks of the per-frame hot path: G.711 μ-law, resampling, Twilio media frames
//! in and out, one outbound pacing step of the call actor, and recording one 20 ms frame.
//!
//! `cargo bench --bench hot_path`

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use ringlypro::audio::mulaw;
use ringlypro::audio::ogg_opus::OpusSettings;
use ringlypro::audio::resample::Resampler;
use ringlypro::call::playback::{CHUNK_BYTES, Playback};
use ringlypro::call::recording::Recorder;
use ringlypro::telephony::media_stream::{self, Outbound};

/// 20 ms of 8 kHz μ-law: a 440 Hz tone.
fn frame() -> Vec<u8> {
    (0..160)
        .map(|i| mulaw::encode(((i as f32 * 440.0 * std::f32::consts::TAU / 8000.0).sin() * 8000.0) as i16))
        .collect()
}

fn codec(c: &mut Criterion) {
    let bytes = frame();
    let mut pcm = Vec::with_capacity(160);
    c.bench_function("mulaw decode 20 ms frame", |b| {
        b.iter(|| {
            pcm.clear();
            mulaw::decode_into(black_box(&bytes), &mut pcm);
        })
    });
    let mut samples = Vec::new();
    mulaw::decode_into(&bytes, &mut samples);
    let mut out = Vec::with_capacity(160);
    c.bench_function("mulaw encode 20 ms frame", |b| {
        b.iter(|| {
            out.clear();
            mulaw::encode_into(black_box(&samples), &mut out);
        })
    });
}

fn resampling(c: &mut Criterion) {
    let mut samples = Vec::new();
    mulaw::decode_into(&frame(), &mut samples);
    let mut up = Resampler::new(8000, 16000).expect("8→16 kHz");
    let mut out = Vec::with_capacity(640);
    c.bench_function("resample 8->16 kHz, 20 ms frame", |b| {
        b.iter(|| {
            out.clear();
            up.process(black_box(&samples), &mut out);
        })
    });
    let wide: Vec<i16> = (0..320).map(|i| (i * 37 % 2000) as i16).collect();
    let mut down = Resampler::new(16000, 8000).expect("16→8 kHz");
    c.bench_function("resample 16->8 kHz, 20 ms frame", |b| {
        b.iter(|| {
            out.clear();
            down.process(black_box(&wide), &mut out);
        })
    });
}

fn frames(c: &mut Criterion) {
    use base64::Engine as _;
    let payload = base64::engine::general_purpose::STANDARD.encode(frame());
    let inbound = format!(
        r#"{{"event":"media","sequenceNumber":"42","media":{{"track":"inbound","chunk":"41","timestamp":"820","payload":"{payload}"}},"streamSid":"MZ18ad3ab5a668481ce02b83e7395059f0"}}"#
    );
    c.bench_function("parse Twilio media frame", |b| b.iter(|| media_stream::parse(black_box(&inbound))));
    let audio = vec![0xffu8; CHUNK_BYTES];
    c.bench_function("build outbound media frame (40 ms)", |b| {
        b.iter(|| Outbound::media(black_box("MZ18ad3ab5a668481ce02b83e7395059f0"), black_box(&audio)))
    });
}

fn actor_step(c: &mut Criterion) {
    // One 20 ms tick of outbound pacing: queue 40 ms of synthesized audio, send what keeps
    // playback 160 ms ahead, frame it for Twilio.
    let rt = tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().expect("runtime");
    let _guard = rt.enter();
    let mut playback = Playback::new();
    playback.start_turn();
    let chunk = vec![0x7fu8; CHUNK_BYTES];
    let mut sends = Vec::new();
    let mut now = tokio::time::Instant::now();
    c.bench_function("actor pacing step (queue, pump, frame)", |b| {
        b.iter(|| {
            playback.push(&chunk);
            now += Duration::from_millis(20);
            sends.clear();
            playback.pump(now, &mut sends);
            for s in &sends {
                if let ringlypro::call::playback::Send::Audio { bytes, .. } = s {
                    black_box(Outbound::media("MZ1", bytes));
                }
            }
        })
    });
}

fn recording(c: &mut Criterion) {
    // One 20 ms step of a recorded call: place a caller frame and 20 ms of agent audio, mix
    // both legs and encode them to Ogg Opus.
    let rt = tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().expect("runtime");
    let _guard = rt.enter();
    let origin = tokio::time::Instant::now();
    let mut recorder = Recorder::new(origin, OpusSettings::default()).expect("an Opus encoder");
    let caller = frame();
    let agent: Vec<u8> = frame().iter().rev().copied().collect();
    let mut ms = 0u64;
    c.bench_function("recording: place both legs, mix and encode 20 ms", |b| {
        b.iter(|| {
            let now = origin + Duration::from_millis(ms + 20);
            recorder.caller(black_box(&caller), Some(ms), now);
            recorder.agent(black_box(&agent), now + Duration::from_millis(100));
            recorder.advance(now).expect("encodes");
            ms += 20;
        })
    });
}

criterion_group!(benches, codec, resampling, frames, actor_step, recording);
criterion_main!(benches);
