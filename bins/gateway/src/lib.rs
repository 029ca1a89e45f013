//! The Event Bridge gateway: configuration, authentication, the HTTP scopes and the CLI,
//! composed over the domain crates.

pub mod app;
pub mod auth;
pub mod aws;
pub mod check;
pub mod cli;
pub mod config;
pub mod cors;
pub mod error;
pub mod http;
pub mod metrics;
pub mod net;
pub mod ratelimit;
pub mod retention;
pub mod routes;
pub mod state;
pub mod telemetry;
