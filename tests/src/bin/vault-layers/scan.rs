//! Finds the modules (files) of one crate and every place one of them names another.
//!
//! A reader of source text with `syn`, not a compiler: it follows `use` trees, paths in
//! expressions, types and patterns, names a file imports, and `pub use` re-exports by name. It
//! does not follow glob re-exports (`pub use a::*`), `#[path]` attributes, or paths inside macro
//! bodies that are not comma-separated expressions (`assert_eq!(crate::a::f(), 1)` is read).

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::{Path, PathBuf};

use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::visit::{self, Visit};

/// A module's path from the crate root, `["engine", "state"]` for `engine::state`; the root
/// (`lib.rs`) is the empty path.
pub type ModPath = Vec<String>;

/// One place where a module names another module of the same crate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// The module the reference is written in.
    pub from: ModPath,
    /// The module it lands in.
    pub to: ModPath,
    /// The file it is written in, relative to the repository root.
    pub file: PathBuf,
    /// Its line in that file, from 1.
    pub line: usize,
}

/// The modules of one crate and the references between two of them.
#[derive(Debug, Default)]
pub struct CrateScan {
    /// Every module with its file (relative to the repository root); the root included.
    pub modules: BTreeMap<ModPath, PathBuf>,
    /// References between two different modules; none from the root and none to it.
    pub references: Vec<Reference>,
}

/// Names modules re-export with `pub use`: (module, name) → the absolute path it stands for.
type Reexports = HashMap<(ModPath, String), ModPath>;

/// Scans the crate whose sources are in `root/src`, `src/bin/` excluded (each binary is a crate
/// of its own that reaches the library by its name, not by `crate::`).
pub fn scan_crate(root: &Path, src: &Path) -> Result<CrateScan, String> {
    let files = read_files(root, src)?;
    let modules: BTreeMap<ModPath, PathBuf> = files
        .iter()
        .map(|(module, file, _)| (module.clone(), file.clone()))
        .collect();
    let none = Reexports::new();
    let bare = Resolver::new(&modules, &none, None);
    let reexports: Reexports = files
        .iter()
        .flat_map(|(module, _, names)| names.reexports(module, &bare))
        .collect();
    let mut references = Vec::new();
    for (module, file, names) in files.iter().filter(|(module, ..)| !module.is_empty()) {
        let resolver = Resolver::new(&modules, &reexports, Some(names));
        for (cur, segs, line) in names.named() {
            let Some(to) = resolver.absolute(cur, segs).map(|abs| resolver.target(abs)) else {
                continue;
            };
            if !to.is_empty() && to != *module {
                let (from, file) = (module.clone(), file.clone());
                references.push(Reference {
                    from,
                    to,
                    file,
                    line,
                });
            }
        }
    }
    Ok(CrateScan {
        modules,
        references,
    })
}

/// Every `.rs` file of the crate, parsed: its module, its path from `root`, the paths it names.
fn read_files(root: &Path, src: &Path) -> Result<Vec<(ModPath, PathBuf, Names)>, String> {
    let mut rels = Vec::new();
    collect_files(&root.join(src), Path::new(""), &mut rels)?;
    let mut files = Vec::new();
    for rel in rels {
        let file = src.join(&rel);
        let text =
            fs::read_to_string(root.join(&file)).map_err(|e| format!("{}: {e}", file.display()))?;
        let ast = syn::parse_file(&text)
            .map_err(|e| format!("{}:{}: {e}", file.display(), e.span().start().line))?;
        let module = module_path(&rel);
        let mut names = Names::new(module.clone());
        names.visit_file(&ast);
        files.push((module, file, names));
    }
    Ok(files)
}

/// Appends the `.rs` files under `dir` to `out`, as paths relative to the crate's `src/`.
fn collect_files(dir: &Path, rel: &Path, out: &mut Vec<PathBuf>) -> Result<(), String> {
    let entries = fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut paths: Vec<PathBuf> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
    paths.sort();
    for path in paths {
        let Some(name) = path.file_name() else {
            continue;
        };
        let child = rel.join(name);
        if path.is_dir() && child != Path::new("bin") {
            collect_files(&path, &child, out)?;
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            out.push(child);
        }
    }
    Ok(())
}

