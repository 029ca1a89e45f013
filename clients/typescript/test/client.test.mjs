// The TypeScript client (its committed build, dist/) against a live gateway: EB_URL and
// EB_KEY (a key holding every scope) when the caller runs one (the Rust harness does),
// else the debug gateway binary started here (EB_GATEWAY_BIN or CARGO_TARGET_DIR).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, existsSync } from "node:fs";
import { createHash, randomBytes, webcrypto } from "node:crypto";
import { tmpdir } from "node:os";
import path from "node:path";
import net from "node:net";

import { Client, ProblemError, SignatureError, Verifier } from "../dist/index.js";

let url = process.env.EB_URL;
let key = process.env.EB_KEY;
let gateway;

const unique = (p) => `${p}-${randomBytes(5).toString("hex")}`;

before(async () => {
  if (url && key) return;
  const target = process.env.CARGO_TARGET_DIR ?? path.resolve(import.meta.dirname, "../../../target");
  const bin = process.env.EB_GATEWAY_BIN ?? path.join(target, "debug", "gateway");
  assert.ok(existsSync(bin), `no gateway: set EB_URL and EB_KEY, or build ${bin}`);
  const port = await new Promise((resolve) => {
    const s = net.createServer().listen(0, "127.0.0.1", () => {
      const p = s.address().port;
      s.close(() => resolve(p));
    });
  });
  const data = mkdtempSync(path.join(tmpdir(), "eb-ts-"));
  const env = {
    ...process.env,
    SECRET_KEY: "typescript-client-tests-secret-0123456789",
    DATA_DIR: data,
    APP_HOST: "127.0.0.1",
    APP_PORT: String(port),
    MAIL_TRANSPORT: "dev",
    SLACK_TRANSPORT: "dev",
    LOG_LEVEL: "warn",
  };
  key = execFileSync(bin, ["api-keys", "create", "--name", "ts-tests", "--scopes", "*"], { env, cwd: data }).toString().trim();
  gateway = spawn(bin, ["serve"], { env, cwd: data, stdio: "ignore" });
  url = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 100; i++) {
    try {
      if ((await fetch(`${url}/healthz`)).ok) return;
    } catch {
      await new Promise((r) => setTimeout(r, 100));
    }
  }
});

after(() => gateway?.kill());

const admin = () => new Client({ url, key });

test("desktop: signed answers, seats, a certificate verified offline", async () => {
  const eb = admin();
  const issued = await eb.licenses.issue({ product: "client", name: "Desk", owner_email: `${unique("d")}@example.com`, max_machines: 1, entitlements: ["export"] });
  assert.ok(issued.key);
  const verifier = new Verifier(await eb.licenses.publicKey());
  const desktop = new Client({ url, verifier });
  // The public key is not a signed answer: a verifying client still fetches it.
  assert.equal((await desktop.licenses.publicKey()).kid, (await eb.licenses.publicKey()).kid);

  const v = await desktop.licenses.validate(issued.key, { product: "client" });
  assert.equal(v.code, "valid");
  assert.ok(v.nonce, "a verifying client sends a nonce and gets it back");
  await desktop.licenses.activate(issued.key, "fp-1", { name: "Laptop" });
  await assert.rejects(desktop.licenses.activate(issued.key, "fp-2"), (e) => e instanceof ProblemError && e.status === 422 && e.code === "too_many_machines");
  assert.ok((await desktop.licenses.heartbeat(issued.key, "fp-1")).last_heartbeat_at);
  assert.equal((await desktop.licenses.validate(issued.key, { fingerprint: "fp-9" })).code, "fingerprint_scope_mismatch");

  const cert = await desktop.licenses.checkout(issued.key, { fingerprint: "fp-1", ttl: "1d" });
  const payload = await verifier.verify(cert.certificate, { product: "client", fingerprint: "fp-1", entitlements: ["export"] });
  assert.equal(payload.license_id, issued.id);
  for (const [expect, reason] of [
    [{ product: "platform" }, "product_mismatch"],
    [{ fingerprint: "fp-2" }, "fingerprint_mismatch"],
    [{ entitlements: ["sso"] }, "entitlements_missing"],
    [{ now: new Date(Date.now() + 2 * 86_400_000) }, "certificate_expired"],
  ]) {
    await assert.rejects(verifier.verify(cert.certificate, expect), (e) => e instanceof SignatureError && e.reason === reason, reason);
  }
  const [head, sig] = [cert.certificate.slice(0, cert.certificate.lastIndexOf(".")), cert.certificate.slice(cert.certificate.lastIndexOf(".") + 1)];
  const [fmt, kid, body] = head.split(".");
  const forged = JSON.parse(Buffer.from(body, "base64url").toString());
  forged.entitlements.push("sso");
  await assert.rejects(
    verifier.verify(`${fmt}.${kid}.${Buffer.from(JSON.stringify(forged)).toString("base64url")}.${sig}`),
    (e) => e.reason === "bad_signature",
  );

  assert.equal((await desktop.licenses.deactivate(issued.key, "fp-1")).deactivated, true);
  await eb.licenses.suspend(issued.id);
  assert.equal((await desktop.licenses.validate(issued.key)).code, "suspended");
});

