//! The local recogniser's booking trigram model: what callers say to a receptionist,
//! sampled from `grammar.txt`, counted into an ARPA trigram model plus the matching slice
//! of the CMU dictionary. It writes files; it never decodes.

mod arpa;
mod grammar;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{Context, bail};

use super::model_cache::{cache_dir, content_key, write_atomically};
use arpa::Model;
use grammar::{Grammar, SEED, SOURCE, corpus};

/// Debian's (pocketsphinx-en-us) CMU pronouncing dictionary.
pub const CMU_DICT: &str = "/usr/share/pocketsphinx/model/en-us/cmudict-en-us.dict";
/// Bumped whenever the generator changes in a way the cache key does not see.
const GENERATOR_VERSION: u32 = 5;
/// Pronunciations of names the CMU dictionary lacks (CMU phones, one `word PHONES` a line),
/// generated once with flite's letter-to-sound rules (`t2p`) and reviewed as data. Entries
/// of the CMU dictionary win over these.
const NAMES_DICT: &str = include_str!("names.dict");

/// A generated model and the dictionary restricted to its words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BookingLm {
    pub arpa: PathBuf,
    pub dict: PathBuf,
}

/// Writes the booking-domain trigram model, in ARPA format, to `path`; the vocabulary is
/// restricted to words of the CMU dictionary at [`CMU_DICT`].
pub fn write_booking_lm(path: &Path) -> anyhow::Result<()> {
    let dictionary = Dictionary::load(Path::new(CMU_DICT))?;
    let model = build(&dictionary)?;
    write_atomically(path, &model.arpa)
}

/// The booking model and its dictionary, generated on first use into the user's cache
/// directory (`$XDG_CACHE_HOME/ringlypro`, `~/.cache/ringlypro` or the temp directory) and
/// reused while the templates are unchanged.
pub fn cached_booking_lm(cmu_dict: &Path) -> anyhow::Result<BookingLm> {
    // One generation at a time in this process; other processes are kept safe by renames.
    static GENERATING: Mutex<()> = Mutex::new(());
    let _guard = GENERATING.lock().unwrap_or_else(|poisoned| poisoned.into_inner());

    let key = cache_key(cmu_dict);
    let dir = cache_dir();
    let lm = BookingLm { arpa: dir.join(format!("booking-{key}.arpa")), dict: dir.join(format!("booking-{key}.dict")) };
    if lm.arpa.is_file() && lm.dict.is_file() {
        return Ok(lm);
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let dictionary = Dictionary::load(cmu_dict)?;
    let model = build(&dictionary)?;
    write_atomically(&lm.dict, &model.dict)?;
    write_atomically(&lm.arpa, &model.arpa)?;
    tracing::info!(arpa = %lm.arpa.display(), words = model.vocabulary, "wrote booking language model");
    Ok(lm)
}

/// Changes whenever the grammar, the generator or the dictionary file change.
fn cache_key(cmu_dict: &Path) -> String {
    let size = std::fs::metadata(cmu_dict).map(|meta| meta.len().to_le_bytes());
    let version = GENERATOR_VERSION.to_le_bytes();
    let seed = SEED.to_le_bytes();
    let mut parts: Vec<&[u8]> =
        vec![&version, &seed, SOURCE.as_bytes(), NAMES_DICT.as_bytes(), cmu_dict.as_os_str().as_encoded_bytes()];
    if let Ok(size) = &size {
        parts.push(size);
    }
    content_key(parts)
}

/// The CMU dictionary plus [`NAMES_DICT`]: head word → its pronunciation lines (variants
/// included).
pub(super) struct Dictionary {
    entries: HashMap<String, Vec<String>>,
}

impl Dictionary {
    fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading dictionary {}", path.display()))?;
        let mut dictionary = Self::parse(&text);
        for (word, lines) in Self::parse(NAMES_DICT).entries {
            dictionary.entries.entry(word).or_insert(lines);
        }
        Ok(dictionary)
    }

    fn parse(text: &str) -> Self {
        let mut entries: HashMap<String, Vec<String>> = HashMap::new();
        for line in text.lines() {
            let line = line.trim();
            let Some((head, phones)) = line.split_once(char::is_whitespace) else {
                continue;
            };
            if phones.trim().is_empty() {
                continue;
            }
            // Alternative pronunciations are written "word(2)".
            let word = head.split_once('(').map_or(head, |(w, _)| w);
            entries.entry(word.to_owned()).or_default().push(line.to_owned());
        }
        Self { entries }
    }

    pub(super) fn contains(&self, word: &str) -> bool {
        self.entries.contains_key(word)
    }
}

/// What [`build`] produces: file contents, ready to write.
struct Built {
    arpa: String,
    dict: String,
    vocabulary: usize,
}

