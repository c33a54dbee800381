//! Module cycles in a crate's sources: at every level of the module tree, sibling modules must be
//! layered (no module uses one that uses it back, directly or around a loop). A module may use its
//! ancestors and its descendants freely; what counts is the edge between the two siblings, under
//! their closest common ancestor, that a `crate::`, `super::` or `self::` path crosses. Test code
//! (`#[cfg(test)]` modules and items) is left out: tests may use any module, as may their helpers.

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt,
    path::{Path, PathBuf},
};

use anyhow::Context as _;
use syn::visit::Visit;

/// A module by its path from the crate root (`["engine", "ledger"]`); the root is empty.
type ModulePath = Vec<String>;

/// One loop among sibling modules, with the uses that close it.
#[derive(Debug)]
pub struct Cycle {
    /// The common parent of the looping modules (`crate` for top-level ones).
    pub parent: String,
    pub modules: Vec<String>,
    /// `from -> to (file: path)` for each sibling edge inside the loop, one example each.
    pub uses: Vec<String>,
}

impl fmt::Display for Cycle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "a cycle under {}: {}",
            self.parent,
            self.modules.join(", ")
        )?;
        for used in &self.uses {
            writeln!(f, "  {used}")?;
        }
        Ok(())
    }
}

/// The cycles among the modules of the crate whose root file is `src/lib.rs` or `src/main.rs`
/// under `crate_dir` (the library when both exist).
pub fn find(crate_dir: &Path) -> anyhow::Result<Vec<Cycle>> {
    let src = crate_dir.join("src");
    let files = module_files(&src)?;
    let modules: BTreeSet<ModulePath> = files.keys().cloned().collect();
    let mut parsed = BTreeMap::new();
    let mut test_only = BTreeSet::new();
    for (module, file) in &files {
        let text = std::fs::read_to_string(file).with_context(|| file.display().to_string())?;
        let syntax =
            syn::parse_file(&text).with_context(|| format!("parsing {}", file.display()))?;
        for item in &syntax.items {
            if let syn::Item::Mod(declared) = item
                && is_test(&declared.attrs)
            {
                let mut child = module.clone();
                child.push(declared.ident.to_string());
                test_only.insert(child);
            }
        }
        parsed.insert(module.clone(), syntax);
    }
    // sibling edges under each parent: (parent, from, to) -> an example use
    let mut edges: BTreeMap<(ModulePath, String, String), String> = BTreeMap::new();
    for (module, syntax) in &parsed {
        if (1..=module.len()).any(|n| test_only.contains(&module[..n])) {
            continue;
        }
        let file = &files[module];
        let mut uses = Uses {
            here: module.clone(),
            modules: &modules,
            found: BTreeSet::new(),
        };
        uses.visit_file(syntax);
        for target in uses.found {
            let common = module
                .iter()
                .zip(&target)
                .take_while(|(a, b)| a == b)
                .count();
            let (Some(from), Some(to)) = (module.get(common), target.get(common)) else {
                continue; // an ancestor or a descendant
            };
            let shown = file.strip_prefix(crate_dir).unwrap_or(file);
            edges
                .entry((module[..common].to_vec(), from.clone(), to.clone()))
                .or_insert_with(|| {
                    format!(
                        "{from} -> {to} ({}: {})",
                        shown.display(),
                        target.join("::")
                    )
                });
        }
    }
    let mut by_parent: BTreeMap<ModulePath, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for (parent, from, to) in edges.keys() {
        by_parent
            .entry(parent.clone())
            .or_default()
            .entry(from.clone())
            .or_default()
            .insert(to.clone());
    }
    let mut cycles = Vec::new();
    for (parent, graph) in &by_parent {
        for component in strongly_connected(graph) {
            let uses = edges
                .iter()
                .filter(|((p, from, to), _)| {
                    p == parent && component.contains(from) && component.contains(to)
                })
                .map(|(_, example)| example.clone())
                .collect();
            cycles.push(Cycle {
                parent: if parent.is_empty() {
                    "crate".to_owned()
                } else {
                    parent.join("::")
                },
                modules: component.into_iter().collect(),
                uses,
            });
        }
    }
    Ok(cycles)
}

