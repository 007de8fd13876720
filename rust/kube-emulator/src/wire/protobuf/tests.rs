use super::*;

// An encoder written from the wire format spec, independent of the reader above.
fn varint(mut v: u64) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let low = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(low);
            return out;
        }
        out.push(low | 0x80);
    }
}

/// A length-delimited field (wire type 2).
fn ld(field: u64, data: &[u8]) -> Vec<u8> {
    [
        varint(field << 3 | 2),
        varint(data.len() as u64),
        data.to_vec(),
    ]
    .concat()
}

/// A varint field (wire type 0).
fn vi(field: u64, v: u64) -> Vec<u8> {
    [varint(field << 3), varint(v)].concat()
}

fn entry(field: u64, key: &str, value: &[u8]) -> Vec<u8> {
    ld(field, &[ld(1, key.as_bytes()), ld(2, value)].concat())
}

/// `k8s\0` + runtime.Unknown{typeMeta{apiVersion, kind}, raw, contentEncoding, contentType}.
fn body(api_version: &str, kind: &str, raw: &[u8]) -> Vec<u8> {
    let type_meta = [ld(1, api_version.as_bytes()), ld(2, kind.as_bytes())].concat();
    [
        b"k8s\0".to_vec(),
        ld(1, &type_meta),
        ld(2, raw),
        ld(3, b""),
        ld(4, b""),
    ]
    .concat()
}

fn hex(s: &str) -> Vec<u8> {
    s.split_whitespace()
        .map(|b| u8::from_str_radix(b, 16).unwrap())
        .collect()
}

fn err(body: &[u8]) -> Error {
    decode(body).expect_err("decoding fails")
}

// Bodies captured from kubectl 1.32 `-v=8` ("Request Body").
#[test]
fn kubectl_create_namespace_body() {
    let b = hex(
        "6b 38 73 00 0a 0f 0a 02 76 31 12 09 4e 61 6d 65 73 70 61 63 65 12 1b 0a 13
            0a 03 66 6f 6f 12 00 1a 00 22 00 2a 00 32 00 38 00 42 00 12 00 1a 02 0a 00 1a 00 22 00",
    );
    assert_eq!(
        decode(&b).unwrap(),
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "foo"},
                "spec": {}, "status": {}})
    );
}

#[test]
fn kubectl_create_secret_generic_body() {
    let b = hex(
        "6b 38 73 00 0a 0c 0a 02 76 31 12 06 53 65 63 72 65 74 12 2b 0a 11 0a 01 73
            12 00 1a 00 22 00 2a 00 32 00 38 00 42 00 12 06 0a 01 61 12 01 62 12 06 0a 01 63 12 01
            64 1a 06 4f 70 61 71 75 65 1a 00 22 00",
    );
    assert_eq!(
        decode(&b).unwrap(),
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
                "data": {"a": "Yg==", "c": "ZA=="}, "type": "Opaque"})
    );
}

#[test]
fn kubectl_create_configmap_body_with_binary_file() {
    let b = hex(
        "6b 38 73 00 0a 0f 0a 02 76 31 12 09 43 6f 6e 66 69 67 4d 61 70 12 42 0a 11
            0a 01 63 12 00 1a 00 22 00 2a 00 32 00 38 00 42 00 12 15 0a 05 66 2e 74 78 74 12 0c 66
            69 6c 65 63 6f 6e 74 65 6e 74 0a 12 06 0a 01 6b 12 01 76 1a 0e 0a 07 62 69 6e 2e 64 61
            74 12 03 00 ff fe 1a 00 22 00",
    );
    assert_eq!(
        decode(&b).unwrap(),
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},
                "data": {"f.txt": "filecontent\n", "k": "v"}, "binaryData": {"bin.dat": "AP/+"}})
    );
}

