//! The booking grammar of what callers say (`grammar.txt`, plain text beside this file)
//! and the corpus sampled from it with a fixed seed. It knows templates and words; counting
//! them into a model is `arpa`'s job.

use std::collections::HashMap;

use anyhow::{Context, bail};
use rand::{RngCore, SeedableRng};
use rand_xoshiro::SplitMix64;

use super::Dictionary;

/// The templates, as data: edited without touching the code, hashed into the cache key.
pub(super) const SOURCE: &str = include_str!("grammar.txt");

/// Fixed seed: the same templates always give the same corpus. SplitMix64 is a fixed
/// algorithm (unlike `StdRng`, whose stream may change between `rand` releases), and picks
/// are taken as the plain remainder of its output, so the corpus never changes unless the
/// templates do.
pub(super) const SEED: u64 = 0x5EED_B00C_1A6E_0001;

/// The sections of `grammar.txt`, in file order (the order the corpus is sampled in).
#[derive(Debug, Default)]
struct Source<'a> {
    /// Top-level templates and how many samples each contributes to the corpus.
    utterances: Vec<(u32, &'a str)>,
    /// Named sub-grammars, each a list of alternatives.
    rules: Vec<(&'a str, Vec<&'a str>)>,
    /// Named word lists, filtered by the dictionary.
    names: Vec<(&'a str, Vec<&'a str>)>,
}

impl<'a> Source<'a> {
    /// Reads the sections; a line outside any section or an unknown header is an error
    /// naming its line, so a slip in the data file cannot pass unnoticed.
    fn read(text: &'a str) -> anyhow::Result<Self> {
        enum Section {
            None,
            Utterances,
            Rule,
            Names,
        }
        let mut source = Source::default();
        let mut section = Section::None;
        for (number, line) in text.lines().enumerate().map(|(i, l)| (i + 1, l.trim())) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if let Some(header) = line.strip_prefix("= ") {
                section = match header.split_whitespace().collect::<Vec<_>>().as_slice() {
                    ["utterances"] => Section::Utterances,
                    ["rule", name] => {
                        source.rules.push((name, Vec::new()));
                        Section::Rule
                    }
                    ["names", name] => {
                        source.names.push((name, Vec::new()));
                        Section::Names
                    }
                    _ => bail!("line {number}: unknown section {header:?}"),
                };
                continue;
            }
            match section {
                Section::None => bail!("line {number}: {line:?} comes before any section"),
                Section::Utterances => {
                    let (count, template) =
                        line.split_once(' ').with_context(|| format!("line {number}: no template after the count"))?;
                    let count = count.parse().with_context(|| format!("line {number}: bad count {count:?}"))?;
                    source.utterances.push((count, template.trim()));
                }
                Section::Rule => {
                    if let Some((_, alternatives)) = source.rules.last_mut() {
                        alternatives.push(line);
                    }
                }
                Section::Names => {
                    if let Some((_, words)) = source.names.last_mut() {
                        words.extend(line.split_whitespace());
                    }
                }
            }
        }
        Ok(source)
    }
}

#[derive(Debug, Clone)]
pub(super) enum Node {
    Word(String),
    Rule(String),
    Seq(Vec<Node>),
    Choice(Vec<Node>),
    Optional(Box<Node>),
    /// `<spell:NAME>`: one word of the name list NAME, said letter by letter.
    Spell(String),
}

/// Parses one template into a node tree.
pub(super) fn parse_template(template: &str) -> anyhow::Result<Node> {
    let tokens = tokenize(template);
    let mut pos = 0;
    let node = parse_choice(&tokens, &mut pos).with_context(|| format!("in template {template:?}"))?;
    if pos != tokens.len() {
        bail!("unexpected {:?} in template {template:?}", tokens[pos]);
    }
    Ok(node)
}

fn tokenize(template: &str) -> Vec<String> {
    let mut tokens = Vec::new();
    let mut word = String::new();
    for c in template.chars() {
        match c {
            '(' | ')' | '[' | ']' | '|' => {
                if !word.is_empty() {
                    tokens.push(std::mem::take(&mut word));
                }
                tokens.push(c.to_string());
            }
            c if c.is_whitespace() => {
                if !word.is_empty() {
                    tokens.push(std::mem::take(&mut word));
                }
            }
            c => word.push(c),
        }
    }
    if !word.is_empty() {
        tokens.push(word);
    }
    tokens
}

