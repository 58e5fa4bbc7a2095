//! A workflow as a Mermaid flowchart: [`WorkflowStatus::to_mermaid`].

use std::fmt::Write;

use super::layers::{Node, Source};
use super::WorkflowStatus;

/// The class of each state (and of the boxes outside the workflow), as `classDef` lines.
const CLASSES: &str = "  classDef available fill:#dbeafe,stroke:#2563eb,color:#1e3a8a
  classDef scheduled fill:#e0e7ff,stroke:#4f46e5,color:#312e81
  classDef suspended fill:#f3f4f6,stroke:#6b7280,color:#374151,stroke-dasharray:4 3
  classDef executing fill:#fef3c7,stroke:#d97706,color:#78350f
  classDef retryable fill:#ffedd5,stroke:#ea580c,color:#7c2d12
  classDef completed fill:#dcfce7,stroke:#16a34a,color:#14532d
  classDef discarded fill:#fee2e2,stroke:#dc2626,color:#7f1d1d
  classDef cancelled fill:#fce7f3,stroke:#db2777,color:#831843
  classDef deleted fill:#ffffff,stroke:#9ca3af,color:#6b7280,stroke-dasharray:2 2
  classDef external fill:#ffffff,stroke:#6b7280,color:#374151
";

impl WorkflowStatus {
    /// The workflow as a Mermaid `flowchart TD`: one box per step labelled with its name and
    /// state and given the class of its state (`completed`, `suspended`, ..), an arrow from
    /// each dependency to the step that waits for it, each sub-workflow as a `subgraph` of its
    /// own steps (an arrow from a subgraph is a dependency on the whole sub-workflow), and a
    /// box of class `external` for a dependency outside the workflow (`deleted` for a step no
    /// job holds any more).
    ///
    /// Box ids are generated (`s0`, `w1s2`); every label is quoted with its characters other
    /// than letters, digits and a few punctuation marks written as Mermaid's entity codes
    /// (`#34;` for `"`), so a step's name cannot end the label or change the graph.
    ///
    /// ```no_run
    /// # async fn demo(admin: oban_core::admin::Admin) -> Result<(), Box<dyn std::error::Error>> {
    /// if let Some(status) = admin.workflow("0192c6c4-4f2e-7cc8-9d4b-5a4d0e1f2a3b").await? {
    ///     std::fs::write("workflow.mmd", status.to_mermaid())?;
    /// }
    /// # Ok(()) }
    /// ```
    pub fn to_mermaid(&self) -> String {
        let mut out = String::from("flowchart TD\n");
        let mut ancestors = Vec::new();
        self.write_mermaid(&mut out, "", 1, &mut ancestors);
        out.push_str(CLASSES);
        out
    }

    /// Writes the boxes, subgraphs and arrows of this workflow, box ids starting with `prefix`,
    /// indented `indent` levels; deps on `ancestors` (drawn by the parents) are left out.
    fn write_mermaid(
        &self,
        out: &mut String,
        prefix: &str,
        indent: usize,
        ancestors: &mut Vec<String>,
    ) {
        let pad = "  ".repeat(indent);
        for (i, step) in self.steps.iter().enumerate() {
            let text = format!("{}\n{}", step.name, step.state);
            let _ = writeln!(
                out,
                "{pad}{prefix}s{i}[{}]:::{}",
                label(&text),
                step.state.as_str()
            );
        }
        ancestors.push(self.summary.id.clone());
        for (i, sub) in self.sub_workflows.iter().enumerate() {
            let title = match (&sub.sub_name, &sub.summary.name) {
                (Some(name), _) | (None, Some(name)) => name.clone(),
                (None, None) => sub.summary.id.clone(),
            };
            let text = format!("{title} ({})", sub.summary.state);
            let _ = writeln!(out, "{pad}subgraph {prefix}w{i}[{}]", label(&text));
            sub.write_mermaid(out, &format!("{prefix}w{i}"), indent + 1, ancestors);
            let _ = writeln!(out, "{pad}end");
        }
        ancestors.pop();
        let mut outside: Vec<(String, String, &'static str)> = Vec::new();
        let mut arrows = Vec::new();
        for (source, to) in self.edges() {
            let from = match source {
                Source::Node(node) => id(prefix, node),
                Source::Missing(name) => {
                    box_for(&mut outside, prefix, &format!("{name}\ndeleted"), "deleted")
                }
                Source::External(dep) => {
                    if dep
                        .workflow_id()
                        .is_some_and(|w| ancestors.iter().any(|a| a == w))
                    {
                        continue;
                    }
                    box_for(&mut outside, prefix, &dep.to_string(), "external")
                }
            };
            arrows.push(format!("{pad}{from} --> {}\n", id(prefix, to)));
        }
        for (id, text, class) in &outside {
            let _ = writeln!(out, "{pad}{id}[{}]:::{class}", label(text));
        }
        out.extend(arrows);
    }
}

/// The Mermaid id of a box of the workflow whose ids start with `prefix`.
fn id(prefix: &str, node: Node) -> String {
    match node {
        Node::Step(i) => format!("{prefix}s{i}"),
        Node::Sub(i) => format!("{prefix}w{i}"),
    }
}

/// The id of the box outside the workflow labelled `text`, made once.
fn box_for(
    outside: &mut Vec<(String, String, &'static str)>,
    prefix: &str,
    text: &str,
    class: &'static str,
) -> String {
    if let Some((id, _, _)) = outside.iter().find(|(_, t, _)| t == text) {
        return id.clone();
    }
    let id = format!("{prefix}x{}", outside.len());
    outside.push((id.clone(), text.to_owned(), class));
    id
}

/// `text` as a quoted Mermaid label: letters, digits, spaces and `-_./,+=@!?'()` as they are, a
/// line break as `<br/>`, every other character as its entity code (`#34;`).
pub(crate) fn label(text: &str) -> String {
    let mut quoted = String::with_capacity(text.len() + 2);
    quoted.push('"');
    for c in text.chars() {
        match c {
            '\n' => quoted.push_str("<br/>"),
            c if c.is_alphanumeric() || " -_./,+=@!?'()".contains(c) => quoted.push(c),
            c => {
                let _ = write!(quoted, "#{};", u32::from(c));
            }
        }
    }
    quoted.push('"');
    quoted
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::JobState;

    #[test]
    fn labels_are_quoted_with_entity_codes() {
        assert_eq!(label("fetch"), "\"fetch\"");
        assert_eq!(label("a\"b"), "\"a#34;b\"");
        assert_eq!(label("x]; y-->z"), "\"x#93;#59; y--#62;z\"");
        assert_eq!(label("#quot;"), "\"#35;quot#59;\"");
        assert_eq!(label("<b>"), "\"#60;b#62;\"");
        assert_eq!(label("été\ndone"), "\"été<br/>done\"");
        assert_eq!(label("`md`"), "\"#96;md#96;\"");
    }

    #[test]
    fn every_state_has_a_class() {
        for state in JobState::ALL {
            let class = format!("classDef {} ", state.as_str());
            assert!(CLASSES.contains(&class), "{state}");
        }
    }
}
