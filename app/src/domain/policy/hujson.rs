//! HuJSON ("human JSON", what Tailscale policies are written in): JSON with `//` and
//! `/* */` comments and trailing commas. Parsed into a tree that remembers where each
//! value and each object key starts (line and column, from 1), so every later error can
//! point at the tenant's text.
//!
//! Strict where JSON is strict: no single quotes, no unquoted keys, no NaN; duplicate
//! keys in one object are an error (JSON leaves them undefined; a policy must not).

use std::fmt;

/// A place in the text: line and column (in characters), both from 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Pos {
    pub line: u32,
    pub col: u32,
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.col)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Number(f64),
    String(String),
    Array(Vec<Node>),
    /// Keys in the order written, each with where the key starts.
    Object(Vec<(String, Pos, Node)>),
}

/// A value and where it starts.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub pos: Pos,
    pub value: Value,
}

impl Node {
    pub fn kind(&self) -> &'static str {
        match self.value {
            Value::Null => "null",
            Value::Bool(_) => "true or false",
            Value::Number(_) => "a number",
            Value::String(_) => "a string",
            Value::Array(_) => "a list",
            Value::Object(_) => "an object",
        }
    }
}

/// A syntax error: where, and what in a sentence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub pos: Pos,
    pub message: String,
}

impl fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.pos, self.message)
    }
}

/// Deeper nesting than any policy needs is refused (and keeps the parser's recursion
/// bounded on hostile input).
const MAX_DEPTH: usize = 64;

pub fn parse(text: &str) -> Result<Node, SyntaxError> {
    let mut p = Parser {
        chars: text.chars().collect(),
        i: 0,
        line: 1,
        col: 1,
    };
    p.skip_space()?;
    let node = p.value(0)?;
    p.skip_space()?;
    if p.i < p.chars.len() {
        return Err(p.error("there is more text after the policy's closing brace"));
    }
    Ok(node)
}

struct Parser {
    chars: Vec<char>,
    i: usize,
    line: u32,
    col: u32,
}

impl Parser {
    fn pos(&self) -> Pos {
        Pos {
            line: self.line,
            col: self.col,
        }
    }

