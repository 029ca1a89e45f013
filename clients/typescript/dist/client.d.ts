/**
 * The client: one `fetch`-based implementation for browsers and Node 20. Requests that
 * are safe to repeat are retried on network failures and 429/502/503/504, after the
 * gateway's `Retry-After` when it gives one.
 */
import type { Accepted, ApiKey, AuditEvent, Blob, Checkout, CreatedApiKey, DataDocument, Deactivated, Email, IssuedLicense, License, Machine, MultipartUpload, Page, PostMessage, Presigned, Product, PublicKey, Query, SendEmail, SlackMessage, Validation } from "./models.js";
import type { Verifier } from "./verify.js";
export interface ClientOptions {
    /** The gateway, such as `https://bridge.example.com`. */
    url: string;
    /** An API key (`eb_...`); a program making only licence-holder calls needs none. */
    key?: string;
    /** Checks every licence-holder answer's `EB-Signature` and a fresh nonce. */
    verifier?: Verifier;
    /** Tries after the first, for requests that are safe to repeat (default 3). */
    maxRetries?: number;
    /** Per request, in milliseconds (default 30 s; transfers and the tail have none). */
    timeoutMs?: number;
    /** Another `fetch` (tests, proxies). */
    fetch?: typeof fetch;
}
/** Bytes moved so far and the total when known. */
export type Progress = (done: number, total: number | undefined) => void;
interface Call {
    method: string;
    path: string;
    query?: Query;
    json?: unknown;
    body?: BodyInit;
    headers?: Record<string, string>;
    /** A licence-holder call: no API key, the answer signed. */
    holder?: boolean;
    nonce?: string;
    retry?: boolean;
    timeout?: boolean;
}
export declare class Client {
    readonly url: string;
    readonly verifier?: Verifier;
    private readonly key?;
    private readonly maxRetries;
    private readonly timeoutMs;
    private readonly fetch;
    readonly licenses: Licenses;
    readonly policies: Crud<Record<string, unknown>>;
    readonly emails: Emails;
    readonly slack: Slack;
    readonly blobs: Blobs;
    readonly data: Data;
    readonly events: Events;
    readonly apiKeys: ApiKeys;
    constructor(options: ClientOptions);
    /** Sends a call; `response` is returned unread when it succeeded. */
    send(call: Call): Promise<Response>;
    /** Sends a call and reads its JSON answer. */
    json<T>(call: Call): Promise<T>;
    /** Every item of a list, page after page. */
    paginate<T>(call: Call): AsyncGenerator<T>;
    /** Sends a holder call with a fresh nonce when verifying. */
    holder<T>(action: string, body: Record<string, unknown>): Promise<T>;
}
declare class Section {
    protected readonly c: Client;
    constructor(c: Client);
}
declare class Crud<T> extends Section {
    private readonly base;
    constructor(c: Client, base: string);
    create(body: Record<string, unknown>): Promise<T>;
    get(id: string): Promise<T>;
    update(id: string, changes: Record<string, unknown>): Promise<T>;
    delete(id: string): Promise<void>;
    list(query?: Query): Promise<Page<T>>;
    iter(query?: Query): AsyncGenerator<T>;
}
export interface IssueLicense {
    product: Product;
    name: string;
    owner_email: string;
    duration?: string;
    expires_at?: string;
    max_machines?: number;
    entitlements?: string[];
    metadata?: Record<string, unknown>;
    policy_id?: string;
    [term: string]: unknown;
}
/** Licences: administration, and the holder calls authenticated by the licence key. */
export declare class Licenses extends Crud<License> {
    constructor(c: Client);
    /** Issues a licence; its `key` is in this answer only. */
    issue(body: IssueLicense): Promise<IssuedLicense>;
    private action;
    suspend(id: string): Promise<License>;
    reinstate(id: string): Promise<License>;
    revoke(id: string): Promise<License>;
    renew(id: string, by?: {
        duration?: string;
        expires_at?: string;
    }): Promise<License>;
    machines(id: string, query?: Query): Promise<Page<Machine>>;
    removeMachine(id: string, machineId: string): Promise<void>;
    /** The keys that verify certificates and signed answers (no API key needed). */
    publicKey(): Promise<PublicKey>;
    validate(key: string, opts?: {
        fingerprint?: string;
        product?: Product;
        entitlements?: string[];
    }): Promise<Validation>;
    activate(key: string, fingerprint: string, opts?: {
        name?: string;
        platform?: string;
        hostname?: string;
    }): Promise<Machine>;
    heartbeat(key: string, fingerprint: string): Promise<Machine>;
    deactivate(key: string, fingerprint: string): Promise<Deactivated>;
    /** A signed certificate for offline use (`ttl` such as `7d`). */
    checkout(key: string, opts?: {
        fingerprint?: string;
        ttl?: string;
    }): Promise<Checkout>;
}
/** Email through the outbox. A retry with the same idempotency key never sends twice. */
export declare class Emails extends Section {
    send(message: SendEmail, opts?: {
        idempotencyKey?: string;
    }): Promise<Accepted>;
    get(id: string): Promise<Email>;
    raw(id: string): Promise<string>;
    list(query?: Query): Promise<Page<Email>>;
    iter(query?: Query): AsyncGenerator<Email>;
}
/** Slack alerts. */
export declare class Slack extends Section {
    post(message: PostMessage, opts?: {
        idempotencyKey?: string;
    }): Promise<Accepted>;
    get(id: string): Promise<SlackMessage>;
    update(id: string, changes: Partial<PostMessage>): Promise<Accepted>;
    /** The Block Kit the message would be posted as. */
    preview(message: PostMessage): Promise<Record<string, unknown>>;
    list(query?: Query): Promise<Page<SlackMessage>>;
    iter(query?: Query): AsyncGenerator<SlackMessage>;
}
export type UploadSource = Blob_ | ArrayBuffer | Uint8Array | ReadableStream<Uint8Array> | string;
type Blob_ = globalThis.Blob;
/** Shared storage; transfers stream, with progress. */
export declare class Blobs extends Section {
    private path;
    /**
     * Stores `source` (a Blob or File, bytes, a string or a stream) at `key`.
     * `ifNoneMatch: "*"` refuses to overwrite.
     */
    upload(ns: string, key: string, source: UploadSource, opts?: {
        contentType?: string;
        ifMatch?: string;
        ifNoneMatch?: string;
        progress?: Progress;
    }): Promise<Blob>;
    /**
     * The object's body as a stream (with `progress`), and its headers. Read it with
     * `new Response(stream).arrayBuffer()`, or pipe it to a file.
     */
    download(ns: string, key: string, opts?: {
        progress?: Progress;
    }): Promise<{
        body: ReadableStream<Uint8Array>;
        headers: Headers;
    }>;
    /** The object's bytes. */
    bytes(ns: string, key: string): Promise<Uint8Array>;
    head(ns: string, key: string): Promise<Headers>;
    delete(ns: string, key: string, opts?: {
        ifMatch?: string;
    }): Promise<void>;
    list(ns: string, query?: Query): Promise<Page<Blob>>;
    iter(ns: string, query?: Query): AsyncGenerator<Blob>;
    /** A URL for one direct GET or PUT without an API key. */
    presign(ns: string, key: string, opts?: {
        method?: "GET" | "PUT";
        expires_in?: number;
        content_length?: number;
        content_type?: string;
    }): Promise<Presigned>;
    /**
     * A browser upload straight to storage: a presigned PUT, then the file sent there
     * without passing the API key to the page's network requests for the bytes.
     */
    uploadViaPresign(ns: string, key: string, file: Blob_, opts?: {
        progress?: Progress;
    }): Promise<void>;
    /** A multipart upload in progress: `received` lists the parts the storage holds. */
    getUpload(ns: string, uploadId: string): Promise<MultipartUpload>;
    /** Aborts a multipart upload; its parts are dropped. */
    abortUpload(ns: string, uploadId: string): Promise<void>;
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
    uploadMultipart(ns: string, key: string, file: Blob_ | Uint8Array | ArrayBuffer, opts?: {
        contentType?: string;
        partSize?: number;
        sha256?: string;
        uploadId?: string;
        concurrency?: number;
        progress?: Progress;
    }): Promise<Blob>;
    /** One part to its URL (tried again on a network failure); its ETag. */
    private putPart;
}
/** Shared JSON documents; pass a document's `version` as `ifMatch`. */
export declare class Data extends Section {
    private path;
    get<T = Record<string, unknown>>(collection: string, id: string): Promise<DataDocument<T>>;
    put<T = Record<string, unknown>>(collection: string, id: string, data: T, opts?: {
        ifMatch?: number;
        ifNoneMatch?: "*";
    }): Promise<DataDocument<T>>;
    /** A JSON Merge Patch (RFC 7396): `null` removes a member. */
    patch<T = Record<string, unknown>>(collection: string, id: string, patch: Record<string, unknown>, opts?: {
        ifMatch?: number;
    }): Promise<DataDocument<T>>;
    delete(collection: string, id: string, opts?: {
        ifMatch?: number;
    }): Promise<void>;
    list<T = Record<string, unknown>>(collection: string, query?: Query): Promise<Page<DataDocument<T>>>;
}
/** The audit trail, and its live tail. */
export declare class Events extends Section {
    list(query?: Query): Promise<Page<AuditEvent>>;
    iter(query?: Query): AsyncGenerator<AuditEvent>;
    /**
     * The live tail (Server-Sent Events). It reconnects after a drop and resumes after the
     * last event seen; stop it with `signal` or by leaving the `for await`.
     */
    stream(query?: Query, opts?: {
        lastEventId?: string;
        signal?: AbortSignal;
    }): AsyncGenerator<AuditEvent>;
}
/** API keys. */
export declare class ApiKeys extends Section {
    create(body: {
        name: string;
        scopes: string[];
        expires_at?: string;
    }): Promise<CreatedApiKey>;
    get(id: string): Promise<ApiKey>;
    revoke(id: string): Promise<ApiKey>;
    list(query?: Query): Promise<Page<ApiKey>>;
}
export {};
