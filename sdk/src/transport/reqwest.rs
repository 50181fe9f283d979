use std::task::{Context, Poll};

use tower::Service;

use super::{BodyTooLarge, HttpRequest, HttpResponse, TransportError};
use crate::box_error::BoxError;

/// A transport over a user-supplied `reqwest::Client` (feature `reqwest`), for custom TLS
/// roots, proxies or anything else reqwest is configured with.
///
/// It costs more per call than [`HyperTransport`](super::HyperTransport): reqwest parses the
/// URL again on every request.
#[derive(Clone, Debug)]
pub struct ReqwestTransport {
    client: reqwest::Client,
    max_response_bytes: usize,
}

impl ReqwestTransport {
    /// Wraps `client`; bodies larger than `max_response_bytes` are refused.
    pub fn new(client: reqwest::Client, max_response_bytes: usize) -> Self {
        ReqwestTransport {
            client,
            max_response_bytes,
        }
    }
}

impl Service<HttpRequest> for ReqwestTransport {
    type Response = HttpResponse;
    type Error = BoxError;
    type Future = crate::box_error::BoxFuture<HttpResponse>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: HttpRequest) -> Self::Future {
        let client = self.client.clone();
        let limit = self.max_response_bytes;
        let head = request.method() == http::Method::HEAD;
        Box::pin(async move {
            let request =
                reqwest::Request::try_from(request).map_err(|e| TransportError::new(false, e))?;
            let mut response = client
                .execute(request)
                .await
                .map_err(|e| TransportError::new(e.is_connect(), e))?;
            if declares_too_large(head, response.status(), response.headers(), limit) {
                return Err(BodyTooLarge { limit }.into());
            }
            let mut builder = http::Response::builder().status(response.status());
            if let Some(headers) = builder.headers_mut() {
                *headers = std::mem::take(response.headers_mut());
            }
            let mut body = bytes::BytesMut::new();
            while let Some(chunk) = response
                .chunk()
                .await
                .map_err(|e| TransportError::new(false, e))?
            {
                if body.len() + chunk.len() > limit {
                    return Err(BodyTooLarge { limit }.into());
                }
                body.extend_from_slice(&chunk);
            }
            builder
                .body(body.freeze())
                .map_err(|e| TransportError::new(false, e).into())
        })
    }
}

/// True if the answer declares (`Content-Length`) a body over `limit`, so it can be refused
/// before a byte of it is read. An answer to HEAD, and a 1xx, 204 or 304, has no body
/// whatever its `Content-Length` says (RFC 9110, 6.4.1): the length there describes the
/// resource, not this message.
fn declares_too_large(
    head: bool,
    status: http::StatusCode,
    headers: &http::HeaderMap,
    limit: usize,
) -> bool {
    let bodiless = head
        || status.is_informational()
        || status == http::StatusCode::NO_CONTENT
        || status == http::StatusCode::NOT_MODIFIED;
    !bodiless
        && headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .is_some_and(|len| len > limit as u64)
}
