//! Text for a terminal: untrusted strings (record ids, policy messages, file names, values
//! from input) lose their power to drive the terminal before they are printed.

use std::borrow::Cow;
use std::fmt::Write as _;

/// True for characters a terminal may act on instead of showing: C0 and C1 controls (ESC,
/// BEL, CSI, line breaks, ...), DEL, and the bidirectional overrides and isolates that can
/// reorder what a line seems to say.
fn is_unsafe(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `s` with every unsafe character written as a visible escape (`\u{1b}`, `\n`), so that a
/// hostile value can neither recolour the output, retitle the terminal, nor start a line that
/// looks like another verdict. Borrowed when there is nothing to escape.
pub fn clean(s: &str) -> Cow<'_, str> {
    if !s.chars().any(is_unsafe) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if is_unsafe(c) {
            let _ = write!(out, "{}", c.escape_default());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_terminal_controls() {
        assert_eq!(clean("plain é"), "plain é");
        assert_eq!(
            clean("r\u{1b}[31mRED\u{1b}]0;TITLE\u{7}"),
            "r\\u{1b}[31mRED\\u{1b}]0;TITLE\\u{7}"
        );
        assert_eq!(clean("a\nb\r\t"), "a\\nb\\r\\t");
        assert_eq!(clean("\u{9b}31m"), "\\u{9b}31m");
        assert_eq!(clean("x\u{202e}y"), "x\\u{202e}y");
        assert!(matches!(clean("ok"), Cow::Borrowed(_)));
    }
}