#[test]
fn object_meta_fields_and_secret_string_data() {
    let created = 1_700_000_000u64; // 2023-11-14T22:13:20Z
    let meta = [
        ld(2, b"gen-"),
        ld(3, b"team"),
        ld(8, &[vi(1, created), vi(2, 5)].concat()),
        entry(11, "app", b"web"),
        entry(11, "tier", b""),
        entry(12, "note", b"x y"),
        ld(14, b"example.com/guard"),
        vi(7, 3),
        vi(10, 30),
    ]
    .concat();
    let long = "v".repeat(300); // a two-byte length varint
    let raw = [
        ld(1, &meta),
        entry(2, "token", &[0, 1, 2, 255]),
        entry(4, "plain", long.as_bytes()),
        ld(3, b"kubernetes.io/tls"),
        vi(5, 1),
    ]
    .concat();
    assert_eq!(
        decode(&body("v1", "Secret", &raw)).unwrap(),
        json!({"apiVersion": "v1", "kind": "Secret",
                "metadata": {"generateName": "gen-", "namespace": "team",
                    "creationTimestamp": "2023-11-14T22:13:20Z",
                    "labels": {"app": "web", "tier": ""}, "annotations": {"note": "x y"},
                    "finalizers": ["example.com/guard"], "generation": 3,
                    "deletionGracePeriodSeconds": 30},
                "data": {"token": "AAEC/w=="}, "stringData": {"plain": long},
                "type": "kubernetes.io/tls", "immutable": true})
    );
}

#[test]
fn service_account_references_and_owner() {
    let owner = [
        ld(5, b"apps/v1"),
        ld(1, b"Deployment"),
        ld(3, b"web"),
        ld(4, b"u-1"),
        vi(6, 1),
        vi(7, 0),
    ]
    .concat();
    let meta = [ld(1, b"robot"), ld(13, &owner)].concat();
    let secret_ref = [ld(1, b"Secret"), ld(3, b"robot-token"), ld(2, b"")].concat();
    let raw = [
        ld(1, &meta),
        ld(2, &secret_ref),
        ld(3, &ld(1, b"registry")),
        ld(3, &ld(1, b"mirror")),
        vi(4, 0),
    ]
    .concat();
    assert_eq!(
        decode(&body("v1", "ServiceAccount", &raw)).unwrap(),
        json!({"apiVersion": "v1", "kind": "ServiceAccount",
                "metadata": {"name": "robot", "ownerReferences": [{"apiVersion": "apps/v1",
                    "kind": "Deployment", "name": "web", "uid": "u-1", "controller": true,
                    "blockOwnerDeletion": false}]},
                "secrets": [{"kind": "Secret", "name": "robot-token"}],
                "imagePullSecrets": [{"name": "registry"}, {"name": "mirror"}],
                "automountServiceAccountToken": false})
    );
}

#[test]
fn namespace_finalizers_and_unknown_fields_of_every_wire_type_are_skipped() {
    let fixed64 = [varint(90 << 3 | 1), vec![1; 8]].concat();
    let fixed32 = [varint(91 << 3 | 5), vec![2; 4]].concat();
    let meta = [ld(1, b"ns"), vi(99, 7), ld(17, b"managed fields skipped")].concat();
    let raw = [
        fixed64,
        ld(1, &meta),
        ld(2, &[ld(1, b"kubernetes"), ld(1, b"example.com/x")].concat()),
        fixed32,
        vi(1000, 1),
        ld(3, &[ld(1, b"Active"), ld(2, b"condition skipped")].concat()),
    ]
    .concat();
    assert_eq!(
        decode(&body("v1", "Namespace", &raw)).unwrap(),
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ns"},
                "spec": {"finalizers": ["kubernetes", "example.com/x"]},
                "status": {"phase": "Active"}})
    );
}

#[test]
fn configmap_immutable_and_empty_map_value() {
    let raw = [ld(1, &ld(1, b"c")), ld(2, &ld(1, b"empty")), vi(4, 1)].concat();
    assert_eq!(
        decode(&body("v1", "ConfigMap", &raw)).unwrap(),
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},
                "data": {"empty": ""}, "immutable": true})
    );
}

#[test]
fn wrong_or_missing_magic() {
    assert_eq!(err(b""), Error::Magic);
    assert_eq!(err(b"{\"kind\":\"Namespace\"}"), Error::Magic);
    assert_eq!(err(b"k8s"), Error::Magic);
}

#[test]
fn truncated_varint_names_its_byte() {
    // A key byte with the continuation bit set and nothing after it.
    let e = err(&[b"k8s\0".as_slice(), &[0x80]].concat());
    assert_eq!(
        e,
        Error::TruncatedVarint {
            msg: "runtime.Unknown",
            at: 4
        }
    );
    assert_eq!(
        e.to_string(),
        "truncated varint at byte 4 (in runtime.Unknown)"
    );
    // A truncated length inside the object's metadata.
    let raw = [varint(1 << 3 | 2), vec![0xff]].concat();
    let e = err(&body("v1", "Secret", &raw));
    assert!(
        matches!(e, Error::TruncatedVarint { msg: "Secret", .. }),
        "{e:?}"
    );
}

