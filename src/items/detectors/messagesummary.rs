//! `messagesummary.py`: a message's summary from its content, as Roundup's mail
//! gateway `parseContent` makes it with the tracker's `[mailgw]` options
//! (`keep_quoted_text`, `eol_re`, `blankline_re`).

use crate::config::{EmailBody, MailgwConfig};
use crate::items::Changes;
use crate::store::PropValue;

/// On creation: set `summary` from `content` unless a summary is given.
pub fn summarygenerator(config: &MailgwConfig, changes: &mut Changes) {
    if changes.props.contains("summary") {
        return;
    }
    let Some(content) = &changes.content else {
        return;
    };
    let text = String::from_utf8_lossy(content);
    let keep_quoted = config.keep_quoted_text == EmailBody::Yes;
    changes.props.insert(
        "summary",
        Some(PropValue::String(summary(config, keep_quoted, &text))),
    );
}

fn quoted(line: &str) -> bool {
    line.starts_with('>') || line.starts_with('|')
}

/// The summary `parseContent(content)` computes (its first result): the first
/// section (sections are separated by blank lines) that is not only quotes, with
/// its quoted lines dropped unless `keep_quoted`; of that, the first sentence or
/// the first line, whichever is greater (Python's `max` of two strings).
pub fn summary(config: &MailgwConfig, keep_quoted: bool, content: &str) -> String {
    let eol = &config.eol_re.0;
    // Leading line ends are skipped; content made only of them keeps its last one.
    let body = content.trim_start_matches(['\r', '\n']);
    let body = if body.is_empty() && !content.is_empty() {
        &content[content.len() - 1..]
    } else {
        body
    };
    let mut summary = String::new();
    for section in config.blankline_re.0.split(body) {
        if section.is_empty() {
            continue;
        }
        let lines: Vec<&str> = eol.split(section).collect();
        let quote_1st = lines.first().is_some_and(|l| quoted(l));
        let quote_2nd = lines.get(1).is_some_and(|l| quoted(l));
        let mut section_text = section.to_string();
        if quote_1st || quote_2nd {
            // A reply somewhere inside the section (no blank line before it)?
            match lines
                .iter()
                .skip(1)
                .position(|l| !l.is_empty() && !quoted(l))
            {
                None => continue,
                Some(_) if keep_quoted => section_text = lines.join("\n"),
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
    let first = eol.split(&summary).next().unwrap_or_default().to_string();
    if sentence > first {
        sentence
    } else {
        first
    }
}

#[cfg(test)]
mod tests {
    use super::summary;
    use crate::config::Settings;

    fn sum(keep: bool, text: &str) -> String {
        summary(&Settings::default().mailgw, keep, text)
    }

    #[test]
    fn summaries_like_roundup() {
        for keep in [true, false] {
            assert_eq!(sum(keep, "Hello world.\n\nSecond para"), "Hello world.");
            assert_eq!(
                sum(keep, "This is a long\nsentence. More text"),
                "This is a long\nsentence."
            );
            assert_eq!(
                sum(keep, "> quoted\n> more\n\nReal text here"),
                "Real text here"
            );
            assert_eq!(sum(keep, "\n\nno punctuation"), "no punctuation");
            assert_eq!(sum(keep, ""), "");
        }
    }

    /// Verified against Roundup 2.6's `parseContent` with the default config
    /// (`keep_quoted_text = yes`) and with `no`.
    #[test]
    fn keep_quoted_text_decides_mixed_sections() {
        assert_eq!(
            sum(true, "> quoted\nresponse line. more"),
            "> quoted\nresponse line."
        );
        assert_eq!(
            sum(false, "> quoted\nresponse line. more"),
            "response line. more"
        );
        assert_eq!(sum(true, "Intro\n> quoted\nresponse"), "Intro");
        assert_eq!(sum(false, "Intro\n> quoted\nresponse"), "response");
        // A section joined again uses "\n" whatever the line ends were.
        assert_eq!(sum(true, "> a\rb. c"), "> a\nb.");
    }
}
