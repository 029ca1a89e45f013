/** The API's answers, as JSON (times are RFC 3339 strings in UTC). */

export type Product = "client" | "platform";

export interface License {
  id: string;
  product: Product;
  name: string;
  owner_email: string;
  status: "active" | "suspended" | "revoked" | "expired";
  key_prefix: string;
  created_at: string;
  updated_at: string;
  expires_at?: string | null;
  machines_count: number;
  max_machines?: number | null;
  entitlements: string[];
  metadata: Record<string, unknown>;
  policy_id?: string | null;
  require_machine: boolean;
  heartbeat_interval_secs?: number | null;
  grace_period?: string | null;
  grace_ends_at?: string | null;
  expiry_strategy: string;
  expiry_basis: string;
  last_validated_at?: string | null;
}

/** A licence just issued: `key` is shown this once. */
export interface IssuedLicense extends License {
  key: string;
}

export interface Machine {
  id: string;
  license_id: string;
  fingerprint: string;
  name?: string | null;
  platform?: string | null;
  hostname?: string | null;
  created_at: string;
  last_heartbeat_at?: string | null;
  nonce?: string | null;
}

/** `valid` is true for `valid`, `grace_period` and `expired_maintained`. */
export interface Validation {
  valid: boolean;
  code: string;
  detail: string;
  license?: License | null;
  grace_ends_at?: string | null;
  nonce?: string | null;
}

export interface Checkout {
  certificate: string;
  kid: string;
  payload: Record<string, unknown>;
  nonce?: string | null;
}

export interface Deactivated {
  deactivated: boolean;
  fingerprint: string;
  nonce?: string | null;
}

export interface PublicKey {
  kid: string;
  algorithm: string;
  public_key: string;
  public_key_pem: string;
  keys: { kid: string; algorithm: string; public_key: string; public_key_pem: string }[];
}

export interface Accepted {
  id: string;
  status: string;
  /** The gateway answered from an earlier request with the same idempotency key. */
  replayed: boolean;
}

export interface Email {
  id: string;
  status: string;
  from: string;
  to: string[];
  cc: string[];
  bcc: string[];
  subject?: string | null;
  tags: Record<string, string>;
  suppressed: string[];
  provider_ids: string[];
  error?: string | null;
  history?: { type: string; at: string; data: Record<string, unknown> }[];
  size: number;
  created_at: string;
  updated_at: string;
}

export interface SendEmail {
  to: string | string[];
  from?: string;
  cc?: string[];
  bcc?: string[];
  reply_to?: string[];
  subject?: string;
  text?: string;
  html?: string;
  template?: { name: string; variables?: Record<string, unknown> };
  attachments?: { filename: string; content_base64: string; content_type?: string; content_id?: string }[];
  tags?: Record<string, string>;
  headers?: Record<string, string>;
}

export interface SlackMessage {
  id: string;
  channel: string;
  level: string;
  title: string;
  status: string;
  ts?: string | null;
  thread_ts?: string | null;
  error?: string | null;
  created_at: string;
  updated_at: string;
}

export interface PostMessage {
  level: "debug" | "info" | "success" | "warning" | "error" | "critical";
  title: string;
  text?: string;
  channel?: string;
  fields?: { title: string; value: string }[];
  links?: { text: string; url: string }[];
  thread_of?: string;
  source?: string;
  environment?: string;
  mention?: string;
}

export interface Blob {
  namespace: string;
  key: string;
  size: number;
  etag: string;
  content_type: string;
  sha256?: string | null;
  last_modified: string;
}

/** Where to send one part of a multipart upload. */
export interface UploadPartUrl {
  number: number;
  offset: number;
  size: number;
  url: string;
  method: string;
  headers?: Record<string, string>;
}

/** A multipart upload in progress. */
export interface MultipartUpload {
  id: string;
  namespace: string;
  key: string;
  size: number;
  part_size: number;
  content_type: string;
  sha256?: string;
  created_at: string;
  expires_at: string;
  parts: UploadPartUrl[];
  /** The parts the storage holds (with their ETags). */
  received: { number: number; etag: string; size: number }[];
}

export interface Presigned {
  url: string;
  method: string;
  headers: Record<string, string>;
  expires_at: string;
}

/** A shared JSON document; `version` is its ETag. */
export interface DataDocument<T = Record<string, unknown>> {
  id: string;
  version: number;
  data: T;
  created_at: string;
  updated_at: string;
}

export interface AuditEvent {
  id: string;
  type: string;
  subject?: string | null;
  actor?: string | null;
  occurred_at: string;
  data: Record<string, unknown>;
}

export interface ApiKey {
  id: string;
  name: string;
  prefix: string;
  scopes: string[];
  status: string;
  created_at: string;
  expires_at?: string | null;
  last_used_at?: string | null;
  revoked_at?: string | null;
}

export interface CreatedApiKey extends ApiKey {
  key: string;
}

/** One page: pass `next_cursor` as `cursor` for the next (absent on the last). */
export interface Page<T> {
  items: T[];
  next_cursor?: string | null;
  /** Folders, for storage listings with `delimiter: "/"`. */
  common_prefixes?: string[];
}

export type Query = Record<string, string | number | boolean | undefined | null>;
