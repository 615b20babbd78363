//! CSV fields as RFC 4180 writes them, safe to open in a spreadsheet (the billing
//! exports, docs/billing-export.md).
//!
//! Text is neutralised against formula injection (OWASP "CSV injection"): a value whose
//! first character is `=`, `+`, `-`, `@`, a tab or a carriage return gets a leading `'`,
//! which spreadsheets show as text and never evaluate. Numbers the portal writes itself
//! go through `push_raw` untouched. [`Record`] puts the commas and the CRLF between
//! and after them.
//!
//! Nothing here allocates: fields are appended to a line the caller reuses, since an
//! export writes a million records.
//!
//! Sources: RFC 4180 §2 (quoting, `""` inside quotes, CRLF line ends); OWASP, "CSV
//! Injection" (the leading characters and the `'` prefix).

/// Whether a spreadsheet could read `value` as a formula (OWASP's list of leading
/// characters).
pub fn needs_neutralising(value: &str) -> bool {
    matches!(
        value.as_bytes().first(),
        Some(b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r')
    )
}

/// Appends a text field: neutralised, then quoted (with `""` doubling) when it contains
/// a comma, a quote, CR or LF, or starts or ends with a space.
pub fn push_text(line: &mut String, value: &str) {
    let neutralise = needs_neutralising(value);
    let quote = value
        .bytes()
        .any(|b| matches!(b, b',' | b'"' | b'\r' | b'\n'))
        || value.starts_with(' ')
        || value.ends_with(' ');
    if quote {
        line.push('"');
    }
    if neutralise {
        line.push('\'');
    }
    if quote {
        for (i, part) in value.split('"').enumerate() {
            if i > 0 {
                line.push_str("\"\"");
            }
            line.push_str(part);
        }
        line.push('"');
    } else {
        line.push_str(value);
    }
}

/// Appends a field the portal produced itself (a number, a date), as it is.
pub fn push_raw(line: &mut String, value: &str) {
    line.push_str(value);
}

/// One record being appended to a line: commas between the fields, `\r\n` at
/// [`Record::end`].
///
/// ```
/// # use app::domain::csv::Record;
/// let mut line = String::new();
/// let mut r = Record::new(&mut line);
/// r.raw("2026-11").text("=cmd").text("a, b");
/// r.end();
/// assert_eq!(line, "2026-11,'=cmd,\"a, b\"\r\n");
/// ```
pub struct Record<'a> {
    line: &'a mut String,
    first: bool,
}

