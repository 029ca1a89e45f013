#!/usr/bin/env python3
"""Soak: mixed traffic against a real `gateway` process with wrk (Debian's `wrk`).

Six kinds of traffic run at once, each from its own wrk process: licence validation
(unauthenticated), emails (dev mailbox), Slack messages (dev sink), blob GET, blob PUT and
shared documents (PUT then GET). Printed as a table: requests, rate, p50 and p99 latency
and errors per kind, the gateway's RSS at start, peak and end, and whether every accepted
email and Slack message was delivered afterwards (nothing lost).

    cargo build --release -p gateway
    python3 bench/soak/soak.py --duration 600                  # the full soak, 10 minutes
    python3 bench/soak/soak.py --duration 30 --bin target/debug/gateway   # CI's short form

The database is a fresh MariaDB database (`--mysql`, default the local server) or SQLite
(`--sqlite`). Exit status 1 when any request failed, anything accepted was not delivered,
or RSS grew by more than `--max-growth-mib` between the end of warm-up and the end.
"""

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
# Where .ci/run builds when CARGO_TARGET_DIR is not set.
CI_TARGET = os.path.expanduser("~/.cache/event-bridge/target")

# wrk's done() callback prints one JSON line with the figures the table needs.
DONE = r"""
local threads = {}
function setup(thread)
  table.insert(threads, thread)
end
statuses = {}
function response(status, headers, body)
  if status >= 300 then
    statuses[status] = (statuses[status] or 0) + 1
  end
end
done = function(summary, latency, requests)
  local e = summary.errors
  local codes = {}
  for _, t in ipairs(threads) do
    for code, n in pairs(t:get("statuses")) do
      table.insert(codes, '"' .. code .. '":' .. n)
    end
  end
  io.write(string.format(
    '\nSOAK {"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,"p50_us":%d,"p99_us":%d,"max_us":%d,"codes":{%s}}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max, table.concat(codes, ",")))
end
"""


def lua_string(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def script(kind, api_key, license_key):
    """The wrk Lua script for one kind of traffic."""
    auth = 'wrk.headers["Authorization"] = "Bearer %s"\n' % api_key
    json_ct = 'wrk.headers["Content-Type"] = "application/json"\n'
    if kind == "validate":
        body = json.dumps({"key": license_key, "product": "client"})
        return json_ct + 'wrk.method = "POST"\nwrk.body = %s\n' % lua_string(body)
    if kind == "emails":
        body = json.dumps(
            {
                "from": "Soak <soak@example.com>",
                "to": ["reader@example.org"],
                "subject": "Soak",
                "text": "Hello from the soak.",
                "html": "<p>Hello from the <b>soak</b>.</p>",
            }
        )
        return auth + json_ct + 'wrk.method = "POST"\nwrk.body = %s\n' % lua_string(body)
    if kind == "slack":
        return (
            auth
            + json_ct
            + """wrk.method = "POST"
local i = 0
request = function()
  i = i + 1
  local body = '{"channel":"#soak-' .. (i % 20) .. '","level":"warning","title":"Soak ' .. i .. '","text":"disk at 91%","fields":[{"title":"host","value":"web-1"}]}'
  return wrk.format(nil, nil, nil, body)
end
"""
        )
    if kind == "blob_get":
        return auth
    if kind == "blob_put":
        return (
            auth
            + """wrk.method = "PUT"
wrk.headers["Content-Type"] = "application/octet-stream"
wrk.body = string.rep("0123456789abcdef", 256)
local i = 0
request = function()
  i = i + 1
  return wrk.format(nil, "/api/v1/blobs/client/soak/put-" .. (i % 50) .. ".bin")
end
"""
        )
    if kind == "documents":
        return (
            auth
            + json_ct
            + """local i = 0
request = function()
  i = i + 1
  local path = "/api/v1/data/soak/doc-" .. (math.floor(i / 2) % 200)
  if i % 2 == 0 then
    return wrk.format("PUT", path, nil, '{"title":"soak","n":' .. i .. ',"tags":["a","b"]}')
  end
  return wrk.format("GET", path)
end
"""
        )
    raise ValueError(kind)


PATHS = {
    "validate": "/api/v1/licenses/validate",
    "emails": "/api/v1/emails",
    "slack": "/api/v1/slack/messages",
    "blob_get": "/api/v1/blobs/client/soak/read.bin",
    "blob_put": "/api/v1/blobs/client/soak/put-0.bin",
    "documents": "/api/v1/data/soak/doc-0",
}


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def http(method, url, body=None, headers=None, expect=(200, 201, 202)):
    data = None
    headers = dict(headers or {})
    if body is not None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers.setdefault("Content-Type", "application/json")
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=30) as res:
            status, text = res.status, res.read()
            if "json" not in res.headers.get("Content-Type", ""):
                return text
    except urllib.error.HTTPError as e:
        status, text = e.code, e.read()
    if status not in expect:
        raise SystemExit(f"{method} {url}: {status} {text[:300]!r}")
    return json.loads(text) if text else None


