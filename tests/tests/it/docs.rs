//! The documents: every relative link in the README, `docs/` and
//! `schemas/README.md` leads to a file that exists and, when it names a
//! heading (`#anchor`), to a heading of that file; every document in
//! `docs/` is linked from the README; the README stays short, with its two
//! commands near the top.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
};

/// The repository's root (this crate is `tests/`).
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The markdown documents a newcomer reads.
fn documents() -> Vec<PathBuf> {
    let root = root();
    let mut docs = vec![root.join("README.md"), root.join("schemas/README.md")];
    for entry in std::fs::read_dir(root.join("docs")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "md") {
            docs.push(path);
        }
    }
    docs.sort();
    docs
}

/// Text outside fenced code blocks: a `](` inside a code sample is not a link.
fn prose(text: &str) -> String {
    let mut out = String::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if !fenced {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// The targets of markdown links `[text](target)` in `text`.
fn links(text: &str) -> Vec<String> {
    let prose = prose(text);
    let mut found = Vec::new();
    let mut rest = prose.as_str();
    while let Some(at) = rest.find("](") {
        rest = &rest[at + 2..];
        if let Some(end) = rest.find(')') {
            found.push(rest[..end].to_owned());
            rest = &rest[end..];
        }
    }
    found
}

/// GitHub's anchor of a heading: lower case, punctuation dropped, spaces as `-`.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

/// The anchors of every heading of a markdown file.
fn anchors(text: &str) -> BTreeSet<String> {
    prose(text)
        .lines()
        .filter(|l| l.starts_with('#'))
        .map(|l| anchor(l.trim_start_matches('#')))
        .collect()
}

#[test]
fn every_relative_link_leads_to_a_file_and_heading_that_exist() {
    let mut dead = Vec::new();
    let mut checked = 0;
    for doc in documents() {
        let text = std::fs::read_to_string(&doc).unwrap();
        for target in links(&text) {
            if target.starts_with("http://") || target.starts_with("https://") {
                continue;
            }
            checked += 1;
            let (file, heading) = match target.split_once('#') {
                Some((file, heading)) => (file, Some(heading)),
                None => (target.as_str(), None),
            };
            let path = if file.is_empty() {
                doc.clone()
            } else {
                doc.parent().unwrap().join(file)
            };
            if !path.exists() {
                dead.push(format!("{}: {target} (no such file)", doc.display()));
                continue;
            }
            if let Some(heading) = heading {
                let text = std::fs::read_to_string(&path).unwrap();
                if !anchors(&text).contains(heading) {
                    dead.push(format!("{}: {target} (no such heading)", doc.display()));
                }
            }
        }
    }
    assert!(dead.is_empty(), "dead links:\n{}", dead.join("\n"));
    assert!(
        checked > 20,
        "only {checked} links found: is the parser broken?"
    );
}

#[test]
fn a_dead_link_is_found() {
    // The checker itself: a link to a missing heading and one to a present one.
    let text =
        "# Title\n## Two words here\n[a](#two-words-here) [b](#missing)\n```\n[c](nowhere)\n```\n";
    assert_eq!(links(text), ["#two-words-here", "#missing"]);
    let anchors = anchors(text);
    assert!(anchors.contains("two-words-here"));
    assert!(!anchors.contains("missing"));
    assert_eq!(
        anchor("Clinics at the edge: recording while the line is down"),
        "clinics-at-the-edge-recording-while-the-line-is-down"
    );
}

#[test]
fn every_document_in_docs_is_linked_from_the_readme() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let linked: BTreeSet<String> = links(&readme).into_iter().collect();
    for doc in documents() {
        let relative = doc.strip_prefix(root()).unwrap().display().to_string();
        if relative != "README.md" {
            assert!(
                linked.contains(&relative),
                "{relative} is not linked from the README"
            );
        }
    }
}

#[test]
fn the_readme_is_short_and_gives_the_two_commands_first() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let lines: Vec<&str> = readme.lines().collect();
    assert!(lines.len() <= 250, "README has {} lines", lines.len());
    let line_of = |command: &str| {
        lines
            .iter()
            .position(|l| l.trim() == command)
            .unwrap_or_else(|| panic!("README does not give `{command}` on a line of its own"))
    };
    assert!(line_of("./deploy/run-local.sh --demo") < 30);
    assert!(line_of("./tests/run.sh") < 30);
    // The test command the README gives is the one CI runs.
    let ci = std::fs::read_to_string(root().join(".ci/run")).unwrap();
    assert!(ci.lines().any(|l| l.trim() == "./tests/run.sh"));
}