/// Every module file under `src`, by module path (`lib.rs`/`main.rs` the root, `x/mod.rs` and
/// `x.rs` the module `x`). Binaries under `src/bin` are crates of their own and left out.
fn module_files(src: &Path) -> anyhow::Result<BTreeMap<ModulePath, PathBuf>> {
    let mut found = BTreeMap::new();
    let mut dirs = vec![src.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).with_context(|| dir.display().to_string())? {
            let path = entry?.path();
            if path.is_dir() {
                if path != src.join("bin") {
                    dirs.push(path);
                }
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let relative = path.strip_prefix(src)?.with_extension("");
            let mut module: ModulePath = relative
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            match module.last().map(String::as_str) {
                Some("mod") => {
                    module.pop();
                }
                Some("lib") if module.len() == 1 => module.clear(),
                Some("main") if module.len() == 1 => {
                    if src.join("lib.rs").exists() {
                        continue; // the binary is a crate apart from the library
                    }
                    module.clear();
                }
                _ => {}
            }
            found.insert(module, path);
        }
    }
    Ok(found)
}

/// The modules a file's paths lead into: `use` trees and paths in code that start with `crate`,
/// `super` or `self`, or (as `use` allows) with the name of a child module.
struct Uses<'a> {
    /// The module being read, with the inline modules (`mod tests { … }`) entered so far.
    here: ModulePath,
    modules: &'a BTreeSet<ModulePath>,
    found: BTreeSet<ModulePath>,
}

impl Uses<'_> {
    /// Records the deepest known module that `segments` (a path as written) leads into.
    fn record(&mut self, segments: &[String]) {
        let Some(absolute) = self.resolve(segments) else {
            return;
        };
        let deepest = (0..=absolute.len())
            .rev()
            .map(|n| absolute[..n].to_vec())
            .find(|m| self.modules.contains(m));
        if let Some(module) = deepest {
            self.found.insert(module);
        }
    }

    fn resolve(&self, segments: &[String]) -> Option<ModulePath> {
        let (first, rest) = segments.split_first()?;
        let mut base = self.here.clone();
        match first.as_str() {
            "crate" => base.clear(),
            "self" => {}
            "super" => {
                base.pop()?;
                let mut rest = rest;
                while rest.first().is_some_and(|s| s == "super") {
                    base.pop()?;
                    rest = &rest[1..];
                }
                base.extend(rest.iter().cloned());
                return Some(base);
            }
            _ => {
                let mut child = base.clone();
                child.push(first.clone());
                if !self.modules.contains(&child) {
                    return None; // another crate, or a name in scope
                }
                base.push(first.clone());
            }
        }
        base.extend(rest.iter().cloned());
        Some(base)
    }

    fn use_tree(&mut self, prefix: &mut Vec<String>, tree: &syn::UseTree) {
        match tree {
            syn::UseTree::Path(path) => {
                prefix.push(path.ident.to_string());
                self.use_tree(prefix, &path.tree);
                prefix.pop();
            }
            syn::UseTree::Name(name) => {
                prefix.push(name.ident.to_string());
                self.record(prefix);
                prefix.pop();
            }
            syn::UseTree::Rename(rename) => {
                prefix.push(rename.ident.to_string());
                self.record(prefix);
                prefix.pop();
            }
            syn::UseTree::Glob(_) => self.record(prefix),
            syn::UseTree::Group(group) => {
                for tree in &group.items {
                    self.use_tree(prefix, tree);
                }
            }
        }
    }
}

impl<'ast> Visit<'ast> for Uses<'_> {
    fn visit_item_use(&mut self, item: &'ast syn::ItemUse) {
        self.use_tree(&mut Vec::new(), &item.tree);
    }

    fn visit_item_mod(&mut self, item: &'ast syn::ItemMod) {
        if item.content.is_none() || is_test(&item.attrs) {
            return; // `mod x;`: the file of its own
        }
        self.here.push(item.ident.to_string());
        syn::visit::visit_item_mod(self, item);
        self.here.pop();
    }

    fn visit_item_fn(&mut self, item: &'ast syn::ItemFn) {
        if !is_test(&item.attrs) {
            syn::visit::visit_item_fn(self, item);
        }
    }

    fn visit_path(&mut self, path: &'ast syn::Path) {
        let segments: Vec<String> = path.segments.iter().map(|s| s.ident.to_string()).collect();
        if segments
            .first()
            .is_some_and(|s| matches!(s.as_str(), "crate" | "super" | "self"))
        {
            self.record(&segments);
        }
        syn::visit::visit_path(self, path);
    }
}

