//! Streaming speech from a one-shot engine: a turn's text is cut into sentences and clauses
//! as it arrives, and each is synthesized as soon as it is complete. Owns the sentence
//! splitter the call actor also uses on LLM token streams; it never touches the audio itself.

use std::collections::VecDeque;
use std::sync::Arc;

use tokio::sync::mpsc;

use crate::domain::language::Language;
use crate::providers::ProviderError;
use crate::providers::tts::{StreamingTts, TextToSpeech, TtsAudio, TtsCall, TtsInput, TtsRequest, TtsTurn};

/// A comma ends a clause once the clause has reached this many characters: long sentences
/// start sounding sooner, short ones ("Sure, I can do that.") keep their prosody.
pub const COMMA_CLAUSE_CHARS: usize = 40;
/// A clause with no punctuation at all is cut at the next space after this many characters,
/// so that a run-on reply cannot hold back all audio.
pub const MAX_CLAUSE_CHARS: usize = 200;

/// Words that end with a full stop without ending the sentence (compared lower-case).
const ABBREVIATIONS: &[&str] = &[
    "mr", "mrs", "ms", "mx", "dr", "prof", "st", "jr", "sr", "sra", "srta", "dra", "lic", "ing", "ud", "uds", "vs",
    "approx", "apt", "ave", "blvd", "dept", "ext", "tel", "fig", "núm", "num",
];

/// Cuts `buffer` into the sentences and clauses that are certainly complete, and the rest.
///
/// A sentence ends at `.`, `?`, `!`, `;`, `:` or `…` (runs such as `?!` or `...` included,
/// with any closing quotes or brackets after them) when followed by whitespace, and at a
/// line break. A comma followed by whitespace ends a clause of at least
/// [`COMMA_CLAUSE_CHARS`] characters; a clause of [`MAX_CLAUSE_CHARS`] without punctuation
/// is cut at a space. Punctuation at the very end of the buffer is not yet an end: more text
/// may follow (`$29` + `.99`). Never cut: decimals and prices (`$29.99`), times (`2:30`),
/// titles and common abbreviations (`Dr. Smith`, `Mr.`, `Sra.`), dotted abbreviations
/// (`a.m.`, `p.m.`, `e.g.`, `U.S.`) and initials (`J. Smith`).
///
/// Returned pieces are trimmed; pieces with nothing to say (no letter or digit) are dropped.
/// The rest has its leading whitespace trimmed. Feeding text piece by piece, each time
/// appending the new piece to the previous rest, gives the same pieces as one call on the
/// whole text.
pub fn split_sentences(buffer: &str) -> (Vec<String>, String) {
    let chars: Vec<(usize, char)> = buffer.char_indices().collect();
    let mut pieces = Vec::new();
    // Byte offset where the current clause starts, and its length in characters so far.
    let mut start = 0;
    let mut clause_chars = 0;
    let mut i = 0;
    while i < chars.len() {
        let (at, c) = chars[i];
        // Leading whitespace is not part of a clause (and not counted towards its length).
        if clause_chars == 0 && c.is_whitespace() {
            start = at + c.len_utf8();
            i += 1;
            continue;
        }
        if c == '\n' {
            push_piece(&mut pieces, &buffer[start..at]);
            start = at + c.len_utf8();
            clause_chars = 0;
            i += 1;
            continue;
        }
        if is_terminator(c) {
            let run_start = i;
            let mut after_run = i;
            while after_run < chars.len() && is_terminator(chars[after_run].1) {
                after_run += 1;
            }
            let mut after_closers = after_run;
            while after_closers < chars.len() && is_closer(chars[after_closers].1) {
                after_closers += 1;
            }
            let followed_by_space = chars.get(after_closers).is_some_and(|&(_, next)| next.is_whitespace());
            let lone_full_stop = after_run - run_start == 1 && c == '.';
            if followed_by_space && !(lone_full_stop && ends_abbreviation(&buffer[start..at])) {
                let end = chars[after_closers].0;
                push_piece(&mut pieces, &buffer[start..end]);
                start = end;
                clause_chars = 0;
            } else {
                clause_chars += after_closers - i;
            }
            i = after_closers;
            continue;
        }
        clause_chars += 1;
        let next_is_space = chars.get(i + 1).is_some_and(|&(_, next)| next.is_whitespace());
        if c == ',' && next_is_space && clause_chars >= COMMA_CLAUSE_CHARS {
            let end = at + c.len_utf8();
            push_piece(&mut pieces, &buffer[start..end]);
            start = end;
            clause_chars = 0;
        } else if c.is_whitespace() && clause_chars > MAX_CLAUSE_CHARS {
            push_piece(&mut pieces, &buffer[start..at]);
            start = at;
            clause_chars = 0;
        }
        i += 1;
    }
    (pieces, buffer[start..].trim_start().to_owned())
}

