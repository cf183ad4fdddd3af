//! loom-runtime's module layering, checked from its sources.
//!
//! [`LAYERS`] is the one place the layer order is written (drawn in
//! `docs/ARCHITECTURE.md`). Every `crate::`, `super::` and `self::` path in
//! `src/` — in `use` items, in code and inside macro arguments — is an edge
//! from the file's module to the module the path names (the longest known
//! module prefix). The check fails, naming the file and the path, when
//!
//! - a module uses a module of a higher layer (a parent may use its
//!   children);
//! - the modules form an import cycle;
//! - a file outside `driver/` names a backend variant (`Driver::Uring`,
//!   `Driver::Poll`): callers must not see which backend runs.
//!
//! [`KNOWN`] may list an edge that breaks a rule (it is empty: the tree
//! meets all three); the check fails when a listed edge is gone, so such a
//! list only shrinks, and a new violation can never hide in it.
//!
//! Test-only modules (`#[cfg(test)] mod tests { .. }` blocks and the files
//! in [`TEST_ONLY`]) may use anything.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use proc_macro2::{Delimiter, TokenStream, TokenTree};

/// Layers, bottom first: a module may use modules of its own layer or
/// below, and its own descendants.
const LAYERS: &[(&str, &[&str])] = &[
    (
        "platform",
        &["sys", "sys/signal", "sys/socket", "list", "stats"],
    ),
    ("profiling data", &["profiling/record", "profiling/names"]),
    (
        "fiber core",
        &[
            "stack",
            "stack/pool",
            "stack/reserve",
            "stack/budget",
            "stack/chunks",
            "stack/control",
            "stack/layout",
            "stack/overflow",
        ],
    ),
    ("context", &["context"]),
    (
        "profiling hooks",
        &[
            "profiling",
            "profiling/backend",
            "profiling/fiber",
            "profiling/lifetime",
            "profiling/plots",
        ],
    ),
    ("sched", &["sched"]),
    ("timer wheel", &["wheel"]),
    (
        "op",
        &[
            "op",
            "op/fs",
            "op/net",
            "op/poll",
            "op/process",
            "op/rw",
            "op/splice",
        ],
    ),
    (
        "driver",
        &[
            "driver",
            "driver/uring",
            "driver/uring/setup",
            "driver/poll",
            "driver/remote",
            "driver/mailbox",
            "driver/atomic",
        ],
    ),
    (
        "rt",
        &[
            "rt/event_loop",
            "rt/event_loop/drive",
            "rt/event_loop/shutdown",
            "rt/event_loop/spawn",
            "rt/event_loop/waits",
            "rt/current",
            "rt/affinity",
            "rt/stall",
            "blocking",
        ],
    ),
    (
        "user-facing",
        &[
            "lib",
            "rt",
            "rt/cross",
            "rt/spawn_slots",
            "rt/metrics",
            "fiber",
            "fiber/join",
            "fiber/scope",
            "future",
            "future/waker",
            "compat",
            "compat/tokio",
            "blocking/unblock",
            "time",
            "time/deadline",
            "net",
            "net/addr",
            "net/balance",
            "net/socket",
            "net/tcp",
            "net/timeout",
            "net/udp",
            "net/unix",
            "net/unix/addr",
            "net/unix/datagram",
            "net/unix/listener",
            "net/unix/stream",
            "io",
            "io/fd",
            "io/pipe",
            "io/private",
            "io/splice",
            "io/stdin",
            "io/stdio",
            "io/stdout",
            "process",
            "process/child",
            "process/command",
            "process/pidfd",
            "process/pipes",
            "process/waitpid",
            "signal",
            "signal/kqueue",
            "signal/registry",
            "signal/signalfd",
            "fs",
            "fs/dir",
            "fs/file",
            "fs/metadata",
            "fs/open_options",
            "fs/paths",
            "sync",
            "sync/barrier",
            "sync/chan",
            "sync/chan_error",
            "sync/condvar",
            "sync/flavour",
            "sync/local",
            "sync/mpmc",
            "sync/mpsc",
            "sync/mutex",
            "sync/oneshot",
            "sync/rwlock",
            "sync/select",
            "sync/semaphore",
            "sync/wait_group",
            "sync/waiter",
        ],
    ),
];

