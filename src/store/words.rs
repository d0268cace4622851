//! The words Roundup's native full-text indexer stores for a text (the `__words`
//! table of both backends).

/// Roundup's stop words (`indexer_common.STOPWORDS`).
const STOPWORDS: &[&str] = &[
    "A", "AND", "ARE", "AS", "AT", "BE", "BUT", "BY", "FOR", "IF", "IN", "INTO", "IS", "IT", "NO",
    "NOT", "OF", "ON", "OR", "SUCH", "THAT", "THE", "THEIR", "THEN", "THERE", "THESE", "THEY",
    "THIS", "TO", "WAS", "WILL", "WITH",
];

/// The distinct words Roundup's native indexer stores for a text: upper-cased runs
/// of 2 to 50 word characters, stop words left out.
pub fn index_words(text: &str) -> Vec<String> {
    let upper = text.to_uppercase();
    let mut words: Vec<String> = Vec::new();
    for run in upper.split(|c: char| !(c.is_alphanumeric() || c == '_')) {
        let n = run.chars().count();
        if (2..=50).contains(&n) && !STOPWORDS.contains(&run) {
            words.push(run.to_string());
        }
    }
    words.sort();
    words.dedup();
    words
}