fn is_terminator(c: char) -> bool {
    matches!(c, '.' | '?' | '!' | ';' | ':' | '…')
}

fn is_closer(c: char) -> bool {
    matches!(c, '"' | '\'' | ')' | ']' | '}' | '”' | '’' | '»')
}

/// Whether a full stop right after `clause` belongs to an abbreviation, judged by the word
/// it ends.
fn ends_abbreviation(clause: &str) -> bool {
    let word = clause.rsplit(char::is_whitespace).next().unwrap_or_default();
    let word = word.trim_start_matches(|c: char| !c.is_alphanumeric());
    if word.is_empty() {
        return false;
    }
    // a.m, p.m, e.g, i.e, U.S: a dot inside the word.
    if word.contains('.') {
        return true;
    }
    let mut letters = word.chars();
    if let (Some(first), None) = (letters.next(), letters.next())
        && first.is_uppercase()
    {
        return true; // an initial: "J. Smith"
    }
    let lower = word.to_lowercase();
    ABBREVIATIONS.contains(&lower.as_str())
}

fn push_piece(pieces: &mut Vec<String>, piece: &str) {
    let piece = piece.trim();
    if piece.chars().any(char::is_alphanumeric) {
        pieces.push(piece.to_owned());
    }
}

/// Text pieces are sentences or clauses: keep a word break between consecutive ones.
fn append_piece(buffer: &mut String, text: &str) {
    buffer.push_str(text);
    if !text.is_empty() && !text.ends_with(char::is_whitespace) {
        buffer.push(' ');
    }
}

/// Text pieces a turn may queue before the sender waits.
const TEXT_CHANNEL: usize = 64;
/// Audio chunks a turn may queue before synthesis waits for the listener.
const AUDIO_CHANNEL: usize = 64;
/// Sentences synthesized ahead of the one being heard, so that the engine's start-up time
/// never becomes a gap in the audio.
const LOOKAHEAD: usize = 1;

/// Any one-shot engine (espeak-ng, Flite) as a streaming one: each turn's sentences are
/// synthesized as soon as they are complete, in order, the remainder on `Flush`.
pub struct SentenceTts<T: TextToSpeech>(pub Arc<T>);

impl<T: TextToSpeech> SentenceTts<T> {
    pub fn new(engine: T) -> Self {
        Self(Arc::new(engine))
    }
}

impl<T: TextToSpeech> Clone for SentenceTts<T> {
    fn clone(&self) -> Self {
        Self(Arc::clone(&self.0))
    }
}

impl<T: TextToSpeech> StreamingTts for SentenceTts<T> {
    fn name(&self) -> &'static str {
        self.0.name()
    }

    fn open_call(&self, language: Language) -> Box<dyn TtsCall> {
        Box::new(SentenceCall { engine: Arc::clone(&self.0), language })
    }
}

struct SentenceCall<T: TextToSpeech> {
    engine: Arc<T>,
    language: Language,
}

impl<T: TextToSpeech> TtsCall for SentenceCall<T> {
    fn start_turn(&mut self) -> TtsTurn {
        let (text_tx, text_rx) = mpsc::channel(TEXT_CHANNEL);
        let (audio_tx, audio_rx) = mpsc::channel(AUDIO_CHANNEL);
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(run_turn(Arc::clone(&self.engine), self.language, text_rx, audio_tx));
            }
            Err(_) => {
                let provider = self.engine.name();
                // A fresh channel with capacity > 0 always has room for this one message.
                let _ =
                    audio_tx.try_send(Err(ProviderError::fatal(provider, "start_turn called outside a tokio runtime")));
            }
        }
        TtsTurn { text: text_tx, audio: audio_rx }
    }
}

