/**
 * The client: one `fetch`-based implementation for browsers and Node 20. Requests that
 * are safe to repeat are retried on network failures and 429/502/503/504, after the
 * gateway's `Retry-After` when it gives one.
 */
import { ProblemError, TransportError } from "./errors.js";
const API = "/api/v1";
const RETRY_STATUSES = new Set([429, 502, 503, 504]);
const seg = (s) => encodeURIComponent(s);
const keyPath = (key) => key.split("/").map(encodeURIComponent).join("/");
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
function backoff(attempt, response) {
    const retryAfter = response?.headers.get("retry-after");
    if (retryAfter && /^\d+$/.test(retryAfter))
        return Math.min(Number(retryAfter), 30) * 1000;
    return Math.min(500 * 2 ** attempt, 8000) * (0.5 + Math.random() / 2);
}
function randomId() {
    return crypto.randomUUID();
}
/** A body without the members left `undefined`. */
function clean(value) {
    return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined));
}
export class Client {
    url;
    verifier;
    key;
    maxRetries;
    timeoutMs;
    fetch;
    licenses = new Licenses(this);
    policies = new Crud(this, "policies");
    emails = new Emails(this);
    slack = new Slack(this);
    blobs = new Blobs(this);
    data = new Data(this);
    events = new Events(this);
    apiKeys = new ApiKeys(this);
    constructor(options) {
        this.url = options.url.replace(/\/+$/, "");
        this.key = options.key;
        this.verifier = options.verifier;
        this.maxRetries = options.maxRetries ?? 3;
        this.timeoutMs = options.timeoutMs ?? 30_000;
        this.fetch = options.fetch ?? globalThis.fetch.bind(globalThis);
    }
    /** Sends a call; `response` is returned unread when it succeeded. */
    async send(call) {
        const url = new URL(this.url + call.path);
        for (const [k, v] of Object.entries(call.query ?? {})) {
            if (v !== undefined && v !== null)
                url.searchParams.set(k, String(v));
        }
        const headers = { Accept: "application/json", ...call.headers };
        if (this.key && !call.holder)
            headers.Authorization = `Bearer ${this.key}`;
        let body = call.body;
        if (call.json !== undefined) {
            headers["Content-Type"] = "application/json";
            body = JSON.stringify(call.json);
        }
        for (let attempt = 0;; attempt++) {
            let response;
            try {
                const init = {
                    method: call.method,
                    headers,
                    body,
                    signal: call.timeout === false ? undefined : AbortSignal.timeout(this.timeoutMs),
                };
                if (body instanceof ReadableStream)
                    init.duplex = "half";
                response = await this.fetch(url, init);
            }
            catch (e) {
                if (!call.retry || attempt >= this.maxRetries) {
                    throw new TransportError(`${call.method} ${call.path}: ${e.message}`, { cause: e });
                }
            }
            if (response && !(call.retry && RETRY_STATUSES.has(response.status) && attempt < this.maxRetries)) {
                if (call.holder && this.verifier) {
                    const bytes = new Uint8Array(await response.arrayBuffer());
                    await this.verifier.verifyResponse(bytes, response.headers.get("eb-signature"), response.ok ? call.nonce : undefined);
                    response = new Response(bytes.length ? bytes : null, { status: response.status, headers: response.headers });
                }
                if (!response.ok)
                    throw await problem(response);
                return response;
            }
            await sleep(backoff(attempt, response));
        }
    }
    /** Sends a call and reads its JSON answer. */
    async json(call) {
        const response = await this.send(call);
        return (response.status === 204 ? undefined : await response.json());
    }
    /** Every item of a list, page after page. */
    async *paginate(call) {
        const query = { ...call.query };
        for (;;) {
            const page = await this.json({ ...call, query });
            yield* page.items ?? page.objects ?? [];
            if (!page.next_cursor)
                return;
            query.cursor = page.next_cursor;
        }
    }
    /** Sends a holder call with a fresh nonce when verifying. */
    holder(action, body) {
        const nonce = this.verifier ? randomId() : undefined;
        const retry = action === "validate" || action === "heartbeat" || action === "checkout";
        return this.json({
            method: "POST",
            path: `${API}/licenses/${action}`,
            json: clean({ ...body, nonce }),
            holder: true,
            nonce,
            retry,
        });
    }
}
async function problem(response) {
    const text = await response.text();
    let parsed = {};
    try {
        const value = JSON.parse(text);
        if (value && typeof value === "object")
            parsed = value;
    }
    catch {
        parsed = { detail: text.slice(0, 200) };
    }
    return new ProblemError(response.status, parsed, response.headers);
}
class Section {
    c;
    constructor(c) {
        this.c = c;
    }
}
class Crud extends Section {
    base;
    constructor(c, base) {
        super(c);
        this.base = base;
    }
    create(body) {
        return this.c.json({ method: "POST", path: `${API}/${this.base}`, json: body });
    }
    get(id) {
        return this.c.json({ method: "GET", path: `${API}/${this.base}/${seg(id)}`, retry: true });
    }
    update(id, changes) {
        return this.c.json({ method: "PATCH", path: `${API}/${this.base}/${seg(id)}`, json: changes });
    }
    delete(id) {
        return this.c.json({ method: "DELETE", path: `${API}/${this.base}/${seg(id)}`, retry: true });
    }
    list(query = {}) {
        return this.c.json({ method: "GET", path: `${API}/${this.base}`, query, retry: true });
    }
    iter(query = {}) {
        return this.c.paginate({ method: "GET", path: `${API}/${this.base}`, query, retry: true });
    }
}
/** Licences: administration, and the holder calls authenticated by the licence key. */
export class Licenses extends Crud {
    constructor(c) {
        super(c, "licenses");
    }
    /** Issues a licence; its `key` is in this answer only. */
    issue(body) {
        return this.c.json({ method: "POST", path: `${API}/licenses`, json: clean(body) });
    }
    action(id, action, json) {
        return this.c.json({ method: "POST", path: `${API}/licenses/${seg(id)}/${action}`, json });
    }
    suspend(id) {
        return this.action(id, "suspend");
    }
    reinstate(id) {
        return this.action(id, "reinstate");
    }
    revoke(id) {
        return this.action(id, "revoke");
    }
    renew(id, by = {}) {
        return this.action(id, "renew", clean(by));
    }
    machines(id, query = {}) {
        return this.c.json({ method: "GET", path: `${API}/licenses/${seg(id)}/machines`, query, retry: true });
    }
    removeMachine(id, machineId) {
        return this.c.json({ method: "DELETE", path: `${API}/licenses/${seg(id)}/machines/${seg(machineId)}`, retry: true });
    }
    /** The keys that verify certificates and signed answers (no API key needed). */
    publicKey() {
        return this.c.json({ method: "GET", path: `${API}/licenses/public-key`, retry: true });
    }
    validate(key, opts = {}) {
        return this.c.holder("validate", { key, ...opts });
    }
    activate(key, fingerprint, opts = {}) {
        return this.c.holder("activate", { key, fingerprint, ...opts });
    }
    heartbeat(key, fingerprint) {
        return this.c.holder("heartbeat", { key, fingerprint });
    }
    async deactivate(key, fingerprint) {
        const answer = await this.c.holder("deactivate", { key, fingerprint });
        return answer ?? { deactivated: true, fingerprint };
    }
    /** A signed certificate for offline use (`ttl` such as `7d`). */
    checkout(key, opts = {}) {
        return this.c.holder("checkout", { key, ...opts });
    }
}
async function accepted(c, path, body, idempotencyKey) {
    const response = await c.send({
        method: "POST",
        path,
        json: body,
        headers: { "Idempotency-Key": idempotencyKey ?? randomId() },
        retry: true,
    });
    return { ...(await response.json()), replayed: response.headers.get("idempotent-replayed") === "true" };
}
/** Email through the outbox. A retry with the same idempotency key never sends twice. */
export class Emails extends Section {
    send(message, opts = {}) {
        const to = typeof message.to === "string" ? [message.to] : message.to;
        return accepted(this.c, `${API}/emails`, clean({ ...message, to }), opts.idempotencyKey);
    }
    get(id) {
        return this.c.json({ method: "GET", path: `${API}/emails/${seg(id)}`, retry: true });
    }
    async raw(id) {
        return (await this.c.send({ method: "GET", path: `${API}/emails/${seg(id)}/raw`, retry: true })).text();
    }
    list(query = {}) {
        return this.c.json({ method: "GET", path: `${API}/emails`, query, retry: true });
    }
    iter(query = {}) {
        return this.c.paginate({ method: "GET", path: `${API}/emails`, query, retry: true });
    }
}
/** Slack alerts. */
export class Slack extends Section {
    post(message, opts = {}) {
        return accepted(this.c, `${API}/slack/messages`, clean(message), opts.idempotencyKey);
    }
    get(id) {
        return this.c.json({ method: "GET", path: `${API}/slack/messages/${seg(id)}`, retry: true });
    }
    async update(id, changes) {
        const answer = await this.c.json({ method: "PATCH", path: `${API}/slack/messages/${seg(id)}`, json: changes });
        return { ...answer, replayed: false };
    }
    /** The Block Kit the message would be posted as. */
    preview(message) {
        return this.c.json({ method: "POST", path: `${API}/slack/preview`, json: clean(message), retry: true });
    }
    list(query = {}) {
        return this.c.json({ method: "GET", path: `${API}/slack/messages`, query, retry: true });
    }
    iter(query = {}) {
        return this.c.paginate({ method: "GET", path: `${API}/slack/messages`, query, retry: true });
    }
}
/** Counts bytes through a stream. */
function counting(total, progress) {
    let done = 0;
    return new TransformStream({
        transform(chunk, controller) {
            done += chunk.byteLength;
            progress?.(done, total);
            controller.enqueue(chunk);
        },
    });
}
/** Shared storage; transfers stream, with progress. */
export class Blobs extends Section {
    path(ns, key) {
        return `${API}/blobs/${seg(ns)}/${keyPath(key)}`;
    }
    /**
     * Stores `source` (a Blob or File, bytes, a string or a stream) at `key`.
     * `ifNoneMatch: "*"` refuses to overwrite.
     */
    async upload(ns, key, source, opts = {}) {
        const { body, size, type } = toStream(source);
        const headers = { "Content-Type": opts.contentType ?? type ?? "application/octet-stream" };
        if (opts.ifMatch)
            headers["If-Match"] = opts.ifMatch;
        if (opts.ifNoneMatch)
            headers["If-None-Match"] = opts.ifNoneMatch;
        if (size !== undefined)
            headers["Content-Length"] = String(size);
        const stream = body.pipeThrough(counting(size, opts.progress));
        return this.c.json({ method: "PUT", path: this.path(ns, key), body: stream, headers, timeout: false });
    }
    /**
     * The object's body as a stream (with `progress`), and its headers. Read it with
     * `new Response(stream).arrayBuffer()`, or pipe it to a file.
     */
    async download(ns, key, opts = {}) {
        const response = await this.c.send({ method: "GET", path: this.path(ns, key), retry: true, timeout: false });
        const length = response.headers.get("content-length");
        const body = (response.body ?? new Response(new Uint8Array()).body).pipeThrough(counting(length ? Number(length) : undefined, opts.progress));
        return { body, headers: response.headers };
    }
    /** The object's bytes. */
    async bytes(ns, key) {
        const { body } = await this.download(ns, key);
        return new Uint8Array(await new Response(body).arrayBuffer());
    }
    async head(ns, key) {
        return (await this.c.send({ method: "HEAD", path: this.path(ns, key), retry: true })).headers;
    }
    delete(ns, key, opts = {}) {
        const headers = opts.ifMatch ? { "If-Match": opts.ifMatch } : {};
        return this.c.json({ method: "DELETE", path: this.path(ns, key), headers, retry: true });
    }
    async list(ns, query = {}) {
        const page = await this.c.json({
            method: "GET",
            path: `${API}/blobs/${seg(ns)}`,
            query,
            retry: true,
        });
        return { items: page.objects, common_prefixes: page.common_prefixes, next_cursor: page.next_cursor };
    }
    iter(ns, query = {}) {
        return this.c.paginate({ method: "GET", path: `${API}/blobs/${seg(ns)}`, query, retry: true });
    }
    /** A URL for one direct GET or PUT without an API key. */
    presign(ns, key, opts = {}) {
        return this.c.json({
            method: "POST",
            path: `${API}/blobs/${seg(ns)}/presign`,
            json: clean({ key, method: opts.method ?? "GET", ...opts }),
        });
    }
    /**
     * A browser upload straight to storage: a presigned PUT, then the file sent there
     * without passing the API key to the page's network requests for the bytes.
     */
    async uploadViaPresign(ns, key, file, opts = {}) {
        const contentType = file.type || "application/octet-stream";
        const signed = await this.presign(ns, key, { method: "PUT", content_length: file.size, content_type: contentType });
        const body = file.stream().pipeThrough(counting(file.size, opts.progress));
        const init = {
            method: "PUT",
            headers: { ...signed.headers, "Content-Type": contentType, "Content-Length": String(file.size) },
            body,
            duplex: "half",
        };
        const response = await fetch(signed.url, init);
        if (!response.ok)
            throw await problem(response);
    }
    /** A multipart upload in progress: `received` lists the parts the storage holds. */
    getUpload(ns, uploadId) {
        return this.c.json({ method: "GET", path: `${API}/blobs/${seg(ns)}/uploads/${seg(uploadId)}`, retry: true });
    }
    /** Aborts a multipart upload; its parts are dropped. */
    abortUpload(ns, uploadId) {
        return this.c.json({ method: "DELETE", path: `${API}/blobs/${seg(ns)}/uploads/${seg(uploadId)}`, retry: true });
    }
    /**
     * A large upload in parts, browser-friendly: each part (a slice of `file`, never the
     * whole file in memory) is `PUT` straight to its own URL (S3's presigned one, or the
     * gateway's signed one: no API key), then the upload is completed. `progress` is
     * called as parts finish. A failure carries `uploadId` on the error: call again with
     * the same file and `uploadId` to send only the parts the storage lacks.
     *
     * In Node each part's `ETag` is checked against its MD5; browsers have no MD5 in
     * WebCrypto, so there the part URLs' bound sizes and the declared `sha256` (which the
     * local store verifies on completion) protect the transfer. `concurrency` parts are
     * sent at once (default 4).
     */
    async uploadMultipart(ns, key, file, opts = {}) {
        const source = file instanceof globalThis.Blob ? file : new globalThis.Blob([file]);
        const contentType = opts.contentType ?? (file instanceof globalThis.Blob && file.type ? file.type : undefined);
        const upload = opts.uploadId
            ? await this.getUpload(ns, opts.uploadId)
            : await this.c.json({
                method: "POST",
                path: `${API}/blobs/${seg(ns)}/uploads`,
                json: clean({ key, size: source.size, content_type: contentType, sha256: opts.sha256, part_size: opts.partSize }),
            });
        if (upload.key !== key || upload.size !== source.size) {
            throw new Error(`upload ${upload.id} is of ${upload.key} (${upload.size} bytes), not ${key} (${source.size} bytes)`);
        }
        try {
            const md5 = await md5Hasher();
            const held = new Map(upload.received.map((p) => [p.number, p]));
            const etags = new Map();
            let done = 0;
            const queue = [...upload.parts];
            const worker = async () => {
                for (let part = queue.shift(); part; part = queue.shift()) {
                    const bytes = new Uint8Array(await source.slice(part.offset, part.offset + part.size).arrayBuffer());
                    const digest = md5 ? `"${md5(bytes)}"` : undefined;
                    const have = held.get(part.number);
                    if (have && have.size === part.size && (!digest || bare(have.etag) === bare(digest))) {
                        etags.set(part.number, have.etag);
                    }
                    else {
                        etags.set(part.number, await this.putPart(part, bytes, digest));
                    }
                    done += part.size;
                    opts.progress?.(done, source.size);
                }
            };
            await Promise.all(Array.from({ length: Math.max(1, opts.concurrency ?? 4) }, worker));
            return await this.c.json({
                method: "POST",
                path: `${API}/blobs/${seg(ns)}/uploads/${seg(upload.id)}/complete`,
                json: { parts: upload.parts.map((p) => ({ number: p.number, etag: etags.get(p.number) })) },
                // The answer comes once the object is assembled: no timeout.
                timeout: false,
            });
        }
        catch (e) {
            if (e && typeof e === "object")
                e.uploadId = upload.id;
            throw e;
        }
    }
    /** One part to its URL (tried again on a network failure); its ETag. */
    async putPart(part, bytes, md5) {
        for (let attempt = 0;; attempt++) {
            let response;
            try {
                response = await fetch(part.url, { method: part.method, headers: part.headers ?? {}, body: bytes });
            }
            catch (e) {
                if (attempt >= 3)
                    throw new TransportError(`part ${part.number}: ${String(e)}`);
                await new Promise((r) => setTimeout(r, 500 * 2 ** attempt));
                continue;
            }
            if (!response.ok)
                throw await problem(response);
            const etag = response.headers.get("etag") ?? "";
            if (md5 && bare(etag) !== bare(md5)) {
                throw new TransportError(`part ${part.number} arrived damaged: its ETag is ${etag}, its MD5 ${md5}`);
            }
            return etag;
        }
    }
}
function bare(etag) {
    return etag.trim().replace(/^"|"$/g, "");
}
/** Node's MD5 (hex) when running in Node; `undefined` in browsers (WebCrypto has none). */
async function md5Hasher() {
    const proc = globalThis.process;
    if (!proc?.versions?.node)
        return undefined;
    try {
        const name = "node:crypto";
        const crypto = (await import(/* @vite-ignore */ /* webpackIgnore: true */ name));
        return (bytes) => crypto.createHash("md5").update(bytes).digest("hex");
    }
    catch {
        return undefined;
    }
}
function toStream(source) {
    if (source instanceof ReadableStream)
        return { body: source };
    if (typeof source === "string" || source instanceof ArrayBuffer || source instanceof Uint8Array) {
        const bytes = typeof source === "string" ? new TextEncoder().encode(source) : source instanceof ArrayBuffer ? new Uint8Array(source) : source;
        const chunk = 1 << 20;
        let offset = 0;
        const body = new ReadableStream({
            pull(controller) {
                if (offset >= bytes.length)
                    return controller.close();
                controller.enqueue(bytes.subarray(offset, offset + chunk));
                offset += chunk;
            },
        });
        return { body, size: bytes.length };
    }
    return { body: source.stream(), size: source.size, type: source.type || undefined };
}
/** Shared JSON documents; pass a document's `version` as `ifMatch`. */
export class Data extends Section {
    path(collection, id) {
        return `${API}/data/${seg(collection)}/${seg(id)}`;
    }
    get(collection, id) {
        return this.c.json({ method: "GET", path: this.path(collection, id), retry: true });
    }
    put(collection, id, data, opts = {}) {
        return this.c.json({ method: "PUT", path: this.path(collection, id), json: data, headers: conditions(opts) });
    }
    /** A JSON Merge Patch (RFC 7396): `null` removes a member. */
    patch(collection, id, patch, opts = {}) {
        return this.c.json({
            method: "PATCH",
            path: this.path(collection, id),
            body: JSON.stringify(patch),
            headers: { "Content-Type": "application/merge-patch+json", ...conditions(opts) },
        });
    }
    delete(collection, id, opts = {}) {
        return this.c.json({ method: "DELETE", path: this.path(collection, id), headers: conditions(opts), retry: true });
    }
    list(collection, query = {}) {
        return this.c.json({ method: "GET", path: `${API}/data/${seg(collection)}`, query, retry: true });
    }
}
function conditions(opts) {
    const headers = {};
    if (opts.ifMatch !== undefined)
        headers["If-Match"] = `"${opts.ifMatch}"`;
    if (opts.ifNoneMatch)
        headers["If-None-Match"] = opts.ifNoneMatch;
    return headers;
}
/** The audit trail, and its live tail. */
export class Events extends Section {
    list(query = {}) {
        return this.c.json({ method: "GET", path: `${API}/events`, query, retry: true });
    }
    iter(query = {}) {
        return this.c.paginate({ method: "GET", path: `${API}/events`, query, retry: true });
    }
    /**
     * The live tail (Server-Sent Events). It reconnects after a drop and resumes after the
     * last event seen; stop it with `signal` or by leaving the `for await`.
     */
    async *stream(query = {}, opts = {}) {
        let last = opts.lastEventId;
        for (let attempt = 0; !opts.signal?.aborted; attempt++) {
            try {
                const headers = { Accept: "text/event-stream" };
                if (last)
                    headers["Last-Event-ID"] = last;
                const response = await this.c.send({ method: "GET", path: `${API}/events/stream`, query, headers, timeout: false });
                attempt = 0;
                const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
                const onAbort = () => reader.cancel().catch(() => undefined);
                opts.signal?.addEventListener("abort", onAbort, { once: true });
                let buffer = "";
                let data = [];
                let id;
                try {
                    for (;;) {
                        const { value, done } = await reader.read();
                        if (done)
                            break;
                        buffer += value;
                        let nl;
                        while ((nl = buffer.indexOf("\n")) >= 0) {
                            const line = buffer.slice(0, nl).replace(/\r$/, "");
                            buffer = buffer.slice(nl + 1);
                            if (line === "") {
                                if (data.length) {
                                    if (id)
                                        last = id;
                                    yield JSON.parse(data.join("\n"));
                                }
                                data = [];
                                id = undefined;
                            }
                            else if (!line.startsWith(":")) {
                                const colon = line.indexOf(":");
                                const name = colon < 0 ? line : line.slice(0, colon);
                                const field = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
                                if (name === "data")
                                    data.push(field);
                                else if (name === "id")
                                    id = field;
                            }
                        }
                    }
                }
                finally {
                    opts.signal?.removeEventListener("abort", onAbort);
                    reader.cancel().catch(() => undefined);
                }
            }
            catch (e) {
                if (e instanceof ProblemError || opts.signal?.aborted || attempt >= 3) {
                    if (opts.signal?.aborted)
                        return;
                    throw e;
                }
            }
            await sleep(backoff(attempt));
        }
    }
}
/** API keys. */
export class ApiKeys extends Section {
    create(body) {
        return this.c.json({ method: "POST", path: `${API}/api-keys`, json: clean(body) });
    }
    get(id) {
        return this.c.json({ method: "GET", path: `${API}/api-keys/${seg(id)}`, retry: true });
    }
    revoke(id) {
        return this.c.json({ method: "DELETE", path: `${API}/api-keys/${seg(id)}`, retry: true });
    }
    list(query = {}) {
        return this.c.json({ method: "GET", path: `${API}/api-keys`, query, retry: true });
    }
}
