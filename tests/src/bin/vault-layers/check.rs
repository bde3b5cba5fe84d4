//! The rules of `layers.toml` over one crate's references: every top-level module is placed in
//! a layer, no module uses one in a higher layer, and no modules (files) form a cycle.
//!
//! It only judges what [`crate::scan`] found; it reads no files.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use crate::scan::{CrateScan, ModPath, Reference};

/// Every problem with `scan` against `layers` (lowest first), one message each: placement,
/// then upward uses in file order (between placed modules only), then cycles.
pub fn check(name: &str, layers: &[Vec<String>], scan: &CrateScan) -> Vec<String> {
    let mut problems = placement(name, layers, scan);
    let layer_of: HashMap<&str, usize> = layers
        .iter()
        .enumerate()
        .flat_map(|(i, layer)| layer.iter().map(move |m| (m.as_str(), i)))
        .collect();
    let edges = edges(scan);
    let mut upward: Vec<&Reference> = edges
        .values()
        .copied()
        .filter(|r| {
            let layer = |m: &ModPath| layer_of.get(m[0].as_str()).copied();
            matches!((layer(&r.from), layer(&r.to)), (Some(low), Some(high)) if low < high)
        })
        .collect();
    upward.sort_by_key(|r| (&r.file, r.line));
    for r in upward {
        let (from, to) = (show(&r.from), show(&r.to));
        let (low, high) = (&r.from[0], &r.to[0]);
        let place = format!("{}:{}", r.file.display(), r.line);
        problems.push(format!(
            "{place}: {from} uses {to} (layer {high} is above {low})"
        ));
    }
    problems.extend(cycles(&edges));
    problems
}

/// Top-level modules missing from `layers`, and names in `layers` that are no module or twice.
fn placement(name: &str, layers: &[Vec<String>], scan: &CrateScan) -> Vec<String> {
    let mut problems = Vec::new();
    let mut placed = BTreeSet::new();
    for module in layers.iter().flatten() {
        if !placed.insert(module.as_str()) {
            problems.push(format!(
                "layers.toml: {name}: module {module} is listed twice"
            ));
        } else if !scan.modules.contains_key(std::slice::from_ref(module)) {
            problems.push(format!(
                "layers.toml: {name} has no top-level module {module}"
            ));
        }
    }
    for (module, file) in &scan.modules {
        if module.len() == 1 && !placed.contains(module[0].as_str()) {
            let file = file.display();
            problems.push(format!(
                "{file}: module {} is not in layers.toml",
                module[0]
            ));
        }
    }
    problems
}

/// One reference per pair of modules (the first in its file), so each edge is reported once.
fn edges(scan: &CrateScan) -> BTreeMap<(&ModPath, &ModPath), &Reference> {
    let mut edges: BTreeMap<(&ModPath, &ModPath), &Reference> = BTreeMap::new();
    for reference in &scan.references {
        let first = edges
            .entry((&reference.from, &reference.to))
            .or_insert(reference);
        if reference.line < first.line {
            *first = reference;
        }
    }
    edges
}

/// One shortest cycle for each group of modules that reach each other (strongly connected
/// component), with the reference behind each step.
fn cycles(edges: &BTreeMap<(&ModPath, &ModPath), &Reference>) -> Vec<String> {
    let mut next: BTreeMap<&ModPath, Vec<&ModPath>> = BTreeMap::new();
    for (from, to) in edges.keys() {
        next.entry(from).or_default().push(to);
        next.entry(to).or_default();
    }
    let reach: BTreeMap<&ModPath, BTreeSet<&ModPath>> =
        next.keys().map(|&m| (m, reachable(m, &next))).collect();
    let mut seen = BTreeSet::new();
    let mut problems = Vec::new();
    for (&start, from_start) in &reach {
        let tangle: BTreeSet<&ModPath> = from_start
            .iter()
            .copied()
            .filter(|m| reach[m].contains(start))
            .collect();
        if seen.contains(start) || tangle.len() < 2 {
            continue;
        }
        seen.extend(tangle.iter().copied());
        let cycle = shortest_cycle(start, &tangle, &next);
        let names: Vec<String> = cycle.iter().map(|m| show(m)).collect();
        let mut message = format!("cycle: {}", names.join(" -> "));
        if tangle.len() + 1 > cycle.len() {
            let all: Vec<String> = tangle.iter().map(|m| show(m)).collect();
            message += &format!(" (tangled together: {})", all.join(", "));
        }
        for step in cycle.windows(2) {
            let r = edges[&(step[0], step[1])];
            let (from, to) = (show(&r.from), show(&r.to));
            message += &format!("\n  {}:{}: {from} uses {to}", r.file.display(), r.line);
        }
        problems.push(message);
    }
    problems
}

/// The modules reachable from `start` in one or more steps.
fn reachable<'a>(
    start: &'a ModPath,
    next: &BTreeMap<&'a ModPath, Vec<&'a ModPath>>,
) -> BTreeSet<&'a ModPath> {
    let mut found = BTreeSet::new();
    let mut todo = vec![start];
    while let Some(module) = todo.pop() {
        for &to in &next[module] {
            if found.insert(to) {
                todo.push(to);
            }
        }
    }
    found
}

/// A shortest path from `start` back to itself inside `tangle`, `start` at both ends.
fn shortest_cycle<'a>(
    start: &'a ModPath,
    tangle: &BTreeSet<&'a ModPath>,
    next: &BTreeMap<&'a ModPath, Vec<&'a ModPath>>,
) -> Vec<&'a ModPath> {
    let mut parent: HashMap<&ModPath, &ModPath> = HashMap::new();
    let mut queue = VecDeque::from([start]);
    while let Some(module) = queue.pop_front() {
        for &to in next[module].iter().filter(|to| tangle.contains(*to)) {
            if to == start {
                let mut path = vec![start, module];
                while let Some(&up) = parent.get(path[path.len() - 1]) {
                    path.push(up);
                }
                path.reverse();
                return path;
            }
            if !parent.contains_key(to) {
                parent.insert(to, module);
                queue.push_back(to);
            }
        }
    }
    vec![start]
}

/// `engine::state` for `["engine", "state"]`.
pub fn show(module: &[String]) -> String {
    module.join("::")
}