/// One turn: reads text, keeps at most `LOOKAHEAD + 1` syntheses running, forwards the
/// oldest one's audio. Returning drops every synthesis, which stops the engines.
async fn run_turn<T: TextToSpeech>(
    engine: Arc<T>,
    language: Language,
    mut text_rx: mpsc::Receiver<TtsInput>,
    audio_tx: mpsc::Sender<Result<Vec<u8>, ProviderError>>,
) {
    let mut buffer = String::new();
    let mut ready: VecDeque<String> = VecDeque::new();
    let mut speaking: VecDeque<TtsAudio> = VecDeque::new();
    let mut text_done = false;
    loop {
        while speaking.len() <= LOOKAHEAD
            && let Some(sentence) = ready.pop_front()
        {
            speaking.push_back(engine.synthesize(TtsRequest { text: sentence, language }));
        }
        if text_done && speaking.is_empty() {
            return;
        }
        tokio::select! {
            // Barge-in (the listener is gone) wins over the end of text that dropping the
            // whole turn also brings.
            biased;
            () = audio_tx.closed() => return,
            input = text_rx.recv(), if !text_done => match input {
                Some(TtsInput::Text(text)) => {
                    append_piece(&mut buffer, &text);
                    let (complete, rest) = split_sentences(&buffer);
                    ready.extend(complete);
                    buffer = rest;
                }
                // A dropped sender ends the text just as a flush does.
                Some(TtsInput::Flush) | None => {
                    text_done = true;
                    let rest = std::mem::take(&mut buffer);
                    let rest = rest.trim();
                    if rest.chars().any(char::is_alphanumeric) {
                        ready.push_back(rest.to_owned());
                    }
                }
            },
            chunk = next_chunk(&mut speaking), if !speaking.is_empty() => match chunk {
                Some(Ok(bytes)) => {
                    if audio_tx.send(Ok(bytes)).await.is_err() {
                        return;
                    }
                }
                Some(Err(e)) => {
                    let _ = audio_tx.send(Err(e)).await;
                    return;
                }
                None => {
                    speaking.pop_front();
                }
            },
        }
    }
}

