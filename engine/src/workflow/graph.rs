//! The step DAG: cycles (named as paths), each step's transitive upstream, and a topological
//! order that keeps file order where the dependencies allow. Indices in, indices out; the
//! petgraph types stay in this file.

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, VecDeque};

use petgraph::algo::tarjan_scc;
use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::{Dfs, Reversed};

/// What the `needs` lists of the steps add up to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Dag {
    /// Per step, the steps it needs directly or transitively (never itself, even in a cycle).
    pub upstream: Vec<BTreeSet<usize>>,
    /// Each cycle as a path of step indices in which each needs the next, starting and ending at
    /// the cycle's step that comes first in the file; one per strongly connected component.
    pub cycles: Vec<Vec<usize>>,
    /// A topological order (needed steps first, otherwise file order); `None` with cycles.
    pub order: Option<Vec<usize>>,
}

/// Analyses the graph in which step `i` needs the steps `needs[i]` (valid indices).
pub(super) fn analyse(needs: &[Vec<usize>]) -> Dag {
    let n = needs.len();
    // An edge runs from a needed step to the step that needs it.
    let mut graph: DiGraph<(), ()> = DiGraph::with_capacity(n, needs.iter().map(Vec::len).sum());
    for _ in 0..n {
        graph.add_node(());
    }
    for (step, list) in needs.iter().enumerate() {
        for &needed in list {
            graph.add_edge(NodeIndex::new(needed), NodeIndex::new(step), ());
        }
    }

    let upstream = (0..n)
        .map(|i| {
            let mut seen = BTreeSet::new();
            let mut dfs = Dfs::new(Reversed(&graph), NodeIndex::new(i));
            while let Some(node) = dfs.next(Reversed(&graph)) {
                if node.index() != i {
                    seen.insert(node.index());
                }
            }
            seen
        })
        .collect();

    let mut cycles: Vec<Vec<usize>> = tarjan_scc(&graph)
        .into_iter()
        .filter_map(|component| {
            let members: BTreeSet<usize> = component.iter().map(|n| n.index()).collect();
            let first = *members.first()?;
            let self_loop = needs[first].contains(&first);
            (members.len() > 1 || self_loop).then(|| cycle_through(first, &members, needs)).flatten()
        })
        .collect();
    cycles.sort();

    let order = cycles.is_empty().then(|| file_ordered_toposort(needs));
    Dag { upstream, cycles, order }
}

/// The shortest path from `start` back to itself along `needs`, inside one component.
fn cycle_through(start: usize, members: &BTreeSet<usize>, needs: &[Vec<usize>]) -> Option<Vec<usize>> {
    let mut previous = vec![None; needs.len()];
    let mut queue = VecDeque::from([start]);
    while let Some(at) = queue.pop_front() {
        let mut next: Vec<usize> = needs[at].iter().copied().filter(|n| members.contains(n)).collect();
        next.sort_unstable();
        next.dedup();
        for n in next {
            if n == start {
                let mut path = vec![at];
                let mut cursor = at;
                while cursor != start {
                    cursor = previous[cursor]?;
                    path.push(cursor);
                }
                path.reverse();
                path.push(start);
                return Some(path);
            }
            if previous[n].is_none() && n != start {
                previous[n] = Some(at);
                queue.push_back(n);
            }
        }
    }
    None
}

/// Kahn's algorithm, always taking the ready step that comes first in the file.
fn file_ordered_toposort(needs: &[Vec<usize>]) -> Vec<usize> {
    let n = needs.len();
    let mut waiting_on: Vec<usize> =
        needs.iter().map(|list| list.iter().collect::<BTreeSet<_>>().len()).collect();
    let mut dependents = vec![Vec::new(); n];
    for (step, list) in needs.iter().enumerate() {
        for &needed in list.iter().collect::<BTreeSet<_>>() {
            dependents[needed].push(step);
        }
    }
    let mut ready: BinaryHeap<Reverse<usize>> =
        waiting_on.iter().enumerate().filter(|(_, w)| **w == 0).map(|(i, _)| Reverse(i)).collect();
    let mut order = Vec::with_capacity(n);
    while let Some(Reverse(step)) = ready.pop() {
        order.push(step);
        for &d in &dependents[step] {
            waiting_on[d] -= 1;
            if waiting_on[d] == 0 {
                ready.push(Reverse(d));
            }
        }
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_keeps_file_order_where_it_can() {
        // 0 needs 2; 1 needs nothing; 2 needs nothing; 3 needs 0 and 1.
        let dag = analyse(&[vec![2], vec![], vec![], vec![0, 1]]);
        assert_eq!(dag.order, Some(vec![1, 2, 0, 3]));
        assert!(dag.cycles.is_empty());
        assert_eq!(dag.upstream[3], BTreeSet::from([0, 1, 2]));
        assert_eq!(dag.upstream[0], BTreeSet::from([2]));
        assert!(dag.upstream[1].is_empty());
    }

    #[test]
    fn cycles_are_named_from_their_first_step_along_needs() {
        // 0 needs 1, 1 needs 2, 2 needs 0; 3 needs 3; 4 needs 0.
        let dag = analyse(&[vec![1], vec![2], vec![0], vec![3], vec![0]]);
        assert_eq!(dag.cycles, vec![vec![0, 1, 2, 0], vec![3, 3]]);
        assert_eq!(dag.order, None);
        assert_eq!(dag.upstream[0], BTreeSet::from([1, 2]));
        assert_eq!(dag.upstream[4], BTreeSet::from([0, 1, 2]));
        // The shortest way round when there are several.
        let dag = analyse(&[vec![1, 2], vec![2], vec![0]]);
        assert_eq!(dag.cycles, vec![vec![0, 2, 0]]);
    }
}
