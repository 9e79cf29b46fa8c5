//! Hostile input over a real socket: after every attack the attacked connection is closed (or
//! left waiting for bytes that never come) and a fresh connection still gets answers.

mod common;

use std::time::Duration;

use common::*;
use ferrocket_net::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const T: Duration = Duration::from_secs(10);

fn frame_with_header(type_byte: u8, header: &[u8], body: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&((4 + header.len() + body.len()) as u32).to_be_bytes());
    f.extend_from_slice(&((u32::from(type_byte) << 24) | header.len() as u32).to_be_bytes());
    f.extend_from_slice(header);
    f.extend_from_slice(body);
    f
}

/// The attacks that make the stream unframeable or undecodable: the server must close.
fn closing_attacks() -> Vec<(&'static str, Vec<u8>)> {
    let mut v: Vec<(&'static str, Vec<u8>)> = vec![
        ("length 0", 0i32.to_be_bytes().to_vec()),
        ("length 3", 3i32.to_be_bytes().to_vec()),
        ("length -1", (-1i32).to_be_bytes().to_vec()),
        ("length i32::MIN", i32::MIN.to_be_bytes().to_vec()),
        ("length 2^31-1", i32::MAX.to_be_bytes().to_vec()),
        (
            "length 16 MiB (cap counts the prefix)",
            (16i32 << 20).to_be_bytes().to_vec(),
        ),
        ("garbage", pattern(4096, 42)),
        ("http", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec()),
        (
            "tls client hello",
            vec![0x16, 3, 1, 0, 0xa5, 1, 0, 0, 0xa1, 3, 3],
        ),
    ];
    // Header length past the end of the frame.
    let mut f = Vec::new();
    f.extend_from_slice(&8u32.to_be_bytes());
    f.extend_from_slice(&100u32.to_be_bytes());
    f.extend_from_slice(b"{}{}");
    v.push(("header length past frame", f));
    v.push(("serialize type 7", frame_with_header(7, b"{}", b"")));
    v.push(("not JSON", frame_with_header(0, b"\x00\x01garbage", b"")));
    v.push(("JSON array", frame_with_header(0, b"[1,2,3]", b"")));
    let deep = format!(
        r#"{{"code":1,"extFields":{{"a":{}{}}}}}"#,
        "[".repeat(200_000),
        "]".repeat(200_000)
    );
    v.push((
        "deeply nested JSON",
        frame_with_header(0, deep.as_bytes(), b""),
    ));
    let mut many = String::from(r#"{"code":1000,"extFields":{"#);
    for i in 0..200_000 {
        if i > 0 {
            many.push(',');
        }
        many.push_str(&format!(r#""k{i}":"v""#));
    }
    many.push_str("}}");
    v.push((
        "huge JSON: 200k extFields",
        frame_with_header(0, many.as_bytes(), b""),
    ));
    let mut utf8 = br#"{"code":1000,"remark":""#.to_vec();
    utf8.extend_from_slice(&[0xc3, 0x28, 0xff, b'"', b'}']);
    v.push(("invalid UTF-8 in JSON", frame_with_header(0, &utf8, b"")));
    // Binary header with a remark length of 2^31-1 and one with invalid UTF-8 in a key.
    let mut bin = vec![0, 1, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0];
    bin.extend_from_slice(&i32::MAX.to_be_bytes());
    v.push((
        "binary remark length 2^31-1",
        frame_with_header(1, &bin, b""),
    ));
    let mut bin = vec![0, 1, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0];
    bin.extend_from_slice(&9u32.to_be_bytes());
    bin.extend_from_slice(&[0, 2, 0xff, 0xfe, 0, 0, 0, 1, b'v']);
    v.push(("binary key invalid UTF-8", frame_with_header(1, &bin, b"")));
    let mut bin = vec![0, 1, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0];
    bin.extend_from_slice(&(-5i32).to_be_bytes());
    v.push((
        "binary negative ext length",
        frame_with_header(1, &bin, b""),
    ));
    v
}

async fn expect_closed(s: &mut TcpStream, what: &str) {
    let mut buf = [0u8; 64];
    let r = tokio::time::timeout(T, s.read(&mut buf)).await;
    match r {
        Ok(Ok(0)) | Ok(Err(_)) => {}
        Ok(Ok(n)) => panic!("{what}: server answered {n} bytes instead of closing"),
        Err(_) => panic!("{what}: connection not closed"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undecodable_input_closes_only_that_connection() {
    let (addr, shutdown, task) = start(local_config(), TestProcessor::new()).await;
    // A bystander connection open through every attack keeps working.
    let mut bystander = TcpStream::connect(addr).await.unwrap();
    for (what, bytes) in closing_attacks() {
        let mut s = TcpStream::connect(addr).await.unwrap();
        // The peer may close before we finish writing; that is a pass.
        let _ = s.write_all(&bytes).await;
        expect_closed(&mut s, what).await;
        assert_alive(addr).await;
        let mut req = RemotingCommand::request(ECHO);
        req.opaque = 1;
        write_cmd(&mut bystander, &req).await;
        assert_eq!(
            read_frame(&mut bystander).await.unwrap().opaque,
            1,
            "{what}"
        );
    }
    shutdown.shutdown();
    task.await.unwrap();
}

#[tokio::test]
async fn truncated_frames_wait_then_close_cleanly() {
    let (addr, shutdown, task) = start(local_config(), TestProcessor::new()).await;
    let full = RemotingCommand::request(ECHO)
        .with_ext("k", "v")
        .with_body(Body::Bytes("body".into()))
        .encode(SerializeType::Json);
    for cut in [1, 3, 4, 7, 8, 20, full.len() - 1] {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(&full[..cut]).await.unwrap();
        // Nothing comes back for a partial frame...
        let mut b = [0u8; 1];
        assert!(
            tokio::time::timeout(Duration::from_millis(50), s.read(&mut b))
                .await
                .is_err()
        );
        // ...the rest completes it...
        s.write_all(&full[cut..]).await.unwrap();
        assert!(read_frame(&mut s).await.is_some(), "cut {cut}");
        // ...and a half frame followed by EOF is just a closed connection.
        s.write_all(&full[..cut]).await.unwrap();
        s.shutdown().await.unwrap();
        expect_closed(&mut s, "truncated then EOF").await;
        assert_alive(addr).await;
    }
    shutdown.shutdown();
    task.await.unwrap();
}

#[tokio::test]
async fn big_but_legal_frames_are_served_and_the_cap_is_configurable() {
    let config = ServerConfig {
        frame_len_max: 1 << 20,
        ..local_config()
    };
    let (addr, shutdown, task) = start(config, TestProcessor::new()).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut req = RemotingCommand::request(ECHO).with_body(Body::Bytes(pattern(900_000, 1).into()));
    req.opaque = 4;
    write_cmd(&mut s, &req).await;
    let resp = read_frame(&mut s).await.unwrap();
    assert_eq!(resp.body.len(), 900_000);
    // Over the configured cap: closed.
    let mut big = RemotingCommand::request(ECHO).with_body(Body::Bytes(pattern(1 << 20, 2).into()));
    big.opaque = 5;
    let _ = s.write_all(&big.encode(SerializeType::Json)).await;
    expect_closed(&mut s, "over cap").await;
    assert_alive(addr).await;
    shutdown.shutdown();
    task.await.unwrap();
}

#[tokio::test]
async fn odd_but_valid_headers_are_answered() {
    let (addr, shutdown, task) = start(local_config(), TestProcessor::new()).await;
    let headers: Vec<Vec<u8>> = vec![
        // C++ client shape: numbers, ACL keys, no serializeTypeCurrentRPC, trailing newline.
        br#"{"code":1000,"extFields":{"AccessKey":"","OnsChannel":"","Signature":"","queueId":3,"b":true},"flag":0,"language":"CPP","opaque":11,"remark":"","version":63}
"#.to_vec(),
        // No extFields, null remark, unknown fields, different order.
        br#"{"version":1,"unknown":{"deep":[1,2,{"x":null}]},"opaque":11,"code":1000,"remark":null}"#.to_vec(),
        // Unknown code: REQUEST_CODE_NOT_SUPPORTED, not a close.
        br#"{"code":77777,"opaque":11}"#.to_vec(),
        // A 10 MB remark is legal.
        format!(r#"{{"code":1000,"opaque":11,"remark":"{}"}}"#, "r".repeat(10 << 20)).into_bytes(),
    ];
    for h in headers {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(&frame_with_header(0, &h, b"")).await.unwrap();
        let resp = tokio::time::timeout(T, read_frame(&mut s))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(resp.opaque, 11);
        assert!(resp.code == 0 || resp.code == ResponseCode::REQUEST_CODE_NOT_SUPPORTED);
    }
    shutdown.shutdown();
    task.await.unwrap();
}
