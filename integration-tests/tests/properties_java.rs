//! `strom_client::parse_properties` against Java's own `java.util.Properties.load`, on
//! tricky inputs: each input is written to a file, loaded by the small Java program
//! `integration-tests/java/PropertiesDump.java` and parsed by Strom, and the two must give
//! the same keys and values (Java keeps the last of duplicated keys, so Strom's list is
//! read the same way) or both refuse the file (Java's `IllegalArgumentException` for a
//! malformed `\uXXXX`). Needs a JDK (no broker); without one the test fails saying what to
//! install.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use strom_client::parse_properties;
use strom_integration_tests::run_java_program;

/// Inputs that exercise every rule of `Properties.load`: (name, file contents).
fn cases() -> Vec<(&'static str, String)> {
    let c: &[(&str, &str)] = &[
        ("separators", "a=b\nc = d\ne:f\ng h\ni\nj\t \tk\nl :m\nn\x0c=\x0co\n"),
        ("separator_runs", "k==v\nk2 = = v\nk3 : : v\nk4 =:v\nk5  v w  \nk6:=v\n"),
        ("empty_keys_and_values", "=v\n:w\n = x\nkey=\nkey2:\nkey3   \nkey4\\\n"),
        ("value_whitespace_kept", "k = value with trailing   \nt=\ttab\\t\n"),
        ("continuation", "k=a\\\n   b\\\n\tc\\\n\x0c d\nnext=1\n"),
        ("even_backslashes_end_the_line", "k=a\\\\\nnext=1\n"),
        ("odd_backslashes_continue", "k=a\\\\\\\nb\nn=c\\\\\\\\\\\n  d\n"),
        ("continuation_in_key", "ke\\\n   y=v\nsep\\\n  =w\n"),
        ("continuation_into_comment_char", "k=a\\\n#b\nk2=c\\\n  !d\n"),
        ("continuation_into_blank_line", "k=a\\\n\nn=1\nm=b\\\n   \nz=2\n"),
        ("continuation_of_whitespace_only", "\\\n  k=v\n   \\\n\nq=r\n"),
        ("trailing_backslash_at_eof", "k=v\\"),
        ("trailing_even_backslashes_at_eof", "k=v\\\\"),
        ("continuation_then_eof", "k=v\\\n"),
        ("continuation_then_whitespace_eof", "k=v\\\n   "),
        ("no_final_newline", "a=1\nb=2"),
        ("escaped_separators_in_key", "a\\=b\\:c\\ d=v\n\\#notcomment=1\n\\!x=2\nsp\\ ace value\n"),
        ("escaped_backslash_in_key", "a\\\\b=c\nd\\\\=e\n"),
        ("escapes_in_value", "k=a\\nb\\tc\\rd\\fe\\\\f\\=g\\:h\\ i\\#j\n"),
        ("unknown_escapes", "k=\\q\\z\\b\\0\\\"\\'\n\\qkey=v\n"),
        ("escaped_leading_space_in_value", "k=\\ \\ v\nk2= \\  w\n"),
        ("escaped_trailing_space", "k=v\\ \n"),
        ("unicode_escapes", "k=\\u0041\\u00e9\\u20AC\\u00E9\nu\\u0041=x\n\\u0020lead=y\n"),
        ("unicode_escaped_separator_is_not_one", "a\\u003db=c\nd\\u0020e f\n"),
        ("surrogate_pair_escape", "smile=\\uD83D\\uDE00\n"),
        ("unicode_escape_across_continuation", "k=\\u00\\\n  41\n"),
        ("raw_utf8", "k=é€😀 ok\nclé=värde\n"),
        (
            "comments",
            "# c\n! c\n   # indented\n\t! tabbed\n\x0c# ff\nk=v # not a comment\nk2=v ! neither\n",
        ),
        ("comment_with_trailing_backslash", "# comment \\\nk=v\n! also \\\nk2=w\n"),
        ("comment_backslash_then_backslash_line", "# c\\\n\\\nk=v\n"),
        ("blank_and_whitespace_lines", "\n\n   \n\t\n\x0c\n \t\x0c \nk=v\n\n"),
        ("crlf", "a=1\r\nb=2\r\n\r\nc=3\\\r\n  4\r\n"),
        ("lone_cr", "a=1\rb=2\r\rc=3\\\r  4\rd=5"),
        ("cr_then_crlf", "a=1\\\r\r\nb=2\n"),
        ("mixed_line_ends", "a=1\n\rb=2\r\n\nc=3\\\n\r\nd=4\n"),
        ("form_feed_whitespace", "\x0ck\x0c=\x0cv\x0c\nk2\x0cv2\n"),
        ("duplicates_last_wins", "k=1\nk=2\nk 3\nj=a\nj=\n"),
        ("only_comments", "# a\n! b\n"),
        ("empty_file", ""),
        ("backslash_alone", "\\\n"),
        ("backslash_alone_at_eof", "k=v\n\\"),
        ("two_backslash_lines_at_eof", "\\\n\\\n"),
        ("backslash_crlf_at_eof", "\\\r\n"),
        ("comment_cr_backslash", "# c\\\rk=v\r! d\\\r\nj=w"),
        ("key_is_backslash_escape", "\\\\\n\\ \n"),
        ("long_continuation_chain", "k=1\\\n2\\\n3\\\n4\\\n5\\\n6\\\n7\n"),
        ("tab_key_escape", "\\tkey=v\n\\nkey=w\n"),
        ("jaas_like", "sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required \\\n    username=\"u\" \\\n    password=\"p\";\n"),
        // Java throws IllegalArgumentException ("Malformed \\uxxxx encoding."): an error.
        ("malformed_unicode_bad_digit", "k=\\u12G4\n"),
        ("malformed_unicode_short_eol", "k=\\u12\nn=1\n"),
        ("malformed_unicode_bare", "k=\\u\n"),
        ("malformed_unicode_in_key", "\\uXYZW=v\n"),
        ("malformed_unicode_at_eof", "k=\\u00"),
    ];
    c.iter().map(|(n, t)| (*n, (*t).to_owned())).collect()
}

