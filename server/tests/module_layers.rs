//! The top-level modules of server/src depend one way (issue 18): no import cycle among them,
//! lib.rs declares them bottom layer first with each layer using only the layers before it, and
//! the protocol layer does no I/O. A newcomer reads the tree bottom to top; these tests keep it
//! readable that way.
//!
//! The source is read as text: every `crate::x` path (and each `x` of a `use crate::{x, ..}`
//! group, and `super::` paths that climb to the crate root) in a file of module `m` is an edge
//! `m -> x`; comments and string literals are skipped. `crate::Name` for a name lib.rs
//! re-exports (`pub use x::Name`) counts as an edge to `x`. main.rs is the binary, a crate of
//! its own, and is not read.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

#[test]
fn no_import_cycle_between_top_level_modules() {
    let cycle = Graph::read(&src()).cycle();
    assert!(
        cycle.is_none(),
        "server/src's top-level modules import each other in a circle; move what they share \
         into a module below them (see lib.rs):\n{}",
        cycle.unwrap_or_default()
    );
}

#[test]
fn each_layer_uses_only_the_layers_declared_before_it() {
    let graph = Graph::read(&src());
    let layers = layers_of(&std::fs::read_to_string(src().join("lib.rs")).expect("read lib.rs"));
    let mut wrong = String::new();
    for (from, targets) in &graph.edges {
        let Some(&layer) = layers.get(from) else {
            panic!("module `{from}` is not declared in lib.rs");
        };
        for (to, at) in targets {
            if layers[to] >= layer {
                let _ = writeln!(
                    wrong,
                    "`{from}` (layer {layer}) uses `{to}` (layer {}) at {}",
                    layers[to], at[0]
                );
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "lib.rs declares the modules bottom layer first (a layer is a run of `mod` lines, \
         ended by a blank or a `//` line); a module may use only the layers before its own:\n\
         {wrong}"
    );
}

#[test]
fn the_protocol_layer_does_no_io() {
    let mut found = Vec::new();
    for (file, _) in files_of(&src(), "protocol") {
        let text = std::fs::read_to_string(&file).expect("read a source file");
        let tokens = tokenize(&text);
        for (i, t) in tokens.iter().enumerate() {
            let next_is = |s: &str| path_segment_after(&tokens, i) == Some(s);
            let io = matches!(t.text.as_str(), "monoio" | "socket2" | "libc" | "tokio")
                || (t.text == "std" && (next_is("net") || next_is("fs") || next_is("io")));
            if io {
                found.push(format!("{}:{}: {}", file.display(), t.line, t.text));
            }
        }
    }
    assert!(
        found.is_empty(),
        "protocol/ turns bytes into commands and replies into bytes; sockets, files and the \
         runtime belong to connection.rs:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_reader_sees_through_comments_strings_groups_and_super() {
    let text = r##"
        // use crate::commented;
        /* crate::block /* nested */ crate::block2 */
        const S: &str = "crate::in_string \" crate::escaped";
        const R: &str = r#"crate::raw " crate::raw2"#;
        const P: &str = r"crate::raw3\";
        const C: u8 = b'"'; const D: u8 = b'\''; fn f<'a>(x: &'a str) {}
        use crate::{alpha::X, beta, gamma::{Y, Z}};
        pub(crate) fn g() { crate::delta::h(); $crate::eps::m!(); }
        use super::zeta;
        mod tests { use super::*; use super::super::eta; }
    "##;
    let uses: Vec<String> = crate_uses(&tokenize(text), 1)
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    assert_eq!(
        uses,
        ["alpha", "beta", "gamma", "delta", "eps", "zeta", "eta"]
    );
    // Two levels down (src/m/a.rs), `super` is `m` itself.
    assert!(crate_uses(&tokenize("use super::x;"), 2).is_empty());
}

#[test]
fn a_cycle_is_found_and_named() {
    let mut graph = Graph::default();
    for (from, to) in [("a", "d"), ("b", "c"), ("c", "d"), ("d", "e"), ("e", "b")] {
        graph.add(from, to, format!("{from}.rs:1"));
    }
    assert_eq!(
        graph.cycle().as_deref(),
        Some("d -> e (d.rs:1) -> b (e.rs:1) -> c (b.rs:1) -> d (c.rs:1)")
    );
    graph.edges.get_mut("e").unwrap().clear();
    assert_eq!(graph.cycle(), None);
}

#[test]
fn layers_follow_blank_and_comment_lines() {
    let lib = "//! Doc.\n#![warn(missing_docs)]\n\n// Bottom.\nmod b;\npub mod a;\n\n\
               /// Doc.\nmod c;\n// Top.\nmod d;\n";
    let layers = layers_of(lib);
    assert_eq!(
        layers.into_iter().collect::<Vec<_>>(),
        [
            ("a".into(), 0),
            ("b".into(), 0),
            ("c".into(), 1),
            ("d".into(), 2)
        ]
    );
}

/// Edges between top-level modules, each with where it was seen.
#[derive(Default)]
struct Graph {
    edges: BTreeMap<String, BTreeMap<String, Vec<String>>>,
}

impl Graph {
    fn read(src: &Path) -> Graph {
        let lib = std::fs::read_to_string(src.join("lib.rs")).expect("read lib.rs");
        let modules: BTreeSet<String> = layers_of(&lib).into_keys().collect();
        assert!(!modules.is_empty(), "no `mod` line in lib.rs");
        let reexports = reexports_of(&lib);
        let mut graph = Graph::default();
        for m in &modules {
            graph.edges.entry(m.clone()).or_default();
            for (file, depth) in files_of(src, m) {
                let text = std::fs::read_to_string(&file).expect("read a source file");
                for (name, line) in crate_uses(&tokenize(&text), depth) {
                    let to = if modules.contains(&name) {
                        name
                    } else if let Some(to) = reexports.get(&name) {
                        if !modules.contains(to) {
                            continue; // another crate's item, re-exported
                        }
                        to.clone()
                    } else {
                        let file = file.display();
                        panic!(
                            "{file}:{line}: crate::{name} is no module, nor re-exported by lib.rs"
                        );
                    };
                    if &to != m {
                        let at = format!(
                            "{}:{line}",
                            file.strip_prefix(src).unwrap_or(&file).display()
                        );
                        graph.add(m, &to, at);
                    }
                }
            }
        }
        graph
    }

    fn add(&mut self, from: &str, to: &str, at: String) {
        self.edges.entry(to.to_string()).or_default();
        let at_all = self
            .edges
            .entry(from.to_string())
            .or_default()
            .entry(to.to_string())
            .or_default();
        at_all.push(at);
    }

    /// A cycle, if there is one, found depth first: `a -> b (where) -> .. -> a (where)`, each
    /// edge with the first place it is seen.
    fn cycle(&self) -> Option<String> {
        let mut done = BTreeSet::new();
        for start in self.edges.keys() {
            if let Some(cycle) = self.cycle_from(start, &mut Vec::new(), &mut done) {
                let mut line = cycle[0].to_string();
                for pair in cycle.windows(2) {
                    let at = &self.edges[pair[0]][pair[1]][0];
                    let _ = write!(line, " -> {} ({at})", pair[1]);
                }
                return Some(line);
            }
        }
        None
    }

    /// Visits `v` with `path` the modules open above it; `done` holds those fully visited.
    fn cycle_from<'g>(
        &'g self,
        v: &'g str,
        path: &mut Vec<&'g str>,
        done: &mut BTreeSet<&'g str>,
    ) -> Option<Vec<&'g str>> {
        if let Some(open) = path.iter().position(|p| *p == v) {
            let mut cycle = path[open..].to_vec();
            cycle.push(v);
            return Some(cycle);
        }
        if done.contains(v) {
            return None;
        }
        path.push(v);
        for w in self.edges[v].keys() {
            if let Some(cycle) = self.cycle_from(w, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(v);
        None
    }
}

/// The modules lib.rs declares, each with its layer: a layer is a run of `mod` lines (with
/// their doc comments and attributes), ended by a blank line or a plain `//` comment, as
/// rustfmt groups them.
fn layers_of(lib: &str) -> BTreeMap<String, usize> {
    let mut layers = BTreeMap::new();
    let mut layer = 0;
    let mut in_layer = false;
    for line in lib.lines().map(str::trim) {
        let declared = line
            .strip_prefix("pub ")
            .or_else(|| line.strip_prefix("pub(crate) "))
            .unwrap_or(line)
            .strip_prefix("mod ")
            .and_then(|rest| rest.strip_suffix(';'));
        let ends_layer = line.is_empty()
            || (line.starts_with("//") && !line.starts_with("///") && !line.starts_with("//!"));
        if let Some(name) = declared {
            layers.insert(name.trim().to_string(), layer);
            in_layer = true;
        } else if ends_layer && in_layer {
            layer += 1;
            in_layer = false;
        }
    }
    layers
}

/// Names lib.rs re-exports (`pub use x::{A, B as C}`), each with the module `x` it comes from.
fn reexports_of(lib: &str) -> BTreeMap<String, String> {
    let tokens = tokenize(lib);
    let mut out = BTreeMap::new();
    let mut i = 0;
    while i < tokens.len() {
        if tokens[i].text != "use" {
            i += 1;
            continue;
        }
        let module = tokens[i + 1].text.clone();
        let mut j = i + 1;
        while tokens[j].text != ";" {
            let t = &tokens[j].text;
            let ends = matches!(tokens[j + 1].text.as_str(), "," | "}" | ";");
            if is_ident(t) && ends && *t != "self" {
                out.insert(t.clone(), module.clone());
            }
            j += 1;
        }
        i = j;
    }
    out
}

/// The files of top-level module `m`, each with its module depth (`m.rs` and `m/mod.rs` are 1,
/// `m/a.rs` is 2).
fn files_of(src: &Path, m: &str) -> Vec<(PathBuf, usize)> {
    let mut files = Vec::new();
    let flat = src.join(format!("{m}.rs"));
    if flat.is_file() {
        files.push((flat, 1));
    }
    let mut dirs = vec![(src.join(m), 2)];
    while let Some((dir, depth)) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry.expect("list a source directory").path();
            if path.is_dir() {
                dirs.push((path, depth + 1));
            } else if path.extension().is_some_and(|e| e == "rs") {
                let d = if path.file_name().is_some_and(|n| n == "mod.rs") {
                    depth - 1
                } else {
                    depth
                };
                files.push((path, d));
            }
        }
    }
    assert!(!files.is_empty(), "no source file for module `{m}`");
    files
}

