//! CSV fields as RFC 4180 writes them, safe to open in a spreadsheet (the billing
//! exports, docs/billing-export.md).
//!
//! Text is neutralised against formula injection (OWASP "CSV injection"): a value whose
//! first character is `=`, `+`, `-`, `@`, a tab or a carriage return gets a leading `'`,
//! which spreadsheets show as text and never evaluate. Numbers the portal writes itself
//! go through `push_raw` untouched.

/// Appends a text field: neutralised, then quoted (with `""` doubling) when it contains
/// a comma, a quote, CR or LF, or starts or ends with a space.
pub fn push_text(line: &mut String, value: &str) {
    let neutralise = matches!(
        value.as_bytes().first(),
        Some(b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r')
    );
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn field(value: &str) -> String {
        let mut s = String::new();
        push_text(&mut s, value);
        s
    }

    /// A tiny RFC 4180 reader for one field (the whole input).
    fn read_field(s: &str) -> String {
        match s.strip_prefix('"') {
            Some(inner) => {
                let inner = inner.strip_suffix('"').expect("a closing quote");
                assert!(
                    !inner.replace("\"\"", "").contains('"'),
                    "a lone quote inside: {s}"
                );
                inner.replace("\"\"", "\"")
            }
            None => {
                assert!(!s.contains([',', '"', '\r', '\n']), "unquoted: {s}");
                s.to_string()
            }
        }
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
        assert_eq!(field("a=b"), "a=b", "only a leading character matters");
    }

    #[test]
    fn fields_are_quoted_only_when_needed() {
        assert_eq!(field("laptop"), "laptop");
        assert_eq!(field("a,b"), "\"a,b\"");
        assert_eq!(field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(field("two\nlines"), "\"two\nlines\"");
        assert_eq!(field(" padded "), "\" padded \"");
        assert_eq!(field("Zoë's café"), "Zoë's café");
        assert_eq!(field(""), "");
    }

    proptest! {
        #[test]
        fn every_field_reads_back_as_written(value in "\\PC{0,40}|[=+@,\" \r\n\t-]{0,6}[a-z]{0,4}") {
            let read = read_field(&field(&value));
            let neutralised = matches!(value.chars().next(), Some('=' | '+' | '-' | '@' | '\t' | '\r'));
            if neutralised {
                prop_assert_eq!(read, format!("'{value}"));
            } else {
                prop_assert_eq!(read, value);
            }
        }
    }
}
