//! The dependency graph of components (from `depends_on`) and the orders derived from it:
//! SOP order for `--sequential`, "start when dependencies are done" for concurrent deploys,
//! and the reverse for delete and shutdown.

use std::collections::{BTreeMap, BTreeSet};

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("component `{component}` depends on unknown component `{dependency}` (known: {known})")]
    UnknownDependency {
        component: String,
        dependency: String,
        known: String,
    },
    #[error("dependency cycle: {}", cycle.join(" -> "))]
    Cycle { cycle: Vec<String> },
    #[error("unknown component `{name}` (known: {known})")]
    UnknownComponent { name: String, known: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Node {
    sop_order: u32,
    depends_on: Vec<String>,
}

/// A checked acyclic dependency graph.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Graph {
    nodes: BTreeMap<String, Node>,
}

impl Graph {
    /// Builds the graph from `(name, sop_order, depends_on)`; unknown names and cycles are errors.
    pub fn new(components: impl IntoIterator<Item = (String, u32, Vec<String>)>) -> Result<Self> {
        let nodes: BTreeMap<String, Node> = components
            .into_iter()
            .map(|(name, sop_order, depends_on)| {
                (
                    name,
                    Node {
                        sop_order,
                        depends_on,
                    },
                )
            })
            .collect();
        let graph = Self { nodes };
        for (name, node) in &graph.nodes {
            for dep in &node.depends_on {
                if !graph.nodes.contains_key(dep) {
                    return Err(Error::UnknownDependency {
                        component: name.clone(),
                        dependency: dep.clone(),
                        known: graph.known(),
                    });
                }
            }
        }
        graph.check_acyclic()?;
        Ok(graph)
    }

    fn known(&self) -> String {
        self.nodes.keys().cloned().collect::<Vec<_>>().join(", ")
    }