test("an untrusted key's answers are refused, problems included", async () => {
  const eb = admin();
  const issued = await eb.licenses.issue({ product: "platform", name: "Trust", owner_email: `${unique("t")}@example.com` });
  const { publicKey } = await webcrypto.subtle.generateKey({ name: "Ed25519" }, true, ["sign", "verify"]);
  const raw = Buffer.from(await webcrypto.subtle.exportKey("raw", publicKey)).toString("base64url");
  const kid = (await eb.licenses.publicKey()).kid;
  const desktop = new Client({ url, verifier: new Verifier({ [kid]: raw }) });
  await assert.rejects(desktop.licenses.validate(issued.key), (e) => e instanceof SignatureError && e.reason === "bad_signature");
  await assert.rejects(desktop.licenses.activate("AAAAA-AAAAA-AAAAA-AAAAA-AAAAA-AAAAA-AAAAA", "fp"), SignatureError);
});

test("problems carry status, code, field and request id", async () => {
  const eb = admin();
  await assert.rejects(eb.licenses.get("lic_missing"), (e) => e instanceof ProblemError && e.status === 404);
  await assert.rejects(
    eb.licenses.issue({ product: "client", name: "N", owner_email: "not-an-address" }),
    (e) => e.status === 422 && e.code === "invalid_field" && e.field === "owner_email" && !!e.requestId,
  );
  await assert.rejects(new Client({ url, key: "eb_wrong" }).licenses.list(), (e) => e.status === 401);
  const narrow = await eb.apiKeys.create({ name: unique("narrow"), scopes: ["emails:read"] });
  await assert.rejects(new Client({ url, key: narrow.key }).licenses.list(), (e) => e.status === 403);
  assert.equal((await eb.apiKeys.revoke(narrow.id)).status, "revoked");
});

test("iter walks every page", async () => {
  const eb = admin();
  const owner = `${unique("pages")}@example.com`;
  const ids = new Set();
  for (let i = 0; i < 5; i++) ids.add((await eb.licenses.issue({ product: "client", name: `P${i}`, owner_email: owner })).id);
  const page = await eb.licenses.list({ owner_email: owner, limit: 2 });
  assert.equal(page.items.length, 2);
  assert.ok(page.next_cursor);
  const seen = new Set();
  for await (const lic of eb.licenses.iter({ owner_email: owner, limit: 2 })) seen.add(lic.id);
  assert.deepEqual(seen, ids);
});

test("web: documents with versions, an email sent once, a browser-style upload", async () => {
  const eb = admin();
  const id = unique("doc");
  const created = await eb.data.put("settings", id, { theme: "dark", lang: "ko" }, { ifNoneMatch: "*" });
  const patched = await eb.data.patch("settings", id, { theme: null, size: 12 }, { ifMatch: created.version });
  assert.deepEqual(patched.data, { lang: "ko", size: 12 });
  await assert.rejects(eb.data.put("settings", id, { lost: true }, { ifMatch: created.version }), (e) => e.status === 412);

  const idem = unique("idem");
  const message = { to: `${unique("to")}@example.com`, subject: "안녕하세요", text: "본문" };
  const first = await eb.emails.send(message, { idempotencyKey: idem });
  const again = await eb.emails.send(message, { idempotencyKey: idem });
  assert.equal(again.id, first.id);
  assert.equal(again.replayed, true);
  assert.equal(first.replayed, false);
  assert.equal((await eb.emails.get(first.id)).subject, "안녕하세요");

  const key = `${unique("web")}/hello.txt`;
  const progress = [];
  await eb.blobs.uploadViaPresign("web", key, new Blob(["hello"], { type: "text/plain" }), { progress: (d) => progress.push(d) });
  assert.equal(progress.at(-1), 5);
  assert.equal(new TextDecoder().decode(await eb.blobs.bytes("web", key)), "hello");
  assert.equal((await eb.blobs.head("web", key)).get("content-type").split(";")[0], "text/plain");
});

