//! Parsers for the summary lines of each test runner, and for apt sources.

/// Splits a line into alphanumeric tokens ("5 passed; 0 failed" -> ["5", "passed", "0", "failed"]).
fn tokens(line: &str) -> Vec<&str> {
    line.split(|c: char| !c.is_ascii_alphanumeric() && c != '_')
        .filter(|t| !t.is_empty())
        .collect()
}

/// The number right before `word` (or its singular/plural twin) in a token list.
fn count_before(toks: &[&str], words: &[&str]) -> Option<u64> {
    toks.windows(2)
        .find(|w| words.contains(&w[1]))
        .and_then(|w| w[0].parse().ok())
}

/// Sum of every libtest `test result: ok. N passed; M failed; ...` line.
/// Returns (passed, failed, number of result lines seen).
pub fn cargo_test_totals(output: &str) -> (u64, u64, u64) {
    let (mut passed, mut failed, mut seen) = (0, 0, 0);
    for line in output.lines() {
        let Some(i) = line.find("test result:") else {
            continue;
        };
        let toks = tokens(&line[i..]);
        if let (Some(p), Some(f)) = (
            count_before(&toks, &["passed"]),
            count_before(&toks, &["failed"]),
        ) {
            passed += p;
            failed += f;
            seen += 1;
        }
    }
    (passed, failed, seen)
}

/// The last `kotlin: N passed, N failed` line.
pub fn kotlin_totals(output: &str) -> Option<(u64, u64)> {
    output.lines().rev().find_map(|line| {
        let line = line.trim();
        let rest = line.strip_prefix("kotlin:")?;
        let toks = tokens(rest);
        Some((
            count_before(&toks, &["passed"])?,
            count_before(&toks, &["failed"])?,
        ))
    })
}

/// XCTest's closing `Executed N tests, with [K tests skipped and] M failures ...` (the last one
/// printed is the "All tests" suite). Returns (passed, failed, skipped).
pub fn xctest_totals(output: &str) -> Option<(u64, u64, u64)> {
    output.lines().rev().find_map(|line| {
        let i = line.find("Executed ")?;
        let toks = tokens(&line[i..]);
        let executed = count_before(&toks, &["test", "tests"])?;
        let failures = count_before(&toks, &["failure", "failures"])?;
        // "with 1 test skipped and ..." : the number before "test" that precedes "skipped".
        let skipped = toks
            .windows(3)
            .find(|w| w[2] == "skipped")
            .and_then(|w| w[0].parse().ok())
            .unwrap_or(0);
        Some((
            executed.saturating_sub(failures + skipped),
            failures,
            skipped,
        ))
    })
}

/// One `deb` source: where and which suites.
#[derive(Debug, PartialEq)]
pub struct AptSource {
    pub uri: String,
    pub suites: Vec<String>,
}

/// Parses one-line style sources (`/etc/apt/sources.list`, `*.list`).
pub fn apt_one_line_sources(text: &str) -> Vec<AptSource> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        let Some(rest) = line
            .strip_prefix("deb ")
            .or_else(|| line.strip_prefix("deb\t"))
        else {
            continue;
        };
        let mut rest = rest.trim_start();
        if rest.starts_with('[') {
            match rest.find(']') {
                Some(end) => rest = rest[end + 1..].trim_start(),
                None => continue,
            }
        }
        let mut parts = rest.split_whitespace();
        if let (Some(uri), Some(suite)) = (parts.next(), parts.next()) {
            out.push(AptSource {
                uri: uri.to_string(),
                suites: vec![suite.to_string()],
            });
        }
    }
    out
}

/// Parses deb822 style sources (`*.sources`).
pub fn apt_deb822_sources(text: &str) -> Vec<AptSource> {
    let mut out = Vec::new();
    for para in text.split("\n\n") {
        let mut fields: Vec<(String, String)> = Vec::new();
        for line in para.lines() {
            if line.trim_start().starts_with('#') || line.trim().is_empty() {
                continue;
            }
            if line.starts_with(' ') || line.starts_with('\t') {
                if let Some(last) = fields.last_mut() {
                    last.1.push(' ');
                    last.1.push_str(line.trim());
                }
            } else if let Some((k, v)) = line.split_once(':') {
                fields.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
            }
        }
        let get = |k: &str| {
            fields
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.as_str())
        };
        if get("enabled").is_some_and(|v| v.eq_ignore_ascii_case("no")) {
            continue;
        }
        if !get("types").is_some_and(|t| t.split_whitespace().any(|t| t == "deb")) {
            continue;
        }
        let suites: Vec<String> = get("suites")
            .unwrap_or("")
            .split_whitespace()
            .map(String::from)
            .collect();
        for uri in get("uris").unwrap_or("").split_whitespace() {
            out.push(AptSource {
                uri: uri.to_string(),
                suites: suites.clone(),
            });
        }
    }
    out
}

