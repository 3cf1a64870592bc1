//! The step DAG: cycles (named as paths), which steps are upstream of which, and a topological
//! order that keeps file order where the dependencies allow. Indices in, indices out; the
//! petgraph types stay in this file.
//!
//! Must stay near-linear in the size of the workflow: a long chain is an ordinary workflow, so
//! nothing here may hold each step's transitive upstream as a set (a 4,000-step chain made that
//! 8 million entries). [`Upstream`] answers "is `a` upstream of `b`" on demand instead.

use std::cell::RefCell;
use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap, HashSet, VecDeque};

use petgraph::algo::kosaraju_scc;
use petgraph::graph::{DiGraph, NodeIndex};

/// What the `needs` lists of the steps add up to.
#[derive(Debug)]
pub(super) struct Dag {
    /// Which steps each step needs directly or transitively (never itself, even in a cycle).
    pub upstream: Upstream,
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

    // Strongly connected components, sinks first (petgraph gives them in reverse topological
    // order): a component of several steps, or of one that needs itself, is a cycle. Kosaraju's
    // algorithm, because petgraph's is iterative: its Tarjan recurses once per step of a chain
    // and overflowed a 2 MiB thread stack at 20,000 steps.
    let components = kosaraju_scc(&graph);
    let upstream = Upstream::new(needs, &components);
    let mut cycles: Vec<Vec<usize>> = components
        .iter()
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

/// Answers whether one step is upstream of another (needed by it, directly or transitively) in
/// about constant time for chains and trees, without storing upstream sets.
///
/// The steps' components (cycles collapsed) form a DAG. Each component has a topological rank
/// and the pre/post numbers of a depth-first forest along `needs` edges (needed to needing):
/// a component inside another's subtree is reachable from it, one of a lower or equal rank is
/// not. Only what neither rule decides is searched, backwards from the later component, never
/// below the earlier one's rank, and the answer is remembered.
#[derive(Debug)]
pub(super) struct Upstream {
    /// The component of each step.
    component: Vec<usize>,
    /// Whether each component is a cycle (then each of its steps is upstream of the others and
    /// of itself, but a step is never reported upstream of itself).
    cyclic: Vec<bool>,
    /// Each component's topological rank: a component's needs rank lower.
    rank: Vec<usize>,
    /// Depth-first forest numbers along the edges: `pre[a] <= pre[b] && post[b] <= post[a]`
    /// when `b` is in `a`'s subtree.
    pre: Vec<usize>,
    post: Vec<usize>,
    /// The components each component needs directly.
    needs: Vec<Vec<usize>>,
    /// Searches done and their scratch space.
    memo: RefCell<Memo>,
}

#[derive(Debug, Default)]
struct Memo {
    answers: HashMap<(usize, usize), bool>,
    /// Per component, the search that last visited it.
    visited: Vec<u32>,
    search: u32,
    stack: Vec<usize>,
}

impl Upstream {
    fn new(needs: &[Vec<usize>], components: &[Vec<NodeIndex>]) -> Self {
        let count = components.len();
        let mut component = vec![0; needs.len()];
        // Components come sinks first; rank them sources first.
        let mut rank = vec![0; count];
        for (c, members) in components.iter().enumerate() {
            rank[c] = count - 1 - c;
            for m in members {
                component[m.index()] = c;
            }
        }
        let mut cyclic: Vec<bool> = components.iter().map(|members| members.len() > 1).collect();
        let mut component_needs: Vec<HashSet<usize>> = vec![HashSet::new(); count];
        for (step, list) in needs.iter().enumerate() {
            for &needed in list {
                let (from, to) = (component[needed], component[step]);
                if from == to {
                    cyclic[to] = true;
                } else {
                    component_needs[to].insert(from);
                }
            }
        }
        let needs: Vec<Vec<usize>> = component_needs
            .into_iter()
            .map(|set| {
                let mut list: Vec<usize> = set.into_iter().collect();
                list.sort_unstable();
                list
            })
            .collect();
        let mut needed_by = vec![Vec::new(); count];
        for (c, list) in needs.iter().enumerate() {
            for &n in list {
                needed_by[n].push(c);
            }
        }

        // Depth-first forest from the sources, in rank order, iteratively.
        let (mut pre, mut post) = (vec![usize::MAX; count], vec![0; count]);
        let mut clock = 0;
        let mut by_rank: Vec<usize> = (0..count).collect();
        by_rank.sort_unstable_by_key(|&c| rank[c]);
        for root in by_rank {
            if pre[root] != usize::MAX {
                continue;
            }
            pre[root] = clock;
            clock += 1;
            let mut stack = vec![(root, 0)];
            while let Some((c, next)) = stack.last_mut() {
                let c = *c;
                if let Some(&child) = needed_by[c].get(*next) {
                    *next += 1;
                    if pre[child] == usize::MAX {
                        pre[child] = clock;
                        clock += 1;
                        stack.push((child, 0));
                    }
                } else {
                    post[c] = clock;
                    clock += 1;
                    stack.pop();
                }
            }
        }
        let memo = Memo { visited: vec![0; count], ..Memo::default() };
        Upstream { component, cyclic, rank, pre, post, needs, memo: RefCell::new(memo) }
    }