/// The module a file is: `a/b.rs` and `a/b/mod.rs` are `a::b`, `lib.rs` and `main.rs` the root.
pub fn module_path(rel: &Path) -> ModPath {
    let mut segs: ModPath = rel
        .with_extension("")
        .iter()
        .map(|s| s.to_string_lossy().into_owned())
        .collect();
    let last = segs.last().map(String::as_str);
    if last == Some("mod") || (segs.len() == 1 && matches!(last, Some("lib" | "main"))) {
        segs.pop();
    }
    segs
}

/// What resolves a written path to the module it lands in, for one file.
struct Resolver<'a> {
    /// Every module of the crate.
    modules: &'a BTreeMap<ModPath, PathBuf>,
    /// Every named re-export of the crate.
    reexports: &'a Reexports,
    /// Names this file's `use` items bring in from the crate → the absolute paths they stand for.
    aliases: HashMap<String, ModPath>,
}

impl<'a> Resolver<'a> {
    /// A resolver for the file whose paths are `names` (`None`: no file's imports).
    fn new(
        modules: &'a BTreeMap<ModPath, PathBuf>,
        reexports: &'a Reexports,
        names: Option<&Names>,
    ) -> Self {
        let mut resolver = Resolver {
            modules,
            reexports,
            aliases: HashMap::new(),
        };
        if let Some(names) = names {
            resolver.aliases = names.aliases(&resolver);
        }
        resolver
    }

    /// The absolute path `segs` stands for when written in module `cur`, or `None` when it
    /// names something outside the crate (std, another crate, a local, a type parameter).
    fn absolute(&self, cur: &[String], segs: &[String]) -> Option<ModPath> {
        let first = segs.first()?;
        Some(match first.as_str() {
            "crate" => segs[1..].to_vec(),
            "self" => [cur, &segs[1..]].concat(),
            "super" => {
                let ups = segs.iter().take_while(|s| *s == "super").count();
                [&cur[..cur.len().checked_sub(ups)?], &segs[ups..]].concat()
            }
            // One segment alone is a local name, a type or a function, never another module.
            _ if segs.len() < 2 => return None,
            _ if self.aliases.contains_key(first) => [&self.aliases[first], &segs[1..]].concat(),
            _ if self.modules.contains_key(&[cur, &segs[..1]].concat()) => [cur, segs].concat(),
            _ => return None,
        })
    }

    /// The module an absolute path lands in: its longest prefix that is a module, after
    /// following named re-exports (bounded, so a re-export naming itself cannot loop).
    fn target(&self, mut abs: ModPath) -> ModPath {
        for _ in 0..16 {
            let len = (0..=abs.len())
                .rev()
                .find(|n| self.modules.contains_key(&abs[..*n]));
            let len = len.unwrap_or(0);
            let key = abs.get(len).map(|name| (abs[..len].to_vec(), name.clone()));
            match key.and_then(|key| self.reexports.get(&key)) {
                Some(via) => abs = [via.as_slice(), &abs[len + 1..]].concat(),
                None => {
                    abs.truncate(len);
                    break;
                }
            }
        }
        abs
    }
}

/// One leaf of a `use` tree: `use a::{b as c, d::*}` has leaves `a::b` (named `c`) and `a::d`.
#[derive(Debug)]
struct UseLeaf {
    /// The module the `use` is written in (inline `mod` blocks included).
    cur: ModPath,
    /// The full path of the leaf; a `self` leaf is its prefix.
    segs: Vec<String>,
    /// The name it brings into scope; `None` for a glob.
    name: Option<String>,
    /// Whether the `use` is `pub` (any visibility but private) and at the top of its file.
    reexport: bool,
    /// Line of the leaf.
    line: usize,
}

/// Every path written in one file, as `syn` visits it.
struct Names {
    /// The module being visited: the file's module, then any inline `mod` blocks.
    cur: ModPath,
    /// Length of the file's own module path (inline blocks are deeper).
    depth: usize,
    /// The leaves of every `use` item.
    uses: Vec<UseLeaf>,
    /// Every other path (module it is written in, segments, line); leading `::` ones left out.
    paths: Vec<(ModPath, Vec<String>, usize)>,
}

impl Names {
    /// Nothing seen yet in the file of `module`.
    fn new(module: ModPath) -> Self {
        Names {
            depth: module.len(),
            cur: module,
            uses: Vec::new(),
            paths: Vec::new(),
        }
    }

    /// Every written path in the file: `use` leaves first, then the others.
    fn named(&self) -> impl Iterator<Item = (&[String], &[String], usize)> {
        let uses = self.uses.iter().map(|u| (&u.cur[..], &u.segs[..], u.line));
        uses.chain(
            self.paths
                .iter()
                .map(|(cur, segs, line)| (&cur[..], &segs[..], *line)),
        )
    }

