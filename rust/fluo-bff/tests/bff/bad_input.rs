use fluo_teststack::{NatsProbe, Stack};

/// (case, body, content type, expected status, words the error must contain)
type Case<'a> = (&'a str, Vec<u8>, Option<&'a str>, u16, &'a str);

/// Every way a request can be wrong, with the status and the words the error must contain.
#[tokio::test]
async fn bad_submissions_get_the_right_4xx_and_enqueue_nothing() {
    let stack = Stack::builder().nats().bff().start().await.unwrap();
    let api = stack.jobs_client();
    let probe = NatsProbe::connect(&stack.nats_url()).await.unwrap();
    let stream_before = probe.job_stream().await.unwrap();
    let bucket_before = probe.job_bucket().await.unwrap();

    let json = Some("application/json");
    let oversized = format!(
        r#"{{"type": "echo", "data": {{"blob": "{}"}}}}"#,
        "x".repeat(64 * 1024)
    );
    let cases: Vec<Case> = vec![
        (
            "invalid JSON",
            b"{\"type\": ".to_vec(),
            json,
            400,
            "request body is not valid JSON",
        ),
        (
            "empty body",
            Vec::new(),
            json,
            400,
            "request body is not valid JSON",
        ),
        (
            "not an object",
            b"[1, 2]".to_vec(),
            json,
            400,
            "must be a JSON object, got an array",
        ),
        (
            "missing type",
            br#"{"data": {}}"#.to_vec(),
            json,
            400,
            "field \"type\" is missing",
        ),
        (
            "type not a string",
            br#"{"type": 7}"#.to_vec(),
            json,
            400,
            "field \"type\" must be a string",
        ),
        (
            "unknown type",
            br#"{"type": "build"}"#.to_vec(),
            json,
            422,
            "unknown job type \"build\" (known: test, echo)",
        ),
        (
            "data not an object",
            br#"{"type": "echo", "data": "x"}"#.to_vec(),
            json,
            400,
            "field \"data\" must be a JSON object, got a string",
        ),
        (
            "unknown field",
            br#"{"type": "echo", "prio": 1}"#.to_vec(),
            json,
            400,
            "unknown field \"prio\"",
        ),
        (
            "body over 64 KiB",
            oversized.into_bytes(),
            json,
            413,
            "over the limit of 65536 bytes",
        ),
        (
            "not JSON content",
            br#"{"type": "echo"}"#.to_vec(),
            Some("text/plain"),
            415,
            "Content-Type must be application/json",
        ),
    ];
    for (case, body, content_type, status, message) in cases {
        let reply = api.submit_raw(body, content_type).await.unwrap();
        assert_eq!(reply.status, status, "{case}: {reply:?}");
        assert!(reply.error().contains(message), "{case}: {reply:?}");
    }

    let unknown = api
        .get("/api/jobs/5f0c7d8e-3b7a-4b8e-9a55-1f2d3c4b5a69")
        .await
        .unwrap();
    assert_eq!(unknown.status, 404, "{unknown:?}");
    assert_eq!(
        unknown.error(),
        "job 5f0c7d8e-3b7a-4b8e-9a55-1f2d3c4b5a69 not found"
    );
    let malformed = api.get("/api/jobs/not-a-uuid").await.unwrap();
    assert_eq!(malformed.status, 400, "{malformed:?}");
    assert_eq!(malformed.error(), "job id \"not-a-uuid\" is not a UUID");
    let no_route = api.get("/api/nothing").await.unwrap();
    assert_eq!(no_route.status, 404, "{no_route:?}");

    assert_eq!(
        probe.job_stream().await.unwrap(),
        stream_before,
        "a job was enqueued"
    );
    assert_eq!(
        probe.job_bucket().await.unwrap(),
        bucket_before,
        "a job record was written"
    );

    // The same stack still accepts a good job, so the assertions above were not vacuous.
    api.submit_ok("echo", serde_json::json!({})).await.unwrap();
    let after = probe.job_stream().await.unwrap();
    assert_eq!(after.last_sequence, stream_before.last_sequence + 1);
}
