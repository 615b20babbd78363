//! Syntax highlighting of HuJSON for the policy editor: the text cut into lines of
//! classified pieces. Tolerant of broken text (the editor shows it while it is typed):
//! an unterminated string or comment runs to the end of its line or of the text.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Kind {
    Space,
    Comment,
    /// A string that is an object key.
    Key,
    String,
    Number,
    /// `true`, `false`, `null`.
    Literal,
    Punct,
    /// Anything a policy cannot contain.
    Other,
}

impl Kind {
    /// The Tailwind classes of a piece of this kind.
    pub fn class(self) -> &'static str {
        match self {
            Kind::Space | Kind::Punct => "",
            Kind::Comment => "text-slate-500 italic dark:text-slate-400",
            Kind::Key => "text-indigo-700 dark:text-indigo-300",
            Kind::String => "text-emerald-700 dark:text-emerald-300",
            Kind::Number | Kind::Literal => "text-amber-700 dark:text-amber-300",
            Kind::Other => "text-rose-700 underline decoration-wavy dark:text-rose-300",
        }
    }
}

/// The text's lines, each a list of (kind, piece); joining the pieces of all lines with
/// `\n` gives the text back.
pub fn lines(text: &str) -> Vec<Vec<(Kind, String)>> {
    let chars: Vec<char> = text.chars().collect();
    let mut pieces: Vec<(Kind, String)> = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let start = i;
        let kind = if c == '\n' {
            i += 1;
            pieces.push((Kind::Space, "\n".into()));
            continue;
        } else if c.is_whitespace() {
            while i < chars.len() && chars[i].is_whitespace() && chars[i] != '\n' {
                i += 1;
            }
            Kind::Space
        } else if c == '/' && chars.get(i + 1) == Some(&'/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
            Kind::Comment
        } else if c == '/' && chars.get(i + 1) == Some(&'*') {
            i += 2;
            while i < chars.len() && !(chars[i] == '*' && chars.get(i + 1) == Some(&'/')) {
                i += 1;
            }
            i = (i + 2).min(chars.len());
            Kind::Comment
        } else if c == '"' {
            i += 1;
            while i < chars.len() && chars[i] != '"' && chars[i] != '\n' {
                if chars[i] == '\\' {
                    i += 1;
                }
                i += 1;
            }
            if i < chars.len() && chars[i] == '"' {
                i += 1;
            }
            i = i.min(chars.len());
            if is_key(&chars, i) {
                Kind::Key
            } else {
                Kind::String
            }
        } else if c == '-' || c.is_ascii_digit() {
            i += 1;
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric() || matches!(chars[i], '.' | '+' | '-'))
            {
                i += 1;
            }
            Kind::Number
        } else if c.is_ascii_alphabetic() {
            while i < chars.len() && chars[i].is_ascii_alphanumeric() {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            if matches!(word.as_str(), "true" | "false" | "null") {
                Kind::Literal
            } else {
                Kind::Other
            }
        } else if matches!(c, '{' | '}' | '[' | ']' | ':' | ',') {
            i += 1;
            Kind::Punct
        } else {
            i += 1;
            Kind::Other
        };
        pieces.push((kind, chars[start..i].iter().collect()));
    }
    // Cut at newlines (comments and spaces may span lines).
    let mut out = vec![Vec::new()];
    for (kind, piece) in pieces {
        let mut parts = piece.split('\n').peekable();
        while let Some(part) = parts.next() {
            if !part.is_empty() {
                out.last_mut()
                    .expect("a line")
                    .push((kind, part.to_string()));
            }
            if parts.peek().is_some() {
                out.push(Vec::new());
            }
        }
    }
    out
}

/// Whether the string ending before `i` is followed by a `:` (an object key).
fn is_key(chars: &[char], mut i: usize) -> bool {
    while i < chars.len() && chars[i].is_whitespace() {
        i += 1;
    }
    chars.get(i) == Some(&':')
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn keys_strings_comments_and_numbers() {
        let l = lines("{\n  // who\n  \"acls\": [\"a\", 1, true], /* x\ny */\n}");
        assert_eq!(l.len(), 5);
        assert_eq!(
            l[1],
            [(Kind::Space, "  ".into()), (Kind::Comment, "// who".into())]
        );
        let kinds: Vec<Kind> = l[2]
            .iter()
            .map(|(k, _)| *k)
            .filter(|k| *k != Kind::Space)
            .collect();
        assert_eq!(
            kinds,
            [
                Kind::Key,
                Kind::Punct,
                Kind::Punct,
                Kind::String,
                Kind::Punct,
                Kind::Number,
                Kind::Punct,
                Kind::Literal,
                Kind::Punct,
                Kind::Punct,
                Kind::Comment
            ]
        );
        assert_eq!(l[3], [(Kind::Comment, "y */".into())]);
    }

    proptest! {
        #[test]
        fn the_pieces_give_the_text_back(text in "[ -~\\n\"/*{}]{0,200}") {
            let joined: Vec<String> = lines(&text)
                .into_iter()
                .map(|l| l.into_iter().map(|(_, p)| p).collect::<String>())
                .collect();
            prop_assert_eq!(joined.join("\n"), text);
        }
    }
}
