/** Every refusal of the API is an RFC 9457 problem document, thrown as a ProblemError. */

export interface Problem {
  type?: string;
  title?: string;
  status?: number;
  detail?: string;
  code?: string;
  field?: string;
  request_id?: string;
  [extra: string]: unknown;
}

/** Anything this client throws. */
export class EventBridgeError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** The gateway could not be reached, or the connection broke (after the retries). */
export class TransportError extends EventBridgeError {}

/** A signed licence answer or an offline certificate did not verify. */
export class SignatureError extends EventBridgeError {
  /**
   * `malformed`, `unknown_key`, `bad_signature`, `not_yet_valid`, `certificate_expired`,
   * `license_expired`, `product_mismatch`, `fingerprint_mismatch`, `entitlements_missing`
   * or `nonce_mismatch`.
   */
  readonly reason: string;
  constructor(reason: string, message: string) {
    super(`${reason}: ${message}`);
    this.reason = reason;
  }
}

/**
 * The gateway answered with a problem: `code` is the stable reason (`not_found`,
 * `too_many_machines`, `idempotency_conflict`...), `field` the refused field of a 422,
 * `retryAfter` the seconds a 429 or 503 asks you to wait.
 */
export class ProblemError extends EventBridgeError {
  readonly status: number;
  readonly code: string;
  readonly detail: string;
  readonly field?: string;
  readonly requestId?: string;
  readonly retryAfter?: number;
  readonly problem: Problem;

  constructor(status: number, problem: Problem, headers?: Headers) {
    const code = String(problem.code ?? problem.title ?? status);
    super(`${status} ${code}: ${problem.detail ?? problem.title ?? ""}`);
    this.status = status;
    this.problem = problem;
    this.code = code;
    this.detail = String(problem.detail ?? "");
    this.field = problem.field;
    this.requestId = problem.request_id ?? headers?.get("x-request-id") ?? undefined;
    const retry = headers?.get("retry-after");
    this.retryAfter = retry && /^\d+$/.test(retry) ? Number(retry) : undefined;
  }
}
