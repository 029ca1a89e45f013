#!/usr/bin/env bash
# cargo-deny with deny.toml: licences, sources and bans always (offline); advisories when
# the RustSec advisory database can be fetched. This machine reaches only the package
# registries, not GitHub, so there the advisory check is skipped with a message saying so.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo-deny >/dev/null 2>&1; then
    echo "installing cargo-deny (crates.io)"
    cargo install --locked --quiet cargo-deny
fi
cargo deny --version
# cargo-deny reads the metadata of every package for every platform, which downloads
# crates no build here needs (windows-*, wasm-*). A registry hiccup there once failed CI
# ("failed to fetch crates"), so fetch them first, with retries, and retry the check once.
for attempt in 1 2 3; do
    cargo fetch --locked --quiet && break
    echo "cargo fetch failed (attempt $attempt of 3); retrying in 10 s"
    sleep 10
done
cargo deny check licenses bans sources || {
    echo "cargo deny failed once; retrying after a fresh fetch"
    cargo fetch --locked --quiet
    cargo deny check licenses bans sources
}

out="$(mktemp)"
if timeout 300 cargo deny check advisories >"$out" 2>&1; then
    cat "$out"
    echo "advisories: no known-vulnerable dependency"
elif grep -q "failed to fetch advisory database" "$out"; then
    reason="$(grep -m1 -oE 'Could not resolve host: [^ ]+|Failed to connect to [^ ]+|Connection refused|timed out' "$out" || true)"
    echo "advisories SKIPPED: the RustSec advisory database could not be fetched (${reason:-see above}); licences, sources and bans were checked"
else
    cat "$out"
    exit 1
fi
