//! The gateway over HTTP: each test starts the real app on port 0 with its own database.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod api_keys;
mod auth;
mod backup;
mod blob_backends;
mod blob_keys;
mod blob_signed;
mod blob_uploads;
mod blobs;
mod bridge;
mod cli;
mod clients;
mod config;
mod console;
mod cors;
mod data;
mod emails;
mod errors;
mod events;
mod faults;
mod foreign_tables;
mod health;
mod helpers;
mod idempotency;
mod import;
mod licenses;
mod multipart;
mod openapi;
mod production;
mod proxy;
mod replicas;
mod retention;
mod scopes;
mod slack;
mod transports;