fn parse_choice(tokens: &[String], pos: &mut usize) -> anyhow::Result<Node> {
    let mut alternatives = vec![parse_seq(tokens, pos)?];
    while tokens.get(*pos).is_some_and(|t| t == "|") {
        *pos += 1;
        alternatives.push(parse_seq(tokens, pos)?);
    }
    Ok(if alternatives.len() == 1 { alternatives.swap_remove(0) } else { Node::Choice(alternatives) })
}

fn parse_seq(tokens: &[String], pos: &mut usize) -> anyhow::Result<Node> {
    let mut items = Vec::new();
    while let Some(token) = tokens.get(*pos) {
        match token.as_str() {
            "|" | ")" | "]" => break,
            open @ ("(" | "[") => {
                *pos += 1;
                let inner = parse_choice(tokens, pos)?;
                let close = if open == "(" { ")" } else { "]" };
                if tokens.get(*pos).map(String::as_str) != Some(close) {
                    bail!("missing {close}");
                }
                *pos += 1;
                items.push(if open == "(" { inner } else { Node::Optional(Box::new(inner)) });
            }
            t if t.starts_with('<') && t.ends_with('>') && t.len() > 2 => {
                let inner = &t[1..t.len() - 1];
                items.push(match inner.strip_prefix("spell:") {
                    Some(list) => Node::Spell(list.to_owned()),
                    None => Node::Rule(inner.to_owned()),
                });
                *pos += 1;
            }
            t => {
                items.push(Node::Word(t.to_lowercase()));
                *pos += 1;
            }
        }
    }
    Ok(Node::Seq(items))
}

/// The whole grammar, parsed, with name lists restricted to the dictionary.
pub(super) struct Grammar {
    rules: HashMap<String, Node>,
    /// Name lists, most frequent first. Each list is taken in turn until every name has
    /// been sampled once (random picks among thousands would leave some out of the corpus,
    /// and so out of the model); after that, picks favour the head of the list, so that a
    /// common name beats a rare one that sounds the same ("brown" over "braun").
    names: HashMap<String, NameList>,
    utterances: Vec<(u32, Node)>,
}

/// Where each name list's turn has got to while a corpus is sampled.
type Turns = HashMap<String, usize>;

/// Picks after the first round weigh the name at rank r (from 0) as 1 / (r + ZIPF_OFFSET):
/// the first name is about 20 times as likely as the two-thousandth.
/// The cache key does not see this: bump `GENERATOR_VERSION` when changing it.
const ZIPF_OFFSET: f64 = 100.0;

pub(super) struct NameList {
    words: Vec<String>,
    /// Cumulative pick weights, for the frequency-weighted picks.
    cumulative: Vec<f64>,
}

impl NameList {
    fn new(words: Vec<String>) -> Self {
        let mut total = 0.0;
        let cumulative = (0..words.len())
            .map(|rank| {
                total += 1.0 / (rank as f64 + ZIPF_OFFSET);
                total
            })
            .collect();
        Self { words, cumulative }
    }

    /// The name for draw number `turn` of this list.
    fn pick(&self, turn: usize, rng: &mut SplitMix64) -> &str {
        if turn < self.words.len() {
            return &self.words[turn];
        }
        let total = self.cumulative.last().copied().unwrap_or(0.0);
        // 53 random bits as a fraction in [0, 1).
        let point = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * total;
        let rank = self.cumulative.partition_point(|&c| c <= point).min(self.words.len() - 1);
        &self.words[rank]
    }
}

impl Grammar {
    pub(super) fn new(dictionary: &Dictionary) -> anyhow::Result<Self> {
        let source = Source::read(SOURCE)?;
        let mut rules = HashMap::new();
        for (name, alternatives) in &source.rules {
            let parsed = alternatives.iter().map(|a| parse_template(a)).collect::<anyhow::Result<Vec<_>>>()?;
            rules.insert((*name).to_owned(), Node::Choice(parsed));
        }
        let mut names = HashMap::new();
        for (name, list) in &source.names {
            // A name the dictionary cannot pronounce cannot be recognised either.
            let words: Vec<String> = list.iter().filter(|w| dictionary.contains(w)).map(|w| (*w).to_owned()).collect();
            if words.is_empty() {
                bail!("no {name} names are in the dictionary");
            }
            if rules.contains_key(*name) {
                bail!("{name} is both a rule and a name list");
            }
            names.insert((*name).to_owned(), NameList::new(words));
        }
        let utterances = source
            .utterances
            .iter()
            .map(|(count, t)| Ok((*count, parse_template(t)?)))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let grammar = Self { rules, names, utterances };
        grammar.check_references()?;
        Ok(grammar)
    }

