//! Verifying a component's history: every record's payload against its digest and signature,
//! the hash chain (across records retention removed, via the anchor's pruned entries), gaps,
//! and the tip against the anchor (a deleted or rewritten newest record, a deleted history).
//! Pure: records, anchors and the environment's trust in, findings out.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::release::{self, Action, Stored};
use crate::state::anchor::Anchor;
use crate::state::signing::{Check, Trust};

/// The signature domain of release records.
pub const RECORD_DOMAIN: &str = "release";

/// What verification found for one component.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Verdict {
    pub component: String,
    /// Tampering or loss, one line each, naming the record.
    pub problems: Vec<String>,
    /// Facts worth showing that are not problems (purges, unchecked signatures).
    pub notes: Vec<String>,
    /// The tip as the anchor records it.
    pub anchored: Option<(u32, String)>,
}

impl Verdict {
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Verifies every component that has records or an anchor.
pub fn verify_all(
    records: &BTreeMap<String, Vec<Stored>>,
    anchors: &BTreeMap<String, Anchor>,
    trust: &Trust,
) -> Vec<Verdict> {
    let components: BTreeSet<&String> = records.keys().chain(anchors.keys()).collect();
    components
        .into_iter()
        .map(|c| {
            verify_component(
                c,
                records.get(c).map(Vec::as_slice).unwrap_or(&[]),
                anchors.get(c),
                trust,
            )
        })
        .collect()
}

/// Verifies one component's records (any order) against its anchor.
pub fn verify_component(
    component: &str,
    records: &[Stored],
    anchor: Option<&Anchor>,
    trust: &Trust,
) -> Verdict {
    let mut verdict = Verdict {
        component: component.to_string(),
        anchored: anchor.map(|a| (a.revision, a.digest.clone())),
        ..Default::default()
    };
    let mut sorted: Vec<&Stored> = records.iter().collect();
    sorted.sort_by_key(|r| r.release.revision);
    let mut unchecked = BTreeSet::new();
    for record in &sorted {
        check_record(record, trust, &mut verdict.problems, &mut unchecked);
        if let Action::Purge {
            removed_through, ..
        } = &record.release.action
        {
            verdict.notes.push(format!(
                "{}: history purged (v1..v{removed_through} removed) by {} at {}: {}",
                record.name,
                record.release.user,
                record.release.started_at.format("%Y-%m-%d %H:%M:%SZ"),
                record
                    .release
                    .reason
                    .as_deref()
                    .unwrap_or("no reason given")
            ));
        }
    }
    check_chain(&sorted, anchor, &mut verdict.problems);
    check_anchor(component, &sorted, anchor, trust, &mut verdict);
    if let Some(keys) =
        (!unchecked.is_empty()).then(|| unchecked.into_iter().collect::<Vec<_>>().join(", "))
    {
        verdict.notes.push(format!(
            "{component}: signatures by {keys} not checked (no environment file, so no trusted keys)"
        ));
    }
    verdict
}

fn check_record(
    record: &Stored,
    trust: &Trust,
    problems: &mut Vec<String>,
    unchecked: &mut BTreeSet<String>,
) {
    let r = &record.release;
    if record.name != release::record_name(&r.component, r.revision)
        || record.label_revision != Some(r.revision)
    {
        problems.push(format!(
            "{}: payload says {} revision {}, which does not match its name or revision label",
            record.name, r.component, r.revision
        ));
    }
    if record.payload_digest != record.recorded_digest {
        problems.push(format!(
            "{}: payload does not match its recorded digest (modified after it was written)",
            record.name
        ));
    }
    let check = trust.check(
        RECORD_DOMAIN,
        &record.recorded_digest,
        record.signature.as_deref(),
    );
    if let Check::NotChecked { key_id } = &check {
        unchecked.insert(key_id.clone());
    }
    if let Some(problem) = trust.problem(&check) {
        problems.push(format!("{}: {problem}", record.name));
    }
}

/// Each record must point at the digest of the one before it; a missing revision is fine only
/// where the anchor keeps the removed record's links.
fn check_chain(sorted: &[&Stored], anchor: Option<&Anchor>, problems: &mut Vec<String>) {
    let pruned: BTreeMap<u32, _> = anchor
        .map(|a| a.pruned.iter().map(|p| (p.revision, p)).collect())
        .unwrap_or_default();
    for pair in sorted.windows(2) {
        let (prev, record) = (pair[0], pair[1]);
        let mut expected = prev.recorded_digest.as_str();
        let mut linked = true;
        for k in prev.release.revision + 1..record.release.revision {
            match pruned.get(&k) {
                Some(p) if p.prev_digest.as_deref() == Some(expected) => expected = &p.digest,
                Some(_) => {
                    problems.push(format!(
                        "{}: the anchor's entry for removed v{k} does not link to the record before it (the chain is broken)",
                        record.name
                    ));
                    linked = false;
                    break;
                }
                None => {
                    problems.push(format!(
                        "{}: revisions {}..{} are missing (deleted from the middle of the history)",
                        record.name,
                        k,
                        record.release.revision - 1
                    ));
                    linked = false;
                    break;
                }
            }
        }
        if linked && record.release.prev_digest.as_deref() != Some(expected) {
            problems.push(format!(
                "{}: previous-record digest does not match {} (the chain is broken)",
                record.name,
                if expected == prev.recorded_digest {
                    prev.name.clone()
                } else {
                    "the removed record before it".to_string()
                }
            ));
        }
    }
}

fn check_anchor(
    component: &str,
    sorted: &[&Stored],
    anchor: Option<&Anchor>,
    trust: &Trust,
    verdict: &mut Verdict,
) {
    let problems = &mut verdict.problems;
    let Some(anchor) = anchor else {
        if !sorted.is_empty() {
            let message = format!(
                "{component}: no anchor for its history (fluo.dev/anchor.{component} on namespace fluo-system is missing)"
            );
            if trust.accept_unsigned {
                verdict
                    .notes
                    .push(format!("{message}; records written before anchoring?"));
            } else {
                problems.push(message);
            }
        }
        return;
    };
    if let Some(problem) = trust.problem(&anchor.check(component, trust)) {
        problems.push(format!("{component}: anchor: {problem}"));
    }
    let Some(tip) = sorted.last() else {
        problems.push(format!(
            "{component}: history deleted: no release records, but the anchor records v{} as the newest",
            anchor.revision
        ));
        return;
    };
    let tip_revision = tip.release.revision;
    if tip_revision < anchor.revision {
        problems.push(format!(
            "{}: newest record(s) v{}..v{} missing: the anchor records v{} (digest {}) as the newest (deleted)",
            release::record_name(component, anchor.revision),
            tip_revision + 1,
            anchor.revision,
            anchor.revision,
            short(&anchor.digest)
        ));
    } else if tip_revision > anchor.revision {
        problems.push(format!(
            "{}: newer than the anchor (v{}): written without updating the anchor",
            tip.name, anchor.revision
        ));
    }
    if let Some(at) = sorted
        .iter()
        .find(|r| r.release.revision == anchor.revision)
        && (at.recorded_digest != anchor.digest || at.payload_digest != anchor.digest)
    {
        problems.push(format!(
            "{}: does not match the anchor's digest {} (rewritten after it was written)",
            at.name,
            short(&anchor.digest)
        ));
    }
}

/// The text `history --verify` prints.
pub fn report_text(verdicts: &[Verdict]) -> String {
    let problems: Vec<&String> = verdicts.iter().flat_map(|v| &v.problems).collect();
    let mut out = if problems.is_empty() {
        "history verified: every record matches its digest and signature, the chains are intact and end at their anchors\n".to_string()
    } else {
        format!(
            "history TAMPERED:\n{}\n",
            problems
                .iter()
                .map(|p| p.as_str())
                .collect::<Vec<_>>()
                .join("\n")
        )
    };
    for note in verdicts.iter().flat_map(|v| &v.notes) {
        out.push_str(&format!("note: {note}\n"));
    }
    for v in verdicts {
        if let Some((revision, digest)) = &v.anchored {
            out.push_str(&format!(
                "anchor {} v{revision} sha256:{digest}\n",
                v.component
            ));
        }
    }
    out
}

fn short(digest: &str) -> &str {
    &digest[..digest.len().min(12)]
}

#[cfg(test)]
mod tests;
