//! The crate's only unsafe code: hand-written FFI to Debian's PocketSphinx 5prealpha
//! (sphinxbase `cmd_ln_t` API), wrapped in a safe, owned [`Decoder`]. Nothing else here.
#![allow(unsafe_code)]

use std::ffi::{CStr, CString, c_char, c_int, c_void};
use std::marker::{PhantomData, PhantomPinned};
use std::ptr::{self, NonNull};
use std::sync::{Mutex, Once};

/// `ps_decoder_t`, opaque.
#[repr(C)]
struct PsDecoder {
    _data: [u8; 0],
    _marker: PhantomData<(*mut u8, PhantomPinned)>,
}

/// `cmd_ln_t`, opaque.
#[repr(C)]
struct CmdLn {
    _data: [u8; 0],
    _marker: PhantomData<(*mut u8, PhantomPinned)>,
}

/// `arg_t`, opaque: only ever passed back to the library.
#[repr(C)]
struct ArgDef {
    _data: [u8; 0],
    _marker: PhantomData<(*mut u8, PhantomPinned)>,
}

// Declarations copied by hand from /usr/include/pocketsphinx/pocketsphinx.h and
// /usr/include/x86_64-linux-gnu/sphinxbase/{cmd_ln,err}.h (int32 = int, int16 = short,
// uint8 = unsigned char). build.rs links libpocketsphinx and libsphinxbase.
unsafe extern "C" {
    fn ps_args() -> *const ArgDef;
    fn cmd_ln_parse_r(
        inout_cmdln: *mut CmdLn,
        defn: *const ArgDef,
        argc: i32,
        argv: *mut *mut c_char,
        strict: i32,
    ) -> *mut CmdLn;
    fn cmd_ln_free_r(cmdln: *mut CmdLn) -> c_int;
    fn ps_init(config: *mut CmdLn) -> *mut PsDecoder;
    fn ps_free(ps: *mut PsDecoder) -> c_int;
    fn ps_start_utt(ps: *mut PsDecoder) -> c_int;
    fn ps_process_raw(
        ps: *mut PsDecoder,
        data: *const i16,
        n_samples: usize,
        no_search: c_int,
        full_utt: c_int,
    ) -> c_int;
    fn ps_end_utt(ps: *mut PsDecoder) -> c_int;
    fn ps_get_hyp(ps: *mut PsDecoder, out_best_score: *mut i32) -> *const c_char;
    fn ps_get_in_speech(ps: *mut PsDecoder) -> u8;
    fn err_set_logfp(stream: *mut c_void);
}

/// A decoder failure: PocketSphinx only says "it failed", so the message says where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("pocketsphinx: {0}")]
pub struct DecoderError(pub String);

/// Model loading touches process-wide state in sphinxbase (logging, the argument parser);
/// one decoder is built at a time. Decoding itself runs in parallel.
static INIT_LOCK: Mutex<()> = Mutex::new(());
static SILENCE_LOGS: Once = Once::new();

/// One PocketSphinx decoder: models loaded, ready to recognise one stream of 16-bit mono
/// audio at the configured rate. `Send` (it moves to the thread that uses it) but not
/// `Sync`: all calls go through `&mut self` or one owner.
pub struct Decoder {
    ps: NonNull<PsDecoder>,
    in_utterance: bool,
    /// The argument strings: sphinxbase documents that it may keep pointers into them for
    /// as long as the configuration lives, which is as long as the decoder.
    _args: Vec<CString>,
}

// SAFETY: a ps_decoder_t holds no thread-affine state (no thread-locals, no thread ids);
// PocketSphinx only requires that one decoder is not used from two threads at once, which
// `Decoder` guarantees by not being `Sync` and by taking `&mut self` for every call that
// mutates decoder state.
unsafe impl Send for Decoder {}

impl Decoder {
    /// Loads a decoder configured by PocketSphinx command-line pairs, such as
    /// `("-hmm", "/usr/share/pocketsphinx/model/en-us/en-us")`. Takes hundreds of
    /// milliseconds (acoustic model, dictionary and language model are read from disk).
    pub fn new(args: &[(&str, &str)]) -> Result<Self, DecoderError> {
        SILENCE_LOGS.call_once(|| {
            // SAFETY: a NULL stream is documented as "disable logging"; called once, before
            // any decoder exists, under `Once`.
            unsafe { err_set_logfp(ptr::null_mut()) }
        });

        let mut owned = Vec::with_capacity(args.len() * 2);
        for (key, value) in args {
            for s in [key, value] {
                owned.push(CString::new(*s).map_err(|_| DecoderError(format!("argument {s:?} contains NUL")))?);
            }
        }
        let mut argv: Vec<*mut c_char> = owned.iter().map(|s| s.as_ptr().cast_mut()).collect();
        let argc = i32::try_from(argv.len()).map_err(|_| DecoderError("too many arguments".into()))?;

        // A poisoned lock only means another init panicked; the guarded state is in C.
        let _guard = INIT_LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        // SAFETY: ps_args() returns a static table. argv holds argc valid NUL-terminated
        // strings that outlive the configuration (kept in `_args`); the library does not
        // write through them. strict = 1 rejects unknown or duplicate names.
        let config = unsafe { cmd_ln_parse_r(ptr::null_mut(), ps_args(), argc, argv.as_mut_ptr(), 1) };
        if config.is_null() {
            return Err(DecoderError(format!("invalid configuration {args:?}")));
        }
        // SAFETY: config is a valid cmd_ln_t. ps_init takes its own reference (or releases
        // it again on failure), so ours is released right after, in both cases.
        let ps = unsafe {
            let ps = ps_init(config);
            cmd_ln_free_r(config);
            ps
        };
        let ps = NonNull::new(ps).ok_or_else(|| DecoderError(format!("could not load models from {args:?}")))?;
        Ok(Self { ps, in_utterance: false, _args: owned })
    }

