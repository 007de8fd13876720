//! issue 17 on the process runtime: a production-style canary of the BFF analysed by the real
//! Prometheus. A revision with the fault switch on answers real traffic with real 5xx; the
//! analysis sees the canary pods' 5xx ratio over the threshold and aborts: the canary is
//! removed, the stable pods keep their UIDs and images, the record says `aborted` with the
//! evidence. Then a good revision goes through every step and is promoted. Then the BFF turns
//! blue-green: a green with the fault switch on fails its checks through the preview Service and
//! is removed; production traffic (through the ingress) never reaches it, blue keeps its pods.

use std::collections::BTreeMap;
use std::time::Duration;

use fluo_rehearse::failure::{Edited, bff_deployment};
use fluo_rehearse::load::Traffic;
use fluo_rehearse::{Stack, steps};

/// Production's canary shape (steps, pause, 5xx and p99 analysis), with times short enough for
/// CI. The analysis itself waits until Prometheus (scraping every 5 s in the rehearsal's copy,
/// finding pods by DNS every 5 s) has scraped the canary pods twice, however loaded the machine.
const CANARY: &str = r#"
[strategy.components.bff]
kind = "canary"
steps = [50, 100]
pause = "1s"

[strategy.components.bff.analysis]
interval = "3s"
samples = 2
window = "30s"

[[strategy.components.bff.analysis.checks]]
metric = "http-5xx-ratio"
max = 0.05

[[strategy.components.bff.analysis.checks]]
metric = "http-p99-seconds"
max = 0.5
"#;

/// The BFF as blue-green from a rolling (canary-promoted) revision: green is checked by the
/// post-deploy checks through its preview before any switch.
const BLUE_GREEN: &str = r#"
[strategy.components.bff]
kind = "blue-green"
pause = "0s"
keep_blue = "60s"
"#;

/// Stable BFF pods (not the canary's): name -> (uid, image).
async fn stable_pods(stack: &Stack) -> BTreeMap<String, (String, String)> {
    let run = stack
        .run(
            "kubectl",
            &[
                "get",
                "pods",
                "-n",
                "fluo",
                "-l",
                "app.kubernetes.io/name=fluo-bff,!fluo.dev/track",
                "-o",
                "json",
            ],
        )
        .await;
    let list = run
        .expect(0)
        .and_then(|r| r.json())
        .unwrap_or_else(|e| panic!("{e}"));
    list["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .map(|p| {
            (
                p["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                (
                    p["metadata"]["uid"].as_str().unwrap_or_default().to_owned(),
                    p["spec"]["containers"][0]["image"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                ),
            )
        })
        .collect()
}

