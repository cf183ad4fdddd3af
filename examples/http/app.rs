//! The routes the example serves: TechEmpower's `/plaintext` and `/json`
//! as its rules define them, `/echo`, which answers a `POST`'s body, and
//! (on loom) `/metrics`, the runtime's metrics for Prometheus.

use serde::Serialize;

use super::{Request, Response, Status};

/// The `/plaintext` body.
pub const PLAINTEXT: &[u8] = b"Hello, World!";

#[derive(Serialize)]
struct Message {
    message: &'static str,
}

/// [`route`], plus `GET /metrics`: every loop's [`loom::rt::metrics`] in
/// the Prometheus text format. Only in a loom fiber (the bench also runs
/// [`route`] on monoio).
pub fn route_with_metrics(request: &Request<'_>, response: &mut Response) {
    match (request.path, request.method) {
        ("/metrics", "GET") => {
            response.content_type = "text/plain; version=0.0.4";
            response
                .body
                .extend_from_slice(loom::rt::metrics().prometheus().as_bytes());
        }
        ("/metrics", _) => response.error(Status::MethodNotAllowed),
        _ => route(request, response),
    }
}

/// Answers `request` by path and method.
pub fn route(request: &Request<'_>, response: &mut Response) {
    match (request.path, request.method) {
        ("/plaintext", "GET") => response.body.extend_from_slice(PLAINTEXT),
        ("/json", "GET") => {
            response.content_type = "application/json";
            // Serialized per request, as the benchmark's rules ask; into
            // the reused body buffer, so without allocating.
            let message = Message {
                message: "Hello, World!",
            };
            if serde_json::to_writer(&mut response.body, &message).is_err() {
                response.error(Status::InternalServerError);
            }
        }
        ("/echo", "POST") => {
            response.content_type = "application/octet-stream";
            response.body.extend_from_slice(request.body);
        }
        ("/plaintext" | "/json" | "/echo", _) => response.error(Status::MethodNotAllowed),
        _ => response.error(Status::NotFound),
    }
}