/// Modules compiled only for the crate's unit tests.
const TEST_ONLY: &[&str] = &["profiling/tests", "profiling/recorder"];

/// Edges allowed to break a rule, as `(file, path as written)`. Empty: the
/// tree meets every rule. Keep it so; an entry is a debt, and the check
/// fails once the edge it names is gone.
const KNOWN: &[(&str, &str)] = &[];

#[test]
fn modules_use_only_layers_below_them_with_no_cycle_and_no_backend_outside_driver() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let files = rust_files(&src);
    let modules: BTreeMap<String, PathBuf> = files
        .iter()
        .map(|file| (module_of(&src, file), file.clone()))
        .collect();
    let layer_of = layer_table();
    for module in modules.keys() {
        assert!(
            layer_of.contains_key(module.as_str()) || TEST_ONLY.contains(&module.as_str()),
            "src/{} is in no layer: add `{module}` to LAYERS in tests/layers.rs",
            modules[module].strip_prefix(&src).unwrap().display()
        );
    }

    let mut found: BTreeSet<(String, String)> = BTreeSet::new();
    let mut problems = Vec::new();
    // Same-layer and downward edges, without (`edges`) and with
    // (`all_edges`) the ones KNOWN lists to break a cycle.
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut all_edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut cycle_breakers = Vec::new();
    for (module, file) in &modules {
        if TEST_ONLY.contains(&module.as_str()) {
            continue;
        }
        let rel = file.strip_prefix(&src).unwrap().display().to_string();
        let text = std::fs::read_to_string(file).unwrap();
        let tokens = TokenStream::from_str(&text)
            .unwrap_or_else(|e| panic!("src/{rel} does not tokenize: {e}"));
        let mut uses = Vec::new();
        collect_paths(tokens.clone(), &[], &mut uses);
        for path in uses {
            let Some(target) = resolve(&path, module, &modules) else {
                continue;
            };
            // A module's own items, a test module's, and a parent naming
            // its children (containment, not a dependency: children use
            // their parent's types, as an `impl` split over files does).
            if &target == module
                || TEST_ONLY.contains(&target.as_str())
                || is_descendant(&target, module)
            {
                continue;
            }
            let written = path.join("::");
            let known = KNOWN.contains(&(rel.as_str(), written.as_str()));
            let upward = layer_of[target.as_str()] > layer_of[module.as_str()];
            if upward {
                if known {
                    found.insert((rel.clone(), written.clone()));
                } else {
                    problems.push(format!(
                        "src/{rel}: `{written}` — {module} ({}) uses {target} ({}), a layer above it",
                        LAYERS[layer_of[module.as_str()]].0,
                        LAYERS[layer_of[target.as_str()]].0
                    ));
                }
            } else {
                all_edges
                    .entry(module.clone())
                    .or_default()
                    .insert(target.clone());
                if known {
                    // Listed to break a cycle: still needed only while
                    // both ends are in one (checked below).
                    cycle_breakers.push((rel.clone(), written.clone(), module.clone(), target));
                } else {
                    edges.entry(module.clone()).or_default().insert(target);
                }
            }
        }
        if !rel.starts_with("driver/") {
            for variant in backend_variants(tokens) {
                if KNOWN.contains(&(rel.as_str(), variant.as_str())) {
                    found.insert((rel.clone(), variant));
                } else {
                    problems.push(format!(
                        "src/{rel}: `{variant}` — a backend variant named outside driver/"
                    ));
                }
            }
        }
    }
    let in_a_cycle: Vec<Vec<String>> = cycles(&all_edges);
    for (file, written, from, to) in cycle_breakers {
        if in_a_cycle
            .iter()
            .any(|cycle| cycle.contains(&from) && cycle.contains(&to))
        {
            found.insert((file, written));
        }
    }
    for cycle in cycles(&edges) {
        problems.push(format!("import cycle: {}", cycle.join(" -> ")));
    }
    for (file, path) in KNOWN {
        if !found.contains(&(file.to_string(), path.to_string())) {
            problems.push(format!(
                "KNOWN lists `{path}` in src/{file}, which no longer breaks a rule: remove it \
                 from the list"
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "loom-runtime's layering is broken:\n  {}",
        problems.join("\n  ")
    );
}

fn layer_table() -> BTreeMap<&'static str, usize> {
    let mut table = BTreeMap::new();
    for (index, (_, modules)) in LAYERS.iter().enumerate() {
        for module in *modules {
            assert!(
                table.insert(*module, index).is_none(),
                "{module} twice in LAYERS"
            );
        }
    }
    table
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files.sort();
    files
}

/// `src/stack/pool.rs` → `stack/pool`; `src/rt/mod.rs` → `rt`;
/// `src/lib.rs` → `lib`.
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let rel = rel.to_string_lossy().replace('\\', "/");
    match rel.strip_suffix("/mod") {
        Some(parent) => parent.to_owned(),
        None => rel,
    }
}