/// The root-level names that paths in `tokens` start from (`crate::x`, `use crate::{x, y}`,
/// `super::x` from `depth` levels down), each with its line.
fn crate_uses(tokens: &[Token], depth: usize) -> Vec<(String, usize)> {
    let mut out = Vec::new();
    // For each open brace: does it open an inline `mod name { .. }`?
    let mut braces: Vec<bool> = Vec::new();
    for (i, t) in tokens.iter().enumerate() {
        match t.text.as_str() {
            "{" => braces.push(i >= 2 && tokens[i - 2].text == "mod"),
            "}" => {
                braces.pop();
            }
            "crate" if path_sep_after(tokens, i) => {
                out.extend(root_names(tokens, i));
            }
            "super" if (i == 0 || tokens[i - 1].text != ":") && path_sep_after(tokens, i) => {
                // `super :: super :: ..` from `here` levels down: at the crate root it names a
                // root item.
                let here = depth + braces.iter().filter(|m| **m).count();
                let (mut ups, mut last) = (1, i);
                while tokens.get(last + 3).is_some_and(|t| t.text == "super")
                    && path_sep_after(tokens, last + 3)
                {
                    ups += 1;
                    last += 3;
                }
                if ups >= here {
                    out.extend(root_names(tokens, last));
                }
            }
            _ => {}
        }
    }
    out
}

