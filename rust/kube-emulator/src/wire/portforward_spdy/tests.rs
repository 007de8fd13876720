use super::*;

#[test]
fn streams_are_validated_like_the_kubelet() {
    let h = |pairs: &[(&str, &str)]| pairs.iter().fold(Headers::new(), |h, (k, v)| h.with(k, v));
    let ok = parse_stream(
        1,
        &h(&[("streamtype", "data"), ("port", "8222"), ("requestid", "7")]),
    )
    .unwrap();
    assert_eq!(
        (ok.kind, ok.port, ok.request_id.as_str()),
        (StreamType::Data, 8222, "7")
    );
    // Without requestid, error id N and data id N+2 pair up.
    let err = parse_stream(5, &h(&[("streamtype", "error"), ("port", "80")])).unwrap();
    let data = parse_stream(7, &h(&[("streamtype", "data"), ("port", "80")])).unwrap();
    assert_eq!(err.request_id, data.request_id);
    for (headers, want) in [
        (h(&[("streamtype", "data")]), "\"port\" header is required"),
        (h(&[("streamtype", "data"), ("port", "0")]), "must be > 0"),
        (
            h(&[("streamtype", "data"), ("port", "x")]),
            "unable to parse",
        ),
        (h(&[("port", "80")]), "\"streamtype\" header is required"),
        (
            h(&[("streamtype", "stdin"), ("port", "80")]),
            "invalid stream type",
        ),
    ] {
        let e = parse_stream(1, &headers).unwrap_err();
        assert!(e.contains(want), "{e} lacks {want}");
    }
}

/// The client side of a session: kubectl's moves, made with our own framing.
struct Client {
    io: tokio::io::DuplexStream,
    encoder: Encoder,
    decoder: Decoder,
    buf: BytesMut,
}

impl Client {
    async fn send(&mut self, frame: Frame) {
        let mut out = BytesMut::new();
        self.encoder.encode(&frame, &mut out).unwrap();
        self.io.write_all(&out).await.unwrap();
    }

    /// Frames from the server up to and including the first one `last` accepts.
    async fn until(&mut self, last: impl Fn(&Frame) -> bool) -> Vec<Frame> {
        let mut frames = Vec::new();
        tokio::time::timeout(Duration::from_secs(30), async {
            loop {
                while let Some(f) = self.decoder.decode(&mut self.buf).unwrap() {
                    let done = last(&f);
                    frames.push(f);
                    if done {
                        return;
                    }
                }
                assert!(
                    self.io.read_buf(&mut self.buf).await.unwrap() > 0,
                    "EOF after {frames:?}"
                );
            }
        })
        .await
        .unwrap_or_else(|_| panic!("no expected frame; got {frames:?}"));
        frames
    }
}

fn syn(stream_id: u32, kind: &str, port: &str, request: &str) -> Frame {
    Frame::SynStream {
        stream_id,
        associated_to: 0,
        priority: 0,
        fin: false,
        unidirectional: false,
        headers: Headers::new()
            .with("streamtype", kind)
            .with("port", port)
            .with("requestid", request),
    }
}

fn data(stream_id: u32, fin: bool, bytes: &'static [u8]) -> Frame {
    Frame::Data {
        stream_id,
        fin,
        data: Bytes::from_static(bytes),
    }
}

fn reply(stream_id: u32) -> Frame {
    Frame::SynReply {
        stream_id,
        fin: false,
        headers: Headers::new(),
    }
}

#[tokio::test]
async fn session_replies_relays_reports_and_closes_streams() {
    let target = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = target.local_addr().unwrap();
    tokio::spawn(async move {
        let (s, _) = target.accept().await.unwrap();
        let (mut rd, mut wr) = s.into_split();
        let _ = tokio::io::copy(&mut rd, &mut wr).await;
    });
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let pod = PodTarget::new(
        &serde_json::json!({"metadata": {"namespace": "ns", "name": "p", "uid": "u-1"}}),
        Arc::new(move |port| match port {
            8222 => Ok(addr.to_string()),
            9999 => Ok(closed.to_string()),
            _ => Err("no forwarding target".into()),
        }),
    );
    let (io, server) = tokio::io::duplex(64 * 1024);
    let session = tokio::spawn(run(server, pod));
    let mut c = Client {
        io,
        encoder: Encoder::new(),
        decoder: Decoder::new(),
        buf: BytesMut::new(),
    };

    c.send(syn(1, "error", "8222", "0")).await;
    assert_eq!(c.until(|_| true).await, vec![reply(1)]);
    c.send(Frame::Ping { id: 1 }).await;
    assert_eq!(c.until(|_| true).await, vec![Frame::Ping { id: 1 }]);
    c.send(syn(3, "data", "8222", "0")).await;
    assert_eq!(c.until(|_| true).await, vec![reply(3)]);
    c.send(data(3, false, b"abc")).await;
    c.send(data(3, true, b"")).await;
    // The echo answers, closes after our FIN, and both streams are finished.
    let frames = c.until(|f| *f == data(1, true, b"")).await;
    let echoed: Vec<u8> = frames
        .iter()
        .filter_map(|f| match f {
            Frame::Data {
                stream_id: 3, data, ..
            } => Some(data.to_vec()),
            _ => None,
        })
        .flatten()
        .collect();
    assert_eq!(echoed, b"abc");
    assert!(frames.contains(&data(3, true, b"")), "{frames:?}");

    // A stream without a port is reset, as the kubelet does.
    c.send(Frame::SynStream {
        stream_id: 5,
        associated_to: 0,
        priority: 0,
        fin: false,
        unidirectional: false,
        headers: Headers::new().with("streamtype", "data"),
    })
    .await;
    assert_eq!(
        c.until(|_| true).await,
        vec![Frame::RstStream {
            stream_id: 5,
            status: rst::CANCEL
        }]
    );

    // An unreachable target: the message on the error stream, then both streams closed.
    c.send(syn(7, "error", "9999", "1")).await;
    c.send(syn(9, "data", "9999", "1")).await;
    let frames = c.until(|f| *f == data(7, true, b"")).await;
    assert_eq!(&frames[..2], &[reply(7), reply(9)]);
    let message = frames
        .iter()
        .find_map(|f| match f {
            Frame::Data {
                stream_id: 7,
                fin: false,
                data,
            } => Some(String::from_utf8_lossy(data).into_owned()),
            _ => None,
        })
        .expect("an error message");
    assert!(
        message.starts_with(&format!(
            "error forwarding port 9999 to pod ns/p, uid u-1: dial tcp {closed}: "
        )),
        "{message}"
    );
    assert!(frames.contains(&data(9, true, b"")), "{frames:?}");

    // GOAWAY ends the session and closes the connection.
    c.send(Frame::GoAway {
        last_good_stream_id: 0,
        status: goaway::OK,
    })
    .await;
    tokio::time::timeout(Duration::from_secs(30), session)
        .await
        .expect("session ends after GOAWAY")
        .unwrap();
    let mut rest = Vec::new();
    c.io.read_to_end(&mut rest).await.unwrap();
    assert!(rest.is_empty(), "{rest:?}");
}
