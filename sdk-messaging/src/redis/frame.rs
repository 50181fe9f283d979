//! A message as one Redis value: its headers as JSON `[name, value]` pairs, then its
//! payload, so a stream entry, a reply and a dead letter each carry the whole message in one
//! field and nothing is lost to a field-name clash.

use bytes::Bytes;
use http::{HeaderMap, HeaderValue};

/// `headers` and `payload` as one value: a 4-byte big-endian length, the headers' JSON,
/// the payload.
///
/// The JSON is written here rather than by serde_json: a header's name is a token and its
/// value (when `to_str` accepts it) visible ASCII or a tab, so only `"`, `\\` and the tab
/// need escaping, and writing straight into the frame saves the pairs' list, a second
/// buffer and serde_json's per-byte escaping (~3,000 instructions of every message sent).
pub(super) fn encode(headers: &HeaderMap, payload: &[u8]) -> Vec<u8> {
    let head: usize = headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 8)
        .sum();
    let mut frame = Vec::with_capacity(4 + 2 + head + payload.len());
    frame.extend_from_slice(&[0; 4]);
    frame.push(b'[');
    for (name, value) in headers {
        let Ok(value) = value.to_str() else { continue };
        if frame.len() > 5 {
            frame.push(b',');
        }
        frame.push(b'[');
        push_json_string(&mut frame, name.as_str());
        frame.push(b',');
        push_json_string(&mut frame, value);
        frame.push(b']');
    }
    frame.push(b']');
    let length = u32::try_from(frame.len() - 4).unwrap_or(u32::MAX);
    frame[..4].copy_from_slice(&length.to_be_bytes());
    frame.extend_from_slice(payload);
    frame
}

/// `text` as a JSON string: the runs that need no escaping copied whole.
fn push_json_string(out: &mut Vec<u8>, text: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = text.as_bytes();
    out.push(b'"');
    // Without a short cut, so the compiler checks many bytes at once: almost every header
    // needs no escaping at all.
    let plain = !bytes.iter().fold(false, |any, &b| {
        any | (b == b'"') | (b == b'\\') | (b < 0x20)
    });
    if plain {
        out.extend_from_slice(bytes);
        out.push(b'"');
        return;
    }
    let mut start = 0;
    for (at, &byte) in bytes.iter().enumerate() {
        if byte != b'"' && byte != b'\\' && byte >= 0x20 {
            continue;
        }
        out.extend_from_slice(bytes.get(start..at).unwrap_or_default());
        start = at + 1;
        match byte {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\t' => out.extend_from_slice(b"\\t"),
            _ => {
                out.extend_from_slice(b"\\u00");
                out.push(HEX[usize::from(byte >> 4)]);
                out.push(HEX[usize::from(byte & 0xf)]);
            }
        }
    }
    out.extend_from_slice(bytes.get(start..).unwrap_or_default());
    out.push(b'"');
}

/// The headers and payload of a frame, or `None` for a value that is not one.
pub(super) fn decode(frame: &[u8]) -> Option<(HeaderMap, Bytes)> {
    let length = u32::from_be_bytes(frame.get(..4)?.try_into().ok()?);
    let end = 4usize.checked_add(usize::try_from(length).ok()?)?;
    let pairs: Vec<(String, String)> = serde_json::from_slice(frame.get(4..end)?).ok()?;
    let mut headers = HeaderMap::with_capacity(pairs.len());
    for (name, value) in pairs {
        if let (Some(name), Ok(value)) = (
            crate::envelope::headers::name(name.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            headers.append(name, value);
        }
    }
    Some((headers, Bytes::copy_from_slice(frame.get(end..)?)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_carries_headers_and_payload_and_garbage_is_refused() {
        let mut headers = HeaderMap::new();
        headers.insert("sdk-message-id", HeaderValue::from_static("abc"));
        headers.append("x-tag", HeaderValue::from_static("a"));
        headers.append("x-tag", HeaderValue::from_static("b"));
        headers.append("x-quoted", HeaderValue::from_static("say \"hi\"\\\tthere"));
        let frame = encode(&headers, b"{\"n\":1}");
        let (back, payload) = decode(&frame).expect("a frame");
        assert_eq!(back, headers);
        assert_eq!(&payload[..], b"{\"n\":1}");
        let (back, payload) = decode(&encode(&HeaderMap::new(), b"x")).expect("no headers");
        assert!(back.is_empty());
        assert_eq!(&payload[..], b"x");
        assert!(decode(b"").is_none());
        assert!(decode(&[0, 0, 0, 9, b'[']).is_none());
        assert!(decode(&[0, 0, 0, 2, b'{', b'}']).is_none());
    }
}