/// The names a path names one level below the token at `i` (which is followed by `::`): one
/// name, or the first name of each element of a `{ .. }` group.
fn root_names(tokens: &[Token], i: usize) -> Vec<(String, usize)> {
    if let Some(name) = path_segment_after(tokens, i) {
        return vec![(name.to_string(), tokens[i].line)];
    }
    let mut out = Vec::new();
    let mut level = 0;
    let mut expect_name = true;
    for t in &tokens[i + 3..] {
        match t.text.as_str() {
            "{" => {
                level += 1;
                expect_name = level == 1;
            }
            "}" => {
                level -= 1;
                if level == 0 {
                    break;
                }
            }
            "," if level == 1 => expect_name = true,
            name if expect_name && is_ident(name) => {
                out.push((name.to_string(), t.line));
                expect_name = false;
            }
            _ => expect_name = false,
        }
    }
    out
}

/// Whether `tokens[i]` is followed by `::`.
fn path_sep_after(tokens: &[Token], i: usize) -> bool {
    matches!(tokens.get(i + 1..i + 3), Some([a, b]) if a.text == ":" && b.text == ":")
}

/// The identifier after `tokens[i] ::`, if that is what follows.
fn path_segment_after(tokens: &[Token], i: usize) -> Option<&str> {
    match tokens.get(i + 1..i + 4)? {
        [a, b, c] if a.text == ":" && b.text == ":" && is_ident(&c.text) => Some(&c.text),
        _ => None,
    }
}

