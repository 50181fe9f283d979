//! A message as one Redis value: its headers as JSON `[name, value]` pairs, then its
//! payload, so a stream entry, a reply and a dead letter each carry the whole message in one
//! field and nothing is lost to a field-name clash.

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};

/// `headers` and `payload` as one value: a 4-byte big-endian length, the headers' JSON,
/// the payload.
pub(super) fn encode(headers: &HeaderMap, payload: &[u8]) -> Vec<u8> {
    let pairs: Vec<(&str, &str)> = headers
        .iter()
        .filter_map(|(name, value)| Some((name.as_str(), value.to_str().ok()?)))
        .collect();
    // Serializing string pairs cannot fail; an empty list is the harmless answer if it did.
    let head = serde_json::to_vec(&pairs).unwrap_or_else(|_| b"[]".to_vec());
    let length = u32::try_from(head.len()).unwrap_or(u32::MAX);
    let mut frame = Vec::with_capacity(4 + head.len() + payload.len());
    frame.extend_from_slice(&length.to_be_bytes());
    frame.extend_from_slice(&head);
    frame.extend_from_slice(payload);
    frame
}

/// The headers and payload of a frame, or `None` for a value that is not one.
pub(super) fn decode(frame: &[u8]) -> Option<(HeaderMap, Bytes)> {
    let length = u32::from_be_bytes(frame.get(..4)?.try_into().ok()?);
    let end = 4usize.checked_add(usize::try_from(length).ok()?)?;
    let pairs: Vec<(String, String)> = serde_json::from_slice(frame.get(4..end)?).ok()?;
    let mut headers = HeaderMap::with_capacity(pairs.len());
    for (name, value) in pairs {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
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
        let frame = encode(&headers, b"{\"n\":1}");
        let (back, payload) = decode(&frame).expect("a frame");
        assert_eq!(back, headers);
        assert_eq!(&payload[..], b"{\"n\":1}");
        assert!(decode(b"").is_none());
        assert!(decode(&[0, 0, 0, 9, b'[']).is_none());
        assert!(decode(&[0, 0, 0, 2, b'{', b'}']).is_none());
    }
}