    fn check_references(&self) -> anyhow::Result<()> {
        fn walk(grammar: &Grammar, node: &Node, depth: usize) -> anyhow::Result<()> {
            if depth > 32 {
                bail!("rules nest too deeply (a cycle?)");
            }
            match node {
                Node::Word(_) => Ok(()),
                Node::Rule(name) if grammar.names.contains_key(name) => Ok(()),
                Node::Rule(name) => {
                    let rule = grammar.rules.get(name).with_context(|| format!("unknown rule <{name}>"))?;
                    walk(grammar, rule, depth + 1)
                }
                Node::Spell(name) => match grammar.names.contains_key(name) {
                    true => Ok(()),
                    false => bail!("<spell:{name}> names no name list"),
                },
                Node::Seq(items) | Node::Choice(items) => items.iter().try_for_each(|n| walk(grammar, n, depth)),
                Node::Optional(inner) => walk(grammar, inner, depth),
            }
        }
        self.utterances.iter().try_for_each(|(_, n)| walk(self, n, 0))
    }

    /// Appends one random expansion of `node` to `out`; names come from `turns`.
    fn sample(&self, node: &Node, rng: &mut SplitMix64, turns: &mut Turns, out: &mut Vec<String>) {
        match node {
            Node::Word(w) => out.push(w.clone()),
            Node::Rule(name) => {
                // References were checked in `new`.
                if let Some(list) = self.names.get(name) {
                    let turn = turns.entry(name.clone()).or_default();
                    out.push(list.pick(*turn, rng).to_owned());
                    *turn += 1;
                } else if let Some(rule) = self.rules.get(name) {
                    self.sample(rule, rng, turns, out);
                }
            }
            Node::Spell(name) => {
                if let Some(list) = self.names.get(name) {
                    let word = list.pick(usize::MAX, rng);
                    out.extend(word.chars().map(String::from));
                }
            }
            Node::Seq(items) => items.iter().for_each(|n| self.sample(n, rng, turns, out)),
            Node::Choice(items) => {
                if !items.is_empty() {
                    let pick = below(rng, items.len());
                    self.sample(&items[pick], rng, turns, out);
                }
            }
            Node::Optional(inner) => {
                if below(rng, 2) == 0 {
                    self.sample(inner, rng, turns, out);
                }
            }
        }
    }

    /// Every word any template can produce (names excluded: they are filtered already;
    /// spelled names as their letters).
    #[cfg(test)]
    pub(super) fn template_words(&self) -> std::collections::HashSet<String> {
        fn walk(node: &Node, out: &mut std::collections::HashSet<String>) {
            match node {
                Node::Word(w) => {
                    out.insert(w.clone());
                }
                Node::Spell(_) => out.extend(('a'..='z').map(String::from)),
                Node::Rule(_) => {}
                Node::Seq(items) | Node::Choice(items) => items.iter().for_each(|n| walk(n, out)),
                Node::Optional(inner) => walk(inner, out),
            }
        }
        let mut words = std::collections::HashSet::new();
        for rule in self.rules.values() {
            walk(rule, &mut words);
        }
        for (_, node) in &self.utterances {
            walk(node, &mut words);
        }
        words
    }
}

/// The name lists of `grammar.txt` as written, before the dictionary filters them.
#[cfg(test)]
pub(super) fn name_lists() -> Vec<(&'static str, Vec<&'static str>)> {
    Source::read(SOURCE).map(|source| source.names).unwrap_or_default()
}

/// A pick below `n` (at least one choice), as the remainder of the generator's next output.
fn below(rng: &mut SplitMix64, n: usize) -> usize {
    (rng.next_u64() % n.max(1) as u64) as usize
}

