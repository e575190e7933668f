//! `kmsctl run --plan`: what a run would change, recorded instead of performed.
//!
//! Native functions declare their effect when they are registered ([`Effect`]); in plan mode
//! the mutating ones record a [`PlannedOp`] here instead of acting, attributed to the step and
//! parallel task that called them, so the plan can be shown as the run's own tree: step →
//! parallel tasks → operations. Everything recorded is scrubbed of secrets as it comes in.

use crate::events::StepRecord;
use crate::secret::Redactor;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// How a run treats the world.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Mode {
    /// Do what the playbook says.
    #[default]
    Run,
    /// Record every change instead of making it (`--plan`).
    Plan {
        /// `--against-cluster`: reads are real reads of the cluster; otherwise they see an
        /// empty one and no cluster is needed.
        against_cluster: bool,
    },
    /// Show how the cluster would change (`--diff`): every change is recorded as in a plan,
    /// and every object it would send is dry-run on the server and compared with the live one.
    Diff,
}

impl Mode {
    /// Changes are recorded, not made (`--plan` and `--diff`).
    pub fn is_plan(self) -> bool {
        matches!(self, Self::Plan { .. } | Self::Diff)
    }

    /// `--diff`: objects are dry-run against the cluster and compared with the live ones.
    pub fn is_diff(self) -> bool {
        self == Self::Diff
    }

    /// Plan mode without `--against-cluster`: no cluster (or cloud, or docker) is contacted,
    /// and reads see nothing.
    pub fn is_offline(self) -> bool {
        matches!(self, Self::Plan { against_cluster: false })
    }
}

/// What a native function does to the world, declared once when it is registered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Effect {
    /// Computes, or reads: runs as usual in plan mode.
    Reads,
    /// Changes something outside the run. In plan mode it is not called at all: the call is
    /// recorded with its (masked) arguments and returns `()`. The safe default for a function
    /// whose plan is not worth more than its name.
    Mutates,
    /// Changes something outside the run, and plans itself: in plan mode it is called and
    /// records what it would do (objects, rendered manifests) and returns what the real call
    /// would, so the playbook goes on as it would.
    Plans,
}

impl Effect {
    /// The name used in listings.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Reads => "reads",
            Self::Mutates => "mutates",
            Self::Plans => "plans",
        }
    }
}

/// An object an operation would create, change or delete.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct PlannedObject {
    /// Kind, e.g. `StatefulSet`.
    pub kind: String,
    /// Namespace (`None` for cluster-scoped objects or when the kind's scope is unknown).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Name.
    pub name: String,
}

/// One recorded operation.
#[derive(Clone, Debug, Serialize)]
pub struct PlannedOp {
    /// Order in the run, from 1.
    pub seq: usize,
    /// The step it was called in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step: Option<u64>,
    /// The parallel task it was called in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// What it is, e.g. `k8s apply`, `helm upgrade`, `proc run`.
    pub action: String,
    /// What it acts on, one line: `release kms-test/kms-core-1 (./charts/kms-core)`.
    pub target: String,
    /// The objects it would create, change or delete.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub objects: Vec<PlannedObject>,
    /// The rendered manifest, relative to the artifacts directory.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manifest: Option<String>,
    /// Anything worth saying: why a chart could not be rendered, what was assumed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// `--diff`: the unified diff of every object it would change (live → dry-run result),
    /// noise removed and secrets masked; empty when nothing would change.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diff: Option<String>,
    /// `--diff`: how many of its objects would change.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub changed: Option<usize>,
    /// The last step started before it was recorded: its place among sibling steps.
    #[serde(skip)]
    pub(crate) started_after: Option<u64>,
}

impl PlannedOp {
    /// An operation without objects.
    pub fn new(action: impl Into<String>, target: impl Into<String>) -> Self {
        Self {
            seq: 0,
            step: None,
            label: None,
            action: action.into(),
            target: target.into(),
            objects: Vec::new(),
            manifest: None,
            note: None,
            diff: None,
            changed: None,
            started_after: None,
        }
    }

    /// With the objects it acts on.
    pub fn objects(mut self, objects: Vec<PlannedObject>) -> Self {
        self.objects = objects;
        self
    }

