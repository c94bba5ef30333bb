//! Counting a corpus into an absolute-discounting backoff trigram model and writing it in
//! ARPA format, the text form PocketSphinx reads. It knows counts, not where sentences
//! come from.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

const BOS: u32 = 0;
const EOS: u32 = 1;

/// Absolute-discounting backoff trigram model (Ney, Essen & Kneser 1994, backoff form).
pub(super) struct Model {
    pub(super) words: Vec<String>,
    unigram: Vec<f64>,
    unigram_backoff: Vec<f64>,
    bigram: BTreeMap<(u32, u32), f64>,
    bigram_backoff: HashMap<(u32, u32), f64>,
    trigram: BTreeMap<(u32, u32, u32), f64>,
}

/// Ney's estimate of the best absolute discount from the count-of-counts, kept sane for a
/// synthetic corpus whose counts are not Zipfian.
fn discount<'a>(counts: impl Iterator<Item = &'a u32>) -> f64 {
    let (mut n1, mut n2) = (0f64, 0f64);
    for &c in counts {
        match c {
            1 => n1 += 1.0,
            2 => n2 += 1.0,
            _ => {}
        }
    }
    if n1 + n2 == 0.0 { 0.5 } else { (n1 / (n1 + 2.0 * n2)).clamp(0.1, 0.9) }
}

impl Model {
    pub(super) fn estimate(sentences: &[Vec<String>]) -> Self {
        let mut ids: HashMap<String, u32> = HashMap::new();
        let mut words = vec!["<s>".to_owned(), "</s>".to_owned()];
        let mut unigram_counts: Vec<u64> = vec![0, 0];
        let mut bigram_counts: HashMap<(u32, u32), u32> = HashMap::new();
        let mut trigram_counts: HashMap<(u32, u32, u32), u32> = HashMap::new();

        for sentence in sentences {
            let mut seq = Vec::with_capacity(sentence.len() + 2);
            seq.push(BOS);
            for w in sentence {
                let id = *ids.entry(w.clone()).or_insert_with(|| {
                    words.push(w.clone());
                    unigram_counts.push(0);
                    (words.len() - 1) as u32
                });
                seq.push(id);
            }
            seq.push(EOS);
            for &w in &seq[1..] {
                unigram_counts[w as usize] += 1;
            }
            for pair in seq.windows(2) {
                *bigram_counts.entry((pair[0], pair[1])).or_default() += 1;
            }
            for triple in seq.windows(3) {
                *trigram_counts.entry((triple[0], triple[1], triple[2])).or_default() += 1;
            }
        }

        // Unigrams: relative frequency with a 1% uniform floor (<s> is never predicted).
        let vocab = words.len();
        let total: u64 = unigram_counts.iter().sum();
        let predicted = (vocab - 1) as f64;
        let mut unigram = vec![0.0; vocab];
        for w in 1..vocab {
            unigram[w] = 0.99 * unigram_counts[w] as f64 / total as f64 + 0.01 / predicted;
        }

        // Bigrams, backing off to unigrams.
        let d2 = discount(bigram_counts.values());
        let mut context_total: HashMap<u32, (u64, u64)> = HashMap::new(); // count, distinct
        for (&(h, _), &c) in &bigram_counts {
            let e = context_total.entry(h).or_default();
            e.0 += c as u64;
            e.1 += 1;
        }
        let mut bigram = BTreeMap::new();
        let mut seen_lower_mass: HashMap<u32, f64> = HashMap::new();
        for (&(h, w), &c) in &bigram_counts {
            let (total, _) = context_total[&h];
            bigram.insert((h, w), (c as f64 - d2) / total as f64);
            *seen_lower_mass.entry(h).or_default() += unigram[w as usize];
        }
        let mut unigram_backoff = vec![1.0; vocab];
        for (&h, &(total, distinct)) in &context_total {
            let left_over = d2 * distinct as f64 / total as f64;
            let room = 1.0 - seen_lower_mass.get(&h).copied().unwrap_or(0.0);
            unigram_backoff[h as usize] = if room > 1e-12 { left_over / room } else { 1.0 };
        }

        // Trigrams, backing off to the bigrams above.
        let d3 = discount(trigram_counts.values());
        let mut pair_total: HashMap<(u32, u32), (u64, u64)> = HashMap::new();
        for (&(u, v, _), &c) in &trigram_counts {
            let e = pair_total.entry((u, v)).or_default();
            e.0 += c as u64;
            e.1 += 1;
        }
        let mut trigram = BTreeMap::new();
        let mut seen_bigram_mass: HashMap<(u32, u32), f64> = HashMap::new();
        for (&(u, v, w), &c) in &trigram_counts {
            let (total, _) = pair_total[&(u, v)];
            trigram.insert((u, v, w), (c as f64 - d3) / total as f64);
            // (v, w) was seen whenever (u, v, w) was, so its probability is explicit.
            *seen_bigram_mass.entry((u, v)).or_default() += bigram.get(&(v, w)).copied().unwrap_or(0.0);
        }
        let mut bigram_backoff = HashMap::new();
        for (&(u, v), &(total, distinct)) in &pair_total {
            let left_over = d3 * distinct as f64 / total as f64;
            let room = 1.0 - seen_bigram_mass.get(&(u, v)).copied().unwrap_or(0.0);
            bigram_backoff.insert((u, v), if room > 1e-12 { left_over / room } else { 1.0 });
        }

        Self { words, unigram, unigram_backoff, bigram, bigram_backoff, trigram }
    }

    pub(super) fn to_arpa(&self) -> String {
        let log = |p: f64| if p > 0.0 { p.log10() } else { -99.0 };
        let mut out = String::with_capacity(64 * (self.words.len() + self.bigram.len() + self.trigram.len()));
        out.push_str("\\data\\\n");
        let _ = writeln!(out, "ngram 1={}", self.words.len());
        let _ = writeln!(out, "ngram 2={}", self.bigram.len());
        let _ = writeln!(out, "ngram 3={}", self.trigram.len());

        out.push_str("\n\\1-grams:\n");
        let mut order: Vec<u32> = (0..self.words.len() as u32).collect();
        order.sort_by(|a, b| self.words[*a as usize].cmp(&self.words[*b as usize]));
        for &w in &order {
            let p = if w == BOS { -99.0 } else { log(self.unigram[w as usize]) };
            if w == EOS {
                let _ = writeln!(out, "{p:.6}\t</s>");
            } else {
                let _ =
                    writeln!(out, "{p:.6}\t{}\t{:.6}", self.words[w as usize], log(self.unigram_backoff[w as usize]));
            }
        }

        out.push_str("\n\\2-grams:\n");
        for (&(h, w), &p) in &self.bigram {
            let (hw, ww) = (&self.words[h as usize], &self.words[w as usize]);
            match self.bigram_backoff.get(&(h, w)) {
                Some(&bo) => {
                    let _ = writeln!(out, "{:.6}\t{hw} {ww}\t{:.6}", log(p), log(bo));
                }
                None => {
                    let _ = writeln!(out, "{:.6}\t{hw} {ww}", log(p));
                }
            }
        }

        out.push_str("\n\\3-grams:\n");
        for (&(u, v, w), &p) in &self.trigram {
            let _ = writeln!(
                out,
                "{:.6}\t{} {} {}",
                log(p),
                self.words[u as usize],
                self.words[v as usize],
                self.words[w as usize]
            );
        }
        out.push_str("\n\\end\\\n");
        out
    }
}
