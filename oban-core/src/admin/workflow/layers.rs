//! A workflow as a graph: its edges from the steps' dependencies, and its steps laid out in
//! layers by dependency depth ([`WorkflowStatus::layers`]), what a dashboard draws without a
//! graph library.

use serde::Serialize;

use super::{StepDep, WorkflowStatus};

/// A box of the graph: a step of the workflow, or one of its sub-workflows drawn as one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase", tag = "kind", content = "index")]
#[non_exhaustive]
pub enum Node {
    /// The step at this index of [`WorkflowStatus::steps`].
    Step(usize),
    /// The sub-workflow at this index of [`WorkflowStatus::sub_workflows`].
    Sub(usize),
}

/// Where an edge comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Source {
    /// A box of this graph.
    Node(Node),
    /// A step of this workflow that no job holds any more (deleted), by name.
    Missing(String),
    /// Something outside this workflow and its sub-workflows: a step of another workflow, or
    /// another workflow whole.
    External(StepDep),
}

/// The steps of a workflow and its sub-workflows in layers: a box's layer is one more than the
/// deepest of the boxes it depends on (0 for those that depend on nothing here), so every edge
/// goes down. Boxes in a dependency cycle (the stored deps are not checked) come last.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Layers {
    /// The boxes of each layer, in id order within a layer.
    pub layers: Vec<Vec<Node>>,
    /// Every edge between two boxes, `(from, to)`: `to` depends on `from`.
    pub edges: Vec<(Node, Node)>,
}

impl WorkflowStatus {
    /// Every dependency of the graph's boxes, `(from, to)`: each step's deps, and for each
    /// sub-workflow, the deps its steps (at any depth) have on this workflow's steps.
    pub fn edges(&self) -> Vec<(Source, Node)> {
        let mut edges = Vec::new();
        for (index, step) in self.steps.iter().enumerate() {
            for dep in &step.deps {
                edges.push((self.source(dep), Node::Step(index)));
            }
        }
        for (index, sub) in self.sub_workflows.iter().enumerate() {
            let mut inner = Vec::new();
            sub.deps_within(&mut inner);
            for dep in inner {
                if let StepDep::Of { workflow_id, name } = dep {
                    if *workflow_id == self.summary.id {
                        let source = self.source(&StepDep::Step(name.clone()));
                        if !edges.contains(&(source.clone(), Node::Sub(index))) {
                            edges.push((source, Node::Sub(index)));
                        }
                    }
                }
            }
        }
        edges
    }

    /// The boxes in layers by dependency depth (see [`Layers`]).
    ///
    /// ```
    /// # fn demo(status: oban_core::admin::WorkflowStatus) {
    /// for (depth, layer) in status.layers().layers.iter().enumerate() {
    ///     println!("{depth}: {} boxes", layer.len());
    /// }
    /// # }
    /// ```
    pub fn layers(&self) -> Layers {
        let count = self.steps.len() + self.sub_workflows.len();
        let slot = |node: Node| match node {
            Node::Step(i) => i,
            Node::Sub(i) => self.steps.len() + i,
        };
        let node_at = |slot: usize| {
            if slot < self.steps.len() {
                Node::Step(slot)
            } else {
                Node::Sub(slot - self.steps.len())
            }
        };
        let edges: Vec<(Node, Node)> = self
            .edges()
            .into_iter()
            .filter_map(|(from, to)| match from {
                Source::Node(from) if from != to => Some((from, to)),
                _ => None,
            })
            .collect();
        // Kahn's order: a box is placed once every box it depends on is.
        let mut waiting = vec![0usize; count];
        let mut after: Vec<Vec<usize>> = vec![Vec::new(); count];
        for (from, to) in &edges {
            waiting[slot(*to)] += 1;
            after[slot(*from)].push(slot(*to));
        }
        let mut depth = vec![0usize; count];
        let mut placed = vec![false; count];
        let mut ready: Vec<usize> = (0..count).filter(|i| waiting[*i] == 0).collect();
        while let Some(i) = ready.pop() {
            placed[i] = true;
            for &next in &after[i] {
                depth[next] = depth[next].max(depth[i] + 1);
                waiting[next] -= 1;
                if waiting[next] == 0 {
                    ready.push(next);
                }
            }
        }
        let deepest = (0..count).filter(|i| placed[*i]).map(|i| depth[i]).max();
        let cycle_layer = deepest.map_or(0, |d| d + 1);
        for i in (0..count).filter(|i| !placed[*i]) {
            depth[i] = cycle_layer;
        }
        let mut layers: Vec<Vec<Node>> = Vec::new();
        for i in 0..count {
            if layers.len() <= depth[i] {
                layers.resize(depth[i] + 1, Vec::new());
            }
            layers[depth[i]].push(node_at(i));
        }
        layers.retain(|layer| !layer.is_empty());
        Layers { layers, edges }
    }

    /// Where the dep `dep` of one of this workflow's steps comes from.
    pub(super) fn source(&self, dep: &StepDep) -> Source {
        let step = |name: &str| {
            self.steps
                .iter()
                .position(|s| s.name == name)
                .map(|i| Source::Node(Node::Step(i)))
        };
        let sub = |workflow_id: &str| {
            self.sub_workflows
                .iter()
                .position(|s| s.summary.id == workflow_id)
                .map(|i| Source::Node(Node::Sub(i)))
        };
        match dep {
            StepDep::Step(name) => step(name).unwrap_or_else(|| Source::Missing(name.clone())),
            StepDep::Of { workflow_id, name } if *workflow_id == self.summary.id => {
                step(name).unwrap_or_else(|| Source::Missing(name.clone()))
            }
            StepDep::Of { workflow_id, .. } | StepDep::Workflow(workflow_id) => {
                sub(workflow_id).unwrap_or_else(|| Source::External(dep.clone()))
            }
            StepDep::Other(_) => Source::External(dep.clone()),
        }
    }

    /// The deps of every step of this workflow and of its sub-workflows.
    fn deps_within<'a>(&'a self, into: &mut Vec<&'a StepDep>) {
        into.extend(self.steps.iter().flat_map(|s| &s.deps));
        for sub in &self.sub_workflows {
            sub.deps_within(into);
        }
    }
}
