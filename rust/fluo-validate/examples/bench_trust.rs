//! Trust benchmarks (docs/performance/trust.md):
//!
//!     cargo run -p fluo-validate --example bench_trust [-- INFRA_DIR] [--gate-only [RUNS]]
//!
//! 1. sign + verify one release record (the bff record of infra/ as deployed: encode, digest,
//!    ed25519 sign; then decode, digest, verify the signature), per record;
//! 2. `history --verify` of 1,000 signed records of one component: decode every payload
//!    (gzip JSON + SHA-256 of the bytes) and verify digests, signatures, chain and anchor (the
//!    cluster list call is not included);
//! 3. the gate on the rendered objects of infra/: load, render every component, build the
//!    rendered set and run the manifests and policy steps offline.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use fluo_core::config::Config;
use fluo_core::release::{self, Action, Outcome, Release, Status, Stored};
use fluo_core::render::{self, ImageOverrides};
use fluo_core::state::anchor::Anchor;
use fluo_core::state::signing::{Signer, Trust};
use fluo_core::state::verify::{self, RECORD_DOMAIN};
use fluo_validate::environment::GitState;
use fluo_validate::{Checklist, Gate, GateOptions, Step};

fn record(config: &Config, revision: u32, prev: Option<String>) -> Release {
    let bff = config.component("bff").expect("infra/ has bff");
    let rendered =
        render::render(bff, &config.environment, &ImageOverrides::default()).expect("bff renders");
    Release {
        component: "bff".into(),
        revision,
        action: Action::Deploy,
        environment: "local".into(),
        namespace: "fluo".into(),
        manifests: rendered.to_objects(),
        images: rendered.images,
        commit: "0123456789abcdef0123456789abcdef01234567".into(),
        dirty: false,
        started_at: chrono::Utc::now(),
        user: "bench".into(),
        reason: Some("benchmark".into()),
        deploy_id: format!("d-{revision}"),
        outcome: Outcome::Succeeded,
        message: None,
        duration_ms: 1000,
        change_ticket: None,
        approved_by: None,
        forced_unlock: None,
        skipped_checks: vec![],
        prev_digest: prev,
        overrides: vec![],
        emergency: false,
        drill: false,
        steps: vec![],
        unresolved_digests: vec![],
    }
}

/// What the cluster would hold: the encoded payload, its digest and signature.
fn write(release: &Release, signer: &Signer) -> (Vec<u8>, String, String) {
    let bytes = release::encode(release).expect("encodes");
    let digest = release::digest(release).expect("digest");
    let signature = signer.sign(RECORD_DOMAIN, &digest);
    (bytes, digest, signature)
}

/// What `history --verify` does with one stored record before the chain check.
fn read(name: String, bytes: &[u8], digest: &str, signature: &str) -> Stored {
    let (release, payload_digest) = release::decode_with_digest(bytes).expect("decodes");
    Stored {
        name,
        status: Status::Deployed,
        label_revision: Some(release.revision),
        recorded_digest: digest.to_string(),
        payload_digest,
        signature: Some(signature.to_string()),
        left_in_place: None,
        release,
    }
}

fn stats(times: &mut [Duration]) -> (f64, f64) {
    times.sort();
    (
        times[0].as_secs_f64() * 1e3,
        times[times.len() / 2].as_secs_f64() * 1e3,
    )
}

fn sign_and_verify(config: &Config, signer: &Signer, trust: &Trust) {
    const N: usize = 200;
    let release = record(config, 1, None);
    let mut times = Vec::with_capacity(N);
    for _ in 0..N {
        let started = Instant::now();
        let (bytes, digest, signature) = write(&release, signer);
        let stored = read("fluo.release.bff.v1".into(), &bytes, &digest, &signature);
        let check = trust.check(RECORD_DOMAIN, &stored.recorded_digest, Some(&signature));
        assert!(trust.problem(&check).is_none());
        assert_eq!(stored.payload_digest, digest);
        times.push(started.elapsed());
    }
    let (min, median) = stats(&mut times);
    println!(
        "sign + verify one record ({} manifests, {} bytes gzip): min {min:.2} ms, median {median:.2} ms ({N} runs)",
        release.manifests.len(),
        release::encode(&release).unwrap().len()
    );
}