class Database:
    """A fresh database for the run, and the counts the nothing-lost check reads."""

    def __init__(self, args, workdir):
        self.mysql = None
        if args.sqlite:
            self.path = os.path.join(workdir, "soak.db")
            self.url = f"sqlite://{self.path}"
        else:
            self.name = "eb_soak_" + uuid.uuid4().hex[:8]
            self.mysql = ["mysql", "--protocol=tcp", "-h", args.mysql_host, "-P", str(args.mysql_port), "-uroot", "-N"]
            subprocess.run(self.mysql + ["-e", f"CREATE DATABASE {self.name}"], check=True)
            self.url = f"mysql://root@{args.mysql_host}:{args.mysql_port}/{self.name}"

    def query(self, sql):
        if self.mysql:
            out = subprocess.run(self.mysql + [self.name, "-e", sql], check=True, capture_output=True, text=True)
            return [line.split("\t") for line in out.stdout.splitlines() if line]
        import sqlite3

        with sqlite3.connect(self.path, timeout=30) as c:
            return [[str(v) for v in row] for row in c.execute(sql).fetchall()]

    def counts(self, table):
        return {status: int(n) for status, n in self.query(f"SELECT status, COUNT(*) FROM {table} GROUP BY status")}

    def drop(self):
        if self.mysql:
            subprocess.run(self.mysql + ["-e", f"DROP DATABASE IF EXISTS {self.name}"], check=False)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=int, default=600, help="seconds of load (default 600)")
    ap.add_argument("--connections", type=int, default=4, help="connections per kind of traffic")
    ap.add_argument("--bin", default=None, help="the gateway binary (default: the release build)")
    ap.add_argument("--sqlite", action="store_true", help="SQLite instead of MariaDB")
    ap.add_argument("--mysql-host", default="127.0.0.1")
    ap.add_argument("--mysql-port", type=int, default=3306)
    ap.add_argument("--max-growth-mib", type=float, default=64.0)
    ap.add_argument("--json", help="also write the figures to this file")
    args = ap.parse_args()

    if not shutil.which("wrk"):
        raise SystemExit("wrk is not installed (Debian: apt-get install wrk)")
    targets = [os.environ.get("CARGO_TARGET_DIR"), os.path.join(ROOT, "target"), CI_TARGET]
    built = [os.path.join(t, "release", "gateway") for t in targets if t]
    binary = args.bin or next((b for b in built if os.path.exists(b)), built[0])
    if not os.path.exists(binary):
        raise SystemExit(f"no gateway binary at {binary}: cargo build --release -p gateway")

    workdir = tempfile.mkdtemp(prefix="eb-soak-")
    db = Database(args, workdir)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "APP_HOST": "127.0.0.1",
        "APP_PORT": str(port),
        "DATABASE_URL": db.url,
        "SECRET_KEY": "soak-secret-" + uuid.uuid4().hex,
        "DATA_DIR": os.path.join(workdir, "data"),
        # On MySQL storage must be chosen: this one replica's folder.
        "BLOB_DIR": os.path.join(workdir, "blobs"),
        "LOG_LEVEL": "warn",
        # One client address and one licence key make all validation traffic here.
        "LICENSE_RATE_LIMIT_PER_MINUTE": "100000000",
        "LICENSE_KEY_RATE_LIMIT_PER_MINUTE": "100000000",
        # The dev stand-ins (on MySQL only when asked for): messages are captured, not sent.
        "MAIL_TRANSPORT": "dev",
        "SLACK_TRANSPORT": "dev",
        # The dev sink has no Slack pace to keep.
        "SLACK_MESSAGES_PER_SECOND": "100000",
    }
    log = open(os.path.join(workdir, "gateway.log"), "w")
    key = subprocess.run(
        [binary, "api-keys", "create", "--name", "soak", "--scopes", "*"],
        env=env,
        cwd=workdir,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    gateway = subprocess.Popen([binary], env=env, cwd=workdir, stdout=log, stderr=log)
    try:
        for _ in range(300):
            try:
                http("GET", base + "/readyz")
                break
            except (OSError, SystemExit):
                time.sleep(0.1)
        auth = {"Authorization": f"Bearer {key}"}
        lic = http(
            "POST",
            base + "/api/v1/licenses",
            {"product": "client", "name": "soak", "owner_email": "soak@example.com"},
            auth,
        )
        http(
            "PUT",
            base + PATHS["blob_get"],
            os.urandom(64 * 1024),
            dict(auth, **{"Content-Type": "application/octet-stream"}),
        )
        for n in range(200):
            http("PUT", base + f"/api/v1/data/soak/doc-{n}", {"title": "soak", "n": 0}, auth)
        # Warm-up: every kind once, so pools and caches are filled before the first reading.
        for _ in range(50):
            http("POST", base + PATHS["validate"], {"key": lic["key"]})
            http("GET", base + PATHS["blob_get"], headers=auth)
        time.sleep(1)
        rss_start = rss_mib(gateway.pid)

        kinds = ["validate", "emails", "slack", "blob_get", "blob_put", "documents"]
        procs = {}
        for kind in kinds:
            path = os.path.join(workdir, f"{kind}.lua")
            with open(path, "w") as f:
                f.write(script(kind, key, lic["key"]) + DONE)
            procs[kind] = subprocess.Popen(
                [
                    "wrk",
                    "-t1",
                    f"-c{args.connections}",
                    f"-d{args.duration}s",
                    "--timeout",
                    "10s",
                    "-s",
                    path,
                    base + PATHS[kind],
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
        rss_peak = rss_start
        samples = []
        started = time.time()
        while any(p.poll() is None for p in procs.values()):
            now = rss_mib(gateway.pid)
            rss_peak = max(rss_peak, now)
            samples.append((round(time.time() - started), round(now, 1)))
            time.sleep(5)
        rss_end = rss_mib(gateway.pid)

        rows = {}
        for kind, p in procs.items():
            out = p.stdout.read()
            line = next((ln for ln in out.splitlines() if ln.startswith("SOAK ")), None)
            if line is None:
                raise SystemExit(f"wrk for {kind} printed no figures:\n{out}")
            rows[kind] = json.loads(line[5:])

        # Nothing lost: every accepted email and Slack message is captured by the dev
        # transports (they send nothing, so nothing is ever `sent` or `posted`).
        accepted_emails = rows["emails"]["requests"] - rows["emails"]["status"]
        accepted_slack = rows["slack"]["requests"] - rows["slack"]["status"]
        deadline = time.time() + max(120, args.duration)
        while True:
            emails = db.counts("eb_email_messages")
            slack = db.counts("eb_slack_messages")
            if emails.get("captured", 0) >= accepted_emails and slack.get("captured", 0) >= accepted_slack:
                break
            if time.time() > deadline:
                break
            time.sleep(2)
        drained = time.time()
        rss_drained = rss_mib(gateway.pid)
    finally:
        gateway.terminate()
        try:
            gateway.wait(timeout=30)
        except subprocess.TimeoutExpired:
            gateway.kill()
        db.drop()

    total_errors = 0
    print()
    print(f"Soak: {args.duration} s, {args.connections} connections per kind, database {db.url.split(':')[0]}")
    print(f"{'traffic':<11} {'requests':>9} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'errors':>7}")
    all_requests = 0
    for kind, r in rows.items():
        errors = r["connect"] + r["read"] + r["write"] + r["status"] + r["timeout"]
        total_errors += errors
        all_requests += r["requests"]
        rate = r["requests"] / (r["duration_us"] / 1e6)
        detail = ", ".join(
            [f"{n}x HTTP {code}" for code, n in sorted(r["codes"].items())]
            + [f"{r[k]} {k}" for k in ("connect", "read", "write", "timeout") if r[k]]
        )
        print(
            f"{kind:<11} {r['requests']:>9} {rate:>8.0f} {r['p50_us'] / 1000:>8.2f} "
            f"{r['p99_us'] / 1000:>8.2f} {r['max_us'] / 1000:>8.1f} {errors:>7}"
            + (f"  ({detail})" if detail else "")
        )
    print(f"{'all':<11} {all_requests:>9} {all_requests / args.duration:>8.0f} {'':>8} {'':>8} {'':>8} {total_errors:>7}")
    print()
    growth = rss_end - rss_start
    print(
        f"RSS: {rss_start:.1f} MiB after warm-up, {rss_peak:.1f} MiB peak, {rss_end:.1f} MiB at the end "
        f"(growth {growth:+.1f} MiB), {rss_drained:.1f} MiB after the queues drained"
    )
    lost_emails = accepted_emails - emails.get("captured", 0)
    lost_slack = accepted_slack - slack.get("captured", 0)
    print(
        f"Delivered (captured by the dev transports): {emails.get('captured', 0)} of {accepted_emails} "
        f"accepted emails, {slack.get('captured', 0)} of {accepted_slack} accepted Slack messages "
        f"({drained - started - args.duration:.0f} s after the load ended)"
    )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {
                    "duration": args.duration,
                    "rows": rows,
                    "rss": {"start": rss_start, "peak": rss_peak, "end": rss_end, "drained": rss_drained},
                    "samples": samples,
                    "emails": emails,
                    "slack": slack,
                },
                f,
                indent=1,
            )
    log.close()
    with open(log.name) as f:
        levels = [line for line in f if " WARN " in line or " ERROR " in line]
    print(f"Gateway log: {len(levels)} lines at WARN or ERROR")
    for line in levels[:5]:
        print("  " + line.rstrip()[:200])
    failures = []
    if any(" ERROR " in line for line in levels):
        failures.append("the gateway logged errors")
    if total_errors:
        failures.append(f"{total_errors} requests failed")
    if lost_emails > 0 or lost_slack > 0:
        failures.append(f"not delivered: {lost_emails} emails, {lost_slack} Slack messages")
    if growth > args.max_growth_mib:
        failures.append(f"RSS grew by {growth:.1f} MiB (bound {args.max_growth_mib} MiB)")
    if failures:
        print("SOAK FAILED: " + "; ".join(failures))
        print(f"gateway log: {log.name}")
        return 1
    shutil.rmtree(workdir, ignore_errors=True)
    print("soak passed: no errors, nothing lost, memory within bounds")
    return 0


if __name__ == "__main__":
    sys.exit(main())
