//! Code the examples share: [`http`], the HTTP/1.1 server `http_server`
//! and `https_server` run (and the HTTP benchmark measures).

pub mod http;
