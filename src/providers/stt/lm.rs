//! The booking-domain language model of the local recogniser: a corpus of what callers say
//! to a receptionist, generated from templates, counted and smoothed into an ARPA trigram
//! model (plus the matching slice of the CMU dictionary). It writes files; it never decodes.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{Context, bail};

/// Debian's (pocketsphinx-en-us) CMU pronouncing dictionary.
pub const CMU_DICT: &str = "/usr/share/pocketsphinx/model/en-us/cmudict-en-us.dict";

/// Bumped whenever the generator changes in a way the template hash does not see.
const GENERATOR_VERSION: u32 = 2;
/// Fixed seed: the same templates always give the same model.
const SEED: u64 = 0x5EED_B00C_1A6E_0001;

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
    let lm = BookingLm {
        arpa: dir.join(format!("booking-{key:016x}.arpa")),
        dict: dir.join(format!("booking-{key:016x}.dict")),
    };
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

/// Where generated model files live (`$XDG_CACHE_HOME/ringlypro` or a fallback).
pub(crate) fn cache_dir() -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").filter(|v| !v.is_empty()).map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("ringlypro")
}

/// Changes whenever the templates, the generator or the dictionary file change.
fn cache_key(cmu_dict: &Path) -> u64 {
    let mut h = Fnv::new();
    h.write(&GENERATOR_VERSION.to_le_bytes());
    h.write(&SEED.to_le_bytes());
    for (name, alternatives) in RULES {
        h.write(name.as_bytes());
        for a in *alternatives {
            h.write(a.as_bytes());
        }
    }
    for (count, template) in UTTERANCES {
        h.write(&count.to_le_bytes());
        h.write(template.as_bytes());
    }
    for list in [FIRST_NAMES, SURNAMES] {
        h.write(list.as_bytes());
    }
    h.write(cmu_dict.as_os_str().as_encoded_bytes());
    if let Ok(meta) = std::fs::metadata(cmu_dict) {
        h.write(&meta.len().to_le_bytes());
    }
    h.finish()
}

/// Writes through a temporary file and a rename, so a concurrent reader never sees half.
pub(crate) fn write_atomically(path: &Path, contents: &str) -> anyhow::Result<()> {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let unique = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = path.with_extension(format!("tmp-{}-{unique}", std::process::id()));
    std::fs::write(&tmp, contents).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))
}

/// FNV-1a: a stable hash (std's may change between releases) for cache file names.
struct Fnv(u64);

impl Fnv {
    fn new() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= b as u64;
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
        // Separates fields so that ("ab", "c") and ("a", "bc") differ.
        self.0 = self.0.wrapping_mul(0x0100_0000_01b3) ^ 0xff;
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

// ---------------------------------------------------------------------------------------
// Dictionary

/// The CMU dictionary: head word → its pronunciation lines (variants included).
struct Dictionary {
    entries: HashMap<String, Vec<String>>,
}

impl Dictionary {
    fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading dictionary {}", path.display()))?;
        Ok(Self::parse(&text))
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