/// `#[cfg(test)]`.
fn is_test(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|attr| {
        attr.path().is_ident("cfg")
            && attr
                .parse_args::<syn::Ident>()
                .is_ok_and(|ident| ident == "test")
    })
}

/// Tarjan's strongly connected components of more than one node.
fn strongly_connected(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<BTreeSet<String>> {
    struct Search<'a> {
        graph: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        found: Vec<BTreeSet<String>>,
    }
    impl<'a> Search<'a> {
        fn visit(&mut self, node: &'a str) {
            let n = self.index.len();
            self.index.insert(node, n);
            self.low.insert(node, n);
            self.stack.push(node);
            self.on_stack.insert(node);
            for next in self.graph.get(node).into_iter().flatten() {
                let next = next.as_str();
                if !self.index.contains_key(next) {
                    self.visit(next);
                    let low = self.low[node].min(self.low[next]);
                    self.low.insert(node, low);
                } else if self.on_stack.contains(next) {
                    let low = self.low[node].min(self.index[next]);
                    self.low.insert(node, low);
                }
            }
            if self.low[node] == self.index[node] {
                let mut component = BTreeSet::new();
                while let Some(top) = self.stack.pop() {
                    self.on_stack.remove(top);
                    component.insert(top.to_owned());
                    if top == node {
                        break;
                    }
                }
                if component.len() > 1 {
                    self.found.push(component);
                }
            }
        }
    }
    let mut search = Search {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        found: Vec::new(),
    };
    for node in graph.keys() {
        if !search.index.contains_key(node.as_str()) {
            search.visit(node);
        }
    }
    search.found
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    /// The check CI runs: the server's and the viewer's modules are layered.
    #[test]
    fn the_server_and_the_viewer_have_no_module_cycles() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut shown = Vec::new();
        for krate in ["server", "viewer", "protocol", "bench", "xtask"] {
            let cycles = super::find(&root.join(krate)).expect("the sources parse");
            shown.extend(cycles.iter().map(|c| format!("{krate}: {c}")));
        }
        assert!(shown.is_empty(), "{}", shown.join("\n"));
    }

    /// The check sees a loop through a `super::` path and one through `crate::`, and not a
    /// module's uses of its own parent.
    #[test]
    fn a_loop_between_siblings_is_found() {
        let dir = tempfile::tempdir().expect("tempdir");
        let src = dir.path().join("src");
        std::fs::create_dir_all(src.join("a")).expect("dirs");
        std::fs::write(src.join("lib.rs"), "mod a; mod b; mod c; use a::Top;").expect("lib");
        std::fs::write(src.join("a/mod.rs"), "mod x; mod y; pub struct Top;").expect("a");
        std::fs::write(src.join("a/x.rs"), "use super::y::Y; use super::Top;").expect("x");
        std::fs::write(
            src.join("a/y.rs"),
            "pub struct Y; fn f() { crate::a::x::g(); }",
        )
        .expect("y");
        std::fs::write(
            src.join("b.rs"),
            "use crate::a::Top; #[cfg(test)] mod t { use crate::c; }",
        )
        .expect("b");
        std::fs::write(src.join("c.rs"), "use crate::b;").expect("c");
        let cycles = super::find(dir.path()).expect("parse");
        assert_eq!(cycles.len(), 1, "{cycles:?}");
        assert_eq!(cycles[0].parent, "a");
        assert_eq!(cycles[0].modules, ["x", "y"]);
        std::fs::write(src.join("a/y.rs"), "pub struct Y;").expect("y");
        assert!(super::find(dir.path()).expect("parse").is_empty());
    }
}
