//! The response body as it travels up through user middleware, and the one place a body is
//! read whole within the size limit.
//!
//! Below the middleware seam a response body streams (`hyper::body::Incoming`, or whatever
//! a tower-http layer such as `DecompressionLayer` makes of it); at the top of the seam
//! [`read_body`] reads it into `Bytes`, inside the attempt's timer, refusing more than
//! `max_response_bytes` (counted after decompression, so a small compressed body cannot
//! expand past the limit).

use std::{
    pin::Pin,
    task::{Context, Poll},
};

use bytes::{Buf, Bytes};
use http_body::{Body as HttpBody, Frame, SizeHint};
use http_body_util::{BodyExt, Limited};

use super::{declares_too_large, BodyTooLarge, HttpResponse, TransportError};
use crate::box_error::BoxError;

/// A response body at the middleware seam: streamed from the connection, or already whole
/// (what `from_fn` middleware and custom transports hand back). It implements
/// [`http_body::Body`], so tower-http's layers (trace, decompression, ...) work on it.
pub struct Body(Kind);

// As small as hyper's own `Full<Bytes>` (the request moves through hyper's dispatch by
// value several times), and an empty `Full` is the end. A stream is boxed once, with its
// adapters (`UnsyncBoxBody` boxed again would be a second allocation per body).
enum Kind {
    Full(Bytes),
    Stream(Pin<Box<dyn HttpBody<Data = Bytes, Error = BoxError> + Send>>),
}

impl Body {
    /// A body that is already whole.
    pub fn full(bytes: impl Into<Bytes>) -> Self {
        Body(Kind::Full(bytes.into()))
    }

    /// Wraps any body whose chunks are `Buf`s (a `Body` is taken as it is, not boxed again;
    /// a body already at its end is the empty body, not boxed at all).
    pub fn new<B>(body: B) -> Self
    where
        B: HttpBody + Send + 'static,
        B::Data: Buf + Send,
        B::Error: Into<BoxError>,
    {
        let mut slot = Some(body);
        if let Some(same) = (&mut slot as &mut dyn std::any::Any).downcast_mut::<Option<Body>>() {
            return same.take().unwrap_or_default();
        }
        let Some(body) = slot.filter(|body| !body.is_end_stream()) else {
            return Body::default();
        };
        Body(Kind::Stream(Box::pin(InBytes { inner: body })))
    }
}

pin_project_lite::pin_project! {
    /// Any body as one of `Bytes` chunks and boxed errors, with its size hint kept (so an
    /// answer of known length is sent with a `Content-Length`, not chunked). One adapter where
    /// http-body-util's `map_frame` and `map_err` would be two, and `map_frame` forgets the
    /// size (it cannot know what the mapping does to it; this one keeps every byte).
    struct InBytes<B> {
        #[pin]
        inner: B,
    }
}

impl<B> HttpBody for InBytes<B>
where
    B: HttpBody,
    B::Data: Buf,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match std::task::ready!(self.project().inner.poll_frame(cx)) {
            Some(Ok(frame)) => Poll::Ready(Some(Ok(
                frame.map_data(|mut data| data.copy_to_bytes(data.remaining()))
            ))),
            Some(Err(e)) => Poll::Ready(Some(Err(e.into()))),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Body {
    /// The whole body: at once when it already is (every request body the SDK makes).
    pub async fn into_bytes(self) -> Result<Bytes, BoxError> {
        match self.0 {
            Kind::Full(bytes) => Ok(bytes),
            Kind::Stream(body) => Ok(body.collect().await?.to_bytes()),
        }
    }
}

/// A whole body of static text (what `InheritDeadline` answers a request past its deadline).
impl From<&'static str> for Body {
    fn from(text: &'static str) -> Self {
        Body::full(Bytes::from_static(text.as_bytes()))
    }
}

impl Default for Body {
    fn default() -> Self {
        Body(Kind::Full(Bytes::new()))
    }
}

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Kind::Full(bytes) => f.debug_tuple("Body::Full").field(&bytes.len()).finish(),
            Kind::Stream(_) => f.write_str("Body::Stream"),
        }
    }
}

impl HttpBody for Body {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match &mut self.get_mut().0 {
            Kind::Full(bytes) if bytes.is_empty() => Poll::Ready(None),
            Kind::Full(bytes) => Poll::Ready(Some(Ok(Frame::data(std::mem::take(bytes))))),
            Kind::Stream(body) => body.as_mut().poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.0 {
            Kind::Full(bytes) => bytes.is_empty(),
            Kind::Stream(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.0 {
            Kind::Full(bytes) => SizeHint::with_exact(bytes.len() as u64),
            Kind::Stream(body) => body.size_hint(),
        }
    }
}

/// The request with its body taken whole, for what works on whole bodies (`from_fn`
/// middleware, custom transports): at once for the SDK's own requests, whose bodies are.
pub(crate) async fn whole_request(
    request: super::StreamRequest,
) -> Result<super::HttpRequest, BoxError> {
    let (parts, body) = request.into_parts();
    Ok(http::Request::from_parts(parts, body.into_bytes().await?))
}

/// Reads `response`'s body whole, refusing one over `limit` bytes: at once when its
/// `Content-Length` says so (unless the answer has no body: HEAD, 1xx, 204, 304), else as
/// soon as the bytes read pass the limit.
pub(crate) async fn read_body<B>(
    response: http::Response<B>,
    head: bool,
    limit: usize,
) -> Result<HttpResponse, BoxError>
where
    B: HttpBody,
    B::Error: Into<BoxError>,
{
    let (parts, body) = response.into_parts();
    if declares_too_large(head, Some(body.size_hint().lower()), limit) {
        return Err(BodyTooLarge { limit }.into());
    }
    let body = match Limited::new(body, limit).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            return Err(BodyTooLarge { limit }.into())
        }
        // A body that breaks off, or that a layer cannot decode, is the answer's failure.
        Err(e) if crate::error_chain::contains::<TransportError>(e.as_ref()) => return Err(e),
        Err(e) => return Err(TransportError::new(false, e).into()),
    };
    Ok(http::Response::from_parts(parts, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_larger_than_hypers_own_full_body() {
        // Requests move through hyper's dispatch by value: a larger body costs every call.
        assert!(std::mem::size_of::<Body>() <= std::mem::size_of::<http_body_util::Full<Bytes>>());
    }

    #[tokio::test]
    async fn whole_and_streamed_bodies_read_the_same() {
        let whole = Body::full("abc");
        assert_eq!(whole.size_hint().exact(), Some(3));
        assert_eq!(whole.into_bytes().await.expect("whole"), "abc");
        let streamed = Body::new(http_body_util::Full::new(Bytes::from_static(b"abc")));
        assert_eq!(streamed.into_bytes().await.expect("streamed"), "abc");
        assert!(Body::default().is_end_stream());
    }

    #[tokio::test]
    async fn a_wrapped_body_keeps_its_length_and_an_ended_one_is_not_boxed() {
        // A known length lets a server answer with `Content-Length` instead of chunks.
        let streamed = Body::new(http_body_util::Full::new(Bytes::from_static(b"abcd")));
        assert!(matches!(streamed.0, Kind::Stream(_)));
        assert_eq!(streamed.size_hint().exact(), Some(4));
        let ended = Body::new(http_body_util::Empty::<Bytes>::new());
        assert!(matches!(ended.0, Kind::Full(_)) && ended.is_end_stream());
    }
}