    /// With a note.
    pub fn note(mut self, note: impl Into<String>) -> Self {
        self.note = Some(note.into());
        self
    }

    /// With the path of its rendered manifest.
    pub fn manifest(mut self, path: impl Into<String>) -> Self {
        self.manifest = Some(path.into());
        self
    }

    /// With its diff and the number of objects that would change.
    pub fn diff(mut self, diff: String, changed: usize) -> Self {
        self.diff = Some(diff);
        self.changed = Some(changed);
        self
    }

    fn scrub(&mut self, r: &Redactor) {
        r.scrub(&mut self.action);
        r.scrub(&mut self.target);
        self.note.iter_mut().for_each(|n| r.scrub(n));
        self.diff.iter_mut().for_each(|d| r.scrub(d));
        for o in &mut self.objects {
            r.scrub(&mut o.name);
        }
    }
}

/// The operations of one plan-mode run, in the order they were recorded. Cheap to clone.
#[derive(Clone, Default)]
pub struct Plan(Arc<Mutex<Vec<PlannedOp>>>);

impl Plan {
    /// Record `op` (secrets scrubbed); returns its sequence number.
    pub(crate) fn push(&self, mut op: PlannedOp, redactor: &Redactor) -> usize {
        op.scrub(redactor);
        let mut ops = self.0.lock().unwrap_or_else(|e| e.into_inner());
        op.seq = ops.len() + 1;
        ops.push(op);
        ops.len()
    }

    /// Replace operation `seq` by `op`, keeping where it was recorded (seq, step, task).
    pub(crate) fn replace(&self, seq: usize, mut op: PlannedOp, redactor: &Redactor) {
        op.scrub(redactor);
        let mut ops = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(old) = seq.checked_sub(1).and_then(|i| ops.get_mut(i)) {
            op.seq = old.seq;
            op.step = old.step;
            op.label = old.label.take();
            op.started_after = old.started_after;
            *old = op;
        }
    }

    /// The number of operations recorded so far.
    pub fn len(&self) -> usize {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Nothing recorded yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Everything recorded, in order.
    pub fn ops(&self) -> Vec<PlannedOp> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// A plan ready to show: the tree of steps, tasks and operations, and counts per kind.
#[derive(Debug, Serialize)]
pub struct PlanReport {
    /// The playbook.
    pub playbook: String,
    /// Whether reads were real (`--against-cluster`).
    pub against_cluster: bool,
    /// Number of operations.
    pub operations: usize,
    /// `--diff`: objects that would change (`None` in a plan).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub changed: Option<usize>,
    /// Objects per kind: every object some operation creates, changes or deletes, once.
    pub kinds: BTreeMap<String, usize>,
    /// The tree: operations outside any step, then the top-level steps.
    pub tree: Vec<PlanNode>,
}

/// A node of the plan's tree.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum PlanNode {
    /// A step (`log::step`, or a parallel task, which has a label).
    Step {
        /// The step's name.
        name: String,
        /// The parallel task's label, for the steps `parallel` opens.
        #[serde(skip_serializing_if = "Option::is_none")]
        task: Option<String>,
        /// What happened inside, in order.
        children: Vec<PlanNode>,
    },
    /// An operation.
    Op(PlannedOp),
}

impl PlanReport {
    /// Build the tree from the run's steps and the recorded operations. Steps in which
    /// nothing would change are left out.
    pub fn build(playbook: &str, against_cluster: bool, steps: &[StepRecord], ops: Vec<PlannedOp>) -> Self {
        // Each object once, however many operations touch it.
        let objects: std::collections::BTreeSet<&PlannedObject> = ops.iter().flat_map(|op| &op.objects).collect();
        let mut kinds = BTreeMap::new();
        for o in objects {
            *kinds.entry(o.kind.clone()).or_insert(0) += 1;
        }
        let operations = ops.len();
        let changed =
            ops.iter().any(|o| o.changed.is_some()).then(|| ops.iter().filter_map(|o| o.changed).sum::<usize>());
        // Each child (step or op) keyed by its start order: a step's id, an op's position
        // among steps started before it.
        enum Item {
            Step(u64),
            Op(Box<PlannedOp>),
        }
        let mut children: BTreeMap<Option<u64>, Vec<(u64, usize, Item)>> = BTreeMap::new();
        let known: std::collections::HashSet<u64> = steps.iter().map(|s| s.id).collect();
        for s in steps {
            let parent = s.parent.filter(|p| known.contains(p));
            children.entry(parent).or_default().push((s.id, 0, Item::Step(s.id)));
        }
        for op in ops {
            let step = op.step.filter(|s| known.contains(s));
            // Ordered after every step that had started when it was recorded.
            let after = op.started_after.unwrap_or(0);
            children.entry(step).or_default().push((after, op.seq, Item::Op(Box::new(op))));
        }
        for v in children.values_mut() {
            v.sort_by_key(|(at, seq, item)| (*at, matches!(item, Item::Op(_)), *seq));
        }
        let by_id: BTreeMap<u64, &StepRecord> = steps.iter().map(|s| (s.id, s)).collect();
        fn build(
            key: Option<u64>,
            children: &mut BTreeMap<Option<u64>, Vec<(u64, usize, Item)>>,
            by_id: &BTreeMap<u64, &StepRecord>,
        ) -> Vec<PlanNode> {
            let items = children.remove(&key).unwrap_or_default();
            let mut out = Vec::new();
            for (_, _, item) in items {
                match item {
                    Item::Op(op) => out.push(PlanNode::Op(*op)),
                    Item::Step(id) => {
                        let kids = build(Some(id), children, by_id);
                        if kids.is_empty() {
                            continue;
                        }
                        let s = by_id[&id];
                        // A step inside a task has its label too; the task's own step is named by it.
                        let task = s.label.clone().filter(|l| l.rsplit('/').next() == Some(s.name.as_str()));
                        out.push(PlanNode::Step { name: s.name.clone(), task, children: kids });
                    }
                }
            }
            out
        }
        let tree = build(None, &mut children, &by_id);
        Self { playbook: playbook.to_string(), against_cluster, operations, changed, kinds, tree }
    }

