//! Terminal lines: styled segments, display width, fitting into [`WIDTH`] columns, and when to
//! colour.
//!
//! Every line the text sink prints is built as a [`Line`] of segments, so its width is measured
//! on the text alone and colour is added (or not) at the very end: the output without colour is
//! byte for byte the same, whatever the terminal.

use std::{ffi::OsStr, io::IsTerminal};

/// Columns every line fits in.
pub const WIDTH: usize = 80;

/// How a segment is shown on a colour terminal (plain ANSI SGR codes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Style {
    /// No attributes.
    Plain,
    /// Faint: timestamps, the strip's background, the axis.
    Dim,
    /// Bold: sizes, column headers, marks.
    Bold,
    /// Yellow: large allocations or slow resizes, growth spans.
    Warn,
    /// Red: very large allocations or very slow resizes, warnings.
    Alert,
    /// Green: presize hints (what to do about it).
    Hint,
    /// Cyan: spans known only as an upper bound.
    Note,
}

impl Style {
    fn sgr(self) -> Option<&'static str> {
        match self {
            Style::Plain => None,
            Style::Dim => Some("\x1b[2m"),
            Style::Bold => Some("\x1b[1m"),
            Style::Warn => Some("\x1b[33m"),
            Style::Alert => Some("\x1b[1;31m"),
            Style::Hint => Some("\x1b[32m"),
            Style::Note => Some("\x1b[36m"),
        }
    }
}

/// Resets every attribute.
pub const RESET: &str = "\x1b[0m";

/// Columns a character takes on a terminal: 0 for combining marks and zero-width characters, 2
/// for East Asian wide and fullwidth characters (Go identifiers may use them), 1 otherwise.
pub fn char_width(c: char) -> usize {
    let u = c as u32;
    match u {
        0x0300..=0x036F
        | 0x1AB0..=0x1AFF
        | 0x1DC0..=0x1DFF
        | 0x200B..=0x200F
        | 0x20D0..=0x20FF
        | 0xFE00..=0xFE0F
        | 0xFE20..=0xFE2F => 0,
        0x1100..=0x115F
        | 0x2E80..=0x303E
        | 0x3041..=0x33FF
        | 0x3400..=0x4DBF
        | 0x4E00..=0x9FFF
        | 0xA000..=0xA4CF
        | 0xAC00..=0xD7A3
        | 0xF900..=0xFAFF
        | 0xFE30..=0xFE4F
        | 0xFF00..=0xFF60
        | 0xFFE0..=0xFFE6
        | 0x1F300..=0x1F64F
        | 0x1F900..=0x1F9FF
        | 0x20000..=0x3FFFD => 2,
        _ => 1,
    }
}

/// Display columns of `s`.
pub fn width(s: &str) -> usize {
    s.chars().map(char_width).sum()
}

/// `s` with control characters (ESC among them) replaced by `?`: names come from the traced
/// process's memory and must not reach the terminal as escape sequences.
pub fn sanitize(s: &str) -> std::borrow::Cow<'_, str> {
    if s.chars().any(char::is_control) {
        s.chars()
            .map(|c| if c.is_control() { '?' } else { c })
            .collect::<String>()
            .into()
    } else {
        s.into()
    }
}

/// The first columns of `s` that fit in `max`, ending with `…` when cut.
pub fn fit_right(s: &str, max: usize) -> String {
    if width(s) <= max {
        return s.to_string();
    }
    if max == 0 {
        return String::new();
    }
    let mut out = String::new();
    let mut w = 0;
    for c in s.chars() {
        let cw = char_width(c);
        if w + cw > max - 1 {
            break;
        }
        out.push(c);
        w += cw;
    }
    out.push('…');
    out
}

/// The last columns of `s` that fit in `max`, starting with `…` when cut.
pub fn fit_left(s: &str, max: usize) -> String {
    if width(s) <= max {
        return s.to_string();
    }
    if max == 0 {
        return String::new();
    }
    let mut tail: Vec<char> = vec![];
    let mut w = 0;
    for c in s.chars().rev() {
        let cw = char_width(c);
        if w + cw > max - 1 {
            break;
        }
        tail.push(c);
        w += cw;
    }
    std::iter::once('…').chain(tail.into_iter().rev()).collect()
}

/// One output line: segments of text, each with a style.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Line {
    segs: Vec<(Style, String)>,
}

