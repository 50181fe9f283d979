//! A message as one Redis value: its headers as JSON `[name, value]` pairs, then its
//! payload, so a stream entry, a reply and a dead letter each carry the whole message in one
//! field and nothing is lost to a field-name clash.

use bytes::Bytes;
use http::{HeaderMap, HeaderValue};

/// `headers` and `payload` as one value: a 4-byte big-endian length, the headers' JSON,
/// the payload. Each of `set` (name, value) is written after the headers, in place of a
/// header of that name: what a transport adds to a message (its pattern, the request a reply
/// is for) without inserting it into the map, an allocation and a hashing each. A value in
/// `set` must be one a header can carry (visible ASCII, spaces, tabs), or it is dropped when
/// the frame is read.
///
/// The JSON is written here rather than by serde_json: a header's name is a token and its
/// value (when `to_str` accepts it) visible ASCII or a tab, so only `"`, `\\` and the tab
/// need escaping, and writing straight into the frame saves the pairs' list, a second
/// buffer and serde_json's per-byte escaping (~3,000 instructions of every message sent).
pub(super) fn encode(headers: &HeaderMap, set: &[(&str, &str)], payload: &[u8]) -> Vec<u8> {
    let head: usize = headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 8)
        .chain(set.iter().map(|(name, value)| name.len() + value.len() + 8))
        .sum();
    let mut frame = Vec::with_capacity(4 + 2 + head + payload.len());
    frame.extend_from_slice(&[0; 4]);
    frame.push(b'[');
    let replaced = |name: &str| set.iter().any(|(set, _)| *set == name);
    let pairs = headers
        .iter()
        .filter(|(name, _)| set.is_empty() || !replaced(name.as_str()))
        .filter_map(|(name, value)| Some((name.as_str(), value.to_str().ok()?)))
        .chain(set.iter().copied());
    for (name, value) in pairs {
        if frame.len() > 5 {
            frame.push(b',');
        }
        frame.push(b'[');
        push_json_string(&mut frame, name);
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
        let frame = encode(&headers, &[], b"{\"n\":1}");
        let (back, payload) = decode(&frame).expect("a frame");
        assert_eq!(back, headers);
        assert_eq!(&payload[..], b"{\"n\":1}");
        let (back, payload) = decode(&encode(&HeaderMap::new(), &[], b"x")).expect("no headers");
        assert!(back.is_empty());
        assert_eq!(&payload[..], b"x");
        assert!(decode(b"").is_none());
        assert!(decode(&[0, 0, 0, 9, b'[']).is_none());
        assert!(decode(&[0, 0, 0, 2, b'{', b'}']).is_none());
    }

    /// What a transport sets is written as a header, in place of one of the same name.
    #[test]
    fn set_pairs_are_headers_in_place_of_their_namesakes() {
        let mut headers = HeaderMap::new();
        headers.insert("sdk-pattern", HeaderValue::from_static("forged.pattern"));
        headers.insert("x-kept", HeaderValue::from_static("yes"));
        let frame = encode(&headers, &[("sdk-pattern", "order.placed")], b"p");
        let (back, _) = decode(&frame).expect("a frame");
        assert_eq!(back.get_all("sdk-pattern").iter().count(), 1);
        assert_eq!(back["sdk-pattern"], "order.placed");
        assert_eq!(back["x-kept"], "yes");
        // The frame a message without the forged header had when the pattern was inserted.
        let mut inserted = HeaderMap::new();
        inserted.insert("x-kept", HeaderValue::from_static("yes"));
        inserted.insert("sdk-pattern", HeaderValue::from_static("order.placed"));
        assert_eq!(
            frame,
            encode(&inserted, &[], b"p"),
            "the same bytes as inserted"
        );
    }
}