    fn contains(&self, word: &str) -> bool {
        self.entries.contains_key(word)
    }
}

// ---------------------------------------------------------------------------------------
// Templates
//
// A tiny grammar: words, `<rule>` references, `(a | b c)` choices and `[optional]` parts.
// Choices are uniform; repeat an alternative to weight it.

/// Top-level utterances and how many samples each contributes to the corpus.
const UTTERANCES: &[(u32, &str)] = &[
    // Booking.
    (1500, "[<filler>] [<greeting>] <want> (book | make | schedule | set up | get) <service> [<when>] [please]"),
    (600, "[<filler>] i'm calling to (book | make | schedule) <service> [<when>]"),
    (600, "(can | could) i (book | get | make | schedule) <service> [<when>]"),
    (
        500,
        "[<filler>] do you have (anything | any openings | any availability | an opening | something | a slot) [available] [<when>]",
    ),
    (300, "(is | are) there (anything | any openings | any slots | an opening) (available | open) [<when>]"),
    (300, "i need <service> [<when>]"),
    (300, "<greeting> [i'd like | i would like] <service> [<when>] [please]"),
    // Dates and times on their own, as answers.
    (1800, "[<filler>] <when>"),
    (500, "(how about | what about | can i do | can we do | could i come in) <when>"),
    (300, "(is | do you have) <when> (available | open | free)"),
    (200, "(i'm | i am) (free | available) <when>"),
    (
        400,
        "<when> (works | would work | is good | is fine | is better | would be (great | perfect | fine | good | better)) [for me]",
    ),
    (200, "(is | would) <when> (work | be okay | be possible)"),
    (200, "(anytime | any time) <date> [is fine | works]"),
    // Choosing among offered slots.
    (
        600,
        "[<filler>] [i'll take | let's do | i'd like | i want] the (first | second | third | last | earlier | later | next) [one] [please]",
    ),
    (400, "[<filler>] [i'll take | let's do | i'd like] the <clock> [one | slot | appointment] [please]"),
    (300, "<clock> [please | works | is fine | sounds good | is perfect]"),
    (200, "(neither | none of those | none of them) [works | work for me]"),
    (200, "do you have anything (earlier | later | else | sooner | in the (morning | afternoon | evening))"),
    // Cancel and reschedule.
    (600, "[<filler>] <want> cancel my (appointment | booking | reservation) [<when>]"),
    (300, "(can | could) you cancel (it | my appointment | my booking | that) [please]"),
    (200, "i can't make (it | my appointment) [<when>]"),
    (600, "[<filler>] <want> (reschedule | move | change) my (appointment | booking) [to <when>]"),
    (300, "(can | could) (i | we | you) move (it | my appointment) to <when>"),
    (200, "can we do <when> instead"),
    // Prices and hours.
    (500, "how much (is | does) <service> (cost | run) "),
    (300, "how much (is | does) it cost"),
    (300, "how much do you charge for <service>"),
    (300, "what (are | is) your (prices | price | rates | rate) [for <service>]"),
    (500, "what are your (hours | opening hours | business hours) [<date>]"),
    (400, "(when | what time) do you (open | close) [<date>]"),
    (400, "are you open [<date> | on <weekday> | on the weekend | on weekends | right now | today | late]"),
    (200, "(where are you located | what is your address | where are you)"),
    // Talking to a person.
    (500, "[<filler>] (can | could | may) i (talk | speak) to <person> [please]"),
    (300, "(i'd | i would) like to (talk | speak) (to | with) <person> [please]"),
    (200, "(let me | i want to | i need to) (talk | speak) to <person>"),
    (200, "(operator | representative | agent | a real person | a human | customer service) [please]"),
    (150, "(transfer me | put me through | connect me) [to <person>] [please]"),
    // Messages.
    (400, "(i'd | i would) like to leave a message [for <first>]"),
    (300, "(can | could) i leave a message [for <first>]"),
    (200, "(can | could) you (take a message | give <first> a message | pass on a message)"),
    (200, "(please | can you) (tell | ask) <first> to call me back"),
    (200, "(have | ask) (him | her | them | <first>) (to call | call) me back [please]"),
    // Names.
    (1500, "[<filler>] (my name is | this is | it's | i'm | the name is | the name's) <first> [<last>]"),
    (800, "[<filler>] <first> <last>"),
    (300, "<first>"),
    (300, "(it's | it is | the appointment is | the booking is) under <last>"),
    (200, "(it's | it is) under [the name] <first> <last>"),
    (150, "(yes | yeah | hi) (this is | it's) <first>"),
    (150, "<last> [<first>]"),
    // Phone numbers.
    (
        900,
        "[<filler>] [(my | the) [phone | cell | mobile] number is | it's | it is | you can reach me at | call me [back] at] <phone>",
    ),
    (200, "<phone>"),
    (150, "(what's | what is) your (phone number | number)"),
    // Short answers and the social glue of a call.
    (2500, "<yes>"),
    (1200, "<no>"),
    (400, "<yes> <thanks>"),
    (300, "<no> <thanks>"),
    (300, "<yes> [that's right | that's correct | that works | please]"),
    (200, "<no> (that's wrong | that's not right | that's it | that's all)"),
    (500, "<thanks> [<bye>]"),
    (300, "<bye>"),
    (300, "(that's it | that's all | nothing else | that's everything) [<thanks>]"),
    (200, "(sorry | pardon) [what | can you repeat that | i didn't catch that]"),
    (200, "(can you repeat that | say that again | what did you say | i didn't catch that) [please]"),
    (200, "(hello | hi | hey) [is anyone there | can you hear me | there]"),
    (200, "(hold on | one moment | one second | just a second | let me check)"),
    (150, "<filler>"),
];

/// Named sub-grammars, each a list of alternatives.
const RULES: &[(&str, &[&str])] = &[
    ("filler", &["um", "uh", "hmm", "well", "so", "okay so", "yeah so", "um so", "uh yeah"]),
    ("greeting", &["hi", "hello", "hey", "good morning", "good afternoon", "hi there", "yes hi", "hello there"]),
    (
        "want",
        &[
            "i'd like to",
            "i would like to",
            "i want to",
            "i need to",
            "i'd love to",
            "i was hoping to",
            "i'm looking to",
            "can i",
            "could i",
            "i wanna",
        ],
    ),
    (
        "service",
        &[
            "an appointment",
            "an appointment",
            "an appointment",
            "a haircut",
            "a cleaning",
            "a checkup",
            "a consultation",
            "a massage",
            "a manicure",
            "a pedicure",
            "a facial",
            "a trim",
            "a color",
            "an exam",
            "a physical",
            "a session",
            "a lesson",
            "a teeth cleaning",
            "an eye exam",
            "an oil change",
            "a visit",
            "a reservation",
            "a booking",
            "a cut",
            "a follow up",
        ],
    ),
    (
        "person",
        &[
            "a person",
            "a real person",
            "a human",
            "someone",
            "somebody",
            "the manager",
            "the owner",
            "a receptionist",
            "the front desk",
            "<first>",
            "the doctor",
        ],
    ),
    (
        "yes",
        &[
            "yes",
            "yes",
            "yeah",
            "yeah",
            "yep",
            "yup",
            "sure",
            "okay",
            "okay",
            "ok",
            "mhm",
            "uh-huh",
            "right",
            "correct",
            "that's right",
            "that's correct",
            "exactly",
            "of course",
            "absolutely",
            "perfect",
            "great",
            "sounds good",
            "that works",
            "that sounds good",
            "yes please",
            "sure thing",
            "alright",
            "yes it is",
            "it is",
            "i do",
            "definitely",
        ],
    ),
    (
        "no",
        &[
            "no",
            "no",
            "nope",
            "nah",
            "no thanks",
            "no thank you",
            "not really",
            "no it's not",
            "no that's wrong",
            "i don't think so",
            "not yet",
            "never mind",
            "no i don't",
        ],
    ),
    (
        "thanks",
        &[
            "thank you",
            "thanks",
            "thank you so much",
            "thanks a lot",
            "great thank you",
            "okay thank you",
            "thank you very much",
        ],
    ),
    ("bye", &["bye", "goodbye", "bye bye", "have a nice day", "have a good one", "see you", "take care", "bye now"]),
    // When: a date, a time, or both, the way people say them on the phone.
    (
        "when",
        &[
            "<date>",
            "<date>",
            "<date> <at_time>",
            "<date> <at_time>",
            "<date> <part_of_day>",
            "<at_time>",
            "<at_time> <date>",
            "<part_of_day>",
            "<date> (at | around) <clock>",
            "(early | late | sometime) <date>",
            "(sometime | anytime) next week",
            "as soon as possible",
            "the soonest you have",
            // "... a haircut for tomorrow", "... for the fifth at two".
            "for <date>",
            "for <date> <at_time>",
            "for <date> <part_of_day>",
            // A bare time: "ten past four", "three thirty tomorrow".
            "<clock>",
            "<clock> <date>",
        ],
    ),
    (
        "at_time",
        &[
            "at <clock>",
            "at <clock>",
            "around <clock>",
            "after <clock>",
            "before <clock>",
            "at noon",
            "in the (morning | afternoon | evening)",
        ],
    ),
    (
        "part_of_day",
        &[
            "in the morning",
            "in the afternoon",
            "in the evening",
            "morning",
            "afternoon",
            "evening",
            "first thing in the morning",
            "at lunch",
            "after work",
            "around lunchtime",
        ],
    ),
    (
        "date",
        &[
            "today",
            "tomorrow",
            "tomorrow",
            "the day after tomorrow",
            "this <weekday>",
            "next <weekday>",
            "next <weekday>",
            "on <weekday>",
            "on <weekday>",
            "<weekday>",
            "this week",
            "next week",
            "next month",
            "this weekend",
            "on the weekend",
            "the <ordinal>",
            "on the <ordinal>",
            "<month> <ordinal>",
            "<month> the <ordinal>",
            "on <month> <ordinal>",
            "the <ordinal> of <month>",
            "<weekday> the <ordinal>",
            "tomorrow (morning | afternoon | evening)",
            "<weekday> (morning | afternoon | evening)",
            "later today",
            "this afternoon",
            "this morning",
            "tonight",
            "in (two | three | a couple of) (days | weeks)",
        ],
    ),
    ("weekday", &["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]),
    (
        "month",
        &[
            "january",
            "february",
            "march",
            "april",
            "may",
            "june",
            "july",
            "august",
            "september",
            "october",
            "november",
            "december",
        ],
    ),
    (
        "ordinal",
        &[
            "first",
            "second",
            "third",
            "fourth",
            "fifth",
            "sixth",
            "seventh",
            "eighth",
            "ninth",
            "tenth",
            "eleventh",
            "twelfth",
            "thirteenth",
            "fourteenth",
            "fifteenth",
            "sixteenth",
            "seventeenth",
            "eighteenth",
            "nineteenth",
            "twentieth",
            "twenty first",
            "twenty second",
            "twenty third",
            "twenty fourth",
            "twenty fifth",
            "twenty sixth",
            "twenty seventh",
            "twenty eighth",
            "twenty ninth",
            "thirtieth",
            "thirty first",
        ],
    ),
    ("hour", &["one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve"]),
    (
        "minutes",
        &[
            "o'clock",
            "fifteen",
            "thirty",
            "thirty",
            "forty five",
            "oh five",
            "ten",
            "twenty",
            "forty",
            "fifty",
            "forty five",
            "twenty five",
            "thirty five",
            "fifty five",
        ],
    ),
    (
        "clock",
        &[
            "<hour>",
            "<hour>",
            "<hour> <minutes>",
            "<hour> <minutes>",
            "<hour> (a.m. | p.m.)",
            "<hour> <minutes> (a.m. | p.m.)",
            "<hour> o'clock",
            "(quarter | half) past <hour>",
            "quarter (to | till) <hour>",
            "(five | ten | twenty) (past | after | to) <hour>",
            "noon",
            "<hour> thirty",
            "<hour> in the (morning | afternoon | evening)",
        ],
    ),
    (
        "digit",
        &[
            "zero", "oh", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "one", "two",
            "three", "four", "five", "six", "seven", "eight", "nine",
        ],
    ),
    (
        "phone",
        &[
            "<digit> <digit> <digit> <digit> <digit> <digit> <digit> <digit> <digit> <digit>",
            "<digit> <digit> <digit> <digit> <digit> <digit> <digit> <digit> <digit> <digit>",
            "<digit> <digit> <digit> <digit> <digit> <digit> <digit>",
            "one <digit> <digit> <digit> <digit> <digit> <digit> <digit> <digit> <digit> <digit>",
        ],
    ),
];

/// Common US first names (Census and SSA frequency lists, with frequent Hispanic names).
const FIRST_NAMES: &str = "
james john robert michael william david richard joseph thomas charles christopher daniel matthew anthony
mark donald steven paul andrew joshua kenneth kevin brian george timothy ronald edward jason jeffrey ryan
jacob gary nicholas eric jonathan stephen larry justin scott brandon benjamin samuel gregory alexander
frank patrick raymond jack dennis jerry tyler aaron jose adam nathan henry douglas zachary peter kyle
ethan walter noah jeremy christian keith roger terry gerald harold sean austin carl arthur lawrence dylan
jesse jordan bryan billy joe bruce gabriel logan albert willie alan juan wayne elijah randy roy vincent
ralph eugene russell bobby mason philip louis liam lucas oliver carlos luis miguel jorge diego alejandro
javier antonio manuel ricardo mary patricia jennifer linda elizabeth barbara susan jessica sarah karen
lisa nancy betty margaret sandra ashley kimberly emily donna michelle carol amanda dorothy melissa deborah
stephanie rebecca sharon laura cynthia kathleen amy angela shirley anna brenda pamela emma nicole helen
samantha katherine christine debra rachel carolyn janet catherine maria heather diane ruth julie olivia
joyce virginia victoria kelly lauren christina joan evelyn judith megan andrea cheryl hannah jacqueline
martha gloria teresa ann sara madison frances kathryn janice jean abigail alice judy sophia grace denise
amber doris marilyn danielle beverly isabella theresa diana natalie brittany charlotte marie kayla alexis
lori ava mia chloe ella lily zoe rosa carmen ana sofia lucia elena gabriela valeria
";

/// Common US surnames (Census 2010 most frequent).
const SURNAMES: &str = "
smith johnson williams brown jones garcia miller davis rodriguez martinez hernandez lopez gonzalez wilson
anderson thomas taylor moore jackson martin lee perez thompson white harris sanchez clark ramirez lewis
robinson walker young allen king wright scott torres nguyen hill flores green adams nelson baker hall
rivera campbell mitchell carter roberts gomez phillips evans turner diaz parker cruz edwards collins
reyes stewart morris morales murphy cook rogers gutierrez ortiz morgan cooper peterson bailey reed kelly
howard ramos kim cox ward richardson watson brooks chavez wood james bennett gray mendoza ruiz hughes
price alvarez castillo sanders patel myers long ross foster jimenez powell jenkins perry russell sullivan
bell coleman butler henderson barnes gonzales fisher vasquez simmons romero jordan patterson alexander
hamilton graham reynolds griffin wallace moreno west cole hayes bryant herrera gibson ellis tran medina
aguilar stevens murray ford castro marshall owens harrison fernandez mcdonald woods washington kennedy
wells vargas henry chen freeman webb tucker guzman burns crawford olson simpson porter hunter gordon
mendez silva shaw snyder mason dixon munoz hunt hicks holmes palmer wagner black robertson boyd rose
stone salazar fox warren mills meyer rice schmidt garza daniels ferguson nichols stephens soto weaver
ryan gardner payne grant dunn kelley spencer hawkins arnold pierce vazquez hansen peters santos hart
bradley knight elliott cunningham duncan armstrong hudson carroll lane riley andrews alvarado ray
delgado berry perkins hoffman johnston matthews pena richards willis carpenter lawrence sandoval
";

#[derive(Debug, Clone)]
enum Node {
    Word(String),
    Rule(String),
    Seq(Vec<Node>),
    Choice(Vec<Node>),
    Optional(Box<Node>),
}

/// Parses one template into a node tree.
fn parse_template(template: &str) -> anyhow::Result<Node> {
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
                items.push(Node::Rule(t[1..t.len() - 1].to_owned()));
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
struct Grammar {
    rules: HashMap<String, Node>,
    utterances: Vec<(u32, Node)>,
}

impl Grammar {
    fn new(dictionary: &Dictionary) -> anyhow::Result<Self> {
        let mut rules = HashMap::new();
        for (name, alternatives) in RULES {
            let parsed = alternatives.iter().map(|a| parse_template(a)).collect::<anyhow::Result<Vec<_>>>()?;
            rules.insert((*name).to_owned(), Node::Choice(parsed));
        }
        for (name, list) in [("first", FIRST_NAMES), ("last", SURNAMES)] {
            // A name the dictionary cannot pronounce cannot be recognised either.
            let words: Vec<Node> =
                list.split_whitespace().filter(|w| dictionary.contains(w)).map(|w| Node::Word(w.to_owned())).collect();
            if words.is_empty() {
                bail!("no {name} names are in the dictionary");
            }
            rules.insert(name.to_owned(), Node::Choice(words));
        }
        let utterances =
            UTTERANCES.iter().map(|(count, t)| Ok((*count, parse_template(t)?))).collect::<anyhow::Result<Vec<_>>>()?;
        let grammar = Self { rules, utterances };
        grammar.check_references()?;
        Ok(grammar)
    }

    fn check_references(&self) -> anyhow::Result<()> {
        fn walk(node: &Node, rules: &HashMap<String, Node>, depth: usize) -> anyhow::Result<()> {
            if depth > 32 {
                bail!("rules nest too deeply (a cycle?)");
            }
            match node {
                Node::Word(_) => Ok(()),
                Node::Rule(name) => {
                    let rule = rules.get(name).with_context(|| format!("unknown rule <{name}>"))?;
                    walk(rule, rules, depth + 1)
                }
                Node::Seq(items) | Node::Choice(items) => items.iter().try_for_each(|n| walk(n, rules, depth)),
                Node::Optional(inner) => walk(inner, rules, depth),
            }
        }
        self.utterances.iter().try_for_each(|(_, n)| walk(n, &self.rules, 0))
    }

    /// Appends one random expansion of `node` to `out`.
    fn sample(&self, node: &Node, rng: &mut SplitMix, out: &mut Vec<String>) {
        match node {
            Node::Word(w) => out.push(w.clone()),
            Node::Rule(name) => {
                // References were checked in `new`.
                if let Some(rule) = self.rules.get(name) {
                    self.sample(rule, rng, out);
                }
            }
            Node::Seq(items) => items.iter().for_each(|n| self.sample(n, rng, out)),
            Node::Choice(items) => {
                if !items.is_empty() {
                    let pick = rng.below(items.len());
                    self.sample(&items[pick], rng, out);
                }
            }
            Node::Optional(inner) => {
                if rng.below(2) == 0 {
                    self.sample(inner, rng, out);
                }
            }
        }
    }

    /// Every word any template can produce (names excluded: they are filtered already).
    #[cfg(test)]
    fn template_words(&self) -> std::collections::HashSet<String> {
        fn walk(node: &Node, out: &mut std::collections::HashSet<String>) {
            match node {
                Node::Word(w) => {
                    out.insert(w.clone());
                }
                Node::Rule(_) => {}
                Node::Seq(items) | Node::Choice(items) => items.iter().for_each(|n| walk(n, out)),
                Node::Optional(inner) => walk(inner, out),
            }
        }
        let mut words = std::collections::HashSet::new();
        for (name, rule) in &self.rules {
            if name != "first" && name != "last" {
                walk(rule, &mut words);
            }
        }
        for (_, node) in &self.utterances {
            walk(node, &mut words);
        }
        words
    }
}

/// SplitMix64: tiny, fast and stable across releases (unlike a library RNG's stream).
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// The generated corpus: one sentence per entry, lower-case words.
fn corpus(grammar: &Grammar) -> Vec<Vec<String>> {
    let mut rng = SplitMix(SEED);
    let mut sentences = Vec::new();
    for (count, node) in &grammar.utterances {
        for _ in 0..*count {
            let mut words = Vec::new();
            grammar.sample(node, &mut rng, &mut words);
            if !words.is_empty() {
                sentences.push(words);
            }
        }
    }
    sentences
}

// ---------------------------------------------------------------------------------------
// Counting and smoothing

const BOS: u32 = 0;
const EOS: u32 = 1;

/// Absolute-discounting backoff trigram model (Ney, Essen & Kneser 1994, backoff form).
struct Model {
    words: Vec<String>,
    unigram: Vec<f64>,
    unigram_backoff: Vec<f64>,
    bigram: BTreeMap<(u32, u32), f64>,
    bigram_backoff: HashMap<(u32, u32), f64>,
    trigram: BTreeMap<(u32, u32, u32), f64>,
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
    fn estimate(sentences: &[Vec<String>]) -> Self {
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

    fn to_arpa(&self) -> String {
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

    fn dictionary() -> Option<Dictionary> {
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
        let first = FIRST_NAMES.split_whitespace().filter(|w| dictionary.contains(w)).count();
        let last = SURNAMES.split_whitespace().filter(|w| dictionary.contains(w)).count();
        assert!(first > 200 && last > 200, "{first} first names, {last} surnames");
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
    fn template_syntax_errors_are_reported() {
        assert!(parse_template("i (want | need").is_err());
        assert!(parse_template("i want ]").is_err());
        let node = parse_template("[um] (a | b c) <rule>").unwrap();
        assert!(matches!(node, Node::Seq(ref items) if items.len() == 3));
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
