//! No module cycle in any crate: each crate's top-level modules, with an edge from `a` to
//! `b` when code under `a` names `crate::b` (or `super::b` from `a`'s own root file's
//! children), must form a graph without a cycle, so each layer can be read, tested and
//! changed without the ones above it.
//!
//! The edges are read from the source text (comments and string literals removed), not from
//! rustc: a path written in code is a dependency whether or not it compiles to one (a type in
//! a signature, a function called, a trait implemented). The test fails naming each cycle and
//! one file behind each of its edges.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// The crates whose module graphs must stay acyclic.
const CRATES: &[&str] = &[
    "sdk-base",
    "sdk-server",
    "sdk",
    "sdk-macros",
    "sdk-registry",
    "sdk-messaging",
    "sdk-events",
    "sdk-gateway",
    "sdk-test-support",
];

/// From module to module, with one file that makes the edge.
type Graph = BTreeMap<String, BTreeMap<String, PathBuf>>;

#[test]
fn no_crate_has_a_module_cycle() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut report = String::new();
    for krate in CRATES {
        let graph = module_graph(&root.join(krate).join("src"));
        for cycle in cycles(&graph) {
            report.push_str(&format!("{krate}: {} modules form a cycle:\n", cycle.len()));
            for from in &cycle {
                for (to, file) in &graph[from] {
                    if cycle.contains(to) {
                        report.push_str(&format!("  {from} -> {to}  ({})\n", file.display()));
                    }
                }
            }
        }
    }
    assert!(report.is_empty(), "module cycles found:\n{report}");
}