#[test]
fn varint_longer_than_64_bits() {
    let raw = [vec![0x08], vec![0xff; 10], vec![0x01]].concat();
    let e = err(&body("v1", "Secret", &raw));
    assert!(
        matches!(e, Error::VarintOverflow { msg: "Secret", .. }),
        "{e:?}"
    );
}

#[test]
fn length_past_the_end() {
    let mut b = body("v1", "Namespace", &ld(1, &ld(1, b"name")));
    b.truncate(b.len() - 10);
    let e = err(&b);
    assert!(
        matches!(&e, Error::Field { msg: "runtime.Unknown", number: 2, why, .. }
                if why.contains("remain")),
        "{e:?}"
    );
    // Inside a nested message: metadata claims 50 bytes, 2 follow.
    let raw = [varint(1 << 3 | 2), varint(50), vec![0x0a, 0x00]].concat();
    let e = err(&body("v1", "ConfigMap", &raw));
    assert_eq!(
        e.to_string(),
        "ConfigMap field 1 at byte 23: needs 50 bytes but only 2 remain"
    );
}

#[test]
fn bad_keys_and_wire_types() {
    let e = err(&body("v1", "Secret", &[0x00, 0x00]));
    assert!(
        matches!(&e, Error::Key { why, .. } if why == "field number 0"),
        "{e:?}"
    );
    let group = varint(7 << 3 | 3);
    let e = err(&body("v1", "Secret", &group));
    assert!(
        matches!(&e, Error::Key { why, .. } if why.contains("wire type 3")),
        "{e:?}"
    );
    // metadata.name sent as a varint instead of a string.
    let e = err(&body("v1", "Secret", &ld(1, &vi(1, 5))));
    assert!(
        matches!(&e, Error::Field { msg: "ObjectMeta", number: 1, why, .. }
                if why == "expected length-delimited, got varint"),
        "{e:?}"
    );
    // immutable sent as a string instead of a bool.
    let e = err(&body("v1", "Secret", &ld(5, b"yes")));
    assert!(
        matches!(
            &e,
            Error::Field {
                msg: "Secret",
                number: 5,
                ..
            }
        ),
        "{e:?}"
    );
}

#[test]
fn strings_must_be_utf8() {
    let e = err(&body("v1", "ConfigMap", &entry(2, "k", &[0xff, 0xfe])));
    assert!(
        matches!(&e, Error::Field { msg: "map entry", number: 2, why, .. }
                if why.contains("UTF-8")),
        "{e:?}"
    );
}

#[test]
fn other_kinds_are_refused_with_their_name() {
    let e = err(&body("apps/v1", "Deployment", &ld(1, &ld(1, b"x"))));
    assert_eq!(
        e,
        Error::UnsupportedKind {
            api_version: "apps/v1".into(),
            kind: "Deployment".into()
        }
    );
    let api = ApiError::from(e);
    assert_eq!((api.code, api.reason), (415, "UnsupportedMediaType"));
    assert!(
        api.message.contains("apps/v1 Deployment"),
        "{}",
        api.message
    );
    assert!(api.message.contains("kubectl apply -f"), "{}", api.message);
    // A core kind of another version is not one of ours either.
    assert!(matches!(
        err(&body("v2", "Secret", b"")),
        Error::UnsupportedKind { .. }
    ));
}

#[test]
fn envelope_without_kind_or_with_encoding() {
    assert_eq!(err(&body("v1", "", b"")), Error::NoKind);
    let b = [b"k8s\0".to_vec(), ld(1, &ld(2, b"Secret")), ld(3, b"gzip")].concat();
    let e = err(&b);
    assert_eq!(e, Error::ContentEncoding("gzip".into()));
    assert_eq!(ApiError::from(e).code, 415);
}

#[test]
fn malformed_bodies_are_bad_requests() {
    let api = ApiError::from(err(b"nope"));
    assert_eq!((api.code, api.reason), (400, "BadRequest"));
    assert!(
        api.message
            .starts_with("the protobuf request body is malformed: the body does not start"),
        "{}",
        api.message
    );
}