fn verify_thousand(config: &Config, signer: &Signer, trust: &Trust) {
    const RECORDS: u32 = 1000;
    let mut stored_form = Vec::new();
    let mut prev = None;
    for revision in 1..=RECORDS {
        let release = record(config, revision, prev.clone());
        let (bytes, digest, signature) = write(&release, signer);
        prev = Some(digest.clone());
        stored_form.push((revision, bytes, digest, signature));
    }
    let mut anchor = Anchor::new(RECORDS, prev.as_deref().unwrap());
    anchor.sign("bff", Some(signer));
    let mut times = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        let records: Vec<Stored> = stored_form
            .iter()
            .map(|(rev, bytes, digest, sig)| {
                read(release::record_name("bff", *rev), bytes, digest, sig)
            })
            .collect();
        let by_component = BTreeMap::from([("bff".to_string(), records)]);
        let anchors = BTreeMap::from([("bff".to_string(), anchor.clone())]);
        let verdicts = verify::verify_all(&by_component, &anchors, trust);
        assert!(verdicts.iter().all(|v| v.ok()), "{verdicts:?}");
        times.push(started.elapsed());
    }
    let (min, median) = stats(&mut times);
    println!(
        "history --verify of {RECORDS} signed records (decode + digest + signature + chain + anchor): min {min:.1} ms, median {median:.1} ms (5 runs)"
    );
}

async fn gate_once(infra: &Path, log: &Path) -> Duration {
    let started = Instant::now();
    let config = Config::load(infra, "local").expect("config loads");
    let cluster = render::render_cluster(&config.cluster_manifests).expect("renders");
    let rendered = config
        .components
        .iter()
        .map(|c| {
            let r = render::render(c, &config.environment, &ImageOverrides::default())
                .expect("renders");
            (c.name().to_string(), r)
        })
        .collect();
    let mut options = GateOptions::new(
        Checklist::defaults(infra),
        log.to_path_buf(),
        GitState::Clean,
    );
    options.only = Some(vec![Step::Manifests, Step::Policy]);
    options.rendered =
        Some(fluo_validate::gate::rendered_set(&config, &cluster, &rendered).expect("set"));
    let report = Gate::new(&config, options)
        .expect("gate")
        .run()
        .await
        .expect("gate runs");
    assert!(report.passed, "{}", report.to_text());
    started.elapsed()
}

#[tokio::main]
async fn main() {
    // `--gate-only [N]`: only case 3, N runs (default 20), e.g. under a profiler.
    let args: Vec<String> = std::env::args().skip(1).collect();
    let gate_only = args.iter().position(|a| a == "--gate-only");
    let runs: usize = gate_only
        .and_then(|i| args.get(i + 1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(20);
    let infra: PathBuf = args
        .iter()
        .find(|a| !a.starts_with("--") && a.parse::<usize>().is_err())
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../infra"));
    if gate_only.is_none() {
        let config = Config::load(&infra, "local").expect("infra/ loads");
        let signer = Signer::from_seed([42; 32], "bench");
        let trust = Trust::with_keys([("bench".to_string(), signer.public_key())], false);
        sign_and_verify(&config, &signer, &trust);
        verify_thousand(&config, &signer, &trust);
    }
    let log = std::env::temp_dir().join("fluo-bench-trust-gate.log");
    let cold = gate_once(&infra, &log).await;
    let mut times = Vec::new();
    for _ in 0..runs {
        times.push(gate_once(&infra, &log).await);
    }
    let (min, median) = stats(&mut times);
    println!(
        "gate on the rendered objects of infra/ (load + render + manifests + policy, offline): cold {:.1} ms, min {min:.1} ms, median {median:.1} ms ({runs} runs)",
        cold.as_secs_f64() * 1e3
    );
}