fn is_descendant(module: &str, ancestor: &str) -> bool {
    ancestor == "lib"
        || module
            .strip_prefix(ancestor)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// Every path that starts with `crate`, `super` or `self` in `tokens`,
/// with `use` groups expanded (`crate::a::{b, c::d}` gives `crate::a::b`
/// and `crate::a::c::d`). Skips `mod tests { .. }` blocks.
fn collect_paths(tokens: TokenStream, prefix: &[String], out: &mut Vec<Vec<String>>) {
    let tokens: Vec<TokenTree> = tokens.into_iter().collect();
    let mut i = 0;
    while i < tokens.len() {
        if is_ident(&tokens[i], "mod")
            && tokens.get(i + 1).is_some_and(|t| is_ident(t, "tests"))
            && matches!(tokens.get(i + 2), Some(TokenTree::Group(g)) if g.delimiter() == Delimiter::Brace)
        {
            i += 3;
            continue;
        }
        let starts_path = matches!(&tokens[i], TokenTree::Ident(id)
            if ["crate", "super", "self"].contains(&id.to_string().as_str()))
            && is_path_sep(&tokens, i + 1);
        // Not the tail of a longer path such as `foo::self`.
        let after_sep = i >= 2 && is_path_sep(&tokens, i - 2);
        if starts_path && !after_sep {
            i = read_path(&tokens, i, prefix, out);
            continue;
        }
        if let TokenTree::Group(group) = &tokens[i] {
            collect_paths(group.stream(), prefix, out);
        }
        i += 1;
    }
}

/// Reads `seg (:: seg)* (:: { group })?` from `i`; returns the index after.
fn read_path(
    tokens: &[TokenTree],
    mut i: usize,
    prefix: &[String],
    out: &mut Vec<Vec<String>>,
) -> usize {
    let mut path = prefix.to_vec();
    loop {
        match &tokens[i] {
            TokenTree::Ident(id) => path.push(id.to_string()),
            TokenTree::Group(g) if g.delimiter() == Delimiter::Brace => {
                // A `use` group: each comma-separated item continues `path`.
                let inner: Vec<TokenTree> = g.stream().into_iter().collect();
                for item in inner.split(|t| matches!(t, TokenTree::Punct(p) if p.as_char() == ','))
                {
                    if item.is_empty() {
                        continue;
                    }
                    read_path_tail(item, &path, out);
                }
                return i + 1;
            }
            _ => break,
        }
        if is_path_sep(tokens, i + 1) {
            i += 3;
        } else {
            i += 1;
            break;
        }
    }
    out.push(path);
    i
}

/// One item of a `use` group, continuing `path`.
fn read_path_tail(item: &[TokenTree], path: &[String], out: &mut Vec<Vec<String>>) {
    match item.first() {
        Some(TokenTree::Ident(id)) if id == "self" => out.push(path.to_vec()),
        Some(TokenTree::Ident(_)) | Some(TokenTree::Group(_)) => {
            read_path(item, 0, path, out);
        }
        // `*` and anything else: the path so far.
        _ => out.push(path.to_vec()),
    }
}

fn is_ident(token: &TokenTree, name: &str) -> bool {
    matches!(token, TokenTree::Ident(id) if id == name)
}

fn is_path_sep(tokens: &[TokenTree], i: usize) -> bool {
    matches!((tokens.get(i), tokens.get(i + 1)),
        (Some(TokenTree::Punct(a)), Some(TokenTree::Punct(b)))
            if a.as_char() == ':' && b.as_char() == ':')
}

/// The module a path names: its longest prefix that is a module.
fn resolve(path: &[String], module: &str, modules: &BTreeMap<String, PathBuf>) -> Option<String> {
    let mut segments: Vec<String> = Vec::new();
    let mut rest = path;
    // The module `self` stands for, as a list of segments.
    let here: Vec<String> = if module == "lib" {
        Vec::new()
    } else {
        module.split('/').map(str::to_owned).collect()
    };
    // `super` is the parent of the file's module (whether `a/b.rs` or
    // `a/b/mod.rs`).
    let mut base = here.clone();
    match rest.first().map(String::as_str) {
        Some("crate") => rest = &rest[1..],
        Some("self") => {
            segments = here.clone();
            rest = &rest[1..];
        }
        Some("super") => {
            while rest.first().map(String::as_str) == Some("super") {
                base.pop()?;
                rest = &rest[1..];
            }
            segments = base;
        }
        _ => return None,
    }
    let mut best = if segments.is_empty() {
        "lib".to_owned()
    } else {
        segments.join("/")
    };
    for segment in rest {
        segments.push(segment.clone());
        let candidate = segments.join("/");
        if modules.contains_key(&candidate) {
            best = candidate;
        } else {
            break;
        }
    }
    Some(best)
}

/// `Driver::Uring` and `Driver::Poll` as written in `tokens`.
fn backend_variants(tokens: TokenStream) -> Vec<String> {
    let mut found = Vec::new();
    let tokens: Vec<TokenTree> = tokens.into_iter().collect();
    for (i, token) in tokens.iter().enumerate() {
        if let TokenTree::Group(group) = token {
            found.extend(backend_variants(group.stream()));
        }
        if is_ident(token, "Driver")
            && is_path_sep(&tokens, i + 1)
            && let Some(TokenTree::Ident(variant)) = tokens.get(i + 3)
            && (variant == "Uring" || variant == "Poll")
        {
            found.push(format!("Driver::{variant}"));
        }
    }
    found
}

/// Every import cycle among the modules, as the modules of each strongly
/// connected component (Tarjan's algorithm).
fn cycles(edges: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct State<'a> {
        edges: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        next: usize,
        out: Vec<Vec<String>>,
    }
    fn visit<'a>(state: &mut State<'a>, node: &'a str) {
        state.index.insert(node, state.next);
        state.low.insert(node, state.next);
        state.next += 1;
        state.stack.push(node);
        state.on_stack.insert(node);
        if let Some(targets) = state.edges.get(node) {
            for target in targets {
                let target = target.as_str();
                if !state.index.contains_key(target) {
                    visit(state, target);
                    let low = state.low[target].min(state.low[node]);
                    state.low.insert(node, low);
                } else if state.on_stack.contains(target) {
                    let low = state.index[target].min(state.low[node]);
                    state.low.insert(node, low);
                }
            }
        }
        if state.low[node] == state.index[node] {
            let mut component = Vec::new();
            loop {
                let member = state.stack.pop().unwrap();
                state.on_stack.remove(member);
                component.push(member.to_owned());
                if member == node {
                    break;
                }
            }
            if component.len() > 1 {
                component.sort();
                state.out.push(component);
            }
        }
    }
    let mut state = State {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        next: 0,
        out: Vec::new(),
    };
    for node in edges.keys() {
        if !state.index.contains_key(node.as_str()) {
            visit(&mut state, node);
        }
    }
    state.out
}