async fn next_chunk(speaking: &mut VecDeque<TtsAudio>) -> Option<Result<Vec<u8>, ProviderError>> {
    match speaking.front_mut() {
        Some(audio) => audio.recv().await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::time::Duration;

    use super::*;

    #[track_caller]
    fn check(buffer: &str, pieces: &[&str], rest: &str) {
        let (got_pieces, got_rest) = split_sentences(buffer);
        let got_pieces: Vec<&str> = got_pieces.iter().map(String::as_str).collect();
        assert_eq!((got_pieces.as_slice(), got_rest.as_str()), (pieces, rest), "{buffer:?}");
    }

    fn complete(buffer: &str) -> Vec<String> {
        let (mut pieces, rest) = split_sentences(buffer);
        if !rest.is_empty() {
            pieces.push(rest);
        }
        pieces
    }

    #[test]
    fn sentences_end_at_full_stops_question_and_exclamation_marks_followed_by_a_space() {
        check("Hello there. How are you? Great! And", &["Hello there.", "How are you?", "Great!"], "And");
    }

    #[test]
    fn semicolons_and_colons_end_clauses() {
        check("We are open; come by. Options: ", &["We are open;", "come by.", "Options:"], "");
    }

    #[test]
    fn punctuation_at_the_end_of_the_buffer_waits_for_what_follows() {
        check("It costs $29.", &[], "It costs $29.");
        check("Is that all?", &[], "Is that all?");
        check("It costs $29.99 in total. ", &["It costs $29.99 in total."], "");
    }

    #[test]
    fn prices_decimals_and_times_are_never_cut() {
        for text in [
            "That is $29.99 for the visit",
            "It takes 1.5 hours",
            "Come at 2:30 on Friday",
            "It is 14:45:10 now",
            "We have 1,200 slots",
        ] {
            check(&format!("{text}. Thanks. "), &[&format!("{text}."), "Thanks."], "");
        }
    }

    #[test]
    fn titles_and_abbreviations_do_not_end_a_sentence() {
        for text in [
            "Dr. Smith will see you",
            "Mr. and Mrs. Jones are booked",
            "Ms. Lee called",
            "La Sra. García llamó",
            "Meet me at 123 Main St. suite 4",
            "Bring an ID, e.g. a passport",
            "Bring an ID, i.e. a passport",
            "J. R. Smith is here",
            "We compare plan one vs. plan two",
        ] {
            check(&format!("{text}. Bye. "), &[&format!("{text}."), "Bye."], "");
        }
    }

    #[test]
    fn a_word_that_merely_looks_like_an_abbreviation_still_ends_a_sentence() {
        check("I said no. Thanks. ", &["I said no.", "Thanks."], "");
        check("Come to Suite 5. Okay. ", &["Come to Suite 5.", "Okay."], "");
    }

    #[test]
    fn a_single_capital_letter_is_taken_for_an_initial() {
        // "John F. Kennedy" must not be cut; the price is that "plan B. Okay." waits a little.
        check("Ask John F. Kennedy. Okay. ", &["Ask John F. Kennedy.", "Okay."], "");
        check("That is plan B. Okay. ", &["That is plan B. Okay."], "");
    }

    #[test]
    fn a_m_and_p_m_are_never_cut() {
        check(
            "We open at 9 a.m. and close at 5 p.m. every day. ",
            &["We open at 9 a.m. and close at 5 p.m. every day."],
            "",
        );
        check("See you at 10 a.m. Monday. ", &["See you at 10 a.m. Monday."], "");
    }

    #[test]
    fn ellipses_and_repeated_marks_end_a_sentence_once() {
        check("Well... let me check?! Okay. ", &["Well...", "let me check?!", "Okay."], "");
        check("Hmm… sure. ", &["Hmm…", "sure."], "");
    }

    #[test]
    fn closing_quotes_and_brackets_stay_with_their_sentence() {
        check(r#"She said "yes." Then (we booked it.) Done"#, &[r#"She said "yes.""#, "Then (we booked it.)"], "Done");
    }

    #[test]
    fn a_line_break_ends_a_piece() {
        check("- Monday\n- Tuesday\n- Wed", &["- Monday", "- Tuesday"], "- Wed");
    }

    #[test]
    fn short_clauses_keep_their_commas() {
        check("Sure, I can do that, no problem. ", &["Sure, I can do that, no problem."], "");
    }

    #[test]
    fn a_long_clause_is_cut_at_a_comma() {
        check(
            "If you would like to come in on Tuesday afternoon, we have openings at two and four. ",
            &["If you would like to come in on Tuesday afternoon,", "we have openings at two and four."],
            "",
        );
    }

    #[test]
    fn a_comma_inside_a_number_is_not_a_clause_end() {
        check(
            "The total for the whole family package comes to 1,250 dollars, due today",
            &["The total for the whole family package comes to 1,250 dollars,"],
            "due today",
        );
    }

    #[test]
    fn a_comma_at_the_end_of_the_buffer_waits_for_what_follows() {
        let clause = "If you would like to come in on Tuesday afternoon,";
        check(clause, &[], clause);
        check(&format!("{clause}5"), &[], &format!("{clause}5"));
    }

    #[test]
    fn a_run_on_clause_is_cut_at_a_space_after_the_maximum_length() {
        let text = "word ".repeat(60);
        let (pieces, rest) = split_sentences(&text);
        assert_eq!(pieces.len(), 1);
        let length = pieces[0].chars().count();
        assert!((MAX_CLAUSE_CHARS..MAX_CLAUSE_CHARS + 6).contains(&length), "{length}");
        assert_eq!(format!("{} {rest}", pieces[0]).trim_end(), text.trim());
    }

    #[test]
    fn pieces_with_nothing_to_say_are_dropped() {
        check("Hello! ! ... Bye. ", &["Hello!", "Bye."], "");
        check("   \n\n  ", &[], "");
        check("", &[], "");
    }

    #[test]
    fn leading_whitespace_is_trimmed_from_pieces_and_rest() {
        check("  \n Hi there.   How", &["Hi there."], "How");
    }

    #[test]
    fn spanish_sentences_split_like_english_ones() {
        check(
            "¡Hola! ¿En qué le puedo ayudar? Tenemos citas",
            &["¡Hola!", "¿En qué le puedo ayudar?"],
            "Tenemos citas",
        );
        check(
            "La cita es a las 3:30 p.m. con la Dra. Ruiz. Gracias",
            &["La cita es a las 3:30 p.m. con la Dra. Ruiz."],
            "Gracias",
        );
    }

    #[test]
    fn feeding_text_piece_by_piece_gives_the_same_pieces_as_the_whole_text() {
        let text = "Hi! Dr. Smith is free at 2:30 p.m. on Friday, e.g. after lunch; it costs $29.99. \
            If you would rather come in on Monday morning before work, we can do 8:15 too.\n\
            Shall I book it?! Great… \"Done.\" Bye";
        let whole = complete(text);
        let chars: Vec<char> = text.chars().collect();
        for step in 1..8 {
            let mut pieces = Vec::new();
            let mut rest = String::new();
            for chunk in chars.chunks(step) {
                rest.extend(chunk);
                let (complete, more) = split_sentences(&rest);
                pieces.extend(complete);
                rest = more;
            }
            if !rest.is_empty() {
                pieces.push(rest);
            }
            assert_eq!(pieces, whole, "chunks of {step} characters");
        }
    }

    #[test]
    fn multibyte_text_never_panics() {
        for text in ["é. ", "…", "日本語です。 はい", "🙂. 🙂 ok. ", ".", ". . .", "\u{301}. a"] {
            let _ = split_sentences(text);
        }
    }

    /// A one-shot engine whose audio is the text's bytes, recording every request.
    struct EchoTts {
        requests: Mutex<Vec<String>>,
        delay: Duration,
    }

    impl EchoTts {
        fn new(delay: Duration) -> Self {
            Self { requests: Mutex::new(Vec::new()), delay }
        }
    }

    impl TextToSpeech for EchoTts {
        fn name(&self) -> &'static str {
            "echo"
        }

        fn synthesize(&self, request: TtsRequest) -> TtsAudio {
            self.requests.lock().expect("no test panics while holding the lock").push(request.text.clone());
            let (tx, rx) = mpsc::channel(4);
            let delay = self.delay;
            tokio::spawn(async move {
                for byte in request.text.into_bytes() {
                    tokio::time::sleep(delay).await;
                    if tx.send(Ok(vec![byte])).await.is_err() {
                        return;
                    }
                }
            });
            rx
        }
    }

    async fn read_all(audio: &mut TtsAudio) -> String {
        let mut bytes = Vec::new();
        while let Some(chunk) = audio.recv().await {
            bytes.extend(chunk.expect("echo audio"));
        }
        String::from_utf8(bytes).expect("echo audio is text")
    }

    #[tokio::test]
    async fn each_sentence_is_synthesized_as_soon_as_it_is_complete() {
        let engine = Arc::new(EchoTts::new(Duration::ZERO));
        let tts = SentenceTts(Arc::clone(&engine));
        let mut call = tts.open_call(Language::English);
        let mut turn = call.start_turn();
        turn.text.send(TtsInput::Text("Hello there.".into())).await.expect("turn is running");
        turn.text.send(TtsInput::Text("How can I".into())).await.expect("turn is running");

        let mut first = Vec::new();
        while first.len() < "Hello there.".len() {
            let chunk = tokio::time::timeout(Duration::from_secs(2), turn.audio.recv()).await;
            first.extend(chunk.expect("audio before the flush").expect("open").expect("ok"));
        }
        assert_eq!(first, b"Hello there.");

        turn.text.send(TtsInput::Text("help you?".into())).await.expect("turn is running");
        turn.text.send(TtsInput::Flush).await.expect("turn is running");
        assert_eq!(read_all(&mut turn.audio).await, "How can I help you?");
        let requests = engine.requests.lock().expect("no panics").clone();
        assert_eq!(requests, vec!["Hello there.", "How can I help you?"]);
    }

    #[tokio::test]
    async fn sentences_are_heard_in_order_even_when_synthesized_ahead() {
        let engine = Arc::new(EchoTts::new(Duration::from_micros(200)));
        let mut call = SentenceTts(Arc::clone(&engine)).open_call(Language::Spanish);
        let mut turn = call.start_turn();
        turn.text.send(TtsInput::Text("Uno. Dos. Tres. Cuatro.".into())).await.expect("running");
        turn.text.send(TtsInput::Flush).await.expect("running");
        assert_eq!(read_all(&mut turn.audio).await, "Uno.Dos.Tres.Cuatro.");
    }

    #[tokio::test]
    async fn a_dropped_text_sender_ends_the_turn_like_a_flush() {
        let engine = Arc::new(EchoTts::new(Duration::ZERO));
        let mut call = SentenceTts(engine).open_call(Language::English);
        let TtsTurn { text, mut audio } = call.start_turn();
        text.send(TtsInput::Text("No flush here".into())).await.expect("running");
        drop(text);
        assert_eq!(read_all(&mut audio).await, "No flush here");
    }

    #[tokio::test]
    async fn dropping_the_turn_stops_synthesis() {
        let engine = Arc::new(EchoTts::new(Duration::from_millis(5)));
        let mut call = SentenceTts(Arc::clone(&engine)).open_call(Language::English);
        let turn = call.start_turn();
        turn.text.send(TtsInput::Text("One. Two. Three. Four. Five.".into())).await.expect("running");
        let TtsTurn { text, mut audio } = turn;
        let first = audio.recv().await;
        assert!(matches!(first, Some(Ok(_))), "{first:?}");
        drop(audio);
        tokio::time::sleep(Duration::from_millis(100)).await;
        // At most the sentence being heard and one ahead were ever started.
        let started = engine.requests.lock().expect("no panics").len();
        assert!(started <= 1 + LOOKAHEAD, "{started} sentences started");
        // The turn is gone: its text channel no longer takes input.
        assert!(text.send(TtsInput::Flush).await.is_err());
    }

    #[tokio::test]
    async fn an_engine_error_is_passed_on_and_ends_the_turn() {
        struct Broken;
        impl TextToSpeech for Broken {
            fn name(&self) -> &'static str {
                "broken"
            }
            fn synthesize(&self, _: TtsRequest) -> TtsAudio {
                let (tx, rx) = mpsc::channel(1);
                let _ = tx.try_send(Err(ProviderError::retryable("broken", "no voice")));
                rx
            }
        }
        let mut call = SentenceTts::new(Broken).open_call(Language::English);
        let mut turn = call.start_turn();
        turn.text.send(TtsInput::Text("Hello.".into())).await.expect("running");
        turn.text.send(TtsInput::Flush).await.expect("running");
        assert!(matches!(turn.audio.recv().await, Some(Err(ProviderError { retryable: true, .. }))));
        assert!(turn.audio.recv().await.is_none());
    }

    #[tokio::test]
    async fn a_turn_with_nothing_to_say_closes_at_once() {
        let engine = Arc::new(EchoTts::new(Duration::ZERO));
        let mut call = SentenceTts(Arc::clone(&engine)).open_call(Language::English);
        let mut turn = call.start_turn();
        turn.text.send(TtsInput::Text("  ".into())).await.expect("running");
        turn.text.send(TtsInput::Flush).await.expect("running");
        assert!(turn.audio.recv().await.is_none());
        assert!(engine.requests.lock().expect("no panics").is_empty());
    }

    #[test]
    fn start_turn_outside_a_runtime_reports_instead_of_panicking() {
        let mut call = SentenceTts::new(EchoTts::new(Duration::ZERO)).open_call(Language::English);
        let mut turn = call.start_turn();
        assert!(matches!(turn.audio.try_recv(), Ok(Err(ProviderError { retryable: false, .. }))));
    }
}