test("AI: a large body streams up and down with progress", async () => {
  const eb = admin();
  const data = randomBytes(5 * 1024 * 1024 + 123);
  const key = `${unique("models")}/model.bin`;
  const up = [];
  const blob = await eb.blobs.upload("ai", key, new Uint8Array(data), { progress: (d, t) => up.push([d, t]) });
  assert.equal(blob.size, data.length);
  assert.equal(blob.sha256, createHash("sha256").update(data).digest("hex"));
  assert.deepEqual(up.at(-1), [data.length, data.length]);
  assert.ok(up.length > 1);
  const down = [];
  const { body, headers } = await eb.blobs.download("ai", key, { progress: (d) => down.push(d) });
  const got = Buffer.from(await new Response(body).arrayBuffer());
  assert.ok(got.equals(data));
  assert.equal(down.at(-1), data.length);
  assert.equal(headers.get("etag"), blob.etag);
  const listing = await eb.blobs.list("ai", { prefix: `${key.split("/")[0]}/`, delimiter: "/" });
  assert.deepEqual(listing.items.map((b) => b.key), [key]);
  await assert.rejects(eb.blobs.upload("ai", key, "other", { ifNoneMatch: "*" }), (e) => e.status === 412);
  await eb.blobs.delete("ai", key);
  await assert.rejects(eb.blobs.bytes("ai", key), (e) => e.status === 404);
});

test("AI: a large file goes up in parts straight to their URLs, and resumes", async () => {
  const eb = admin();
  const mib = 1024 * 1024;
  const data = randomBytes(11 * mib + 9);
  const sha = createHash("sha256").update(data).digest("hex");
  const key = `${unique("models")}/weights.bin`;
  const seen = [];
  const blob = await eb.blobs.uploadMultipart("ai", key, new Blob([data]), {
    partSize: 5 * mib,
    sha256: sha,
    concurrency: 2,
    progress: (d, t) => seen.push([d, t]),
  });
  assert.equal(blob.size, data.length);
  assert.equal(blob.sha256, sha);
  assert.deepEqual(seen.at(-1), [data.length, data.length]);
  assert.equal(seen.length, 3);
  assert.ok(Buffer.from(await eb.blobs.bytes("ai", key)).equals(data));
  assert.equal((await eb.blobs.head("ai", key)).get("x-checksum-sha256"), sha);

  // An interrupted upload: part 1 sent, then the page went away.
  const key2 = `${unique("models")}/resumed.bin`;
  const started = await eb.blobs.uploadMultipart("ai", key2, new Blob([data]), {
    partSize: 5 * mib,
    concurrency: 1,
    progress: (d) => {
      if (d === 5 * mib) throw new Error("the tab closed");
    },
  }).catch((e) => e);
  assert.equal(started.message, "the tab closed");
  assert.match(started.uploadId, /^up_[0-9a-f]{32}$/);
  const held = await eb.blobs.getUpload("ai", started.uploadId);
  assert.deepEqual(held.received.map((p) => p.number), [1]);
  const resumed = await eb.blobs.uploadMultipart("ai", key2, data, { uploadId: started.uploadId });
  assert.equal(resumed.sha256, sha);
  assert.ok(Buffer.from(await eb.blobs.bytes("ai", key2)).equals(data));
  await assert.rejects(eb.blobs.getUpload("ai", started.uploadId), (e) => e.status === 404);
  // Another object's upload is not resumed.
  const other = await eb.blobs.uploadMultipart("ai", key2, data.subarray(0, 6 * mib), {
    partSize: 5 * mib,
    progress: () => {
      throw new Error("stop");
    },
  }).catch((e) => e);
  await assert.rejects(eb.blobs.uploadMultipart("ai", key2, data, { uploadId: other.uploadId }), /not/);
  await eb.blobs.abortUpload("ai", other.uploadId);
  await assert.rejects(eb.blobs.abortUpload("ai", other.uploadId), (e) => e.status === 404);
});

test("the live tail sees a new event", async () => {
  const eb = admin();
  const stop = new AbortController();
  const name = unique("Tail");
  const seen = (async () => {
    for await (const event of eb.events.stream({ type: "license.issued" }, { signal: stop.signal })) {
      if (event.data.name === name) return event;
    }
  })();
  let event;
  for (let i = 0; i < 50 && !event; i++) {
    await eb.licenses.issue({ product: "client", name, owner_email: `${unique("tail")}@example.com` });
    event = await Promise.race([seen, new Promise((r) => setTimeout(r, 200))]);
  }
  stop.abort();
  assert.ok(event, "the tail saw nothing");
  assert.equal(event.type, "license.issued");
});
