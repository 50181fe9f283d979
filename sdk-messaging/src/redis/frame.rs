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

/// The headers and payload of a frame, or `None` for a value that is not one. The values
/// and the payload share the frame's memory.
pub(super) fn decode(frame: Bytes) -> Option<(HeaderMap, Bytes)> {
    let length = u32::from_be_bytes(frame.get(..4)?.try_into().ok()?);
    let end = 4usize.checked_add(usize::try_from(length).ok()?)?;
    let head = frame.get(4..end)?;
    let headers = match plain_pairs(&frame, end) {
        Some(headers) => headers,
        None => escaped_pairs(head)?,
    };
    Some((headers, frame.slice(end..)))
}

/// The headers of a head (`frame[4..end]`) whose strings have no escapes, as every frame's
/// usually has (hex ids, trace context, patterns): each value a slice of the frame, where
/// reading the JSON into strings cost two allocations a header, and a copy each into its
/// value (~3,000 instructions a frame, issue 33). `None` for anything else, which
/// [`escaped_pairs`] reads.
fn plain_pairs(frame: &Bytes, end: usize) -> Option<HeaderMap> {
    let mut at = 4;
    let expect = |byte: u8, at: &mut usize| (frame.get(*at) == Some(&byte)).then(|| *at += 1);
    // A string from `at`: its content's range, past its closing quote.
    let string = |at: &mut usize| {
        let start = *at + 1;
        (frame.get(*at) == Some(&b'"')).then_some(())?;
        let length = frame.get(start..end)?.iter().position(|&b| b == b'"')?;
        let content = frame.get(start..start + length)?;
        if content.contains(&b'\\') {
            return None;
        }
        *at = start + length + 1;
        Some(start..start + length)
    };
    expect(b'[', &mut at)?;
    let mut headers = HeaderMap::with_capacity(6);
    if expect(b']', &mut at).is_some() {
        return (at == end).then_some(headers);
    }
    loop {
        expect(b'[', &mut at)?;
        let name = string(&mut at)?;
        expect(b',', &mut at)?;
        let value = string(&mut at)?;
        expect(b']', &mut at)?;
        if let (Some(name), Ok(value)) = (
            crate::envelope::headers::name(frame.get(name)?),
            HeaderValue::from_maybe_shared(frame.slice(value)),
        ) {
            headers.append(name, value);
        }
        if expect(b']', &mut at).is_some() {
            return (at == end).then_some(headers);
        }
        expect(b',', &mut at)?;
    }
}

/// The headers of a head read as JSON, escapes and all.
fn escaped_pairs(head: &[u8]) -> Option<HeaderMap> {
    let pairs: Vec<(String, String)> = serde_json::from_slice(head).ok()?;
    let mut headers = HeaderMap::with_capacity(pairs.len());
    for (name, value) in pairs {
        if let (Some(name), Ok(value)) = (
            crate::envelope::headers::name(name.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            headers.append(name, value);
        }
    }
    Some(headers)
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
        let (back, payload) = decode(frame.into()).expect("a frame");
        assert_eq!(back, headers);
        assert_eq!(&payload[..], b"{\"n\":1}");
        let (back, payload) =
            decode(encode(&HeaderMap::new(), &[], b"x").into()).expect("no headers");
        assert!(back.is_empty());
        assert_eq!(&payload[..], b"x");
        for garbage in [
            &b""[..],
            &[0, 0, 0, 9, b'['],
            &[0, 0, 0, 2, b'{', b'}'],
            b"\0\0\0\x03[[]",
            b"\0\0\0\x0b[[\"a\",\"b\"]",
            b"\0\0\0\x0c[[\"a\",\"b\"]]]",
            b"\0\0\0\x0b[[\"a\" \"b\"]]",
        ] {
            assert!(decode(Bytes::from_static(garbage)).is_none(), "{garbage:?}");
        }
    }

    /// What a transport sets is written as a header, in place of one of the same name.
    #[test]
    fn set_pairs_are_headers_in_place_of_their_namesakes() {
        let mut headers = HeaderMap::new();
        headers.insert("sdk-pattern", HeaderValue::from_static("forged.pattern"));
        headers.insert("x-kept", HeaderValue::from_static("yes"));
        let frame = encode(&headers, &[("sdk-pattern", "order.placed")], b"p");
        let (back, _) = decode(frame.clone().into()).expect("a frame");
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

    /// A frame without escapes is read in place: its values and payload are slices of it;
    /// one with escapes is read as JSON, to the same headers.
    #[test]
    fn a_plain_frame_is_read_in_place() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "sdk-message-id",
            HeaderValue::from_static("0af7651916cd43dd"),
        );
        headers.append("x-tag", HeaderValue::from_static("a"));
        headers.append("x-tag", HeaderValue::from_static("b c"));
        let frame = Bytes::from(encode(&headers, &[("sdk-pattern", "order.placed")], b"{}"));
        let (back, payload) = decode(frame.clone()).expect("a frame");
        let inside = |bytes: &[u8]| frame.as_ptr_range().contains(&bytes.as_ptr());
        assert!(
            back.values().all(|value| inside(value.as_bytes())),
            "{back:?}"
        );
        assert!(inside(&payload) && &payload[..] == b"{}");
        assert_eq!(back.get_all("x-tag").iter().count(), 2);
        assert_eq!(back["sdk-pattern"], "order.placed");
        let mut quoted = headers.clone();
        quoted.insert("x-quoted", HeaderValue::from_static("say \"hi\""));
        let (back, _) = decode(encode(&quoted, &[], b"").into()).expect("escaped");
        assert_eq!(back, quoted);
        // What an older writer (serde_json) wrote, whitespace and all, is still read.
        let json = br#"[ ["sdk-message-id", "abc"] ]"#;
        let mut old = u32::try_from(json.len())
            .expect("short")
            .to_be_bytes()
            .to_vec();
        old.extend_from_slice(json);
        let (back, _) = decode(old.into()).expect("serde_json's frame");
        assert_eq!(back["sdk-message-id"], "abc");
    }
}
