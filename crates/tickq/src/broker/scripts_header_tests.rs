//! Ties every script wrapper to its script's header, so that the two cannot drift apart.
//!
//! A script's header numbers its keys and fixed arguments (`-- KEYS[1] pending  KEYS[2] ...`,
//! `-- ARGV[1] job key prefix ...`, continued on lines indented further). A wrapper is the
//! chain of `.key(...)` and `.arg(...)` calls that follows `SCRIPTS.<name>` in the broker's
//! source, up to its `invoke_async`. For each wrapper:
//! - it passes exactly the header's keys, in order, and the n-th key it passes is named in the
//!   header's n-th label (`keys.wake` for "wake stream", `keys.flow(id)` for "the workflow
//!   hash"), so two swapped keys fail;
//! - it passes exactly the header's numbered arguments before any per-item ones (those a
//!   `for` loop adds, "then 3 per job").
//!
//! And every script has at least one wrapper this test understands.

use std::collections::BTreeMap;
use std::path::Path;

#[derive(Debug, Default)]
struct Header {
    keys: BTreeMap<usize, String>,
    argv: BTreeMap<usize, String>,
}

/// The numbered KEYS and ARGV of a script's header; a number's first label counts (a later
/// mention is prose that refers back to it).
fn header(source: &str) -> Header {
    let mut header = Header::default();
    let mut in_spec = false;
    for line in source.lines() {
        if line.starts_with("#!") {
            continue;
        }
        let Some(text) = line.strip_prefix("--") else {
            break;
        };
        let trimmed = text.trim_start();
        let indent = text.len() - trimmed.len();
        if trimmed.starts_with("KEYS[") || trimmed.starts_with("ARGV[") {
            in_spec = true;
        } else if indent < 3 {
            in_spec = false;
        }
        if !in_spec {
            continue;
        }
        let mut rest = trimmed;
        while let Some(at) = next_entry(rest) {
            let entry = &rest[at..];
            let open = entry.find('[').expect("an entry has [");
            let close = entry.find(']').expect("an entry has ]");
            let n: usize = entry[open + 1..close].parse().expect("a number in [n]");
            let after = &entry[close + 1..];
            let end = next_entry(after).unwrap_or(after.len());
            let label = after[..end].trim().to_owned();
            let map = if entry.starts_with("KEYS") {
                &mut header.keys
            } else {
                &mut header.argv
            };
            map.entry(n).or_insert(label);
            rest = &after[end..];
        }
    }
    header
}

fn next_entry(text: &str) -> Option<usize> {
    match (text.find("KEYS["), text.find("ARGV[")) {
        (Some(k), Some(a)) => Some(k.min(a)),
        (k, a) => k.or(a),
    }
}

#[derive(Debug)]
struct Wrapper {
    at: String,
    keys: Vec<String>,
    fixed_args: Vec<String>,
}

/// The end of the parenthesised expression that opens at `open`.
fn closing(text: &str, open: usize) -> usize {
    let mut depth = 0;
    for (i, c) in text[open..].char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    return open + i;
                }
            }
            _ => {}
        }
    }
    panic!("unbalanced parentheses in {text:?}");
}

/// Every wrapper of every script in `source` (one Rust file).
fn wrappers_in(file: &str, source: &str, out: &mut BTreeMap<String, Vec<Wrapper>>) {
    let mut from = 0;
    while let Some(found) = source[from..].find("SCRIPTS") {
        let start = from + found + "SCRIPTS".len();
        from = start;
        let rest = source[start..].trim_start();
        let Some(rest) = rest.strip_prefix('.') else {
            continue;
        };
        let rest = rest.trim_start();
        let name_len = rest
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        let name = &rest[..name_len];
        let rest = &rest[name_len..];
        let chained = rest.trim_start();
        if !(chained.starts_with(".key(")
            || chained.starts_with(".arg(")
            || chained.starts_with(".prepare_invoke("))
        {
            continue; // `SCRIPTS.all()`, `SCRIPTS.ack.get_hash()`, ...
        }
        let body = &rest[..rest.find("invoke_async").expect("a wrapper invokes")];
        let per_item = body.find("for ").unwrap_or(body.len());
        let mut keys = Vec::new();
        let mut fixed_args = Vec::new();
        let mut at = 0;
        while let Some(dot) = body[at..].find('.') {
            let dot = at + dot;
            at = dot + 1;
            let call = &body[dot + 1..];
            let is_key = call.starts_with("key(");
            if !(is_key || call.starts_with("arg(")) {
                continue;
            }
            // A call on the chain or on the invocation, not e.g. `unique.key(job)` inside an
            // argument.
            let before = body[..dot].trim_end();
            let on_chain = before.is_empty()
                || before.ends_with(')')
                || before.ends_with("inv")
                || before.ends_with(name);
            if !on_chain {
                continue;
            }
            let open = dot + 4;
            let close = closing(body, open);
            let expr = body[open + 1..close].trim().to_owned();
            at = close;
            if is_key {
                keys.push(expr);
            } else if dot < per_item {
                fixed_args.push(expr);
            }
        }
        let line = source[..start].lines().count();
        out.entry(name.to_owned()).or_default().push(Wrapper {
            at: format!("{file}:{line}"),
            keys,
            fixed_args,
        });
    }
}

