//! `sasl.jaas.config`, parsed as Java's `org.apache.kafka.common.security.JaasConfig` does:
//! `LoginModuleClass flag key=value key="quoted value" ... ;` with exactly one login module.
//!
//! Values may be secrets: errors name keys and positions, never values.

use std::collections::BTreeMap;
use std::fmt;

use crate::error::{Error, Result};

/// One login module entry.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct JaasConfig {
    /// The login module class, e.g. `org.apache.kafka.common.security.plain.PlainLoginModule`.
    pub(crate) module: String,
    /// Options in order of appearance (a repeated key keeps its last value, as Java's map).
    pub(crate) options: BTreeMap<String, String>,
}

impl fmt::Debug for JaasConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Option values carry passwords: only the keys are shown.
        f.debug_struct("JaasConfig")
            .field("module", &self.module)
            .field("options", &self.options.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl JaasConfig {
    /// An option's value.
    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.options.get(key).map(String::as_str)
    }

    /// A boolean option (`true`/`false`, any case); absent = `default`.
    #[cfg_attr(not(feature = "gssapi"), allow(dead_code))]
    pub(crate) fn flag(&self, key: &str, default: bool) -> Result<bool> {
        match self.get(key) {
            None => Ok(default),
            Some(v) if v.eq_ignore_ascii_case("true") => Ok(true),
            Some(v) if v.eq_ignore_ascii_case("false") => Ok(false),
            Some(_) => Err(Error::config(format!(
                "sasl.jaas.config: option {key} must be true or false"
            ))),
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Token {
    Word(String),
    Quoted(String),
    Equals,
    Semicolon,
}

fn tokenize(text: &str) -> Result<Vec<Token>> {
    let err = |what: &str| Error::config(format!("sasl.jaas.config: {what}"));
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '=' => {
                chars.next();
                out.push(Token::Equals);
            }
            ';' => {
                chars.next();
                out.push(Token::Semicolon);
            }
            '"' | '\'' => {
                let quote = c;
                chars.next();
                let mut s = String::new();
                loop {
                    match chars.next() {
                        None => return Err(err("a quoted value is not closed")),
                        Some(q) if q == quote => break,
                        // Java's StreamTokenizer: backslash escapes inside quotes.
                        Some('\\') => match chars.next() {
                            None => return Err(err("a quoted value is not closed")),
                            Some('n') => s.push('\n'),
                            Some('t') => s.push('\t'),
                            Some('r') => s.push('\r'),
                            Some(e) => s.push(e),
                        },
                        Some(ch) => s.push(ch),
                    }
                }
                out.push(Token::Quoted(s));
            }
            '/' => {
                chars.next();
                match chars.next() {
                    Some('/') => {
                        for ch in chars.by_ref() {
                            if ch == '\n' {
                                break;
                            }
                        }
                    }
                    Some('*') => {
                        let mut prev = '\0';
                        let mut closed = false;
                        for ch in chars.by_ref() {
                            if prev == '*' && ch == '/' {
                                closed = true;
                                break;
                            }
                            prev = ch;
                        }
                        if !closed {
                            return Err(err("a /* comment is not closed"));
                        }
                    }
                    _ => return Err(err("unexpected '/' (comments are // or /* */)")),
                }
            }
            _ => {
                let mut s = String::new();
                while let Some(&ch) = chars.peek() {
                    if ch.is_whitespace() || ch == '=' || ch == ';' || ch == '"' {
                        break;
                    }
                    s.push(ch);
                    chars.next();
                }
                out.push(Token::Word(s));
            }
        }
    }
    Ok(out)
}

/// Parses a `sasl.jaas.config` value holding exactly one login module.
pub(crate) fn parse(text: &str) -> Result<JaasConfig> {
    let err = |what: String| Error::config(format!("sasl.jaas.config: {what}"));
    let tokens = tokenize(text)?;
    let mut it = tokens.into_iter();
    let module = match it.next() {
        Some(Token::Word(w)) => w,
        None => {
            return Err(err(
                "empty: expected `LoginModuleClass required key=\"value\" ...;`".into()
            ))
        }
        Some(_) => return Err(err("expected a login module class name first".into())),
    };
    match it.next() {
        Some(Token::Word(flag))
            if ["required", "requisite", "sufficient", "optional"]
                .iter()
                .any(|f| f.eq_ignore_ascii_case(&flag)) => {}
        _ => {
            return Err(err(format!(
                "expected a control flag (required, requisite, sufficient or optional) after {module}"
            )))
        }
    }
    let mut options = BTreeMap::new();
    loop {
        match it.next() {
            Some(Token::Semicolon) => break,
            Some(Token::Word(key)) => {
                if it.next() != Some(Token::Equals) {
                    return Err(err(format!("expected '=' after option {key}")));
                }
                match it.next() {
                    Some(Token::Word(v) | Token::Quoted(v)) => {
                        options.insert(key, v);
                    }
                    _ => return Err(err(format!("option {key} has no value"))),
                }
            }
            None => return Err(err("the login module entry must end with ';'".into())),
            Some(_) => return Err(err("expected an option name (key=value)".into())),
        }
    }
    if it.next().is_some() {
        return Err(err(
            "must contain exactly one login module (text follows the first ';')".into(),
        ));
    }
    Ok(JaasConfig { module, options })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_forms() {
        let j = parse(
            "org.apache.kafka.common.security.plain.PlainLoginModule required username=\"alice\" password=\"a b\\\"c\";",
        )
        .unwrap();
        assert_eq!(j.module, "org.apache.kafka.common.security.plain.PlainLoginModule");
        assert_eq!(j.get("username"), Some("alice"));
        assert_eq!(j.get("password"), Some("a b\"c"));
        let dbg = format!("{j:?}");
        assert!(!dbg.contains("a b") && !dbg.contains("alice"), "{dbg}");

        let j = parse(
            "com.sun.security.auth.module.Krb5LoginModule required\n  useKeyTab=true storeKey=true\n  keyTab=\"/etc/k.keytab\" // comment\n  principal=\"client@EXAMPLE.COM\" /* c */;\n",
        )
        .unwrap();
        assert!(j.flag("useKeyTab", false).unwrap());
        assert_eq!(j.get("keyTab"), Some("/etc/k.keytab"));
        assert_eq!(j.get("principal"), Some("client@EXAMPLE.COM"));

        let j = parse(
            "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required unsecuredLoginStringClaim_sub=\"strom\" unsecuredLoginLifetimeSeconds=60;",
        )
        .unwrap();
        assert_eq!(j.get("unsecuredLoginStringClaim_sub"), Some("strom"));
        assert_eq!(j.get("unsecuredLoginLifetimeSeconds"), Some("60"));
        let j = parse("X required;").unwrap();
        assert!(j.options.is_empty());
    }

    #[test]
    fn errors_never_show_values() {
        for (text, want) in [
            ("", "empty"),
            ("X", "control flag"),
            ("X maybe;", "control flag"),
            ("X required password=\"hunter2\"", "must end with ';'"),
            ("X required password \"hunter2\";", "expected '=' after option password"),
            ("X required password=;", "option password has no value"),
            ("X required password=\"hunter2;", "not closed"),
            ("X required; Y required;", "exactly one login module"),
        ] {
            let e = parse(text).unwrap_err().to_string();
            assert!(e.contains(want), "{text:?}: {e}");
            assert!(!e.contains("hunter2"), "{e}");
            assert!(e.contains("sasl.jaas.config"), "{e}");
        }
    }
}