    /// The names this file re-exports from the crate with a top-level `pub use`.
    fn reexports(&self, module: &ModPath, resolver: &Resolver) -> Reexports {
        let leaves = self.uses.iter().filter(|u| u.reexport);
        let resolved =
            leaves.filter_map(|u| Some((u.name.clone()?, resolver.absolute(&u.cur, &u.segs)?)));
        resolved
            .map(|(name, abs)| ((module.clone(), name), abs))
            .collect()
    }

    /// The names this file's `use` items bring in from the crate (file-wide, not per block).
    fn aliases(&self, resolver: &Resolver) -> HashMap<String, ModPath> {
        let leaves = self.uses.iter();
        leaves
            .filter_map(|u| Some((u.name.clone()?, resolver.absolute(&u.cur, &u.segs)?)))
            .collect()
    }

    /// Appends the leaves of `tree` under `prefix`.
    fn use_tree(&mut self, tree: &syn::UseTree, prefix: &mut Vec<String>, reexport: bool) {
        let (ident, name) = match tree {
            syn::UseTree::Path(p) => {
                prefix.push(p.ident.to_string());
                self.use_tree(&p.tree, prefix, reexport);
                prefix.pop();
                return;
            }
            syn::UseTree::Group(g) => {
                return g
                    .items
                    .iter()
                    .for_each(|t| self.use_tree(t, prefix, reexport));
            }
            syn::UseTree::Name(n) => (Some(&n.ident), Some(&n.ident)),
            syn::UseTree::Rename(r) => (Some(&r.ident), Some(&r.rename)),
            syn::UseTree::Glob(_) => (None, None),
        };
        let mut segs = prefix.clone();
        let mut name = name.map(|n| n.to_string());
        match ident {
            Some(ident) if ident == "self" => {
                name = name
                    .filter(|n| n != "self")
                    .or_else(|| prefix.last().cloned());
            }
            Some(ident) => segs.push(ident.to_string()),
            None => {}
        }
        let line = tree.span().start().line;
        self.uses.push(UseLeaf {
            cur: self.cur.clone(),
            segs,
            name,
            reexport,
            line,
        });
    }
}

/// Whether an item is compiled for tests only (`#[cfg(test)]`): test code
/// may use any layer (the in-memory and fault-injecting stores are test
/// doubles of the storage layer used by the engine's tests), so it is not
/// part of the dependency graph checked.
fn test_only(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|attr| {
        attr.path().is_ident("cfg")
            && attr
                .meta
                .require_list()
                .is_ok_and(|list| list.tokens.to_string() == "test")
    })
}

impl<'ast> Visit<'ast> for Names {
    fn visit_item_fn(&mut self, item: &'ast syn::ItemFn) {
        if !test_only(&item.attrs) {
            visit::visit_item_fn(self, item);
        }
    }

    fn visit_item_mod(&mut self, item: &'ast syn::ItemMod) {
        if test_only(&item.attrs) {
            return;
        }
        self.cur.push(item.ident.to_string());
        visit::visit_item_mod(self, item);
        self.cur.pop();
    }

    fn visit_item_use(&mut self, item: &'ast syn::ItemUse) {
        if item.leading_colon.is_none() && !test_only(&item.attrs) {
            let top = self.cur.len() == self.depth;
            let reexport = top && !matches!(item.vis, syn::Visibility::Inherited);
            self.use_tree(&item.tree, &mut Vec::new(), reexport);
        }
    }

    fn visit_path(&mut self, path: &'ast syn::Path) {
        if let (None, Some(first)) = (path.leading_colon, path.segments.first()) {
            let segs = path.segments.iter().map(|s| s.ident.to_string()).collect();
            self.paths
                .push((self.cur.clone(), segs, first.ident.span().start().line));
        }
        visit::visit_path(self, path);
    }

    /// `pub(super)` and `pub(in crate::a)` say who may see an item, not what it uses.
    fn visit_visibility(&mut self, _: &'ast syn::Visibility) {}

    fn visit_macro(&mut self, mac: &'ast syn::Macro) {
        visit::visit_macro(self, mac);
        let parser = Punctuated::<syn::Expr, syn::Token![,]>::parse_terminated;
        if let Ok(args) = mac.parse_body_with(parser) {
            args.iter().for_each(|arg| self.visit_expr(arg));
        }
    }
}