impl Line {
    /// An empty line.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends `text` (control characters replaced) in `style`.
    pub fn push(&mut self, style: Style, text: &str) -> &mut Self {
        if !text.is_empty() {
            self.segs.push((style, sanitize(text).into_owned()));
        }
        self
    }

    /// Appends unstyled text.
    pub fn plain(&mut self, text: &str) -> &mut Self {
        self.push(Style::Plain, text)
    }

    /// Display columns.
    pub fn width(&self) -> usize {
        self.segs.iter().map(|(_, s)| width(s)).sum()
    }

    /// Columns left before [`WIDTH`].
    pub fn room(&self) -> usize {
        WIDTH.saturating_sub(self.width())
    }

    /// Cuts the line to `max` columns, the last one `…`, when it is wider.
    pub fn truncate(&mut self, max: usize) {
        if self.width() <= max {
            return;
        }
        let mut used = 0;
        let mut out = vec![];
        for (style, s) in self.segs.drain(..) {
            let w = width(&s);
            if used + w < max {
                used += w;
                out.push((style, s));
            } else {
                // Something follows in any case: this segment's first columns, then `…`.
                let budget = max - used - 1;
                let mut cut = String::new();
                let mut w = 0;
                for c in s.chars() {
                    w += char_width(c);
                    if w > budget {
                        break;
                    }
                    cut.push(c);
                }
                cut.push('…');
                out.push((style, cut));
                break;
            }
        }
        self.segs = out;
    }

    /// The text, with SGR codes around styled segments when `color`.
    pub fn render(&self, color: bool) -> String {
        let mut out = String::new();
        for (style, s) in &self.segs {
            match style.sgr().filter(|_| color) {
                Some(code) => {
                    out.push_str(code);
                    out.push_str(s);
                    out.push_str(RESET);
                }
                None => out.push_str(s),
            }
        }
        out
    }
}

/// When the text output is coloured (the resolved `--color`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ColorWhen {
    Auto,
    Always,
    Never,
}

/// Whether to colour: `always`, `never`, or (`auto`) when the output is a terminal and
/// `NO_COLOR` is unset or empty (<https://no-color.org>).
pub fn use_color(choice: ColorWhen, output_is_tty: bool, no_color: Option<&OsStr>) -> bool {
    match choice {
        ColorWhen::Always => true,
        ColorWhen::Never => false,
        ColorWhen::Auto => output_is_tty && no_color.is_none_or(OsStr::is_empty),
    }
}

/// [`use_color`] for this process: `to_stdout` is false when the output goes to a file.
pub fn color_for_stdout(choice: ColorWhen, to_stdout: bool) -> bool {
    use_color(
        choice,
        to_stdout && std::io::stdout().is_terminal(),
        std::env::var_os("NO_COLOR").as_deref(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_width_wide_and_combining() {
        assert_eq!(width("abc"), 3);
        assert_eq!(width("2048→4096 µs …"), 14);
        assert_eq!(width("main.処理"), 9);
        assert_eq!(width("e\u{301}"), 1);
    }

    #[test]
    fn test_fit_left_and_right() {
        assert_eq!(fit_left("abcdef", 4), "…def");
        assert_eq!(fit_right("abcdef", 4), "abc…");
        assert_eq!(fit_left("abc", 4), "abc");
        assert_eq!(fit_left("処理処理", 5), "…処理");
        assert_eq!(fit_right("abc", 0), "");
    }

    #[test]
    fn test_line_truncate_and_sanitize() {
        let mut l = Line::new();
        l.push(Style::Dim, "0123456789")
            .push(Style::Bold, "abcdef\x1b[31m");
        assert_eq!(l.width(), 21);
        assert!(!l.render(false).contains('\x1b'), "control chars replaced");
        l.truncate(12);
        assert_eq!(l.render(false), "0123456789a…");
        assert_eq!(l.width(), 12);
        assert_eq!(l.render(true), "\x1b[2m0123456789\x1b[0m\x1b[1ma…\x1b[0m");
    }

    #[test]
    fn test_use_color_auto_respects_tty_and_no_color() {
        let empty = OsStr::new("");
        let one = OsStr::new("1");
        assert!(use_color(ColorWhen::Auto, true, None));
        assert!(use_color(ColorWhen::Auto, true, Some(empty)));
        assert!(!use_color(ColorWhen::Auto, true, Some(one)));
        assert!(!use_color(ColorWhen::Auto, false, None));
        assert!(use_color(ColorWhen::Always, false, Some(one)));
        assert!(!use_color(ColorWhen::Never, true, None));
    }
}
