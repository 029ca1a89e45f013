/**
 * Offline verification with WebCrypto's Ed25519 (browsers, Node 20): signed licence
 * certificates (`ebl1.<kid>.<payload>.<signature>`) and signed licence-holder answers
 * (the `EB-Signature` header). The same rules as the gateway's Rust verifier.
 */
import { SignatureError } from "./errors.js";
const SKEW_MS = 300_000;
function base64url(text, what) {
    if (!/^[A-Za-z0-9_-]*$/.test(text))
        throw new SignatureError("malformed", `${what} is not base64url`);
    const padded = text.replace(/-/g, "+").replace(/_/g, "/") + "=".repeat((4 - (text.length % 4)) % 4);
    try {
        const binary = atob(padded);
        return Uint8Array.from(binary, (c) => c.charCodeAt(0));
    }
    catch {
        throw new SignatureError("malformed", `${what} is not base64url`);
    }
}
/** Trusts the gateway's published keys: `{kid: base64url key}` or a list of keys. */
export class Verifier {
    keys = new Map();
    constructor(keys) {
        const pairs = Array.isArray(keys)
            ? keys.map((k) => [k.kid, k.public_key])
            : "keys" in keys && Array.isArray(keys.keys)
                ? keys.keys.map((k) => [k.kid, k.public_key])
                : Object.entries(keys);
        for (const [kid, key] of pairs) {
            const raw = base64url(key.trim(), "public key");
            this.keys.set(kid, raw.length === 32
                ? crypto.subtle.importKey("raw", raw, { name: "Ed25519" }, false, ["verify"]).catch(() => null)
                : Promise.resolve(null));
        }
    }
    async check(kid, signed, signature) {
        const key = this.keys.get(kid);
        if (!key)
            throw new SignatureError("unknown_key", `unknown signing key \`${kid}\``);
        const sig = base64url(signature, "signature");
        const k = await key;
        if (!k || sig.length !== 64 || !(await crypto.subtle.verify({ name: "Ed25519" }, k, sig, signed))) {
            throw new SignatureError("bad_signature", "bad signature");
        }
    }
    /** Checks the signature and returns the payload; does not look at times. */
    async verifySignature(certificate) {
        const cert = certificate.trim();
        const dot = cert.lastIndexOf(".");
        if (dot < 0)
            throw new SignatureError("malformed", "no signature");
        const signed = cert.slice(0, dot);
        const parts = signed.split(".");
        if (parts.length !== 3)
            throw new SignatureError("malformed", "expected ebl1.<kid>.<payload>.<signature>");
        const [format, kid, payload] = parts;
        if (format !== "ebl1")
            throw new SignatureError("malformed", "unknown certificate format");
        await this.check(kid, new TextEncoder().encode(signed), cert.slice(dot + 1));
        try {
            const data = JSON.parse(new TextDecoder().decode(base64url(payload, "payload")));
            if (typeof data !== "object" || data === null)
                throw new Error();
            return data;
        }
        catch {
            throw new SignatureError("malformed", "payload is not the expected JSON");
        }
    }
    /**
     * The full offline check: signature, validity window, licence expiry (with its grace
     * period, or `maintained`), product, machine and entitlements, in that order.
     */
    async verify(certificate, expect = {}) {
        const p = await this.verifySignature(certificate);
        const now = (expect.now ?? new Date()).getTime();
        const time = (t) => (t == null ? undefined : Date.parse(t));
        const issued = time(p.issued_at);
        const expires = time(p.expires_at);
        if (issued === undefined || expires === undefined || Number.isNaN(issued) || Number.isNaN(expires)) {
            throw new SignatureError("malformed", "payload is not the expected JSON");
        }
        if (issued > now + SKEW_MS)
            throw new SignatureError("not_yet_valid", "the certificate is not valid yet");
        if (expires <= now)
            throw new SignatureError("certificate_expired", "the certificate has expired");
        const licenceExpires = time(p.license_expires_at);
        const graceEnds = time(p.grace_ends_at);
        if (licenceExpires !== undefined && licenceExpires <= now && !p.maintained && (graceEnds === undefined || now >= graceEnds)) {
            throw new SignatureError("license_expired", "the licence has expired");
        }
        if (expect.product !== undefined && p.product !== expect.product) {
            throw new SignatureError("product_mismatch", `the certificate is for product \`${p.product}\``);
        }
        if (expect.fingerprint !== undefined && p.fingerprint !== expect.fingerprint) {
            throw new SignatureError("fingerprint_mismatch", "the certificate is bound to another machine");
        }
        const missing = (expect.entitlements ?? []).filter((e) => !(p.entitlements ?? []).includes(e));
        if (missing.length)
            throw new SignatureError("entitlements_missing", `missing entitlements: ${missing.join(", ")}`);
        return p;
    }
    /**
     * Checks a holder answer: `EB-Signature` must be a trusted key's signature over exactly
     * `body`, and the body must echo the request's `nonce`. Returns the body's JSON.
     */
    async verifyResponse(body, header, nonce) {
        const fields = new Map();
        for (const part of (header ?? "").split(";")) {
            const eq = part.indexOf("=");
            if (eq > 0)
                fields.set(part.slice(0, eq).trim(), part.slice(eq + 1).trim());
        }
        const kid = fields.get("kid");
        const sig = fields.get("sig");
        if (!kid || !sig)
            throw new SignatureError("malformed", "expected kid=<kid>; sig=<signature>");
        await this.check(kid, body, sig);
        let data = null;
        if (body.length) {
            try {
                data = JSON.parse(new TextDecoder().decode(body));
            }
            catch {
                throw new SignatureError("malformed", "the body is not JSON");
            }
        }
        if (nonce !== undefined && (typeof data !== "object" || data === null || data.nonce !== nonce)) {
            throw new SignatureError("nonce_mismatch", "the answer does not echo this request's nonce");
        }
        return data;
    }
}