impl<'a> Record<'a> {
    pub fn new(line: &'a mut String) -> Record<'a> {
        Record { line, first: true }
    }

    fn separate(&mut self) {
        if !self.first {
            self.line.push(',');
        }
        self.first = false;
    }

    /// A text field (see [`push_text`]).
    pub fn text(&mut self, value: &str) -> &mut Self {
        self.separate();
        push_text(self.line, value);
        self
    }

    /// A field the portal produced itself (see [`push_raw`]).
    pub fn raw(&mut self, value: &str) -> &mut Self {
        self.separate();
        push_raw(self.line, value);
        self
    }

    /// Ends the record with `\r\n` (RFC 4180 §2.1).
    pub fn end(self) {
        self.line.push_str("\r\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn field(value: &str) -> String {
        let mut s = String::new();
        push_text(&mut s, value);
        s
    }

    /// A tiny, strict RFC 4180 reader: records end with CRLF, fields are either bare
    /// (no comma, quote, CR or LF) or quoted with `""` for a quote. Panics on anything
    /// else, so a sloppy writer fails the tests.
    fn read(s: &str) -> Vec<Vec<String>> {
        let mut records = Vec::new();
        let mut record = Vec::new();
        let mut chars = s.chars().peekable();
        loop {
            let mut value = String::new();
            if chars.peek() == Some(&'"') {
                chars.next();
                loop {
                    match chars.next().expect("a closing quote") {
                        '"' if chars.peek() == Some(&'"') => {
                            chars.next();
                            value.push('"');
                        }
                        '"' => break,
                        c => value.push(c),
                    }
                }
            } else {
                while let Some(&c) = chars.peek() {
                    if c == ',' || c == '\r' {
                        break;
                    }
                    assert!(c != '"' && c != '\n', "{c:?} in a bare field: {s:?}");
                    value.push(c);
                    chars.next();
                }
            }
            record.push(value);
            match chars.next() {
                Some(',') => {}
                Some('\r') => {
                    assert_eq!(chars.next(), Some('\n'), "CR without LF: {s:?}");
                    records.push(std::mem::take(&mut record));
                    if chars.peek().is_none() {
                        return records;
                    }
                }
                other => panic!("{other:?} after a field: {s:?}"),
            }
        }
    }

    fn read_field(s: &str) -> String {
        let mut records = read(&format!("{s}\r\n"));
        assert_eq!(records.len(), 1, "{s:?}");
        assert_eq!(records[0].len(), 1, "{s:?}");
        records.remove(0).remove(0)
    }

    #[test]
    fn a_formula_is_written_as_text() {
        assert_eq!(
            field("=HYPERLINK(\"http://x\",\"y\")"),
            "\"'=HYPERLINK(\"\"http://x\"\",\"\"y\"\")\""
        );
        assert_eq!(field("-1"), "'-1");
        assert_eq!(field("+49 30 1234"), "'+49 30 1234");
        assert_eq!(field("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(field("\tx"), "'\tx");
        assert_eq!(
            field("\rx"),
            "\"'\rx\"",
            "neutralised, then quoted for the CR"
        );
        assert_eq!(field("=1+2 "), "\"'=1+2 \"");
        assert_eq!(field("a=b"), "a=b", "only a leading character matters");
        assert_eq!(field("'=already"), "'=already");
    }

    #[test]
    fn fields_are_quoted_only_when_needed() {
        assert_eq!(field("laptop"), "laptop");
        assert_eq!(field("a,b"), "\"a,b\"");
        assert_eq!(field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(field("\""), "\"\"\"\"");
        assert_eq!(field("two\nlines"), "\"two\nlines\"");
        assert_eq!(field("two\r\nlines"), "\"two\r\nlines\"");
        assert_eq!(field(" padded "), "\" padded \"");
        assert_eq!(field("trailing "), "\"trailing \"");
        assert_eq!(field(""), "");
    }

    #[test]
    fn unicode_passes_through() {
        assert_eq!(field("Zoë's café"), "Zoë's café");
        assert_eq!(field("東京-laptop 💻"), "東京-laptop 💻");
        assert_eq!(field("－1"), "－1", "a full-width minus is not a formula");
        assert_eq!(field("«a,b»"), "\"«a,b»\"");
    }

    #[test]
    fn raw_fields_are_written_as_they_are() {
        let mut s = String::new();
        push_raw(&mut s, "-1");
        assert_eq!(s, "-1", "our own numbers are never neutralised");
    }

    #[test]
    fn a_record_separates_and_ends_its_fields() {
        let mut line = String::from("kept,");
        let mut r = Record::new(&mut line);
        r.raw("2026-11-05")
            .text("tacme")
            .text("a,b")
            .raw("-3600")
            .text("-1");
        r.end();
        assert_eq!(line, "kept,2026-11-05,tacme,\"a,b\",-3600,'-1\r\n");
        let mut empty = String::new();
        Record::new(&mut empty).end();
        assert_eq!(empty, "\r\n");
    }

    /// Text as people type it, plus the characters that matter here.
    fn text() -> impl Strategy<Value = String> {
        prop_oneof![
            "\\PC{0,40}",
            "[=+@,\" \r\n\t'-]{0,6}[a-zé€💻]{0,4}[ ,\"\r\n]{0,2}",
            any::<String>(),
        ]
    }

    fn expected(value: &str) -> String {
        if needs_neutralising(value) {
            format!("'{value}")
        } else {
            value.to_string()
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1024))]

        #[test]
        fn every_field_reads_back_as_written(value in text()) {
            let read = read_field(&field(&value));
            prop_assert_eq!(&read, &expected(&value));
            // What a spreadsheet sees never starts a formula.
            prop_assert!(!needs_neutralising(&read));
        }

        #[test]
        fn records_read_back_field_by_field(
            rows in prop::collection::vec(
                prop::collection::vec((any::<bool>(), text()), 1..6),
                1..5,
            ),
        ) {
            let mut out = String::new();
            for row in &rows {
                let mut r = Record::new(&mut out);
                for (is_text, value) in row {
                    if *is_text {
                        r.text(value);
                    } else {
                        // Raw fields are our own numbers: never anything to quote.
                        r.raw(&value.len().to_string());
                    }
                }
                r.end();
            }
            let want: Vec<Vec<String>> = rows
                .iter()
                .map(|row| {
                    row.iter()
                        .map(|(is_text, v)| if *is_text { expected(v) } else { v.len().to_string() })
                        .collect()
                })
                .collect();
            prop_assert_eq!(read(&out), want);
        }
    }
}