    /// `--diff` as text: each changed object's diff, then what was not compared (changes
    /// outside the cluster's objects), then the count.
    pub fn render_diff(&self) -> String {
        fn walk<'a>(nodes: &'a [PlanNode], out: &mut Vec<&'a PlannedOp>) {
            for n in nodes {
                match n {
                    PlanNode::Step { children, .. } => walk(children, out),
                    PlanNode::Op(op) => out.push(op),
                }
            }
        }
        let mut ops = Vec::new();
        walk(&self.tree, &mut ops);
        let mut out = String::new();
        for op in ops.iter().filter(|o| o.diff.as_deref().is_some_and(|d| !d.is_empty())) {
            out.push_str(op.diff.as_deref().unwrap_or_default());
        }
        let other: Vec<&&PlannedOp> = ops.iter().filter(|o| o.diff.is_none()).collect();
        if !other.is_empty() {
            out.push_str("Not compared (no cluster objects):\n");
            for op in other {
                out.push_str(&format!("  {} {}\n", op.action, op.target));
            }
        }
        let objects: usize = self.kinds.values().sum();
        match self.changed.unwrap_or(0) {
            0 => out.push_str(&format!(
                "No changes: {objects} object{} as the playbook would leave them\n",
                plural(objects)
            )),
            n => out.push_str(&format!("{n} of {objects} object{} would change\n", plural(objects))),
        }
        out
    }

