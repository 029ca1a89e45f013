//! The command line's shape (clap).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(name = "eb", version, about = "Event Bridge at a terminal")]
pub(crate) struct Cli {
    /// The gateway, such as https://bridge.example.com.
    #[arg(long, env = "EB_URL")]
    pub(crate) url: String,
    /// An API key (`eb_...`).
    #[arg(long, env = "EB_KEY", hide_env_values = true)]
    pub(crate) key: Option<String>,
    /// Print the gateway's JSON instead of lines for people.
    #[arg(long, global = true)]
    pub(crate) json: bool,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Subcommand)]
pub(crate) enum Command {
    /// Shared storage.
    #[command(subcommand)]
    Blobs(Blobs),
    /// Licences.
    #[command(subcommand)]
    Licenses(Licenses),
    /// Email.
    #[command(subcommand)]
    Emails(Emails),
    /// The audit trail.
    #[command(subcommand)]
    Events(Events),
}

#[derive(Subcommand)]
pub(crate) enum Blobs {
    /// Uploads FILE to NAMESPACE/KEY (in parts when larger than one, resuming an
    /// interrupted upload recorded in FILE.eb-upload).
    Put {
        file: PathBuf,
        target: String,
        /// The content type (by the key's extension when absent).
        #[arg(long)]
        content_type: Option<String>,
        /// Part size in MiB (5 to 5120): a larger file goes up in parts, resumable.
        #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u64).range(5..=5120))]
        part_size: u64,
    },
    /// Downloads NAMESPACE/KEY to FILE (resuming FILE.part if an earlier try left one).
    Get { source: String, file: PathBuf },
    /// Lists NAMESPACE[/PREFIX], one level (folders end in /).
    Ls {
        target: String,
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// Deletes NAMESPACE/KEY.
    Rm { target: String },
}

#[derive(Subcommand)]
pub(crate) enum Licenses {
    /// Issues a licence and prints its key (shown only now).
    Issue(Issue),
    /// Shows a licence.
    Show { id: String },
    /// Validates a licence key (as a licence holder would).
    Validate {
        key: String,
        #[arg(long)]
        fingerprint: Option<String>,
        #[arg(long)]
        product: Option<String>,
    },
    /// Suspends a licence.
    Suspend { id: String },
    /// Reinstates a suspended licence.
    Reinstate { id: String },
    /// Revokes a licence for good.
    Revoke { id: String },
}

#[derive(Args)]
pub(crate) struct Issue {
    #[arg(long)]
    pub(crate) product: String,
    #[arg(long)]
    pub(crate) name: String,
    #[arg(long)]
    pub(crate) owner: String,
    /// Such as 365d or 1y.
    #[arg(long)]
    pub(crate) duration: Option<String>,
    #[arg(long)]
    pub(crate) max_machines: Option<u32>,
    #[arg(long = "entitlement")]
    pub(crate) entitlements: Vec<String>,
    #[arg(long)]
    pub(crate) policy: Option<String>,
}

#[derive(Subcommand)]
pub(crate) enum Emails {
    /// Queues a message.
    Send {
        #[arg(long, required = true)]
        to: Vec<String>,
        #[arg(long)]
        subject: Option<String>,
        #[arg(long)]
        text: Option<String>,
        #[arg(long)]
        html: Option<String>,
        /// A stored template, with --var name=value.
        #[arg(long)]
        template: Option<String>,
        #[arg(long = "var", value_parser = parse_var)]
        vars: Vec<(String, String)>,
        /// Sent once per key, however often the command is repeated (default: a fresh one).
        #[arg(long)]
        idempotency_key: Option<String>,
    },
    /// Shows a message and its history.
    Show { id: String },
}

#[derive(Subcommand)]
pub(crate) enum Events {
    /// Follows new events as they happen (Ctrl-C stops).
    Tail {
        /// Only this type or family (`license.*`).
        #[arg(long = "type")]
        kind: Option<String>,
    },
}

pub(crate) fn parse_var(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("`{s}`: expected name=value"))
}
