//! The classic `messagesummary.py`: a message's summary from its content, as
//! Roundup's mail gateway `parseContent` makes it.

use crate::items::Changes;
use crate::store::PropValue;
use regex::Regex;
use std::sync::LazyLock;

/// On message creation: set `summary` from `content` unless a summary is given.
pub fn summarygenerator(changes: &mut Changes) {
    if changes.props.contains("summary") {
        return;
    }
    let Some(content) = &changes.content else {
        return;
    };
    let text = String::from_utf8_lossy(content);
    changes
        .props
        .insert("summary", Some(PropValue::String(summary(&text))));
}

fn is_eol(c: char) -> bool {
    c == '\r' || c == '\n'
}

/// Roundup's `blankline_re`.
static BLANK_LINE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"[\r\n]+\s*[\r\n]+").expect("valid regex"));
/// Roundup's `eol_re`.
static EOL: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"[\r\n]+").expect("valid regex"));

fn split_lines(text: &str) -> Vec<&str> {
    EOL.split(text).collect()
}

fn quoted(line: &str) -> bool {
    line.starts_with('>') || line.starts_with('|')
}

/// The summary `parseContent` computes for a message body.
pub fn summary(content: &str) -> String {
    let body = content.trim_start_matches(is_eol);
    let body = if body.is_empty() && !content.is_empty() {
        &content[content.len() - 1..]
    } else {
        body
    };
    let mut summary = String::new();
    for section in BLANK_LINE.split(body) {
        if section.is_empty() {
            continue;
        }
        let lines = split_lines(section);
        let quote_1st = lines.first().is_some_and(|l| quoted(l));
        let quote_2nd = lines.get(1).is_some_and(|l| quoted(l));
        let mut section_text = section.to_string();
        if quote_1st || quote_2nd {
            match lines
                .iter()
                .skip(1)
                .position(|l| !l.is_empty() && !quoted(l))
            {
                None => continue,
                Some(n) => section_text = lines[n + 1..].join("\n"),
            }
        }
        summary = section_text;
        break;
    }
    let sentence = match summary.find(['!', '?', '.']) {
        Some(p) if p > 0 => summary[..=p].to_string(),
        _ => String::new(),
    };
    let first = split_lines(&summary)
        .first()
        .map(|s| s.to_string())
        .unwrap_or_default();
    if sentence > first {
        sentence
    } else {
        first
    }
}

#[cfg(test)]
mod tests {
    use super::summary;

    #[test]
    fn summaries_like_roundup() {
        assert_eq!(summary("Hello world.\n\nSecond para"), "Hello world.");
        assert_eq!(
            summary("This is a long\nsentence. More text"),
            "This is a long\nsentence."
        );
        assert_eq!(
            summary("> quoted\n> more\n\nReal text here"),
            "Real text here"
        );
        assert_eq!(summary("\n\nno punctuation"), "no punctuation");
        assert_eq!(summary(""), "");
    }
}
