//! Text that came from a peer (pool set names, error messages), made safe
//! to write into a line-oriented log or a one-line message.

use std::borrow::Cow;

/// `text` with every control character escaped (`\n`, `\r`, `\u{1b}`, ...),
/// so it can neither end a line nor forge one; other text is unchanged.
pub fn escape_controls(text: &str) -> Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
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
    fn control_characters_are_escaped() {
        assert!(matches!(escape_controls("a.set"), Cow::Borrowed("a.set")));
        assert_eq!(
            escape_controls("a\nb\r\t\u{1b}[2J\u{7f}é"),
            "a\\nb\\r\\t\\u{1b}[2J\\u{7f}é"
        );
    }
}
