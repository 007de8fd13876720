use super::*;
use crate::release::tests::release;
use crate::release::{Status, digest, record_name};
use crate::state::anchor::Pruned;
use crate::state::signing::Signer;
use crate::state::signing::tests::{signer, trust_in};

fn stored(release: crate::release::Release, by: Option<&Signer>) -> Stored {
    let d = digest(&release).unwrap();
    Stored {
        name: record_name(&release.component, release.revision),
        status: Status::Deployed,
        label_revision: Some(release.revision),
        recorded_digest: d.clone(),
        payload_digest: d.clone(),
        signature: by.map(|s| s.sign(RECORD_DOMAIN, &d)),
        left_in_place: None,
        release,
    }
}

/// `n` chained records signed by `by`, and the anchor of their tip.
fn chain(n: u32, by: Option<&Signer>) -> (Vec<Stored>, Anchor) {
    let mut out: Vec<Stored> = Vec::new();
    for rev in 1..=n {
        let prev = out.last().map(|s| s.recorded_digest.clone());
        out.push(stored(release("bff", rev, prev), by));
    }
    let mut anchor = Anchor::new(n, &out.last().unwrap().recorded_digest);
    anchor.sign("bff", by);
    (out, anchor)
}

fn problems(records: &[Stored], anchor: Option<&Anchor>, trust: &Trust) -> Vec<String> {
    verify_component("bff", records, anchor, trust).problems
}

#[test]
fn intact_signed_chain_verifies_in_any_order() {
    let alice = signer(1, "alice");
    let (mut records, anchor) = chain(3, Some(&alice));
    records.reverse();
    assert_eq!(
        problems(&records, Some(&anchor), &trust_in(&alice, false)),
        Vec::<String>::new()
    );
}

#[test]
fn a_chain_starting_after_retention_is_fine() {
    let (records, anchor) = chain(5, None);
    let kept = records[2..].to_vec();
    assert!(problems(&kept, Some(&anchor), &Trust::with_keys([], true)).is_empty());
}

#[test]
fn edited_data_is_detected_by_digest_and_signature() {
    let alice = signer(1, "alice");
    let (mut records, anchor) = chain(3, Some(&alice));
    records[1]
        .release
        .images
        .insert("fluo-bff".into(), "evil:1".into());
    records[1].payload_digest = digest(&records[1].release).unwrap();
    let found = problems(&records, Some(&anchor), &trust_in(&alice, false));
    assert_eq!(
        found,
        [
            "fluo.release.bff.v2: payload does not match its recorded digest (modified after it was written)"
        ]
    );
}

#[test]
fn newest_record_rewritten_with_recomputed_digest_is_detected() {
    let alice = signer(1, "alice");
    let trust = trust_in(&alice, false);
    let (mut records, anchor) = chain(3, Some(&alice));
    let tip = &mut records[2];
    tip.release.reason = Some("covering tracks".into());
    tip.recorded_digest = digest(&tip.release).unwrap();
    tip.payload_digest = tip.recorded_digest.clone();
    let found = problems(&records, Some(&anchor), &trust);
    assert!(
        found
            .iter()
            .any(|p| p.starts_with("fluo.release.bff.v3: signature by `alice` does not match")),
        "{found:?}"
    );
    assert!(
        found
            .iter()
            .any(|p| p.contains("does not match the anchor's digest")),
        "{found:?}"
    );
    // Even where unsigned records are accepted, the anchor catches the rewrite.
    let (mut records, anchor) = chain(3, None);
    records[2].release.reason = Some("covering tracks".into());
    records[2].recorded_digest = digest(&records[2].release).unwrap();
    records[2].payload_digest = records[2].recorded_digest.clone();
    let found = problems(&records, Some(&anchor), &Trust::with_keys([], true));
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].contains("anchor"), "{found:?}");
}

#[test]
fn deleted_newest_record_and_deleted_history_are_detected() {
    let (mut records, anchor) = chain(3, None);
    let trust = Trust::with_keys([], true);
    records.pop();
    let found = problems(&records, Some(&anchor), &trust);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].contains("v3..v3 missing"), "{found:?}");
    let found = problems(&[], Some(&anchor), &trust);
    assert!(found[0].contains("history deleted"), "{found:?}");
}

#[test]
fn middle_gaps_need_the_anchors_pruned_entries() {
    let (records, mut anchor) = chain(5, None);
    let trust = Trust::with_keys([], true);
    let kept: Vec<Stored> = [0, 3, 4].iter().map(|&i| records[i].clone()).collect();
    let found = problems(&kept, Some(&anchor), &trust);
    assert!(found[0].contains("revisions 2..3 are missing"), "{found:?}");
    for i in [1, 2] {
        anchor.pruned.push(Pruned {
            revision: records[i].release.revision,
            digest: records[i].recorded_digest.clone(),
            prev_digest: records[i].release.prev_digest.clone(),
        });
    }
    assert!(problems(&kept, Some(&anchor), &trust).is_empty());
    anchor.pruned[1].digest = "forged".into();
    assert!(!problems(&kept, Some(&anchor), &trust).is_empty());
}

#[test]
fn unsigned_records_are_refused_only_where_the_environment_says_so() {
    let alice = signer(1, "alice");
    let (records, anchor) = chain(2, None);
    let found = problems(&records, Some(&anchor), &trust_in(&alice, false));
    assert_eq!(found.len(), 3, "two records and the anchor: {found:?}");
    assert!(found[0].contains("unsigned"), "{found:?}");
    assert!(problems(&records, Some(&anchor), &trust_in(&alice, true)).is_empty());
    // No anchor: a note where unsigned records are fine, a problem where they are not.
    let verdict = verify_component("bff", &records, None, &trust_in(&alice, true));
    assert!(
        verdict.ok() && verdict.notes[0].contains("no anchor"),
        "{verdict:?}"
    );
}

#[test]
fn purge_records_are_reported_as_notes() {
    let mut purge = release("bff", 4, Some("d3".into()));
    purge.action = Action::Purge {
        removed_through: 3,
        tip_digest: Some("d3".into()),
    };
    let record = stored(purge, None);
    let anchor = Anchor::new(4, &record.recorded_digest);
    let verdict = verify_component("bff", &[record], Some(&anchor), &Trust::with_keys([], true));
    assert!(verdict.ok(), "{verdict:?}");
    assert!(
        verdict
            .notes
            .iter()
            .any(|n| n.contains("history purged (v1..v3 removed) by alice")),
        "{verdict:?}"
    );
}

#[test]
fn renamed_record_is_detected() {
    let (mut records, anchor) = chain(2, None);
    records[1].label_revision = Some(7);
    assert_eq!(
        problems(&records, Some(&anchor), &Trust::with_keys([], true)).len(),
        1
    );
}