fn build(dictionary: &Dictionary) -> anyhow::Result<Built> {
    let grammar = Grammar::new(dictionary)?;
    let mut sentences = corpus(&grammar);
    let before = sentences.len();
    sentences.retain(|s| s.iter().all(|w| dictionary.contains(w)));
    if sentences.len() < before {
        tracing::warn!(
            dropped = before - sentences.len(),
            "booking corpus sentences with words missing from the dictionary"
        );
    }
    if sentences.is_empty() {
        bail!("the booking corpus is empty (is {} the CMU dictionary?)", CMU_DICT);
    }
    let model = Model::estimate(&sentences);
    let mut dict = String::new();
    let mut vocabulary: Vec<&String> = model.words.iter().skip(2).collect();
    vocabulary.sort();
    for word in &vocabulary {
        if let Some(lines) = dictionary.entries.get(word.as_str()) {
            for line in lines {
                dict.push_str(line);
                dict.push('\n');
            }
        }
    }
    Ok(Built { arpa: model.to_arpa(), dict, vocabulary: vocabulary.len() })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An ARPA file read back: n-gram → (log10 prob, log10 backoff).
    struct Arpa {
        counts: Vec<usize>,
        grams: Vec<HashMap<Vec<String>, (f64, f64)>>,
    }

    impl Arpa {
        fn parse(text: &str) -> Self {
            let mut counts = Vec::new();
            let mut grams: Vec<HashMap<Vec<String>, (f64, f64)>> = Vec::new();
            let mut order = 0usize;
            for line in text.lines() {
                let line = line.trim();
                if let Some(rest) = line.strip_prefix("ngram ") {
                    let (_, n) = rest.split_once('=').unwrap();
                    counts.push(n.parse().unwrap());
                } else if line.starts_with('\\') && line.ends_with("-grams:") {
                    order = line[1..2].parse().unwrap();
                    grams.push(HashMap::new());
                } else if line.is_empty() || line.starts_with('\\') {
                } else if order > 0 {
                    let fields: Vec<&str> = line.split_whitespace().collect();
                    let prob: f64 = fields[0].parse().unwrap();
                    let words: Vec<String> = fields[1..=order].iter().map(|s| s.to_string()).collect();
                    let backoff = fields.get(order + 1).map_or(0.0, |b| b.parse().unwrap());
                    grams[order - 1].insert(words, (prob, backoff));
                }
            }
            Self { counts, grams }
        }

        /// log10 P(word | context) by the ARPA backoff rule.
        fn log_prob(&self, context: &[&str], word: &str) -> f64 {
            let mut key: Vec<String> = context.iter().map(|s| s.to_string()).collect();
            key.push(word.to_owned());
            if let Some((p, _)) = self.grams[key.len() - 1].get(&key) {
                return *p;
            }
            let backoff = self.grams[context.len() - 1]
                .get(&context.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .map_or(0.0, |(_, bo)| *bo);
            backoff + self.log_prob(&context[1..], word)
        }

        fn vocabulary(&self) -> Vec<String> {
            self.grams[0].keys().map(|k| k[0].clone()).filter(|w| w != "<s>").collect()
        }
    }

    pub(super) fn dictionary() -> Option<Dictionary> {
        match Dictionary::load(Path::new(CMU_DICT)) {
            Ok(d) => Some(d),
            Err(_) => {
                eprintln!("skipped: {CMU_DICT} is missing (install pocketsphinx-en-us)");
                None
            }
        }
    }

    fn built() -> Option<(Built, Dictionary)> {
        let dictionary = dictionary()?;
        Some((build(&dictionary).unwrap(), dictionary))
    }

    #[test]
    fn the_header_counts_match_the_sections() {
        let Some((built, _)) = built() else { return };
        let arpa = Arpa::parse(&built.arpa);
        assert_eq!(arpa.counts.len(), 3);
        for order in 0..3 {
            assert_eq!(arpa.counts[order], arpa.grams[order].len(), "order {}", order + 1);
        }
        assert!(built.arpa.trim_end().ends_with("\\end\\"));
    }

    #[test]
    fn each_order_sums_to_one_in_sampled_contexts() {
        let Some((built, _)) = built() else { return };
        let arpa = Arpa::parse(&built.arpa);
        let vocab = arpa.vocabulary();
        let total = |context: &[&str]| -> f64 { vocab.iter().map(|w| 10f64.powf(arpa.log_prob(context, w))).sum() };
        let unigram: f64 = vocab.iter().map(|w| 10f64.powf(arpa.grams[0][&vec![w.clone()]].0)).sum();
        assert!((unigram - 1.0).abs() < 1e-3, "unigrams sum to {unigram}");
        for context in [["<s>"], ["book"], ["two"], ["is"], ["tuesday"]] {
            let sum = total(&context);
            assert!((sum - 1.0).abs() < 1e-3, "P(. | {context:?}) sums to {sum}");
        }
        for context in [["<s>", "i'd"], ["to", "book"], ["my", "name"], ["five", "five"], ["next", "tuesday"]] {
            let sum = total(&context);
            assert!((sum - 1.0).abs() < 1e-3, "P(. | {context:?}) sums to {sum}");
        }
    }

    #[test]
    fn every_word_is_in_the_dictionary_and_lower_case() {
        let Some((built, dictionary)) = built() else {
            return;
        };
        let arpa = Arpa::parse(&built.arpa);
        for word in arpa.vocabulary() {
            if word == "</s>" {
                continue;
            }
            assert!(dictionary.contains(&word), "{word} has no pronunciation");
            assert_eq!(word, word.to_lowercase());
            assert!(
                built.dict.lines().any(|l| l.split_whitespace().next() == Some(word.as_str())),
                "{word} missing from the written dict"
            );
        }
    }

    #[test]
    fn the_domain_phrases_are_likelier_than_word_salad() {
        let Some((built, _)) = built() else { return };
        let arpa = Arpa::parse(&built.arpa);
        let score = |sentence: &str| -> f64 {
            let mut words = vec!["<s>"];
            words.extend(sentence.split_whitespace());
            words.push("</s>");
            (2..=words.len()).map(|i| arpa.log_prob(&words[i.saturating_sub(3)..i - 1], words[i - 1])).sum()
        };
        let good = score("i would like to book an appointment for next tuesday");
        let salad = score("tuesday book next would an for appointment i to like");
        assert!(good > salad + 10.0, "good {good}, salad {salad}");
    }

    #[test]
    fn the_same_templates_always_give_the_same_model() {
        let Some(dictionary) = dictionary() else {
            return;
        };
        let a = build(&dictionary).unwrap();
        let b = build(&dictionary).unwrap();
        assert!(a.arpa == b.arpa && a.dict == b.dict);
    }

    #[test]
    fn every_listed_name_the_dictionary_can_say_is_in_the_model() {
        let Some((built, dictionary)) = built() else { return };
        let vocabulary: std::collections::HashSet<String> = Arpa::parse(&built.arpa).vocabulary().into_iter().collect();
        let lists = grammar::name_lists();
        let mut absent = Vec::new();
        for word in lists.iter().flat_map(|(_, words)| words) {
            if dictionary.contains(word) && !vocabulary.contains(*word) {
                absent.push(*word);
            }
        }
        assert!(absent.is_empty(), "listed but never sampled: {absent:?}");
        let listed: usize = lists.iter().map(|(_, words)| words.len()).sum();
        assert!(listed > 2000, "{listed} names listed");
    }

    #[test]
    fn names_the_cmu_dictionary_lacks_are_pronounced_by_the_names_dictionary() {
        let Some((built, dictionary)) = built() else { return };
        let cmu = Dictionary::parse(&std::fs::read_to_string(CMU_DICT).unwrap());
        for name in ["chinedu", "okafor", "oluwaseun", "yusuf", "priya", "kwame"] {
            assert!(!cmu.contains(name), "{name} is in the CMU dictionary after all");
            assert!(dictionary.contains(name), "{name} has no pronunciation");
            assert!(
                built.dict.lines().any(|l| l.starts_with(&format!("{name} "))),
                "{name} missing from the written dict"
            );
        }
        // Where both have a word, the CMU dictionary's pronunciations are kept.
        assert_eq!(dictionary.entries["smith"], cmu.entries["smith"]);
        // Every names.dict line uses the acoustic model's phones.
        let phones =
            "AA AE AH AO AW AY B CH D DH EH ER EY F G HH IH IY JH K L M N NG OW OY P R S SH T TH UH UW V W Y Z ZH";
        let phones: Vec<&str> = phones.split(' ').collect();
        for line in NAMES_DICT.lines() {
            let mut fields = line.split_whitespace();
            let word = fields.next().unwrap();
            assert!(word.chars().all(|c| c.is_ascii_lowercase()), "{line}");
            let said: Vec<&str> = fields.collect();
            assert!(!said.is_empty() && said.iter().all(|p| phones.contains(p)), "{line}");
        }
    }

    #[test]
    fn spelled_names_are_likelier_than_the_same_letters_shuffled() {
        let Some((built, _)) = built() else { return };
        let arpa = Arpa::parse(&built.arpa);
        let vocabulary = arpa.vocabulary();
        for letter in 'a'..='z' {
            assert!(vocabulary.contains(&letter.to_string()), "the letter {letter} cannot be heard");
        }
        let score = |sentence: &str| -> f64 {
            let mut words = vec!["<s>"];
            words.extend(sentence.split_whitespace());
            words.push("</s>");
            (2..=words.len()).map(|i| arpa.log_prob(&words[i.saturating_sub(3)..i - 1], words[i - 1])).sum()
        };
        let spelled = score("m a r i a");
        let shuffled = score("r m a a i");
        assert!(spelled > shuffled + 2.0, "spelled {spelled}, shuffled {shuffled}");
        assert!(score("it's spelled l o p e z") > score("it's spelled z e p o l") + 2.0);
    }

    #[test]
    fn write_booking_lm_and_the_cache_produce_readable_files() {
        if dictionary().is_none() {
            return;
        }
        let dir = std::env::temp_dir().join(format!("ringlypro-lm-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("booking.arpa");
        write_booking_lm(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("\\data\\"));

        let cached = cached_booking_lm(Path::new(CMU_DICT)).unwrap();
        assert!(cached.arpa.is_file() && cached.dict.is_file());
        assert_eq!(cached_booking_lm(Path::new(CMU_DICT)).unwrap(), cached);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