    /// Whether step `a` is upstream of step `b`: `b` needs it, directly or transitively.
    pub(super) fn is_upstream(&self, a: usize, b: usize) -> bool {
        if a == b {
            return false;
        }
        let (ca, cb) = (self.component[a], self.component[b]);
        if ca == cb {
            return self.cyclic[ca];
        }
        if self.rank[ca] >= self.rank[cb] {
            return false;
        }
        if self.in_subtree(ca, cb) {
            return true;
        }
        let mut memo = self.memo.borrow_mut();
        if let Some(&known) = memo.answers.get(&(ca, cb)) {
            return known;
        }
        let found = self.search(&mut memo, ca, cb);
        memo.answers.insert((ca, cb), found);
        found
    }

    /// Whether `c` is in the depth-first subtree of `root` (and so reachable from it).
    fn in_subtree(&self, root: usize, c: usize) -> bool {
        self.pre[root] <= self.pre[c] && self.post[c] <= self.post[root]
    }

    /// Searches backwards from component `to` for component `from`.
    fn search(&self, memo: &mut Memo, from: usize, to: usize) -> bool {
        memo.search = memo.search.wrapping_add(1);
        if memo.search == 0 {
            memo.visited.fill(0);
            memo.search = 1;
        }
        let search = memo.search;
        memo.stack.clear();
        memo.stack.push(to);
        memo.visited[to] = search;
        while let Some(c) = memo.stack.pop() {
            for &needed in &self.needs[c] {
                if needed == from || self.in_subtree(from, needed) {
                    return true;
                }
                // A component ranked below `from` cannot be reached from it.
                if self.rank[needed] > self.rank[from] && memo.visited[needed] != search {
                    memo.visited[needed] = search;
                    memo.stack.push(needed);
                }
            }
        }
        false
    }
}

/// The shortest path from `start` back to itself along `needs`, inside one component.
fn cycle_through(start: usize, members: &BTreeSet<usize>, needs: &[Vec<usize>]) -> Option<Vec<usize>> {
    // Sized by the component, not the workflow: there may be as many cycles as steps.
    let mut previous: HashMap<usize, usize> = HashMap::with_capacity(members.len());
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
                    cursor = *previous.get(&cursor)?;
                    path.push(cursor);
                }
                path.reverse();
                path.push(start);
                return Some(path);
            }
            if n != start && !previous.contains_key(&n) {
                previous.insert(n, at);
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

    /// Every step upstream of `b`, asked one by one.
    fn upstream_of(dag: &Dag, b: usize, n: usize) -> BTreeSet<usize> {
        (0..n).filter(|&a| dag.upstream.is_upstream(a, b)).collect()
    }

    #[test]
    fn order_keeps_file_order_where_it_can() {
        // 0 needs 2; 1 needs nothing; 2 needs nothing; 3 needs 0 and 1.
        let dag = analyse(&[vec![2], vec![], vec![], vec![0, 1]]);
        assert_eq!(dag.order, Some(vec![1, 2, 0, 3]));
        assert!(dag.cycles.is_empty());
        assert_eq!(upstream_of(&dag, 3, 4), BTreeSet::from([0, 1, 2]));
        assert_eq!(upstream_of(&dag, 0, 4), BTreeSet::from([2]));
        assert!(upstream_of(&dag, 1, 4).is_empty());
    }

    #[test]
    fn cycles_are_named_from_their_first_step_along_needs() {
        // 0 needs 1, 1 needs 2, 2 needs 0; 3 needs 3; 4 needs 0.
        let dag = analyse(&[vec![1], vec![2], vec![0], vec![3], vec![0]]);
        assert_eq!(dag.cycles, vec![vec![0, 1, 2, 0], vec![3, 3]]);
        assert_eq!(dag.order, None);
        assert_eq!(upstream_of(&dag, 0, 5), BTreeSet::from([1, 2]));
        assert_eq!(upstream_of(&dag, 4, 5), BTreeSet::from([0, 1, 2]));
        assert!(upstream_of(&dag, 3, 5).is_empty(), "never upstream of itself");
        // The shortest way round when there are several.
        let dag = analyse(&[vec![1, 2], vec![2], vec![0]]);
        assert_eq!(dag.cycles, vec![vec![0, 2, 0]]);
    }

    /// The transitive upstream of every step, the slow way.
    fn brute_force(needs: &[Vec<usize>]) -> Vec<BTreeSet<usize>> {
        (0..needs.len())
            .map(|b| {
                let mut seen = BTreeSet::new();
                let mut stack = needs[b].clone();
                while let Some(a) = stack.pop() {
                    if seen.insert(a) {
                        stack.extend(&needs[a]);
                    }
                }
                seen.remove(&b);
                seen
            })
            .collect()
    }

    #[test]
    fn upstream_agrees_with_a_plain_search_on_random_graphs() {
        // A small linear congruential generator: the graphs are the same on every run.
        let mut state: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = |bound: usize| {
            state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            ((state >> 33) as usize) % bound
        };
        for round in 0..300 {
            let n = 1 + next(30);
            let cyclic = round % 3 == 0;
            let needs: Vec<Vec<usize>> = (0..n)
                .map(|i| {
                    let k = next(4);
                    (0..k)
                        .filter_map(|_| {
                            let j = next(n);
                            (cyclic || j < i).then_some(j)
                        })
                        .collect()
                })
                .collect();
            let dag = analyse(&needs);
            for (b, expected) in brute_force(&needs).into_iter().enumerate() {
                assert_eq!(upstream_of(&dag, b, n), expected, "round {round}, step {b}, needs {needs:?}");
            }
        }
    }

    #[test]
    fn a_long_chain_is_answered_without_searching() {
        // Step i needs step i - 1: what made validation quadratic (each step's upstream set).
        let n = 20_000;
        let needs: Vec<Vec<usize>> = (0..n).map(|i| if i == 0 { vec![] } else { vec![i - 1] }).collect();
        let dag = analyse(&needs);
        for b in 1..n {
            assert!(dag.upstream.is_upstream(b - 1, b));
            assert!(dag.upstream.is_upstream(0, b));
            assert!(!dag.upstream.is_upstream(b, b - 1));
        }
        // Every answer came from the ranks and the depth-first numbers: nothing was searched.
        assert_eq!(dag.upstream.memo.borrow().search, 0);
        assert_eq!(dag.order.map(|o| o.len()), Some(n));
    }
}