/// Picks the Debian archive mirror: the source that serves the release itself (suite equal to
/// the codename), then any non-security source of that release, then anything ending in /debian.
pub fn pick_debian_mirror(sources: &[AptSource], codename: &str) -> Option<String> {
    let not_security = |s: &&AptSource| !s.uri.contains("security");
    let clean = |u: &str| u.trim_end_matches('/').to_string();
    if !codename.is_empty() {
        if let Some(s) = sources
            .iter()
            .filter(not_security)
            .find(|s| s.suites.iter().any(|x| x == codename))
        {
            return Some(clean(&s.uri));
        }
        if let Some(s) = sources.iter().filter(not_security).find(|s| {
            s.suites
                .iter()
                .any(|x| x.starts_with(codename) && !x.ends_with("-security"))
        }) {
            return Some(clean(&s.uri));
        }
    }
    sources
        .iter()
        .filter(not_security)
        .find(|s| s.uri.trim_end_matches('/').ends_with("/debian"))
        .map(|s| clean(&s.uri))
}

/// The module name declared by a clang module map (`module NAME {`).
pub fn modulemap_module_name(text: &str) -> Option<String> {
    for line in text.lines() {
        let toks: Vec<&str> = line.split_whitespace().collect();
        if let Some(i) = toks.iter().position(|t| *t == "module") {
            let name = toks.get(i + 1)?.trim_end_matches('{');
            if !name.is_empty() {
                return Some(name.to_string());
            }
        }
    }
    None
}

/// The targets of one kind (`systemLibrary`, `target`) declared in a Package.swift, as
/// (name, path) pairs in order; `path` is None when the target uses SwiftPM's default folder.
pub fn swiftpm_targets(manifest: &str, kind: &str) -> Vec<(String, Option<String>)> {
    let code: String = manifest
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    let pat = format!(".{kind}(");
    let mut out = Vec::new();
    let mut rest = code.as_str();
    while let Some(i) = rest.find(&pat) {
        let body = &rest[i + pat.len()..];
        let (mut depth, mut in_str, mut end) = (1, false, body.len());
        for (j, ch) in body.char_indices() {
            match ch {
                '"' => in_str = !in_str,
                '(' if !in_str => depth += 1,
                ')' if !in_str => {
                    depth -= 1;
                    if depth == 0 {
                        end = j;
                        break;
                    }
                }
                _ => {}
            }
        }
        let args = &body[..end];
        if let Some(name) = string_arg(args, "name") {
            out.push((name, string_arg(args, "path")));
        }
        rest = body;
    }
    out
}

/// The string literal after `label:` in a Swift argument list (first occurrence).
fn string_arg(args: &str, label: &str) -> Option<String> {
    let pat = format!("{label}:");
    let mut from = 0;
    while let Some(i) = args[from..].find(&pat).map(|i| i + from) {
        let boundary = args[..i]
            .chars()
            .last()
            .is_none_or(|c| !(c.is_alphanumeric() || c == '_'));
        let after = args[i + pat.len()..].trim_start();
        if let Some(lit) = after.strip_prefix('"').filter(|_| boundary) {
            return lit.find('"').map(|e| lit[..e].to_string());
        }
        from = i + pat.len();
    }
    None
}