fn is_ident(s: &str) -> bool {
    s.starts_with(|c: char| c.is_alphabetic() || c == '_')
}

struct Token {
    text: String,
    line: usize,
}

/// Identifiers and punctuation of Rust source, one character per punctuation token, without
/// comments, string and character literals, and lifetimes.
fn tokenize(text: &str) -> Vec<Token> {
    let mut lx = Lexer {
        c: text.chars().collect(),
        i: 0,
        line: 1,
    };
    let mut tokens = Vec::new();
    while lx.i < lx.c.len() {
        match (lx.at(0), lx.at(1)) {
            (w, _) if w.is_whitespace() => lx.skip(1),
            ('/', '/') => lx.skip_while(|c| c != '\n'),
            ('/', '*') => lx.block_comment(),
            ('"', _) => lx.string(false, 0),
            ('\'', _) => lx.char_or_lifetime(),
            (w, _) if w.is_alphanumeric() || w == '_' => {
                let line = lx.line;
                let start = lx.i;
                lx.skip_while(|c| c.is_alphanumeric() || c == '_');
                let word: String = lx.c[start..lx.i].iter().collect();
                // A prefixed literal (b"..", r#".."#, b'x'): the quote is read as a literal.
                let hashes = lx.c[lx.i..].iter().take_while(|&&h| h == '#').count();
                match (word.as_str(), lx.at(hashes)) {
                    ("r" | "br" | "cr", '"') => lx.string(true, hashes),
                    ("b" | "c", '"' | '\'') if hashes == 0 => {}
                    _ => tokens.push(Token { text: word, line }),
                }
            }
            (p, _) => {
                tokens.push(Token {
                    text: p.to_string(),
                    line: lx.line,
                });
                lx.skip(1);
            }
        }
    }
    tokens
}

/// A position in Rust source, counting lines.
struct Lexer {
    c: Vec<char>,
    i: usize,
    line: usize,
}

impl Lexer {
    fn at(&self, k: usize) -> char {
        self.c.get(self.i + k).copied().unwrap_or('\0')
    }

    fn skip(&mut self, n: usize) {
        for _ in 0..n {
            if self.at(0) == '\n' {
                self.line += 1;
            }
            self.i += 1;
        }
    }

    fn skip_while(&mut self, f: impl Fn(char) -> bool) {
        while self.i < self.c.len() && f(self.at(0)) {
            self.skip(1);
        }
    }

    /// `/* .. */`, nested.
    fn block_comment(&mut self) {
        let mut nesting = 0;
        while self.i < self.c.len() {
            match (self.at(0), self.at(1)) {
                ('/', '*') => nesting += 1,
                ('*', '/') => nesting -= 1,
                _ => {
                    self.skip(1);
                    continue;
                }
            }
            self.skip(2);
            if nesting == 0 {
                return;
            }
        }
    }

    /// A string literal from its `#`s and opening quote: in a plain one (`raw` false) a `\\`
    /// escapes the next character; a raw one ends at a quote followed by `hashes` `#`s.
    fn string(&mut self, raw: bool, hashes: usize) {
        self.skip(hashes + 1);
        while self.i < self.c.len() {
            if self.at(0) == '\\' && !raw {
                self.skip(2);
            } else if self.at(0) == '"' && (1..=hashes).all(|k| self.at(k) == '#') {
                self.skip(hashes + 1);
                return;
            } else {
                self.skip(1);
            }
        }
    }

    /// A character literal (`'x'`, `'\n'`, `'\u{1F600}'`) or a lifetime (`'a`).
    fn char_or_lifetime(&mut self) {
        if self.at(1) == '\\' {
            self.skip(3);
            self.skip_while(|c| c != '\'');
            self.skip(1);
        } else if self.at(2) == '\'' {
            self.skip(3);
        } else {
            self.skip(1);
            self.skip_while(|c| c.is_alphanumeric() || c == '_');
        }
    }
}
