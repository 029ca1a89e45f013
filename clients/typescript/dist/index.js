/**
 * Event Bridge for TypeScript (browsers and Node 20): licences, email, Slack, storage,
 * shared data and events.
 *
 * ```ts
 * import { Client } from "@event-bridge/client";
 * const eb = new Client({ url: "https://bridge.example.com", key: "eb_..." });
 * await eb.emails.send({ to: "someone@example.com", subject: "Hi", text: "Hello" });
 * ```
 */
export { Client, Licenses, Emails, Slack, Blobs, Data, Events, ApiKeys } from "./client.js";
export { EventBridgeError, ProblemError, SignatureError, TransportError } from "./errors.js";
export { Verifier } from "./verify.js";