fn broker_sources(dir: &Path, out: &mut Vec<(String, String)>) {
    for entry in std::fs::read_dir(dir).expect("read the broker's source") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            broker_sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if name.ends_with("tests.rs") {
                continue;
            }
            let source = std::fs::read_to_string(&path).expect("read a source file");
            out.push((path.display().to_string(), source));
        }
    }
}

/// `&keys.rate_log` -> `rate_log`, `keys.flow(id)` -> `flow`, `NODES_INFO` -> `nodes_info`.
fn key_name(expr: &str) -> String {
    let expr = expr.trim_start_matches('&');
    let expr = expr.split('(').next().unwrap_or(expr);
    expr.rsplit('.').next().unwrap_or(expr).to_lowercase()
}

fn normalized(label: &str) -> String {
    label
        .to_lowercase()
        .chars()
        .map(|c| if c.is_alphanumeric() { c } else { '_' })
        .collect()
}

#[test]
fn every_script_wrapper_passes_the_keys_and_arguments_its_header_names() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/broker");
    let mut files = Vec::new();
    broker_sources(&dir, &mut files);
    let mut wrappers = BTreeMap::new();
    for (file, source) in &files {
        wrappers_in(file, source, &mut wrappers);
    }
    let mut problems = Vec::new();
    for (name, source) in super::sources() {
        let header = header(source);
        assert!(!header.keys.is_empty(), "{name}.lua: no KEYS in its header");
        let expected: Vec<usize> = (1..=header.keys.len()).collect();
        assert_eq!(
            header.keys.keys().copied().collect::<Vec<_>>(),
            expected,
            "{name}.lua: its header numbers KEYS 1 to n"
        );
        let Some(found) = wrappers.get(name) else {
            problems.push(format!("{name}.lua: no wrapper found (SCRIPTS.{name}...)"));
            continue;
        };
        for wrapper in found {
            let at = &wrapper.at;
            if wrapper.keys.len() != header.keys.len() {
                problems.push(format!(
                    "{at}: {name} passes {} keys, its header names {}: {:?}",
                    wrapper.keys.len(),
                    header.keys.len(),
                    wrapper.keys
                ));
            }
            for (i, expr) in wrapper.keys.iter().enumerate() {
                let label = header.keys.get(&(i + 1)).map_or("", String::as_str);
                let key = key_name(expr);
                if !normalized(label).contains(&key) {
                    problems.push(format!(
                        "{at}: {name} passes {expr} as KEYS[{}], which its header calls {label:?}",
                        i + 1
                    ));
                }
            }
            if wrapper.fixed_args.len() != header.argv.len() {
                problems.push(format!(
                    "{at}: {name} passes {} fixed arguments, its header numbers {}: {:?} vs {:?}",
                    wrapper.fixed_args.len(),
                    header.argv.len(),
                    wrapper.fixed_args,
                    header.argv
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The parser itself: a swapped key and a missing argument are caught.
#[test]
fn the_header_check_catches_a_swapped_key_and_a_missing_argument() {
    let lua = "-- demo: a script.\n-- KEYS[1] pending  KEYS[2] wake stream\n-- ARGV[1] job key \
               prefix  ARGV[2] lease ms (how long,\n--   in ms)  ARGV[3] owner\n-- Returns 1; \
               KEYS[9] is prose.\nreturn 1\n";
    let header = header(lua);
    assert_eq!(header.keys.len(), 2);
    assert_eq!(header.keys[&2], "wake stream");
    assert_eq!(header.argv.len(), 3);
    let rust = "let x = SCRIPTS\n    .demo\n    .key(&keys.wake)\n    .key(&keys.pending)\n    \
                .arg(&keys.job_prefix)\n    .arg(unique.key(job))\n    .invoke_async(&mut c);";
    let mut found = BTreeMap::new();
    wrappers_in("demo.rs", rust, &mut found);
    let wrapper = &found["demo"][0];
    assert_eq!(wrapper.keys, ["&keys.wake", "&keys.pending"]);
    assert_eq!(wrapper.fixed_args, ["&keys.job_prefix", "unique.key(job)"]);
    assert!(!normalized(&header.keys[&1]).contains(&key_name(&wrapper.keys[0])));
    assert_ne!(wrapper.fixed_args.len(), header.argv.len());
}