async fn deployment_exists(stack: &Stack, name: &str) -> bool {
    let run = stack
        .run(
            "kubectl",
            &["get", "deployment", name, "-n", "fluo", "-o", "name"],
        )
        .await;
    run.code == Some(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_canary_making_real_5xx_is_aborted_by_the_real_prometheus_then_a_good_one_promotes() {
    let stack = fluo_e2e::process_stack().await;
    let fail = |what: &str, e: String| -> ! {
        panic!(
            "{what}: {e}\n--- kube-emulator log (tail)\n{}",
            tail(&stack.emulator_log())
        )
    };
    let env = stack.infra().join("environments/rehearsal.toml");
    let text = std::fs::read_to_string(&env).expect("the rehearsal environment");
    std::fs::write(&env, format!("{text}{CANARY}")).expect("writing the canary strategy");

    steps::deploy_everything(&stack)
        .await
        .unwrap_or_else(|e| fail("deploy --all", e));
    let stable = stable_pods(&stack).await;
    assert_eq!(stable.len(), 2, "{stable:?}");
    let traffic = Traffic::start(stack.api(), Duration::from_millis(20));

    let bad = {
        let _fault = Edited::with_env(bff_deployment(&stack), "FLUO_BFF_FAULT_5XX_RATIO", "0.25")
            .unwrap_or_else(|e| fail("editing the BFF manifest", e));
        let mut args = vec![
            "deploy",
            "bff",
            "--image",
            "fluo-bff=fluo/fluo-bff:canary-bad",
        ];
        args.extend(steps::DEPLOY_SKIPS);
        stack.run("fluo-deploy", &args).await
    };
    bad.expect(1).unwrap_or_else(|e| fail("the bad canary", e));
    let analysis = bad
        .stderr
        .lines()
        .find(|l| l.contains("http-5xx-ratio") && l.contains("FAILS"))
        .unwrap_or_else(|| fail("no failed 5xx analysis", bad.to_string()));
    assert!(!analysis.contains("no data"), "{analysis}");
    assert!(bad.stderr.contains("step 1/2 (50%)"), "{bad}");
    assert!(bad.stderr.contains("canary aborted"), "{bad}");
    assert!(bad.stdout.contains("aborted, stable untouched"), "{bad}");
    assert!(!deployment_exists(&stack, "fluo-bff-canary").await);
    assert_eq!(stable_pods(&stack).await, stable, "stable pods untouched");
    let history = stack
        .run("fluo-deploy", &["history", "bff", "-o", "json"])
        .await;
    let entries = history
        .expect(0)
        .and_then(|r| r.json())
        .unwrap_or_else(|e| panic!("{e}"));
    let aborted = entries
        .as_array()
        .expect("history list")
        .iter()
        .find(|e| e["revision"] == 2)
        .cloned()
        .expect("revision 2 recorded");
    assert_eq!(aborted["status"], "aborted", "{aborted}");
    assert!(
        aborted["steps"].to_string().contains("http-5xx-ratio"),
        "{aborted}"
    );

    let mut args = vec![
        "deploy",
        "bff",
        "--image",
        "fluo-bff=fluo/fluo-bff:canary-good",
    ];
    args.extend(steps::DEPLOY_SKIPS);
    let good = stack.run("fluo-deploy", &args).await;
    let answers = traffic.stop().await;
    good.expect(0)
        .unwrap_or_else(|e| fail("the good canary", e));
    for want in [
        "step 1/2 (50%)",
        "step 2/2 (100%)",
        "promoting",
        "post-deploy checks passed",
    ] {
        assert!(good.stderr.contains(want), "{want} missing: {good}");
    }
    assert!(!deployment_exists(&stack, "fluo-bff-canary").await);
    let promoted = stable_pods(&stack).await;
    assert!(
        !promoted.is_empty()
            && promoted
                .values()
                .all(|(_, image)| image == "fluo/fluo-bff:canary-good"),
        "{promoted:?}"
    );
    // The bad canary answered real traffic with real 500s.
    assert!(answers.get("500").copied().unwrap_or(0) > 0, "{answers:?}");
    println!("canary: bad aborted ({analysis}); good promoted; traffic answers {answers:?}");

    let text = std::fs::read_to_string(&env).expect("the rehearsal environment");
    std::fs::write(&env, text.replace(CANARY, BLUE_GREEN)).expect("writing blue-green");
    let blue = stable_pods(&stack).await;
    let traffic = Traffic::start(stack.api(), Duration::from_millis(20));
    let green = {
        let _fault = Edited::with_env(bff_deployment(&stack), "FLUO_BFF_FAULT_5XX_RATIO", "0.25")
            .unwrap_or_else(|e| fail("editing the BFF manifest", e));
        let mut args = vec![
            "deploy",
            "bff",
            "--image",
            "fluo-bff=fluo/fluo-bff:green-bad",
        ];
        args.extend(steps::DEPLOY_SKIPS);
        stack.run("fluo-deploy", &args).await
    };
    let answers = traffic.stop().await;
    green
        .expect(1)
        .unwrap_or_else(|e| fail("the faulty green", e));
    for want in [
        "pinned to the stable pods",
        "green: health and smoke checks through fluo-bff-preview",
        "checks through the preview failed",
        "green aborted",
    ] {
        assert!(green.stderr.contains(want), "{want} missing: {green}");
    }
    assert_eq!(
        answers.get("500"),
        None,
        "production reached green: {answers:?}"
    );
    assert!(answers.get("202").copied().unwrap_or(0) > 0, "{answers:?}");
    assert_eq!(stable_pods(&stack).await, blue, "blue's pods untouched");
    assert!(
        !deployment_exists(&stack, "fluo-bff-blue").await,
        "green removed"
    );
    let svc = stack
        .run(
            "kubectl",
            &["get", "service", "fluo-bff", "-n", "fluo", "-o", "json"],
        )
        .await
        .expect(0)
        .and_then(|r| r.json())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        svc["spec"]["selector"],
        serde_json::json!({"app.kubernetes.io/name": "fluo-bff"}),
        "blue's selector, unpinned"
    );
    println!("blue-green: faulty green aborted before any switch; traffic answers {answers:?}");
}

fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}
