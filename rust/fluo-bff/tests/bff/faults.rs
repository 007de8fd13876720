use fluo_teststack::Stack;

#[tokio::test]
async fn the_fault_knob_turns_requests_into_500s_but_keeps_metrics() {
    let stack = Stack::builder()
        .nats()
        .bff()
        .bff_env("FLUO_BFF_FAULT_5XX_RATIO", "0.5")
        .start()
        .await
        .unwrap();
    let api = stack.jobs_client();
    // Readiness polling during start used some requests; count from here.
    let mut statuses = Vec::new();
    for _ in 0..10 {
        statuses.push(api.get("/health").await.unwrap().status);
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 500).count(),
        5,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        5,
        "{statuses:?}"
    );

    let metrics = fluo_teststack::http_client()
        .get(format!("{}/metrics", stack.bff_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(metrics.status(), 200);
    let text = metrics.text().await.unwrap();
    let line = text
        .lines()
        .find(|l| {
            l.starts_with(
                "fluo_bff_http_requests_total{method=\"GET\",route=\"/health\",status=\"500\"}",
            )
        })
        .unwrap_or_else(|| panic!("no 500 series in\n{text}"));
    let count: u64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(count >= 5, "{line}");
}

#[tokio::test]
async fn without_the_knob_no_request_fails() {
    let stack = Stack::builder().nats().bff().start().await.unwrap();
    let api = stack.jobs_client();
    for _ in 0..20 {
        api.get("/health").await.unwrap().expect_status(200);
    }
}