#[test]
fn the_checker_finds_a_cycle_it_is_shown() {
    // The checker itself: a planted two-module loop and a three-module loop are found, a
    // chain is not.
    let dir = std::env::temp_dir().join(format!("module-cycles-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(dir.join("c")).expect("temp dir");
    let files = [
        (
            "lib.rs",
            "mod a; mod b; mod c; mod d; mod e; pub use crate::a::A;",
        ),
        (
            "a.rs",
            "use crate::b::B; // crate::e::E in a comment is no edge\n",
        ),
        (
            "b.rs",
            "pub(crate) fn f() { let s = \"crate::e::E\"; crate::a::g(s) }",
        ),
        ("c/mod.rs", "mod inner;\nuse crate::{d::{D}, e};"),
        ("c/inner.rs", "use super::super::e::X;"),
        ("d.rs", "use crate::e;"),
        ("e.rs", "use crate::{c as cc};"),
    ];
    for (name, text) in files {
        fs::write(dir.join(name), text).expect("write");
    }
    assert_eq!(
        cycles_in(&dir),
        vec![vec!["a", "b"], vec!["c", "d", "e"]],
        "two planted loops"
    );

    // The crate root as a node: a module using an item `lib.rs` defines, while `lib.rs`'s
    // own code calls into that module, is a loop; a name `lib.rs` re-exports leads to the
    // module it comes from; a `pub use` alone is no edge, and neither is a unit test's
    // (`k`'s tests call `f`, which names `K`).
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("temp dir");
    let files = [
        (
            "lib.rs",
            "mod f; mod g; mod h; mod k;\npub use self::{h::H, k::K};\n\
             pub struct Root;\nfn start() { f::run() }",
        ),
        ("f.rs", "use crate::{Root, K};\npub(crate) fn run() {}"),
        ("g.rs", "use crate::H;\npub struct G;"),
        ("h.rs", "use crate::g::G;\npub struct H;"),
        (
            "k.rs",
            "pub struct K;\n#[cfg(test)]\nmod tests {\n    use crate::f::run;\n}",
        ),
    ];
    for (name, text) in files {
        fs::write(dir.join(name), text).expect("write");
    }
    assert_eq!(
        cycles_in(&dir),
        vec![vec!["f", "lib"], vec!["g", "h"]],
        "loops through the crate root and through a re-export"
    );
    let _ = fs::remove_dir_all(&dir);
}

fn cycles_in(src: &Path) -> Vec<Vec<String>> {
    cycles(&module_graph(src))
}

/// Every module's outgoing edges. The crate root (`lib.rs`) is a node of its own, `lib`,
/// when it defines items other modules use: `crate::Name` resolves to the module that
/// `lib.rs` re-exports `Name` from, or to `lib` when `lib.rs` defines it. The root's own
/// edges come from its code, not from its `mod` declarations or `pub use` re-exports.
fn module_graph(src: &Path) -> Graph {
    let lib_text = fs::read_to_string(src.join("lib.rs")).map(|t| strip_comments_and_strings(&t));
    let lib_code = lib_text.unwrap_or_default();
    let names = Names::read(src, &lib_code);
    let mut graph = Graph::new();
    for file in rust_files(src) {
        let rel = file.strip_prefix(src).expect("under src");
        let code = strip_comments_and_strings(&fs::read_to_string(&file).expect("read"));
        let code = strip_test_modules(&code);
        let (module, referenced) = if rel == Path::new("lib.rs") {
            ("lib".to_owned(), root_references(&code, &names))
        } else {
            let Some(module) = top_module(rel) else {
                continue;
            };
            // How many `super::` reach the crate root: `a.rs` and `a/mod.rs` are one
            // level down, `a/b.rs` two.
            let mut depth = rel.components().count();
            if rel.file_name().is_some_and(|n| n == "mod.rs") {
                depth -= 1;
            }
            (module, crate_paths(&code, depth))
        };
        let edges = graph.entry(module.clone()).or_default();
        for name in referenced {
            if let Some(target) = names.resolve(&name) {
                if target != module {
                    edges.entry(target).or_insert_with(|| rel.to_path_buf());
                }
            }
        }
    }
    graph
}

/// What a name directly under `crate::` stands for.
struct Names {
    modules: BTreeSet<String>,
    /// A re-exported name and the module it comes from.
    reexports: BTreeMap<String, String>,
    /// Items `lib.rs` defines itself.
    lib_items: BTreeSet<String>,
}

impl Names {
    fn read(src: &Path, lib: &str) -> Self {
        let mut modules = BTreeSet::new();
        for entry in fs::read_dir(src).into_iter().flatten().flatten() {
            let path = entry.path();
            let name = path
                .file_stem()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            let is_module = if path.is_dir() {
                path.join("mod.rs").is_file()
            } else {
                path.extension().is_some_and(|e| e == "rs") && name != "lib" && name != "main"
            };
            if is_module {
                modules.insert(name.to_owned());
            }
        }
        let mut reexports = BTreeMap::new();
        for statement in use_statements(lib, true) {
            for (path, bound) in use_leaves(&statement) {
                let path: Vec<&String> = path
                    .iter()
                    .skip_while(|s| *s == "self" || *s == "crate")
                    .collect();
                if let Some(first) = path.first() {
                    if modules.contains(*first) && path.len() > 1 {
                        reexports.insert(bound, (*first).clone());
                    }
                }
            }
        }
        let kinds = [
            "fn",
            "struct",
            "enum",
            "trait",
            "type",
            "const",
            "static",
            "macro_rules!",
        ];
        let words: Vec<&str> = lib
            .split(|c: char| !(c.is_alphanumeric() || c == '_' || c == '!'))
            .filter(|w| !w.is_empty())
            .collect();
        let lib_items = words
            .windows(2)
            .filter(|pair| kinds.contains(&pair[0]))
            .map(|pair| pair[1].to_owned())
            .collect();
        Names {
            modules,
            reexports,
            lib_items,
        }
    }

    fn resolve(&self, name: &str) -> Option<String> {
        if self.modules.contains(name) {
            Some(name.to_owned())
        } else if let Some(module) = self.reexports.get(name) {
            Some(module.clone())
        } else if self.lib_items.contains(name) {
            Some("lib".to_owned())
        } else {
            None
        }
    }
}

/// The names the crate root's own code reaches: `crate::x`, `self::x` and a module named
/// bare (`client::Client`), outside its `mod` declarations and `pub use` re-exports.
fn root_references(lib: &str, names: &Names) -> BTreeSet<String> {
    let mut code = lib.to_owned();
    for statement in use_statements(lib, true) {
        code = code.replacen(&statement, "", 1);
    }
    let mut out = crate_paths(&code.replace("self::", "crate::"), usize::MAX);
    let bytes = code.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let starts_word = is_ident(bytes[i]) && (i == 0 || !is_ident(bytes[i - 1]));
        if !starts_word {
            i += 1;
            continue;
        }
        let end = ident_end(bytes, i);
        let word = &code[i..end];
        let qualified = i >= 2 && &code[i - 2..i] == "::";
        if !qualified && code[end..].starts_with("::") && names.modules.contains(word) {
            out.insert(word.to_owned());
        }
        i = end;
    }
    out
}

/// The text of each `use` statement (`pub` ones only, or all), from `pub`/`use` to `;`.
fn use_statements(code: &str, only_pub: bool) -> Vec<String> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(at) = code[from..].find("use ") {
        let start = from + at;
        from = start + 4;
        if start > 0 && is_ident(code.as_bytes()[start - 1]) {
            continue;
        }
        let before = code[..start].trim_end();
        let public = before.ends_with("pub") || (before.ends_with(')') && before.contains("pub("));
        if only_pub && !public {
            continue;
        }
        if let Some(end) = code[start..].find(';') {
            let head = if public {
                before.rfind("pub").unwrap_or(start)
            } else {
                start
            };
            out.push(code[head..start + end + 1].to_owned());
            from = start + end + 1;
        }
    }
    out
}

