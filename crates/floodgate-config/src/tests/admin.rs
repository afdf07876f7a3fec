//! `[admin]`: the token from a file or an environment variable, never the
//! file itself; positioned errors for everything else.

use std::io::Write;

use super::{errors, parse, single_error};

fn token_file(content: &str) -> tempfile::NamedTempFile {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(content.as_bytes()).unwrap();
    file
}

#[test]
fn absent_section_is_off() {
    assert!(parse("").admin.is_none());
}

#[test]
fn a_token_file_is_read_and_trimmed() {
    let file = token_file("0123456789abcdef0123\n");
    let src = format!(
        "[admin]\ntoken_file = {:?}\nlisten = \"127.0.0.1:9723\"\n",
        file.path().display().to_string()
    );
    let admin = parse(&src).admin.unwrap();
    assert_eq!(admin.token.as_bytes(), b"0123456789abcdef0123");
    assert_eq!(admin.listen, Some("127.0.0.1:9723".parse().unwrap()));
    assert!(!format!("{admin:?}").contains("0123456789abcdef"));
    let summary = parse(&src).summary();
    assert!(
        summary.contains("admin API: on, on 127.0.0.1:9723"),
        "{summary}"
    );
    assert!(!summary.contains("0123456789abcdef"), "{summary}");
}

#[test]
fn a_token_env_is_read() {
    std::env::set_var(
        "FLOODGATE_TEST_ADMIN_TOKEN_OK",
        "abcdefghijklmnopqrstuvwxyz",
    );
    let admin = parse("[admin]\ntoken_env = \"FLOODGATE_TEST_ADMIN_TOKEN_OK\"\n")
        .admin
        .unwrap();
    assert_eq!(admin.token.as_bytes(), b"abcdefghijklmnopqrstuvwxyz");
    assert_eq!(admin.listen, None);
}

#[test]
fn a_token_in_the_file_is_refused_with_the_reason() {
    single_error(
        "[admin]\ntoken = \"0123456789abcdef0123\"\n",
        2,
        9,
        &["must not be written", "token_file", "token_env"],
    );
}

#[test]
fn no_token_source_is_an_error() {
    single_error(
        "[admin]\nlisten = \"127.0.0.1:9723\"\n",
        1,
        1,
        &["token_file"],
    );
}

#[test]
fn both_sources_are_an_error() {
    let file = token_file("0123456789abcdef0123");
    let src = format!(
        "[admin]\ntoken_file = {:?}\ntoken_env = \"X\"\n",
        file.path().display().to_string()
    );
    single_error(&src, 3, 13, &["only one"]);
}

#[test]
fn unreadable_empty_and_short_files_are_errors() {
    single_error(
        "[admin]\ntoken_file = \"/nonexistent/floodgate-token\"\n",
        2,
        14,
        &["cannot read", "/nonexistent/floodgate-token"],
    );
    let empty = token_file("  \n");
    let src = format!(
        "[admin]\ntoken_file = {:?}\n",
        empty.path().display().to_string()
    );
    single_error(&src, 2, 14, &["empty"]);
    let short = token_file("short-token");
    let src = format!(
        "[admin]\ntoken_file = {:?}\n",
        short.path().display().to_string()
    );
    single_error(&src, 2, 14, &["too short", "16"]);
    let spaced = token_file("0123456789 abcdef0123");
    let src = format!(
        "[admin]\ntoken_file = {:?}\n",
        spaced.path().display().to_string()
    );
    single_error(&src, 2, 14, &["visible ASCII"]);
}

#[test]
fn an_unset_env_and_a_bad_listen_are_errors() {
    single_error(
        "[admin]\ntoken_env = \"FLOODGATE_TEST_ADMIN_TOKEN_UNSET\"\n",
        2,
        13,
        &["not set"],
    );
    std::env::set_var("FLOODGATE_TEST_ADMIN_TOKEN_L", "abcdefghijklmnopqrstuvwxyz");
    let found = errors(
        "[admin]\ntoken_env = \"FLOODGATE_TEST_ADMIN_TOKEN_L\"\nlisten = \"nowhere\"\nmystery = 1\n",
    );
    assert_eq!(found.len(), 2, "{found:#?}");
    assert_eq!((found[0].0, found[1].0), (3, 4));
}