    fn check_acyclic(&self) -> Result<()> {
        #[derive(Clone, Copy, PartialEq)]
        enum Mark {
            Visiting,
            Done,
        }
        fn visit<'a>(
            graph: &'a Graph,
            name: &'a str,
            marks: &mut BTreeMap<&'a str, Mark>,
            path: &mut Vec<&'a str>,
        ) -> Result<()> {
            match marks.get(name) {
                Some(Mark::Done) => return Ok(()),
                Some(Mark::Visiting) => {
                    let start = path.iter().position(|n| *n == name).unwrap_or(0);
                    let mut cycle: Vec<String> =
                        path[start..].iter().map(|s| s.to_string()).collect();
                    cycle.push(name.to_string());
                    return Err(Error::Cycle { cycle });
                }
                None => {}
            }
            marks.insert(name, Mark::Visiting);
            path.push(name);
            for dep in &graph.nodes[name].depends_on {
                visit(graph, dep, marks, path)?;
            }
            path.pop();
            marks.insert(name, Mark::Done);
            Ok(())
        }
        let mut marks = BTreeMap::new();
        for name in self.in_sop_order() {
            visit(self, name, &mut marks, &mut Vec::new())?;
        }
        Ok(())
    }

    fn in_sop_order(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.nodes.keys().map(String::as_str).collect();
        names.sort_by_key(|n| self.nodes[*n].sop_order);
        names
    }

    pub fn contains(&self, name: &str) -> bool {
        self.nodes.contains_key(name)
    }

    /// Checks that every name is a component; returns them deduplicated in SOP order.
    pub fn select<S: AsRef<str>>(&self, names: &[S]) -> Result<Vec<String>> {
        let mut wanted = BTreeSet::new();
        for name in names {
            let name = name.as_ref();
            if !self.contains(name) {
                return Err(Error::UnknownComponent {
                    name: name.to_string(),
                    known: self.known(),
                });
            }
            wanted.insert(name);
        }
        Ok(self
            .in_sop_order()
            .into_iter()
            .filter(|n| wanted.contains(n))
            .map(str::to_string)
            .collect())
    }

    /// Direct dependencies of `name`.
    pub fn dependencies(&self, name: &str) -> &[String] {
        self.nodes.get(name).map_or(&[], |n| &n.depends_on)
    }

    /// Every component that depends on `name`, directly or not, in SOP order.
    pub fn dependents(&self, name: &str) -> Vec<String> {
        let mut found = BTreeSet::new();
        let mut frontier = vec![name.to_string()];
        while let Some(current) = frontier.pop() {
            for (other, node) in &self.nodes {
                if node.depends_on.contains(&current) && found.insert(other.clone()) {
                    frontier.push(other.clone());
                }
            }
        }
        self.in_sop_order()
            .into_iter()
            .filter(|n| found.contains(*n))
            .map(str::to_string)
            .collect()
    }

    /// All components in a dependency-respecting order; ties broken by SOP order. This is the
    /// `--sequential` order (SOP-002 lists components so that it is also their SOP order).
    pub fn sequential_order(&self) -> Vec<String> {
        // Kahn's algorithm, always taking the ready component with the lowest SOP order.
        let sop = self.in_sop_order();
        let mut done: BTreeSet<&str> = BTreeSet::new();
        let mut order = Vec::with_capacity(sop.len());
        while order.len() < sop.len() {
            let next = sop
                .iter()
                .copied()
                .find(|n| {
                    !done.contains(n)
                        && self.nodes[*n]
                            .depends_on
                            .iter()
                            .all(|d| done.contains(d.as_str()))
                })
                .expect("the graph was checked to be acyclic");
            done.insert(next);
            order.push(next.to_string());
        }
        order
    }

    /// Components grouped in waves: each wave's dependencies are all in earlier waves.
    pub fn waves(&self) -> Vec<Vec<String>> {
        let mut level: BTreeMap<&str, usize> = BTreeMap::new();
        fn depth<'a>(
            graph: &'a Graph,
            name: &'a str,
            level: &mut BTreeMap<&'a str, usize>,
        ) -> usize {
            if let Some(d) = level.get(name) {
                return *d;
            }
            let d = graph.nodes[name]
                .depends_on
                .iter()
                .map(|dep| depth(graph, dep, level) + 1)
                .max()
                .unwrap_or(0);
            level.insert(name, d);
            d
        }
        let names = self.in_sop_order();
        for name in &names {
            depth(self, name, &mut level);
        }
        let count = level.values().max().map_or(0, |m| m + 1);
        let mut waves = vec![Vec::new(); count];
        for name in names {
            waves[level[name]].push(name.to_string());
        }
        waves
    }

    /// The order for delete and shutdown: dependents before what they depend on.
    pub fn reverse_order(&self) -> Vec<String> {
        let mut order = self.sequential_order();
        order.reverse();
        order
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The real FLUO dependency graph (also used by ops::schedule's tests).
    pub(crate) fn fluo() -> Graph {
        Graph::new([
            ("nats".to_string(), 1, vec![]),
            ("prometheus".to_string(), 2, vec![]),
            ("grafana".to_string(), 3, vec!["prometheus".to_string()]),
            ("bff".to_string(), 4, vec!["nats".to_string()]),
            ("workers".to_string(), 5, vec!["bff".to_string()]),
        ])
        .unwrap()
    }

    #[test]
    fn sequential_order_follows_sop_order_and_dependencies() {
        assert_eq!(
            fluo().sequential_order(),
            ["nats", "prometheus", "grafana", "bff", "workers"]
        );
        // A dependency listed later in SOP order still goes first.
        let g = Graph::new([
            ("a".to_string(), 1, vec!["b".to_string()]),
            ("b".to_string(), 2, vec![]),
        ])
        .unwrap();
        assert_eq!(g.sequential_order(), ["b", "a"]);
    }

    #[test]
    fn waves_group_independent_components() {
        assert_eq!(
            fluo().waves(),
            vec![
                vec!["nats", "prometheus"],
                vec!["grafana", "bff"],
                vec!["workers"]
            ]
        );
    }

    #[test]
    fn reverse_order_puts_dependents_first() {
        assert_eq!(
            fluo().reverse_order(),
            ["workers", "bff", "grafana", "prometheus", "nats"]
        );
    }

    #[test]
    fn dependents_are_transitive() {
        let g = fluo();
        assert_eq!(g.dependents("nats"), ["bff", "workers"]);
        assert_eq!(g.dependents("prometheus"), ["grafana"]);
        assert!(g.dependents("workers").is_empty());
        assert_eq!(g.dependencies("bff"), ["nats"]);
    }

    #[test]
    fn unknown_dependency_is_named() {
        let err = Graph::new([("bff".to_string(), 1, vec!["natz".to_string()])]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "component `bff` depends on unknown component `natz` (known: bff)"
        );
    }

    #[test]
    fn cycle_is_named_with_its_path() {
        let err = Graph::new([
            ("a".to_string(), 1, vec!["b".to_string()]),
            ("b".to_string(), 2, vec!["c".to_string()]),
            ("c".to_string(), 3, vec!["a".to_string()]),
        ])
        .unwrap_err();
        assert_eq!(err.to_string(), "dependency cycle: a -> b -> c -> a");
    }

    #[test]
    fn select_checks_names_and_sorts_by_sop_order() {
        let g = fluo();
        assert_eq!(
            g.select(&["workers", "nats", "nats"]).unwrap(),
            ["nats", "workers"]
        );
        let err = g.select(&["natz"]).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("unknown component `natz` (known: bff, grafana")
        );
    }
}