/// Each path a `use` statement brings in, with the name it is bound to.
fn use_leaves(statement: &str) -> Vec<(Vec<String>, String)> {
    let body = statement[statement.find("use ").map_or(0, |i| i + 4)..].trim_end_matches(';');
    let mut tokens = Vec::new();
    let bytes = body.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'{' | b'}' | b',' | b'*' => {
                tokens.push(body[i..i + 1].to_owned());
                i += 1;
            }
            c if is_ident(c) => {
                let end = ident_end(bytes, i);
                tokens.push(body[i..end].to_owned());
                i = end;
            }
            _ => i += 1,
        }
    }
    let mut out = Vec::new();
    let mut pos = 0;
    leaves(&tokens, &mut pos, &mut Vec::new(), &mut out);
    out
}

/// Walks one use tree from `pos` (its tokens without `::`: `a b { c , d as e }`), adding
/// each leaf's path and bound name.
fn leaves(
    tokens: &[String],
    pos: &mut usize,
    prefix: &mut Vec<String>,
    out: &mut Vec<(Vec<String>, String)>,
) {
    let depth = prefix.len();
    while let Some(token) = tokens.get(*pos) {
        match token.as_str() {
            "{" => {
                *pos += 1;
                while tokens.get(*pos).is_some_and(|t| t != "}") {
                    leaves(tokens, pos, prefix, out);
                    if tokens.get(*pos).is_some_and(|t| t == ",") {
                        *pos += 1;
                    }
                }
                *pos += 1;
                prefix.truncate(depth);
                return;
            }
            "," | "}" => break,
            "as" => {
                if let Some(alias) = tokens.get(*pos + 1) {
                    out.push((prefix.clone(), alias.clone()));
                }
                *pos += 2;
                prefix.truncate(depth);
                return;
            }
            "*" => {
                *pos += 1;
                prefix.truncate(depth);
                return;
            }
            name => {
                prefix.push(name.to_owned());
                *pos += 1;
            }
        }
    }
    if prefix.len() > depth {
        let bound = prefix.last().cloned().unwrap_or_default();
        out.push((prefix.clone(), bound));
    }
    prefix.truncate(depth);
}

/// The top-level module a file belongs to (`None` for binaries).
fn top_module(rel: &Path) -> Option<String> {
    let first = rel.components().next()?.as_os_str().to_str()?;
    match first {
        "main.rs" | "bin" => None,
        name => Some(name.trim_end_matches(".rs").to_owned()),
    }
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out.sort();
    out
}

/// The top-level modules a file's code names: `crate::x`, each name in
/// `crate::{x, y::z}`, and `super::…::x` climbing to the crate root. `depth` is the number
/// of `super::` that reach the crate root from the file (`a.rs` 1, `a/b.rs` 2).
fn crate_paths(code: &str, depth: usize) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let bytes = code.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let rest = &code[i..];
        let at_word_start = i == 0 || !is_ident(bytes[i - 1]);
        if at_word_start && rest.starts_with("crate::") {
            i += "crate::".len();
            i = read_targets(code, i, &mut out);
        } else if at_word_start && rest.starts_with("super::") {
            let mut climbs = 0;
            let mut j = i;
            while code[j..].starts_with("super::") {
                climbs += 1;
                j += "super::".len();
            }
            if climbs == depth {
                j = read_targets(code, j, &mut out);
            }
            i = j;
        } else {
            i += rest.chars().next().map_or(1, char::len_utf8);
        }
    }
    out
}

/// Reads `x` or `{x, y::z, w as v}` at `i`, adding the first segment of each path.
fn read_targets(code: &str, i: usize, out: &mut BTreeSet<String>) -> usize {
    let bytes = code.as_bytes();
    if bytes.get(i) == Some(&b'{') {
        let mut depth = 0usize;
        let mut j = i;
        let mut segment_start = true;
        while j < bytes.len() {
            match bytes[j] {
                b'{' => {
                    depth += 1;
                    segment_start = depth == 1;
                }
                b'}' => {
                    depth -= 1;
                    if depth == 0 {
                        return j + 1;
                    }
                }
                b',' if depth == 1 => segment_start = true,
                c if depth == 1 && segment_start && is_ident(c) => {
                    let end = ident_end(bytes, j);
                    out.insert(code[j..end].to_owned());
                    segment_start = false;
                    j = end;
                    continue;
                }
                c if !c.is_ascii_whitespace() => segment_start = false,
                _ => {}
            }
            j += 1;
        }
        j
    } else {
        let end = ident_end(bytes, i);
        if end > i {
            out.insert(code[i..end].to_owned());
        }
        end
    }
}

fn ident_end(bytes: &[u8], mut i: usize) -> usize {
    while i < bytes.len() && is_ident(bytes[i]) {
        i += 1;
    }
    i
}

fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// The code with `//` and `/* */` comments and string and char literals (raw strings too)
/// blanked out.
fn strip_comments_and_strings(text: &str) -> String {
    let c: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < c.len() {
        let next = c.get(i + 1).copied();
        match c[i] {
            '/' if next == Some('/') => {
                while i < c.len() && c[i] != '\n' {
                    i += 1;
                }
                continue;
            }
            '/' if next == Some('*') => {
                i += 2;
                while i + 1 < c.len() && !(c[i] == '*' && c[i + 1] == '/') {
                    i += 1;
                }
                i += 2;
                out.push(' ');
                continue;
            }
            'r' if (next == Some('"') || next == Some('#'))
                && (i == 0 || !is_ident(c[i - 1] as u8)) =>
            {
                let hashes = c[i + 1..].iter().take_while(|&&h| h == '#').count();
                if c.get(i + 1 + hashes) != Some(&'"') {
                    out.push('r');
                    i += 1;
                    continue;
                }
                i += 2 + hashes;
                let close: Vec<char> = std::iter::once('"')
                    .chain(std::iter::repeat_n('#', hashes))
                    .collect();
                while i < c.len() && !c[i..].starts_with(&close) {
                    i += 1;
                }
                i += close.len();
                out.push_str("\"\"");
                continue;
            }
            '"' => {
                i += 1;
                while i < c.len() && c[i] != '"' {
                    i += if c[i] == '\\' { 2 } else { 1 };
                }
                i += 1;
                out.push_str("\"\"");
                continue;
            }
            '\'' if next == Some('\\') => {
                i += 2;
                while i < c.len() && c[i] != '\'' {
                    i += 1;
                }
                i += 1;
                out.push_str("' '");
                continue;
            }
            '\'' if c.get(i + 2) == Some(&'\'') => {
                i += 3;
                out.push_str("' '");
                continue;
            }
            ch => out.push(ch),
        }
        i += 1;
    }
    out
}

/// The code without its `#[cfg(test)] mod … { … }` blocks: a module's unit tests may use
/// anything above it (a consistency test reads every layer), and are no part of the
/// library's structure.
fn strip_test_modules(code: &str) -> String {
    let mut out = String::with_capacity(code.len());
    let mut rest = code;
    while let Some(at) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..at]);
        let after = &rest[at + "#[cfg(test)]".len()..];
        let body = after.trim_start();
        let is_mod = body.starts_with("mod ") || body.starts_with("pub(crate) mod ");
        let open = body.find(['{', ';']);
        match (is_mod, open) {
            (true, Some(open)) if body.as_bytes()[open] == b'{' => {
                let mut depth = 0usize;
                let mut end = body.len();
                for (i, c) in body.char_indices().skip(open) {
                    match c {
                        '{' => depth += 1,
                        '}' => {
                            depth -= 1;
                            if depth == 0 {
                                end = i + 1;
                                break;
                            }
                        }
                        _ => {}
                    }
                }
                rest = &body[end..];
            }
            _ => rest = after,
        }
    }
    out.push_str(rest);
    out
}

/// Each strongly connected set of more than one module, members sorted, sets sorted
/// (Tarjan's algorithm).
fn cycles(graph: &Graph) -> Vec<Vec<String>> {
    struct Tarjan<'g> {
        graph: &'g Graph,
        index: BTreeMap<&'g str, usize>,
        low: BTreeMap<&'g str, usize>,
        stack: Vec<&'g str>,
        on_stack: BTreeSet<&'g str>,
        found: Vec<Vec<String>>,
    }
    impl<'g> Tarjan<'g> {
        fn visit(&mut self, v: &'g str) {
            let n = self.index.len();
            self.index.insert(v, n);
            self.low.insert(v, n);
            self.stack.push(v);
            self.on_stack.insert(v);
            let targets = self.graph.get(v).into_iter().flat_map(|e| e.keys());
            for w in targets {
                let w = w.as_str();
                if !self.index.contains_key(w) {
                    self.visit(w);
                    let low = self.low[v].min(self.low[w]);
                    self.low.insert(v, low);
                } else if self.on_stack.contains(w) {
                    let low = self.low[v].min(self.index[w]);
                    self.low.insert(v, low);
                }
            }
            if self.low[v] == self.index[v] {
                let mut set = Vec::new();
                while let Some(w) = self.stack.pop() {
                    self.on_stack.remove(w);
                    set.push(w.to_owned());
                    if w == v {
                        break;
                    }
                }
                if set.len() > 1 {
                    set.sort();
                    self.found.push(set);
                }
            }
        }
    }
    let mut t = Tarjan {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        found: Vec::new(),
    };
    for v in graph.keys() {
        if !t.index.contains_key(v.as_str()) {
            t.visit(v);
        }
    }
    t.found.sort();
    t.found
}