    fn error(&self, message: impl Into<String>) -> SyntaxError {
        SyntaxError {
            pos: self.pos(),
            message: message.into(),
        }
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.i).copied()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.i += 1;
        if c == '\n' {
            self.line += 1;
            self.col = 1;
        } else {
            self.col += 1;
        }
        Some(c)
    }

    /// Whitespace and comments.
    fn skip_space(&mut self) -> Result<(), SyntaxError> {
        loop {
            match self.peek() {
                Some(c) if c.is_whitespace() => {
                    self.bump();
                }
                Some('/') => {
                    let start = self.pos();
                    match self.chars.get(self.i + 1) {
                        Some('/') => {
                            while let Some(c) = self.bump() {
                                if c == '\n' {
                                    break;
                                }
                            }
                        }
                        Some('*') => {
                            self.bump();
                            self.bump();
                            loop {
                                match self.bump() {
                                    Some('*') if self.peek() == Some('/') => {
                                        self.bump();
                                        break;
                                    }
                                    Some(_) => {}
                                    None => {
                                        return Err(SyntaxError {
                                            pos: start,
                                            message: "this /* comment is never closed with */"
                                                .into(),
                                        })
                                    }
                                }
                            }
                        }
                        _ => {
                            return Err(self.error(
                                "a single / is not valid here; comments start with // or /*",
                            ))
                        }
                    }
                }
                _ => return Ok(()),
            }
        }
    }

    fn value(&mut self, depth: usize) -> Result<Node, SyntaxError> {
        if depth > MAX_DEPTH {
            return Err(self.error("the policy is nested too deeply"));
        }
        let pos = self.pos();
        let value = match self.peek() {
            None => return Err(self.error("the text ends where a value was expected")),
            Some('{') => self.object(depth)?,
            Some('[') => self.array(depth)?,
            Some('"') => Value::String(self.string()?),
            Some('t') => self.word("true", Value::Bool(true))?,
            Some('f') => self.word("false", Value::Bool(false))?,
            Some('n') => self.word("null", Value::Null)?,
            Some(c) if c == '-' || c.is_ascii_digit() => self.number()?,
            Some('\'') => {
                return Err(
                    self.error("strings are written in double quotes (\"…\"), not single quotes")
                )
            }
            Some(c) => return Err(self.error(format!("“{c}” cannot start a value here"))),
        };
        Ok(Node { pos, value })
    }

    fn word(&mut self, word: &str, value: Value) -> Result<Value, SyntaxError> {
        let start = self.pos();
        for expected in word.chars() {
            if self.peek() != Some(expected) {
                return Err(SyntaxError {
                    pos: start,
                    message: "expected a value: a string in double quotes, a number, a list, an object, true, false or null".into(),
                });
            }
            self.bump();
        }
        Ok(value)
    }

    fn number(&mut self) -> Result<Value, SyntaxError> {
        let start = self.pos();
        let mut s = String::new();
        while let Some(c) = self.peek() {
            if c.is_ascii_digit() || matches!(c, '-' | '+' | '.' | 'e' | 'E') {
                s.push(c);
                self.bump();
            } else {
                break;
            }
        }
        s.parse::<f64>()
            .ok()
            .filter(|n| n.is_finite())
            .map(Value::Number)
            .ok_or(SyntaxError {
                pos: start,
                message: format!("“{s}” is not a number"),
            })
    }

    fn string(&mut self) -> Result<String, SyntaxError> {
        let start = self.pos();
        self.bump(); // the opening quote
        let mut s = String::new();
        loop {
            match self.bump() {
                None | Some('\n') => {
                    return Err(SyntaxError {
                        pos: start,
                        message: "this string is not closed with \" on the same line".into(),
                    })
                }
                Some('"') => return Ok(s),
                Some('\\') => {
                    let at = self.pos();
                    match self.bump() {
                        Some('"') => s.push('"'),
                        Some('\\') => s.push('\\'),
                        Some('/') => s.push('/'),
                        Some('b') => s.push('\u{8}'),
                        Some('f') => s.push('\u{c}'),
                        Some('n') => s.push('\n'),
                        Some('r') => s.push('\r'),
                        Some('t') => s.push('\t'),
                        Some('u') => {
                            let mut code = String::new();
                            for _ in 0..4 {
                                code.extend(self.bump());
                            }
                            let c = u32::from_str_radix(&code, 16)
                                .ok()
                                .and_then(char::from_u32)
                                .ok_or(SyntaxError {
                                    pos: at,
                                    message: format!("\\u{code} is not a character"),
                                })?;
                            s.push(c);
                        }
                        _ => {
                            return Err(SyntaxError {
                                pos: at,
                                message: "unknown escape in a string (use \\\\ for a backslash)"
                                    .into(),
                            })
                        }
                    }
                }
                Some(c) if (c as u32) < 0x20 => {
                    return Err(self.error("a string cannot contain control characters"))
                }
                Some(c) => s.push(c),
            }
        }
    }

    fn array(&mut self, depth: usize) -> Result<Value, SyntaxError> {
        let open = self.pos();
        self.bump();
        let mut items = Vec::new();
        loop {
            self.skip_space()?;
            match self.peek() {
                Some(']') => {
                    self.bump();
                    return Ok(Value::Array(items));
                }
                None => {
                    return Err(SyntaxError {
                        pos: open,
                        message: "this list is never closed with ]".into(),
                    })
                }
                _ => {}
            }
            items.push(self.value(depth + 1)?);
            self.skip_space()?;
            match self.peek() {
                Some(',') => {
                    self.bump();
                }
                Some(']') => {}
                None => {
                    return Err(SyntaxError {
                        pos: open,
                        message: "this list is never closed with ]".into(),
                    })
                }
                Some(_) => return Err(self.error("expected a comma or ] after a list item")),
            }
        }
    }

    fn object(&mut self, depth: usize) -> Result<Value, SyntaxError> {
        let open = self.pos();
        self.bump();
        let mut fields: Vec<(String, Pos, Node)> = Vec::new();
        loop {
            self.skip_space()?;
            match self.peek() {
                Some('}') => {
                    self.bump();
                    return Ok(Value::Object(fields));
                }
                Some('"') => {}
                None => {
                    return Err(SyntaxError {
                        pos: open,
                        message: "this object is never closed with }".into(),
                    })
                }
                Some(_) => {
                    return Err(
                        self.error("expected a key in double quotes (or } to end the object)")
                    )
                }
            }
            let key_pos = self.pos();
            let key = self.string()?;
            if fields.iter().any(|(k, _, _)| *k == key) {
                return Err(SyntaxError {
                    pos: key_pos,
                    message: format!("“{key}” appears twice in this object"),
                });
            }
            self.skip_space()?;
            if self.peek() != Some(':') {
                return Err(self.error(format!("expected : after the key “{key}”")));
            }
            self.bump();
            self.skip_space()?;
            let value = self.value(depth + 1)?;
            fields.push((key, key_pos, value));
            self.skip_space()?;
            match self.peek() {
                Some(',') => {
                    self.bump();
                }
                Some('}') => {}
                None => {
                    return Err(SyntaxError {
                        pos: open,
                        message: "this object is never closed with }".into(),
                    })
                }
                Some(_) => return Err(self.error("expected a comma or } after a value")),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pos(line: u32, col: u32) -> Pos {
        Pos { line, col }
    }

    #[test]
    fn comments_and_trailing_commas_are_accepted() {
        let text = "// policy\n{\n  \"acls\": [ /* one */ {\"action\": \"accept\",},],\n}\n";
        let node = parse(text).unwrap();
        let Value::Object(fields) = node.value else {
            panic!("object")
        };
        assert_eq!(fields[0].0, "acls");
        assert_eq!(fields[0].1, pos(3, 3));
        let Value::Array(items) = &fields[0].2.value else {
            panic!("array")
        };
        assert_eq!(items[0].pos, pos(3, 23));
    }

    #[test]
    fn errors_point_at_the_place_with_a_sentence() {
        let cases: &[(&str, Pos, &str)] = &[
            ("{\n  \"a\": 'x'\n}", pos(2, 8), "double quotes"),
            ("{\"a\": 1 \"b\": 2}", pos(1, 9), "comma or }"),
            ("{\"a\": 1, \"a\": 2}", pos(1, 10), "appears twice"),
            ("{\"a\": [1, 2}", pos(1, 12), "comma or ]"),
            ("{\"a\": \"x\n\"}", pos(1, 7), "not closed"),
            ("/* open", pos(1, 1), "never closed"),
            ("{} x", pos(1, 4), "more text"),
            ("{a: 1}", pos(1, 2), "key in double quotes"),
            ("{\"a\": tru}", pos(1, 7), "expected a value"),
            ("", pos(1, 1), "ends where a value"),
        ];
        for (text, at, words) in cases {
            let e = parse(text).unwrap_err();
            assert_eq!(e.pos, *at, "{text:?}: {e}");
            assert!(e.message.contains(words), "{text:?}: {e}");
        }
    }

    #[test]
    fn strings_unescape_and_numbers_parse() {
        let node = parse(r#"["a\"b\u00e9", 22, -1.5e2, true, null]"#).unwrap();
        let Value::Array(items) = node.value else {
            panic!()
        };
        assert_eq!(items[0].value, Value::String("a\"bé".into()));
        assert_eq!(items[1].value, Value::Number(22.0));
        assert_eq!(items[2].value, Value::Number(-150.0));
        assert_eq!(items[3].value, Value::Bool(true));
        assert_eq!(items[4].value, Value::Null);
    }

    #[test]
    fn hostile_nesting_is_refused_not_overflowed() {
        let deep = "[".repeat(10_000);
        assert!(parse(&deep)
            .unwrap_err()
            .message
            .contains("nested too deeply"));
    }

    mod properties {
        use super::super::*;
        use proptest::prelude::*;

        proptest! {
            /// Whatever the input, the parser answers (a value or an error), never panics.
            #[test]
            fn never_panics(text in "\\PC{0,200}") {
                let _ = parse(&text);
            }

            /// Any JSON serde_json writes is valid HuJSON and parses to the same strings.
            #[test]
            fn json_is_hujson(keys in proptest::collection::vec("[a-z]{1,8}", 0..6), s in "\\PC{0,20}") {
                let mut map = serde_json::Map::new();
                for k in &keys {
                    map.insert(k.clone(), serde_json::Value::String(s.clone()));
                }
                let text = serde_json::to_string_pretty(&serde_json::Value::Object(map.clone())).unwrap();
                let node = parse(&text).unwrap();
                let Value::Object(fields) = node.value else { panic!() };
                prop_assert_eq!(fields.len(), map.len());
                for (k, _, v) in fields {
                    prop_assert_eq!(v.value, Value::String(map[&k].as_str().unwrap().to_string()));
                }
            }
        }
    }
}