/// Function names from `gcc -aux-info` output, keeping only declarations made in `header`.
pub fn aux_info_functions(aux: &str, header: &str) -> Vec<String> {
    let mut names = Vec::new();
    for line in aux.lines() {
        let Some(rest) = line.strip_prefix("/* ") else {
            continue;
        };
        let Some((origin, decl)) = rest.split_once("*/") else {
            continue;
        };
        let file = origin.rsplitn(3, ':').nth(2).unwrap_or("");
        if file != header {
            continue;
        }
        let Some(open) = decl.find('(') else {
            continue;
        };
        let name: String = decl[..open]
            .trim_end()
            .chars()
            .rev()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        if !name.is_empty() && !names.contains(&name) {
            names.push(name);
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_libtest_result_lines() {
        let out = "\
running 3 tests
test a ... ok
test result: ok. 3 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.01s

test result: FAILED. 7 passed; 2 failed; 1 ignored; 0 measured; 0 filtered out; finished in 1.2s
   Doc-tests presence_protocol
test result: ok. 0 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.00s
";
        assert_eq!(cargo_test_totals(out), (10, 2, 3));
        assert_eq!(
            cargo_test_totals("error[E0432]: unresolved import"),
            (0, 0, 0)
        );
    }

    #[test]
    fn reads_the_kotlin_runner_line() {
        let out = "JUnit version 4.13.2\n...\nkotlin: 12 passed, 1 failed\n";
        assert_eq!(kotlin_totals(out), Some((12, 1)));
        assert_eq!(
            kotlin_totals("  kotlin: 3 passed, 0 failed  "),
            Some((3, 0))
        );
        assert_eq!(kotlin_totals("no summary"), None);
    }

    #[test]
    fn reads_xctest_closing_line() {
        let out = "\
Test Suite 'PresenceTests' passed at 2026-01-01 10:00:00.000
\t Executed 5 tests, with 0 failures (0 unexpected) in 1.2 (1.2) seconds
Test Suite 'All tests' failed at 2026-01-01 10:00:00.000
\t Executed 6 tests, with 1 test skipped and 2 failures (0 unexpected) in 1.3 (1.3) seconds
";
        assert_eq!(xctest_totals(out), Some((3, 2, 1)));
        assert_eq!(
            xctest_totals(
                "\t Executed 1 test, with 0 failures (0 unexpected) in 0.001 (0.001) seconds"
            ),
            Some((1, 0, 0))
        );
        assert_eq!(xctest_totals("Build complete!"), None);
    }

    #[test]
    fn finds_the_release_mirror_in_apt_sources() {
        let deb822 = "\
Types: deb
# a comment line
URIs: http://mirror.example/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://mirror.example/debian-security
Suites: bookworm-security
Components: main

Types: deb
URIs: https://vendor.example/node
Suites: nodistro
Components: main
";
        let one_line = "\
# deb http://old.example/debian bookworm main
deb [arch=amd64 signed-by=/k.gpg] https://vendor.example/apt cloud-sdk main
deb http://other.example/debian/ bookworm main contrib
";
        let mut sources = apt_one_line_sources(one_line);
        assert_eq!(sources.len(), 2);
        assert_eq!(sources[0].uri, "https://vendor.example/apt");
        sources.extend(apt_deb822_sources(deb822));
        assert_eq!(
            pick_debian_mirror(&sources, "bookworm").as_deref(),
            Some("http://other.example/debian")
        );
        let only822 = apt_deb822_sources(deb822);
        assert_eq!(only822.len(), 3);
        assert_eq!(
            pick_debian_mirror(&only822, "bookworm").as_deref(),
            Some("http://mirror.example/debian")
        );
        assert_eq!(
            pick_debian_mirror(&only822, "").as_deref(),
            Some("http://mirror.example/debian")
        );
    }

    #[test]
    fn reads_module_names_from_module_maps() {
        let generated =
            "module presence_ffiFFI {\n    header \"presence_ffiFFI.h\"\n    export *\n}\n";
        assert_eq!(
            modulemap_module_name(generated).as_deref(),
            Some("presence_ffiFFI")
        );
        assert_eq!(
            modulemap_module_name("framework module PresenceFFI{\n}").as_deref(),
            Some("PresenceFFI")
        );
    }

    #[test]
    fn reads_targets_from_package_swift() {
        let manifest = r#"// swift-tools-version:5.9
// .systemLibrary(name: "Commented", path: "x")
import PackageDescription
let package = Package(
    name: "PresenceTests",
    targets: [
        .systemLibrary(name: "PresenceFFI", path: "Sources/PresenceFFI"),
        .target(name: "Presence", dependencies: [.target(name: "PresenceFFI")], path: "Sources/Presence"),
        .testTarget(name: "PresenceTests", dependencies: ["Presence"], path: "Tests/PresenceTests"),
        .systemLibrary(name: "presence_ffiFFI"),
    ]
)"#;
        assert_eq!(
            swiftpm_targets(manifest, "systemLibrary"),
            vec![
                (
                    "PresenceFFI".to_string(),
                    Some("Sources/PresenceFFI".to_string())
                ),
                ("presence_ffiFFI".to_string(), None)
            ]
        );
        let targets = swiftpm_targets(manifest, "target");
        assert_eq!(
            targets[0],
            ("Presence".to_string(), Some("Sources/Presence".to_string()))
        );
        assert_eq!(targets[1], ("PresenceFFI".to_string(), None));
        assert_eq!(targets.len(), 2);
    }

    #[test]
    fn extracts_header_functions_from_aux_info() {
        let aux = "\
/* /usr/include/stdio.h:356:NC */ extern int printf (const char *, ...);
/* /t/PresenceFFI.h:120:NC */ extern RustBuffer uniffi_presence_ffi_fn_func_version (RustCallStatus *);
/* /t/PresenceFFI.h:130:NC */ extern void *uniffi_presence_ffi_fn_clone_client (void *, RustCallStatus *);
/* /t/PresenceFFI.h:131:NC */ extern uint32_t ffi_presence_ffi_uniffi_contract_version (void);
";
        assert_eq!(
            aux_info_functions(aux, "/t/PresenceFFI.h"),
            vec![
                "uniffi_presence_ffi_fn_func_version",
                "uniffi_presence_ffi_fn_clone_client",
                "ffi_presence_ffi_uniffi_contract_version"
            ]
        );
    }
}
