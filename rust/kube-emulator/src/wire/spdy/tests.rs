use super::*;

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn decode_all(decoder: &mut Decoder, bytes: &[u8]) -> Vec<Frame> {
    let mut buf = BytesMut::from(bytes);
    let mut frames = Vec::new();
    while let Some(f) = decoder.decode(&mut buf).expect("valid frames") {
        frames.push(f);
    }
    assert!(buf.is_empty(), "{} bytes left over", buf.len());
    frames
}

fn port_forward_headers(kind: &str) -> Headers {
    Headers::new()
        .with("streamtype", kind)
        .with("port", "8222")
        .with("requestid", "0")
}

#[test]
fn dictionary_matches_the_id_kubectl_puts_in_its_zlib_header() {
    // Bytes 2..6 of kubectl's header stream (see the captured frame below) name the
    // dictionary by its Adler-32.
    assert_eq!(DICTIONARY.len(), 1423);
    assert_eq!(dictionary_id(), 0xe3c6_a7c2);
}

#[test]
fn decodes_a_syn_stream_kubectl_sent_on_the_wire() {
    // Captured from kubectl 1.32 (`KUBECTL_PORT_FORWARD_WEBSOCKETS=false kubectl
    // port-forward`, first local connection): SYN_STREAM 1 compressed by Go's
    // compress/zlib at BestCompression with the SPDY dictionary, then a PING with id 1.
    let wire = hex("800300010000003e 00000001 00000000 0000
             78f9e3c6a7c202253a703a2b294a4dcc851625aca9a0808614cb45e01c60616464c4c0c0c0
             590489c64c50f2663400000000ffff
             80030006 00000004 00000001");
    let frames = decode_all(&mut Decoder::new(), &wire);
    let Frame::SynStream {
        stream_id: 1,
        associated_to: 0,
        fin: false,
        unidirectional: false,
        headers,
        ..
    } = &frames[0]
    else {
        panic!("not the SYN_STREAM: {frames:?}");
    };
    assert_eq!(headers.get("streamtype"), Some("error"));
    assert_eq!(headers.get("port"), Some("8222"));
    assert_eq!(headers.get("requestid"), Some("0"));
    assert_eq!(frames[1], Frame::Ping { id: 1 });
}

#[test]
fn decodes_header_blocks_built_by_hand_from_rfc_1950_and_1951() {
    // One zlib stream across two SYN_STREAMs, written with stored (uncompressed) deflate
    // blocks: zlib header 78 20 (deflate, 32K window, FDICT; 0x7820 % 31 == 0), the
    // dictionary id, then per frame a non-final stored block: 00, LEN, NLEN (little endian).
    let raw = |kind: &str| {
        let mut b = hex("00000003 00000004");
        b.extend(b"port");
        b.extend(hex("00000004"));
        b.extend(b"8222");
        b.extend(hex("00000009"));
        b.extend(b"requestid");
        b.extend(hex("00000001"));
        b.extend(b"0");
        b.extend(hex("0000000a"));
        b.extend(b"streamtype");
        b.extend((kind.len() as u32).to_be_bytes());
        b.extend(kind.as_bytes());
        b
    };
    let stored = |data: &[u8]| {
        let len = data.len() as u16;
        let mut b = vec![0x00];
        b.extend(len.to_le_bytes());
        b.extend((!len).to_le_bytes());
        b.extend(data);
        b
    };
    let syn_stream = |id: u8, block: Vec<u8>| {
        let mut f = hex("80030001 00");
        f.extend(&((10 + block.len()) as u32).to_be_bytes()[1..]);
        f.extend([0, 0, 0, id, 0, 0, 0, 0, 0, 0]);
        f.extend(block);
        f
    };
    let mut first = hex("7820 e3c6a7c2");
    first.extend(stored(&raw("error")));
    let mut wire = syn_stream(1, first);
    wire.extend(syn_stream(3, stored(&raw("data"))));
    let frames = decode_all(&mut Decoder::new(), &wire);
    assert_eq!(frames.len(), 2);
    for (frame, (id, kind)) in frames.iter().zip([(1, "error"), (3, "data")]) {
        match frame {
            Frame::SynStream {
                stream_id, headers, ..
            } => {
                assert_eq!(*stream_id, id);
                assert_eq!(headers, &port_forward_headers(kind));
            }
            other => panic!("not a SYN_STREAM: {other:?}"),
        }
    }
}

#[test]
fn fixed_layout_frames_match_the_spec_bytes() {
    let cases = [
        (Frame::Ping { id: 1 }, "80030006 00000004 00000001"),
        (
            Frame::Data {
                stream_id: 3,
                fin: true,
                data: Bytes::from_static(b"abc"),
            },
            "00000003 01000003 616263",
        ),
        (
            Frame::RstStream {
                stream_id: 3,
                status: rst::CANCEL,
            },
            "80030003 00000008 00000003 00000005",
        ),
        (
            Frame::GoAway {
                last_good_stream_id: 5,
                status: goaway::OK,
            },
            "80030007 00000008 00000005 00000000",
        ),
        (
            Frame::WindowUpdate {
                stream_id: 1,
                delta: 65536,
            },
            "80030009 00000008 00000001 00010000",
        ),
        (
            Frame::Settings {
                clear: false,
                entries: vec![Setting {
                    flags: 1,
                    id: 7,
                    value: 65536,
                }],
            },
            "80030004 0000000c 00000001 01000007 00010000",
        ),
    ];
    for (frame, bytes) in cases {
        let mut out = BytesMut::new();
        Encoder::new().encode(&frame, &mut out).unwrap();
        assert_eq!(out.to_vec(), hex(bytes), "{frame:?}");
        assert_eq!(decode_all(&mut Decoder::new(), &hex(bytes)), vec![frame]);
    }
}

#[test]
fn header_frames_round_trip_through_one_context_per_direction() {
    let frames = vec![
        Frame::SynStream {
            stream_id: 1,
            associated_to: 0,
            priority: 3,
            fin: false,
            unidirectional: false,
            headers: port_forward_headers("error"),
        },
        Frame::SynReply {
            stream_id: 1,
            fin: false,
            headers: Headers::new(),
        },
        Frame::SynStream {
            stream_id: 3,
            associated_to: 1,
            priority: 0,
            fin: true,
            unidirectional: true,
            headers: port_forward_headers("data")
                .with("accept", "a")
                .with("accept", "b"),
        },
        Frame::Data {
            stream_id: 3,
            fin: false,
            data: Bytes::from(vec![7u8; 70_000]),
        },
        Frame::Headers {
            stream_id: 3,
            fin: true,
            headers: Headers::new().with("Content-Type", "text/plain"),
        },
    ];
    let mut encoder = Encoder::new();
    let mut wire = BytesMut::new();
    for f in &frames {
        encoder.encode(f, &mut wire).unwrap();
    }
    // Fed one byte at a time, the decoder waits for whole frames and keeps its context.
    let mut decoder = Decoder::new();
    let mut buf = BytesMut::new();
    let mut got = Vec::new();
    for byte in wire.iter() {
        buf.put_u8(*byte);
        while let Some(f) = decoder.decode(&mut buf).unwrap() {
            got.push(f);
        }
    }
    assert_eq!(got, frames);
    let Frame::SynStream { headers, .. } = &got[2] else {
        unreachable!()
    };
    assert_eq!(headers.get("accept"), Some("a"));
    assert_eq!(headers.get("content-type"), None);
}

#[test]
fn invalid_frames_are_errors() {
    let cases: [(&str, Error); 6] = [
        ("80020006 00000004 00000001", Error::UnsupportedVersion(2)),
        ("80030005 00000000", Error::UnknownFrameType(5)),
        ("00000000 00000000", Error::ZeroStreamId("DATA")),
        (
            "80030003 00000008 00000001 00000000",
            Error::InvalidFrame {
                frame: "RST_STREAM",
                reason: "status 0".into(),
            },
        ),
        (
            "80030006 00000008 00000001 00000002",
            Error::InvalidFrame {
                frame: "PING",
                reason: "length 8, expected 4 bytes".into(),
            },
        ),
        // A header stream primed with another dictionary (id 00000001).
        (
            "80030002 0000000a 00000001 7820 00000001",
            Error::Compression("peer used dictionary 0x00000001, not the SPDY/3 dictionary".into()),
        ),
    ];
    for (bytes, want) in cases {
        let mut buf = BytesMut::from(&hex(bytes)[..]);
        assert_eq!(Decoder::new().decode(&mut buf), Err(want), "{bytes}");
    }
    // Upper-case header names are refused (stored block as in the hand-built test).
    let block = hex("7820 e3c6a7c2 00 0d00 f2ff 00000001 00000001 41 00000000");
    let mut frame = hex("80030002 0000001c 00000001");
    frame.extend(block);
    let err = Decoder::new()
        .decode(&mut BytesMut::from(&frame[..]))
        .unwrap_err();
    assert!(err.to_string().contains("not lower case"), "{err}");
}
