//! [`printable`]: how a file name or reason is printed in a report or a log line.

/// `text` with its control characters escaped, for a terminal or a report: a file named
/// with a newline or an ESC (`\x1b`, which starts terminal escape sequences) cannot
/// start a fake report line or drive the terminal. Newline, carriage return and tab are
/// shown as `\n`, `\r`, `\t`; other control characters (C0, DEL, C1) and the Unicode
/// bidirectional overrides (which reorder what is shown) as `\x1b` or `\u{202e}`.
/// For display only: it is not a quoting that can be read back.
pub fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    let bidi = |c: char| matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
    if !text.chars().any(|c| c.is_control() || bidi(c)) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() && u32::from(c) < 0x80 => {
                out.push_str(&format!("\\x{:02x}", u32::from(c)))
            }
            c if c.is_control() || bidi(c) => out.push_str(&format!("\\u{{{:x}}}", u32::from(c))),
            c => out.push(c),
        }
    }
    std::borrow::Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_and_the_rest_kept() {
        assert_eq!(
            printable("site-1/20260601_050000.WAV"),
            "site-1/20260601_050000.WAV"
        );
        assert_eq!(
            printable("été/chant d’oiseau.wav"),
            "été/chant d’oiseau.wav"
        );
        assert_eq!(printable("a\nb\rc\td"), "a\\nb\\rc\\td");
        assert_eq!(printable("\x1b[2Jx\x7f\u{9b}y"), "\\x1b[2Jx\\x7f\\u{9b}y");
        assert_eq!(printable("gpj.\u{202e}wav"), "gpj.\\u{202e}wav");
    }
}
