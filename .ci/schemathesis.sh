#!/usr/bin/env bash
# Generated requests from the OpenAPI document against a running gateway (SQLite, dev
# transports), with a key holding every scope and with none: no 5xx, responses match the
# documented status codes, content types, headers and schemas.
# Excluded checks: positive_data_acceptance (schema-valid values our rules refuse with a
# 422 naming the field, such as limit=0 or an empty address) and allow_header_conformance
# (OPTIONS on paths whose templates overlap, such as /blobs/{ns}/presign and /blobs/{ns}/{key}).
# The multipart part URL (PUT .../uploads/{id}/parts/{n}) runs on its own without
# unsupported_method: its path is also an object key's (`uploads/.../parts/...`), whose
# GET is the object route's, so another method there is not a 405.
set -euo pipefail
bin="${CARGO_TARGET_DIR:?}/debug/gateway"
work="$(mktemp -d)"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
export SECRET_KEY="schemathesis-secret-key-0123456789abcdef"
cd "$work"
key="$("$bin" api-keys create --name schemathesis --scopes '*' 2>/dev/null)"
APP_HOST=127.0.0.1 APP_PORT="$port" LOG_LEVEL=warn "$bin" serve >"$work/gateway.log" 2>&1 &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 1 100); do curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
url="http://127.0.0.1:$port/openapi.json"
echo "-- the document against the OpenAPI 3.1 schema (openapi-spec-validator, an independent validator)"
curl -fsS "$url" -o "$work/openapi.json"
python3 -m openapi_spec_validator "$work/openapi.json"
common=(--max-examples "${SCHEMATHESIS_EXAMPLES:-15}" --seed 1 --no-color)
echo "-- with a key holding every scope"
# First, while the key is good (the full run's stateful phase may revoke it).
python3 -m schemathesis.cli run "$url" -H "Authorization: Bearer $key" "${common[@]}" \
    --include-operation-id blobs_uploads_put_part \
    --checks all --exclude-checks positive_data_acceptance,allow_header_conformance,unsupported_method
python3 -m schemathesis.cli run "$url" -H "Authorization: Bearer $key" "${common[@]}" \
    --exclude-operation-id blobs_uploads_put_part \
    --checks all --exclude-checks positive_data_acceptance,allow_header_conformance
echo "-- without credentials"
python3 -m schemathesis.cli run "$url" "${common[@]}" --checks not_a_server_error,status_code_conformance,content_type_conformance
if grep -q "panicked" "$work/gateway.log"; then
    echo "the gateway panicked:"; grep -A3 panicked "$work/gateway.log"; exit 1
fi
