//! The README and the code cannot drift apart: its settings table (with the cookie-session
//! table of docs/sessions.md) lists exactly the settings config.rs reads, each under its
//! environment name, and every `redauth` command it shows is one the CLI accepts.

use std::collections::BTreeSet;

use clap::Parser as _;
use redauth_server::app::FIRST_ADMIN_COMMANDS;
use redauth_server::cli::Cli;
use redauth_server::config::Settings;

const README: &str = include_str!("../../../../README.md");
const SESSIONS_DOC: &str = include_str!("../../../../docs/sessions.md");

/// The text of each `` `…` `` in `cell`.
fn backticked(cell: &str) -> Vec<String> {
    cell.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

/// The rows of the first table in `doc` after `heading`, as their cells.
fn table_rows<'a>(doc: &'a str, heading: &str) -> Vec<Vec<&'a str>> {
    let section = doc
        .split(&format!("\n{heading}\n"))
        .nth(1)
        .unwrap_or_else(|| panic!("no {heading:?}"));
    let table = section
        .lines()
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'));
    table.skip(2).map(|row| row.split('|').collect()).collect()
}

/// (TOML key, environment variable) pairs of the README table: the first column's keys
/// paired in order with the second column's variables.
fn readme_settings() -> BTreeSet<(String, String)> {
    let mut pairs = BTreeSet::new();
    for row in table_rows(README, "## Configuration") {
        let (keys, vars) = (backticked(row[1]), backticked(row[2]));
        assert_eq!(
            keys.len(),
            vars.len(),
            "keys and variables pair up: {row:?}"
        );
        pairs.extend(keys.into_iter().zip(vars));
    }
    pairs
}

/// The same from docs/sessions.md, whose rows name `` `key` / `VARIABLE` `` (or `—`
/// for options the server does not expose).
fn sessions_doc_settings() -> BTreeSet<(String, String)> {
    table_rows(SESSIONS_DOC, "## Options")
        .into_iter()
        .filter_map(|row| match backticked(row[1]).as_slice() {
            [key, var] => Some((key.clone(), var.clone())),
            _ => None,
        })
        .collect()
}

fn is_cookie_session_setting(key: &str) -> bool {
    key.starts_with("session_") || key == "login_issues"
}

#[test]
fn the_settings_tables_list_exactly_the_settings_config_reads() {
    let actual: BTreeSet<(String, String)> = Settings::NAMES
        .iter()
        .map(|(key, var)| (key.to_string(), var.to_string()))
        .collect();
    let readme = readme_settings();
    let documented: BTreeSet<_> = readme.union(&sessions_doc_settings()).cloned().collect();
    let undocumented: Vec<_> = actual.difference(&documented).collect();
    assert!(undocumented.is_empty(), "not documented: {undocumented:?}");
    let stale: Vec<_> = documented.difference(&actual).collect();
    assert!(
        stale.is_empty(),
        "documented, but no such setting: {stale:?}"
    );
    let outside_readme: Vec<_> = actual
        .iter()
        .filter(|pair| !is_cookie_session_setting(&pair.0) && !readme.contains(*pair))
        .collect();
    assert!(
        outside_readme.is_empty(),
        "only cookie-session settings may live in docs/sessions.md alone: {outside_readme:?}"
    );
}

/// `cargo run --release -- <args>` lines of the README, and the first-admin commands the
/// server logs, parse as `redauth <args>`.
#[test]
fn every_command_the_readme_shows_parses() {
    let mut commands: Vec<String> = README
        .lines()
        .filter_map(|l| l.trim().strip_prefix("cargo run --release"))
        .map(|rest| {
            let rest = rest.split('#').next().unwrap_or_default().trim();
            rest.strip_prefix("--").unwrap_or(rest).trim().to_owned()
        })
        .collect();
    assert!(commands.len() >= 5, "found only {commands:?}");
    commands.extend(FIRST_ADMIN_COMMANDS.split("&&").map(|c| {
        c.trim()
            .trim_start_matches("redauth ")
            .replace("<name>", "alice")
            .replace("<address>", "alice@example.com")
    }));
    for command in &commands {
        let args = std::iter::once("redauth").chain(command.split_whitespace());
        if let Err(e) = Cli::try_parse_from(args) {
            panic!("`redauth {command}` does not parse: {e}");
        }
    }
}
