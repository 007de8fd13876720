//! A busy API server: throttled (429) requests are retried, so the deploy still converges.

use kube_emulator::Faults;

use crate::harness::World;
use crate::{DEFAULT_IMAGES, assert_images, records};

#[tokio::test(flavor = "multi_thread")]
async fn deploy_all_converges_while_the_api_server_throttles_requests() {
    let w = World::start().await;
    // One request in six is answered 429 with Retry-After (as API Priority and Fairness does).
    w.emulator
        .set_faults(Faults {
            throttle_rate: 1.0 / 6.0,
            ..Faults::default()
        })
        .unwrap();
    let run = w
        .cmd(["deploy", "--all"])
        .env("RUST_LOG", "fluo_core::retry=debug")
        .run()
        .await;
    // The test's own client does not retry: stop throttling before looking.
    w.emulator.set_faults(Faults::default()).unwrap();
    run.code(0)
        .stderr_has("retrying a transient API error")
        .stderr_has("429");
    assert_images(&w.client, &DEFAULT_IMAGES).await;
    assert_eq!(
        records(&w.client).await.len(),
        DEFAULT_IMAGES.len(),
        "one record per component"
    );
    w.cmd(["history", "--verify"]).run().await.code(0);
}