/// PropertiesDump.java's escaping: `\\`, printable ASCII 0x21..0x7e as is, anything else
/// (UTF-16 code units) as `\uXXXX` in lower-case hex.
fn escape(s: &str) -> String {
    let mut out = String::new();
    for u in s.encode_utf16() {
        match u {
            0x5c => out.push_str("\\\\"),
            0x21..=0x7e => out.push(char::from(u as u8)),
            _ => out.push_str(&format!("\\u{u:04x}")),
        }
    }
    out
}

/// What one side made of a file: its entries as escaped `key<TAB>value` lines (sorted),
/// or an error.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Entries(Vec<String>),
    Error,
}

fn strom(text: &str) -> (Outcome, Option<String>) {
    match parse_properties(text) {
        Ok(list) => {
            // Properties.load puts every entry in a map: the last of a key wins.
            let map: BTreeMap<String, String> = list.into_iter().collect();
            let mut lines: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("{}\t{}", escape(k), escape(v)))
                .collect();
            lines.sort();
            (Outcome::Entries(lines), None)
        }
        Err(e) => (Outcome::Error, Some(e.to_string())),
    }
}

/// PropertiesDump's output, per file in argument order.
fn java(files: &[String]) -> Vec<(Outcome, Option<String>)> {
    let args: Vec<&str> = files.iter().map(String::as_str).collect();
    let out = run_java_program("PropertiesDump", &args);
    let mut sections: Vec<(String, Vec<String>)> = Vec::new();
    for line in out.lines() {
        match line.strip_prefix("== ") {
            Some(file) => sections.push((file.to_owned(), Vec::new())),
            None => sections
                .last_mut()
                .unwrap_or_else(|| panic!("PropertiesDump printed {line:?} before any file"))
                .1
                .push(line.to_owned()),
        }
    }
    let names: Vec<&String> = sections.iter().map(|(f, _)| f).collect();
    assert_eq!(
        names,
        files.iter().collect::<Vec<_>>(),
        "PropertiesDump's sections:\n{out}"
    );
    sections
        .into_iter()
        .map(
            |(_, mut lines)| match lines.first().and_then(|l| l.strip_prefix("ERROR ")) {
                Some(e) => (Outcome::Error, Some(e.to_owned())),
                None => {
                    lines.sort();
                    (Outcome::Entries(lines), None)
                }
            },
        )
        .collect()
}

#[test]
fn parse_properties_matches_java_properties_load() {
    let dir = std::env::temp_dir().join(format!("strom-properties-java-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cases = cases();
    let files: Vec<String> = cases
        .iter()
        .map(|(name, text)| {
            let path = dir.join(format!("{name}.properties"));
            std::fs::write(&path, text).unwrap();
            path.to_str().unwrap().to_owned()
        })
        .collect();
    let javas = java(&files);
    let _ = std::fs::remove_dir_all(&dir);

    let mut differ = Vec::new();
    let (mut entries, mut errors) = (0, 0);
    for ((name, text), (java, java_err)) in cases.iter().zip(javas) {
        let (ours, our_err) = strom(text);
        match &java {
            Outcome::Entries(l) => entries += l.len(),
            Outcome::Error => errors += 1,
        }
        if ours != java {
            differ.push(format!(
                "{name}: input {text:?}\n  Java:  {java:?} {}\n  Strom: {ours:?} {}",
                java_err.unwrap_or_default(),
                our_err.unwrap_or_default()
            ));
        } else if let Some(e) = our_err {
            // Strom's refusal says why and where, as an error for a config file should.
            assert!(e.contains("malformed \\uXXXX") && e.contains("line "), "{name}: {e}");
        }
    }
    assert!(
        differ.is_empty(),
        "parse_properties differs from Java's Properties.load on {} of {} inputs:\n{}",
        differ.len(),
        cases.len(),
        differ.join("\n")
    );
    // Not vacuous: Java read entries from most inputs and refused the malformed ones.
    assert!(entries > 80, "only {entries} entries from Java");
    assert_eq!(errors, 5, "Java refused {errors} inputs, expected the 5 malformed ones");
}
