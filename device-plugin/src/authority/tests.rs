//! The rewriter on hand-made client streams: a path authority becomes
//! `localhost` also when later requests name it through the client's dynamic
//! table; valid authorities, other headers and other frames pass unchanged.

use super::*;

/// HPACK as grpc-go's encoder writes it: `:authority` as a literal with
/// incremental indexing (static name index 1), so the next request can name
/// it by dynamic index 62.
fn request_block(authority: Option<&[u8]>, path: &[u8]) -> Vec<u8> {
    let mut b = vec![0x83, 0x86]; // :method POST, :scheme http (static)
    match authority {
        Some(a) => {
            b.push(0x41); // literal, incremental indexing, name = static 1
            put_int(&mut b, 0x00, 7, a.len());
            b.extend_from_slice(a);
        }
        None => b.push(0x80 | 62), // indexed: the dynamic table's newest entry
    }
    b.push(0x04); // literal without indexing, name = static 4 (:path)
    put_int(&mut b, 0x00, 7, path.len());
    b.extend_from_slice(path);
    put_literal(&mut b, b"content-type", b"application/grpc");
    b
}

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    frame_header(&mut f, payload.len(), kind, flags, stream);
    f.extend_from_slice(payload);
    f
}

/// (type, flags, stream) of one frame.
type FrameHead = (u8, u8, u32);
/// One decoded header block.
type Fields = Vec<(String, String)>;

/// Split `out` into frames; decode each header block with one server-side
/// HPACK decoder, as the server does.
fn server_view(out: &[u8]) -> (Vec<FrameHead>, Vec<Fields>) {
    assert_eq!(&out[..PREFACE_LEN], PREFACE);
    let mut at = PREFACE_LEN;
    let mut frames = Vec::new();
    let mut blocks = Vec::new();
    let mut dec = loona_hpack::Decoder::new();
    let mut block = Vec::new();
    while at < out.len() {
        let len = u32::from_be_bytes([0, out[at], out[at + 1], out[at + 2]]) as usize;
        let (kind, flags) = (out[at + 3], out[at + 4]);
        let stream = u32::from_be_bytes([out[at + 5], out[at + 6], out[at + 7], out[at + 8]]);
        let payload = &out[at + 9..at + 9 + len];
        frames.push((kind, flags, stream));
        if kind == HEADERS || kind == CONTINUATION {
            let skip = if kind == HEADERS && flags & PRIORITY != 0 {
                5
            } else {
                0
            };
            assert_eq!(flags & PADDED, 0, "padding is dropped");
            block.extend_from_slice(&payload[skip..]);
            if flags & END_HEADERS != 0 {
                let mut fields = Vec::new();
                dec.decode_with_cb(&block, |n, v| {
                    fields.push((
                        String::from_utf8_lossy(&n).into_owned(),
                        String::from_utf8_lossy(&v).into_owned(),
                    ))
                })
                .unwrap();
                blocks.push(fields);
                block.clear();
            }
        }
        at += 9 + len;
    }
    (frames, blocks)
}

fn authority(fields: &[(String, String)]) -> &str {
    &fields.iter().find(|(n, _)| n == ":authority").unwrap().1
}

#[test]
fn a_path_authority_becomes_localhost_also_by_dynamic_index() {
    let sock = b"/var/lib/kubelet/device-plugins/vfplex-intel.com_x.sock";
    assert!(!authority_ok(sock) && authority_ok(b"localhost") && authority_ok(b"[::1]:80"));
    let mut client = PREFACE.to_vec();
    client.extend(frame(0x4, 0, 0, &[])); // SETTINGS
    let first = request_block(Some(sock), b"/v1beta1.DevicePlugin/ListAndWatch");
    // Padded and with priority fields, split over HEADERS + CONTINUATION.
    let mut payload = vec![3]; // pad length
    payload.extend_from_slice(&[0, 0, 0, 0, 15]); // priority
    payload.extend_from_slice(&first[..5]);
    payload.extend_from_slice(&[0, 0, 0]);
    client.extend(frame(HEADERS, PADDED | PRIORITY, 1, &payload));
    client.extend(frame(CONTINUATION, END_HEADERS, 1, &first[5..]));
    client.extend(frame(0x0, END_STREAM, 1, &[0, 0, 0, 0, 0])); // DATA
    let second = request_block(None, b"/v1beta1.DevicePlugin/GetDevicePluginOptions");
    client.extend(frame(HEADERS, END_HEADERS, 3, &second));
    let ok = request_block(Some(b"localhost:1234"), b"/x");
    client.extend(frame(HEADERS, END_HEADERS | END_STREAM, 5, &ok));

    // Fed in small pieces, as a socket may deliver it.
    let mut rw = Rewriter::default();
    let mut out = Vec::new();
    for chunk in client.chunks(7) {
        rw.feed(chunk, &mut out);
    }
    let (frames, blocks) = server_view(&out);
    assert_eq!(rw.replaced, 2);
    assert_eq!(blocks.len(), 3);
    assert_eq!(authority(&blocks[0]), "localhost");
    assert_eq!(authority(&blocks[1]), "localhost", "by dynamic index too");
    assert_eq!(authority(&blocks[2]), "localhost:1234", "a valid one stays");
    assert!(blocks[1]
        .iter()
        .any(|(n, v)| n == ":path" && v == "/v1beta1.DevicePlugin/GetDevicePluginOptions"));
    assert!(blocks[0]
        .iter()
        .any(|(n, v)| n == "content-type" && v == "application/grpc"));
    // Frames: SETTINGS, HEADERS (priority kept, one frame now), DATA, HEADERS, HEADERS.
    assert_eq!(
        frames,
        vec![
            (0x4, 0, 0),
            (HEADERS, PRIORITY | END_HEADERS, 1),
            (0x0, END_STREAM, 1),
            (HEADERS, END_HEADERS, 3),
            (HEADERS, END_HEADERS | END_STREAM, 5),
        ]
    );
}

#[test]
fn big_blocks_are_split_and_other_streams_pass() {
    let mut client = PREFACE.to_vec();
    let mut block = request_block(Some(b"/a/b.sock"), b"/p");
    put_literal(&mut block, b"x-big", &vec![b'v'; 20_000]);
    // Over three frames in, more than MAX_FRAME re-encoded: split again.
    client.extend(frame(HEADERS, 0, 1, &block[..10]));
    client.extend(frame(CONTINUATION, 0, 1, &block[10..12_000]));
    client.extend(frame(CONTINUATION, END_HEADERS, 1, &block[12_000..]));
    let mut rw = Rewriter::default();
    let mut out = Vec::new();
    rw.feed(&client, &mut out);
    let (frames, blocks) = server_view(&out);
    assert_eq!(authority(&blocks[0]), "localhost");
    assert!(frames.len() >= 2);
    assert_eq!(frames[0], (HEADERS, 0, 1));
    assert_eq!(frames.last().map(|f| f.1), Some(END_HEADERS));
}

#[test]
fn not_http2_or_undecodable_passes_through() {
    let mut rw = Rewriter::default();
    let mut out = Vec::new();
    rw.feed(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", &mut out);
    assert_eq!(out, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    let mut client = PREFACE.to_vec();
    client.extend(frame(
        HEADERS,
        END_HEADERS,
        1,
        &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
    ));
    client.extend(frame(0x0, END_STREAM, 1, b"rest"));
    let mut rw = Rewriter::default();
    let mut out = Vec::new();
    rw.feed(&client, &mut out);
    assert_eq!(out, client, "the server sees what it would have");
}
