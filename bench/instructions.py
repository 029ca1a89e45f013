#!/usr/bin/env python3
"""Instructions per request: the gateway under callgrind, a fixed number of requests.

A load-insensitive measure for before/after comparisons on a shared machine (wall-clock
rates are not, and `perf stat -e instructions` is not supported on this VM): the release
gateway runs on MariaDB under `valgrind --tool=callgrind` with instrumentation off; it
is switched on for exactly `--requests` licence validations (and then as many
`/healthz` requests), sent by `--connections` keep-alive clients, so the count excludes
start-up and seeding. Prints instructions per request of each and their ratio, and keeps
the callgrind files (`callgrind_annotate` them for where the instructions go).

    cargo build --release -p gateway
    python3 bench/instructions.py --requests 4000 --connections 8

Valgrind runs one thread at a time, so this counts work, not waiting: the database's
own work (MariaDB) and the client's are outside it.
"""

import argparse
import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_ready(port, timeout=300):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            c.request("GET", "/readyz")
            if c.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.5)
    raise SystemExit("the gateway did not become ready")


def drive(port, requests, connections, make):
    """Sends `requests` requests over `connections` keep-alive connections; `make(i)`
    gives (method, path, body). Returns the number that failed."""
    failed = [0]
    lock = threading.Lock()
    counter = iter(range(requests))

    def client():
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                return
            method, path, body = make(i)
            headers = {"Content-Type": "application/json"} if body else {}
            c.request(method, path, body=body, headers=headers)
            res = c.getresponse()
            text = res.read()
            if res.status != 200 or (b'"valid":true' not in text and b'"status":"ok"' not in text):
                with lock:
                    failed[0] += 1

    threads = [threading.Thread(target=client) for _ in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return failed[0]


def total_ir(path):
    # `totals:` (the whole run; `summary:` stays 0 when instrumentation starts off).
    with open(path) as f:
        for line in f:
            if line.startswith("totals:"):
                return int(line.split()[1])
    raise SystemExit(f"no totals in {path}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=None, help="the gateway binary (default: the release build)")
    ap.add_argument("--requests", type=int, default=4000)
    ap.add_argument("--connections", type=int, default=8)
    ap.add_argument("--keys", type=int, default=200, help="licences validated round robin")
    ap.add_argument("--mysql-host", default="127.0.0.1")
    ap.add_argument("--mysql-port", type=int, default=3306)
    ap.add_argument("--out", default=None, help="where to keep the callgrind files")
    args = ap.parse_args()

    targets = [os.environ.get("CARGO_TARGET_DIR"), os.path.join(ROOT, "target")]
    built = [os.path.join(t, "release", "gateway") for t in targets if t]
    binary = args.bin or next((b for b in built if os.path.exists(b)), built[0])
    if not shutil.which("valgrind") or not shutil.which("callgrind_control"):
        raise SystemExit("valgrind is not installed (Debian: apt-get install valgrind)")

    workdir = tempfile.mkdtemp(prefix="eb-instr-")
    out = args.out or workdir
    os.makedirs(out, exist_ok=True)
    name = "eb_instr_" + uuid.uuid4().hex[:8]
    mysql = ["mysql", "--protocol=tcp", "-h", args.mysql_host, "-P", str(args.mysql_port), "-uroot", "-N"]
    subprocess.run(mysql + ["-e", f"CREATE DATABASE {name}"], check=True)
    port = free_port()
    env = dict(
        os.environ,
        APP_HOST="127.0.0.1",
        APP_PORT=str(port),
        DATABASE_URL=f"mysql://root@{args.mysql_host}:{args.mysql_port}/{name}",
        SECRET_KEY="instr-secret-0123456789abcdef0123456789",
        DATA_DIR=os.path.join(workdir, "data"),
        BLOB_DIR=os.path.join(workdir, "blobs"),
        LOG_LEVEL="warn",
        LICENSE_RATE_LIMIT_PER_MINUTE="1000000000",
        LICENSE_KEY_RATE_LIMIT_PER_MINUTE="1000000000",
    )
    log = open(os.path.join(workdir, "gateway.log"), "w")
    try:
        # Seeding at native speed, then the same database under callgrind.
        key = subprocess.run(
            [binary, "api-keys", "create", "--name", "instr", "--scopes", "licenses:admin"],
            env=env, cwd=workdir, check=True, capture_output=True, text=True,
        ).stdout.strip()
        seeder = subprocess.Popen([binary], env=env, cwd=workdir, stdout=log, stderr=log)
        try:
            wait_ready(port)
            keys = []
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            for i in range(args.keys):
                body = json.dumps({"product": "client", "name": f"instr {i}", "owner_email": "i@example.com",
                                   "duration": "365d", "max_machines": 10, "entitlements": ["sso"]})
                c.request("POST", "/api/v1/licenses", body=body,
                          headers={"Content-Type": "application/json", "Authorization": f"Bearer {key}"})
                res = c.getresponse()
                keys.append(json.loads(res.read())["key"])
        finally:
            seeder.terminate()
            seeder.wait(timeout=30)
        bodies = [json.dumps({"key": k, "product": "client", "entitlements": ["sso"]}) for k in keys]

        results = {}
        for kind in ("validate", "healthz"):
            base = os.path.join(out, f"callgrind.{kind}")
            gw = subprocess.Popen(
                ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={base}.%p", binary],
                env=env, cwd=workdir, stdout=log, stderr=log,
            )
            try:
                wait_ready(port)
                make = (lambda i: ("POST", "/api/v1/licenses/validate", bodies[i % len(bodies)])) if kind == "validate" \
                    else (lambda i: ("GET", "/healthz", None))
                # Warm-up (pools, the signing key, each licence's `last_validated_at`).
                drive(port, max(len(bodies), 200), args.connections, make)
                subprocess.run(["callgrind_control", "-i", "on", str(gw.pid)], check=True, capture_output=True)
                failed = drive(port, args.requests, args.connections, make)
                subprocess.run(["callgrind_control", "-i", "off", str(gw.pid)], check=True, capture_output=True)
            finally:
                gw.terminate()
                gw.wait(timeout=120)
            path = f"{base}.{gw.pid}"
            results[kind] = (total_ir(path) / args.requests, failed, path)
    finally:
        subprocess.run(mysql + ["-e", f"DROP DATABASE IF EXISTS {name}"], check=False)

    print(f"instructions per request (callgrind, {args.requests} requests, {args.connections} connections, "
          f"{len(keys)} licences, MariaDB):")
    for kind, (ir, failed, path) in results.items():
        print(f"  {kind:<9} {ir:>10,.0f}  failed {failed}  ({path})")
    v, h = results["validate"][0], results["healthz"][0]
    print(f"  validate / healthz {v / h:.2f}")
    if any(r[1] for r in results.values()):
        sys.exit(1)


if __name__ == "__main__":
    main()