    /// Begins an utterance (a no-op if one is open).
    pub fn start_utterance(&mut self) -> Result<(), DecoderError> {
        if self.in_utterance {
            return Ok(());
        }
        // SAFETY: self.ps is a live decoder owned by self.
        if unsafe { ps_start_utt(self.ps.as_ptr()) } < 0 {
            return Err(DecoderError("ps_start_utt failed".into()));
        }
        self.in_utterance = true;
        Ok(())
    }

    /// Feeds samples to the open utterance (opening one if needed).
    pub fn process(&mut self, samples: &[i16]) -> Result<(), DecoderError> {
        self.start_utterance()?;
        // SAFETY: the pointer and length describe `samples`, which outlives the call; the
        // library copies what it keeps.
        let searched = unsafe { ps_process_raw(self.ps.as_ptr(), samples.as_ptr(), samples.len(), 0, 0) };
        if searched < 0 {
            return Err(DecoderError("ps_process_raw failed".into()));
        }
        Ok(())
    }

    /// Whether the voice-activity detector considers the last audio fed to be speech.
    pub fn in_speech(&mut self) -> bool {
        // SAFETY: self.ps is a live decoder; the call only reads VAD state.
        unsafe { ps_get_in_speech(self.ps.as_ptr()) != 0 }
    }

    /// The best hypothesis so far (partial while an utterance is open, final after
    /// [`Decoder::end_utterance`]); `None` when there is none.
    pub fn hypothesis(&mut self) -> Option<String> {
        let mut score = 0i32;
        // SAFETY: self.ps is live; the returned string is owned by the decoder and valid
        // until the next call on it, so it is copied before this borrow ends.
        let hyp = unsafe { ps_get_hyp(self.ps.as_ptr(), &mut score) };
        if hyp.is_null() {
            return None;
        }
        // SAFETY: non-null, NUL-terminated, owned by the decoder (see above).
        let text = unsafe { CStr::from_ptr(hyp) }.to_string_lossy().into_owned();
        Some(text)
    }

    /// Ends the open utterance (a no-op if none), finalising the hypothesis.
    pub fn end_utterance(&mut self) -> Result<(), DecoderError> {
        if !self.in_utterance {
            return Ok(());
        }
        self.in_utterance = false;
        // SAFETY: self.ps is live and an utterance is open.
        if unsafe { ps_end_utt(self.ps.as_ptr()) } < 0 {
            return Err(DecoderError("ps_end_utt failed".into()));
        }
        Ok(())
    }
}

impl Drop for Decoder {
    fn drop(&mut self) {
        // SAFETY: self.ps came from ps_init, is freed exactly once, here; ps_free also
        // releases the decoder's reference to its configuration, before `_args` is dropped.
        unsafe {
            ps_free(self.ps.as_ptr());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    const HMM: &str = "/usr/share/pocketsphinx/model/en-us/en-us";
    const DICT: &str = "/usr/share/pocketsphinx/model/en-us/cmudict-en-us.dict";
    const LM: &str = "/usr/share/pocketsphinx/model/en-us/en-us.lm.bin";

    fn models_installed() -> bool {
        let ok = [HMM, DICT, LM].iter().all(|p| Path::new(p).exists());
        if !ok {
            eprintln!("skipped: pocketsphinx-en-us is not installed");
        }
        ok
    }

    #[test]
    fn a_decoder_hears_nothing_in_silence() {
        if !models_installed() {
            return;
        }
        let mut decoder = Decoder::new(&[("-hmm", HMM), ("-lm", LM), ("-dict", DICT), ("-samprate", "16000")]).unwrap();
        let silence = vec![0i16; 320];
        for _ in 0..50 {
            decoder.process(&silence).unwrap();
            assert!(!decoder.in_speech());
        }
        decoder.end_utterance().unwrap();
        assert_eq!(decoder.hypothesis().unwrap_or_default(), "");
        // A second utterance on the same decoder works.
        decoder.process(&silence).unwrap();
        decoder.end_utterance().unwrap();
    }

    #[test]
    fn unknown_options_and_missing_models_are_errors() {
        if !models_installed() {
            return;
        }
        assert!(Decoder::new(&[("-no_such_option", "1")]).is_err());
        assert!(Decoder::new(&[("-hmm", HMM), ("-lm", "/nonexistent.lm"), ("-dict", DICT)]).is_err());
        assert!(Decoder::new(&[("-hmm", "bad\0path")]).is_err());
    }

    #[test]
    fn decoders_can_move_between_threads() {
        if !models_installed() {
            return;
        }
        let decoder = Decoder::new(&[("-hmm", HMM), ("-lm", LM), ("-dict", DICT)]).unwrap();
        let handle = std::thread::spawn(move || {
            let mut decoder = decoder;
            decoder.process(&[0i16; 1600]).unwrap();
            decoder.end_utterance().is_ok()
        });
        assert!(handle.join().unwrap());
    }
}
