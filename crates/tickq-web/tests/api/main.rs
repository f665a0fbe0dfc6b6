//! The HTTP API against a real redis-server, through the router (no socket needed).
//!
//! One test binary (ripgrep's layout); each module is one concern:
mod assets; // the dashboard's static files
mod auth; // tokens, the login cookie, read-only, cross-site refusals
mod events; // the SSE stream, and what watching costs Redis
mod routes; // every route of the OpenAPI document, with good and malformed input
mod util; // an app on a private redis-server, and a request helper
