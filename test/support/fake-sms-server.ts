import { randomBytes } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

/**
 * A Twilio-style SMS API on 127.0.0.1 for tests: `POST
 * /2010-04-01/Accounts/{sid}/Messages.json` with basic auth and a form body.
 * Like a real provider it honours `Idempotency-Key`: a key it already accepted
 * is answered with the first sid and not delivered again (counted in
 * `replays`). `respond` decides each answer: accept (optionally slowly),
 * an HTTP error (429/500/400 with Retry-After), or a dropped connection.
 */
export type FakeAnswer =
  | { kind: "accept"; delayMs?: number }
  | { kind: "status"; status: number; message?: string; retryAfter?: string; delayMs?: number }
  | { kind: "drop" };

export interface FakeSmsRequest {
  idempotencyKey: string | undefined;
  to: string;
  from: string;
  body: string;
  /** When the request arrived (epoch ms), for rate checks. */
  receivedAtMs: number;
}

export interface Delivery extends FakeSmsRequest {
  sid: string;
}

export interface FakeSmsServer {
  url: string;
  accountSid: string;
  authToken: string;
  /** Every well-authenticated request, in arrival order. */
  requests: FakeSmsRequest[];
  /** Messages actually delivered: one per accepted idempotency key. */
  deliveries: Delivery[];
  /** Requests answered from the idempotency record instead of delivering again. */
  replays: number;
  /** Decides the answer to each new (not replayed) request; `n` counts requests from 1. */
  respond: (request: FakeSmsRequest, n: number) => FakeAnswer;
  close(): Promise<void>;
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = "";
    req.setEncoding("utf8");
    req.on("data", (chunk: string) => {
      text += chunk;
    });
    req.on("end", () => resolve(text));
    req.on("error", reject);
  });
}

export async function startFakeSmsServer(): Promise<FakeSmsServer> {
  const accountSid = `AC${randomBytes(16).toString("hex")}`;
  const authToken = randomBytes(16).toString("hex");
  const expectedAuth = `Basic ${Buffer.from(`${accountSid}:${authToken}`).toString("base64")}`;
  const acceptedByKey = new Map<string, string>();
  let count = 0;

  const state: FakeSmsServer = {
    url: "",
    accountSid,
    authToken,
    requests: [],
    deliveries: [],
    replays: 0,
    respond: () => ({ kind: "accept" }),
    close: async () => undefined,
  };

  const send = (res: ServerResponse, status: number, json: unknown, headers: Record<string, string> = {}) => {
    res.writeHead(status, { "content-type": "application/json", ...headers });
    res.end(JSON.stringify(json));
  };

  const server: Server = createServer(async (req, res) => {
    if (req.method !== "POST" || req.url !== `/2010-04-01/Accounts/${accountSid}/Messages.json`) return send(res, 404, { code: 20404, message: "not found" });
    if (req.headers.authorization !== expectedAuth) return send(res, 401, { code: 20003, message: "Authenticate" });
    const receivedAtMs = Date.now();
    const form = new URLSearchParams(await readBody(req));
    const request: FakeSmsRequest = {
      receivedAtMs,
      idempotencyKey: req.headers["idempotency-key"] as string | undefined,
      to: form.get("To") ?? "",
      from: form.get("From") ?? "",
      body: form.get("Body") ?? "",
    };
    state.requests.push(request);
    const previous = request.idempotencyKey ? acceptedByKey.get(request.idempotencyKey) : undefined;
    if (previous) {
      state.replays++;
      return send(res, 201, { sid: previous, status: "queued" });
    }
    const answer = state.respond(request, ++count);
    if (answer.kind === "drop") {
      req.socket.destroy();
      return;
    }
    if (answer.kind === "status") {
      if (answer.delayMs) await new Promise((resolve) => setTimeout(resolve, answer.delayMs));
      return send(
        res,
        answer.status,
        { code: answer.status * 100, message: answer.message ?? `error ${answer.status}` },
        answer.retryAfter ? { "retry-after": answer.retryAfter } : {},
      );
    }
    // Accepted: delivered now, even if the answer then comes too late for the client.
    const sid = `SM${randomBytes(16).toString("hex")}`;
    if (request.idempotencyKey) acceptedByKey.set(request.idempotencyKey, sid);
    state.deliveries.push({ ...request, sid });
    if (answer.delayMs) await new Promise((resolve) => setTimeout(resolve, answer.delayMs));
    if (!res.destroyed) send(res, 201, { sid, status: "queued" });
  });

  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  state.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  state.close = () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return state;
}

/** The environment that points a bulk-messaging worker's HTTP provider at `sms`. */
export function smsProviderEnv(sms: FakeSmsServer, extra: Record<string, string> = {}): Record<string, string> {
  return {
    MESSAGING_PROVIDER: "http",
    MESSAGING_HTTP_BASE_URL: sms.url,
    MESSAGING_HTTP_ACCOUNT_SID: sms.accountSid,
    MESSAGING_HTTP_AUTH_TOKEN: sms.authToken,
    MESSAGING_HTTP_FROM: "+15550000000",
    ...extra,
  };
}