    /// The plan as text: the tree, then the counts.
    pub fn render(&self) -> String {
        let mut out = format!(
            "Plan for {}{}: {} operation{}\n",
            self.playbook,
            if self.against_cluster { " (reads from the cluster)" } else { " (an empty cluster assumed)" },
            self.operations,
            if self.operations == 1 { "" } else { "s" }
        );
        fn walk(nodes: &[PlanNode], prefix: &str, out: &mut String) {
            for (i, n) in nodes.iter().enumerate() {
                let last = i + 1 == nodes.len();
                let (branch, next) = if last { ("└─ ", "   ") } else { ("├─ ", "│  ") };
                match n {
                    PlanNode::Step { name, task, children } => {
                        let mark = if task.is_some() { "‖ " } else { "" };
                        out.push_str(&format!("{prefix}{branch}{mark}{name}\n"));
                        walk(children, &format!("{prefix}{next}"), out);
                    }
                    PlanNode::Op(op) => {
                        out.push_str(&format!("{prefix}{branch}{} {}", op.action, op.target));
                        if !op.objects.is_empty() {
                            out.push_str(&format!(
                                " ({} object{})",
                                op.objects.len(),
                                if op.objects.len() == 1 { "" } else { "s" }
                            ));
                        }
                        out.push('\n');
                        let inner = format!("{prefix}{next}");
                        if let Some(m) = &op.manifest {
                            out.push_str(&format!("{inner}  manifest: {m}\n"));
                        }
                        if let Some(note) = &op.note {
                            out.push_str(&format!("{inner}  note: {note}\n"));
                        }
                    }
                }
            }
        }
        walk(&self.tree, "", &mut out);
        if !self.kinds.is_empty() {
            out.push_str("Objects by kind:\n");
            let width = self.kinds.keys().map(|k| k.len()).max().unwrap_or(0);
            for (k, n) in &self.kinds {
                out.push_str(&format!("  {k:<width$}  {n}\n"));
            }
        }
        out
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::Events;

    fn op(action: &str, target: &str, step: Option<u64>, after: u64, objects: &[(&str, &str)]) -> PlannedOp {
        let mut o = PlannedOp::new(action, target).objects(
            objects
                .iter()
                .map(|(k, n)| PlannedObject { kind: k.to_string(), namespace: Some("ns".into()), name: n.to_string() })
                .collect(),
        );
        o.step = step;
        o.started_after = Some(after);
        o
    }

    /// Operations go under the step that called them, after the sibling steps that started
    /// before them; steps where nothing would change are left out; objects are counted once.
    #[test]
    fn the_tree_follows_the_run_and_counts_each_object_once() {
        let ev = Events::new(Vec::new(), Redactor::new());
        let prepare = ev.step_started("prepare", None, None);
        ev.step_started("read only", None, None);
        let deploy = ev.step_started("deploy", None, None);
        let p1 = ev.step_started("party-1", Some(deploy), Some("party-1"));
        let inner = ev.step_started("wait", Some(p1), Some("party-1"));
        let p2 = ev.step_started("party-2", Some(deploy), Some("party-2"));
        let plan = Plan::default();
        let r = Redactor::new();
        r.secret("hunter2-secret");
        for o in [
            op("k8s require_context", "kind-*", None, 0, &[]),
            op("k8s ensure_namespace", "Namespace ns", Some(prepare), prepare, &[("Namespace", "ns")]),
            op("helm upgrade", "release ns/p1", Some(p1), p1, &[("StatefulSet", "p1"), ("Service", "p1")]),
            op("k8s apply", "Secret ns/s hunter2-secret", Some(inner), inner, &[("Secret", "s")]),
            op("helm upgrade", "release ns/p2", Some(p2), p2, &[("StatefulSet", "p2")]),
            op("k8s delete", "StatefulSet ns/p2", Some(deploy), p2, &[("StatefulSet", "p2")]),
        ] {
            plan.push(o, &r);
        }
        let report = PlanReport::build("p.rhai", false, &ev.steps(), plan.ops());
        assert_eq!(
            report.render(),
            "Plan for p.rhai (an empty cluster assumed): 6 operations\n\
             ├─ k8s require_context kind-*\n\
             ├─ prepare\n\
             │  └─ k8s ensure_namespace Namespace ns (1 object)\n\
             └─ deploy\n\
             \u{20}  ├─ ‖ party-1\n\
             \u{20}  │  ├─ helm upgrade release ns/p1 (2 objects)\n\
             \u{20}  │  └─ wait\n\
             \u{20}  │     └─ k8s apply Secret ns/s *** (1 object)\n\
             \u{20}  ├─ ‖ party-2\n\
             \u{20}  │  └─ helm upgrade release ns/p2 (1 object)\n\
             \u{20}  └─ k8s delete StatefulSet ns/p2 (1 object)\n\
             Objects by kind:\n\
             \u{20} Namespace    1\n\
             \u{20} Secret       1\n\
             \u{20} Service      1\n\
             \u{20} StatefulSet  2\n"
        );
        let json = serde_json::to_string(&report).unwrap();
        assert!(!json.contains("hunter2"), "{json}");
        assert_eq!(report.changed, None, "a plan has no diffs");
    }
}
