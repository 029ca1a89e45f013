/**
 * Offline verification with WebCrypto's Ed25519 (browsers, Node 20): signed licence
 * certificates (`ebl1.<kid>.<payload>.<signature>`) and signed licence-holder answers
 * (the `EB-Signature` header). The same rules as the gateway's Rust verifier.
 */
/** What a certificate states. */
export interface CertificatePayload {
    license_id: string;
    product: string;
    name: string;
    entitlements: string[];
    license_expires_at: string | null;
    fingerprint: string | null;
    issued_at: string;
    expires_at: string;
    grace_ends_at?: string;
    maintained?: boolean;
}
/** One published key, as `GET /api/v1/licenses/public-key` lists them. */
export interface PublishedKey {
    kid: string;
    public_key: string;
}
/** Trusts the gateway's published keys: `{kid: base64url key}` or a list of keys. */
export declare class Verifier {
    private readonly keys;
    constructor(keys: Record<string, string> | PublishedKey[] | {
        keys: PublishedKey[];
    });
    private check;
    /** Checks the signature and returns the payload; does not look at times. */
    verifySignature(certificate: string): Promise<CertificatePayload>;
    /**
     * The full offline check: signature, validity window, licence expiry (with its grace
     * period, or `maintained`), product, machine and entitlements, in that order.
     */
    verify(certificate: string, expect?: {
        product?: string;
        fingerprint?: string;
        entitlements?: string[];
        now?: Date;
    }): Promise<CertificatePayload>;
    /**
     * Checks a holder answer: `EB-Signature` must be a trusted key's signature over exactly
     * `body`, and the body must echo the request's `nonce`. Returns the body's JSON.
     */
    verifyResponse(body: Uint8Array, header: string | null, nonce?: string): Promise<unknown>;
}