/// The generated corpus: one sentence per entry, lower-case words.
pub(super) fn corpus(grammar: &Grammar) -> Vec<Vec<String>> {
    let mut rng = SplitMix64::seed_from_u64(SEED);
    let mut turns = Turns::new();
    let mut sentences = Vec::new();
    for (count, node) in &grammar.utterances {
        for _ in 0..*count {
            let mut words = Vec::new();
            grammar.sample(node, &mut rng, &mut turns, &mut words);
            if !words.is_empty() {
                sentences.push(words);
            }
        }
    }
    sentences
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::stt::booking_trigrams::tests::dictionary;

    #[test]
    fn no_template_word_is_silently_dropped_for_lack_of_a_pronunciation() {
        let Some(dictionary) = dictionary() else {
            return;
        };
        let grammar = Grammar::new(&dictionary).unwrap();
        let mut missing: Vec<String> =
            grammar.template_words().into_iter().filter(|w| !dictionary.contains(w)).collect();
        missing.sort();
        assert!(missing.is_empty(), "not in the CMU dictionary: {missing:?}");
        // Names are filtered rather than rejected; most must survive.
        let source = Source::read(SOURCE).unwrap();
        let surviving = |list: &str| {
            let (_, words) = source.names.iter().find(|(name, _)| *name == list).unwrap();
            words.iter().filter(|w| dictionary.contains(w)).count()
        };
        let (first, last) = (surviving("first"), surviving("last"));
        assert!(first > 200 && last > 200, "{first} first names, {last} surnames");
    }

    #[test]
    fn every_name_is_taken_once_before_the_common_ones_are_favoured() {
        let words: Vec<String> = (0..1000).map(|i| format!("name{i}")).collect();
        let list = NameList::new(words.clone());
        let mut rng = SplitMix64::seed_from_u64(SEED);
        let first_round: Vec<&str> = (0..1000).map(|turn| list.pick(turn, &mut rng)).collect();
        assert_eq!(first_round, words.iter().map(String::as_str).collect::<Vec<_>>());
        let mut head = 0;
        let mut tail = 0;
        for turn in 1000..21000 {
            let picked = list.pick(turn, &mut rng);
            let rank = words.iter().position(|w| w == picked).unwrap();
            head += usize::from(rank < 100);
            tail += usize::from(rank >= 900);
        }
        // 1/(r + 100) summed over the first and the last hundred ranks: about 7 to 1.
        assert!(head > 5 * tail && tail > 0, "head {head}, tail {tail}");
    }

    #[test]
    fn spell_references_parse_into_a_spelled_name_list() {
        let node = parse_template("it's <spell:last>").unwrap();
        assert!(matches!(node, Node::Seq(ref items) if matches!(items[1], Node::Spell(ref l) if l == "last")));
    }

    #[test]
    fn template_syntax_errors_are_reported() {
        assert!(parse_template("i (want | need").is_err());
        assert!(parse_template("i want ]").is_err());
        let node = parse_template("[um] (a | b c) <rule>").unwrap();
        assert!(matches!(node, Node::Seq(ref items) if items.len() == 3));
    }

    #[test]
    fn the_data_file_reads_into_its_sections_in_order() {
        let source = Source::read(SOURCE).unwrap();
        assert_eq!(source.utterances.len(), 80);
        assert_eq!(
            source.utterances.first(),
            Some(&(
                1500,
                "[<filler>] [<greeting>] <want> (book | make | schedule | set up | get) <service> [<when>] [please]"
            ))
        );
        assert_eq!(source.rules.first().map(|(name, alternatives)| (*name, alternatives.len())), Some(("filler", 9)));
        assert_eq!(source.rules.iter().map(|(_, a)| a.len()).sum::<usize>(), 299);
        let names: Vec<&str> = source.names.iter().map(|(name, _)| *name).collect();
        assert_eq!(names, ["first", "last"]);
    }

    #[test]
    fn slips_in_the_data_file_are_reported_with_their_line() {
        let error = |text: &str| Source::read(text).unwrap_err().to_string();
        assert!(error("hello").contains("line 1"));
        assert!(error("= utterances\n\nmany hello").contains("line 3"));
        assert!(error("= utterances\n12").contains("line 2"));
        assert!(error("# a comment\n= rules filler").contains("line 2"));
    }
}
