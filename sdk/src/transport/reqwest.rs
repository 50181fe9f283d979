use std::task::{Context, Poll};

use tower::Service;

use super::{declares_too_large, BodyTooLarge, HttpRequest, HttpResponse, TransportError};
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
            if declares_too_large(head, response.content_length(), limit) {
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
