//! Converting the parser's positions (line, column in characters) into report positions
//! (1-based line, 1-based column in UTF-16 code units).

/// A parser position: 1-based line, 0-based column counted in characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Mark {
    pub line: u32,
    pub col: u32,
}

/// A range of parser positions, end exclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RawSpan {
    pub start: Mark,
    pub end: Mark,
}

impl RawSpan {
    pub fn at(mark: Mark) -> RawSpan {
        RawSpan {
            start: mark,
            end: mark,
        }
    }
}

/// A report position: 1-based line, 1-based column in UTF-16 code units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Pos {
    pub line: u32,
    pub column: u32,
}

/// A report range, end exclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Span {
    pub start: Pos,
    pub end: Pos,
}

/// Line starts of a text, built only when the text is not pure ASCII (then characters and UTF-16
/// units differ and each line must be walked).
#[derive(Debug, Clone)]
pub struct LineIndex {
    line_starts: Option<Vec<usize>>,
}

impl LineIndex {
    pub fn new(text: &str) -> LineIndex {
        if text.is_ascii() {
            return LineIndex { line_starts: None };
        }
        // YAML line breaks: LF, CRLF and a lone CR.
        let bytes = text.as_bytes();
        let mut starts = vec![0];
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'\n' => starts.push(i + 1),
                b'\r' if bytes.get(i + 1) != Some(&b'\n') => starts.push(i + 1),
                _ => {}
            }
            i += 1;
        }
        LineIndex {
            line_starts: Some(starts),
        }
    }

    pub fn pos(&self, text: &str, mark: Mark) -> Pos {
        let line = mark.line.max(1);
        let Some(starts) = &self.line_starts else {
            return Pos {
                line,
                column: mark.col + 1,
            };
        };
        let Some(&start) = starts.get(line as usize - 1) else {
            return Pos {
                line,
                column: mark.col + 1,
            };
        };
        let units: usize = text[start..]
            .chars()
            .take(mark.col as usize)
            .map(char::len_utf16)
            .sum();
        Pos {
            line,
            column: u32::try_from(units).unwrap_or(u32::MAX).saturating_add(1),
        }
    }

    pub fn span(&self, text: &str, raw: RawSpan) -> Span {
        Span {
            start: self.pos(text, raw.start),
            end: self.pos(text, raw.end),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ascii_columns_are_characters_plus_one() {
        let idx = LineIndex::new("a: b\nc: d\n");
        assert_eq!(
            idx.pos("", Mark { line: 2, col: 3 }),
            Pos { line: 2, column: 4 }
        );
    }

    #[test]
    fn non_ascii_columns_count_utf16_units() {
        let text = "x: 1\n# é😀 y: z\r\nlast: 1";
        let idx = LineIndex::new(text);
        // On line 2, 'y' follows '#', ' ', 'é', '😀', ' ' (5 characters, 6 UTF-16 units).
        assert_eq!(
            idx.pos(text, Mark { line: 2, col: 5 }),
            Pos { line: 2, column: 7 }
        );
        assert_eq!(
            idx.pos(text, Mark { line: 3, col: 0 }),
            Pos { line: 3, column: 1 }
        );
    }
}
