//! The Event Bridge gateway: configuration, authentication, the HTTP scopes and the CLI,
//! composed over the domain crates.

pub mod app;
pub mod auth;
pub mod cli;
pub mod console;
pub mod error;
pub mod http;
pub mod metrics;
pub mod routes;
pub mod state;

// The domain-agnostic HTTP pieces live in `web-kit`; these names stay for the gateway's modules.
pub use web_kit::{cors, net, ratelimit, telemetry};
// The configuration (the AWS credentials it holds, and `gateway check`) is `gateway-config`'s.
pub use gateway_config as config;
pub use gateway_config::aws_client as aws;
pub use gateway_config::check;
