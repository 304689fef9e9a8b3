// Keel's backend, driven by the official Convex JavaScript clients (convex@1.48.0).
//
// Run by apps/posts/tests/convex_js_clients.rs (inside `scripts/test`), which sets KEEL_BIN to the `keel`
// binary. This script starts `keel idp` and `keel backend` as child processes on 127.0.0.1,
// creates a user and a session through the idp's Clerk-style Backend API, and then uses
// ConvexHttpClient and ConvexClient exactly as an app would.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { ConvexHttpClient, ConvexClient } from "convex/browser";
import { makeFunctionReference } from "convex/server";
import { ConvexError } from "convex/values";
import WebSocket from "ws";
import { startService, waitFor, mkTempDir } from "./keel-processes.mjs";

const q = (name) => makeFunctionReference(name);
const TOKEN_TTL_SECONDS = 5;

let idp, backend, dataDir, sessionId, userId;

async function bapi(path, body) {
  const response = await fetch(`${idp.url}${path}`, {
    method: "POST",
    headers: { authorization: `Bearer ${idp.secretKey}`, "content-type": "application/json" },
    body: JSON.stringify(body ?? {}),
  });
  const json = await response.json();
  assert.ok(response.ok, `${path}: ${response.status} ${JSON.stringify(json)}`);
  return json;
}

async function convexToken() {
  return (await bapi(`/v1/sessions/${sessionId}/tokens/convex`)).jwt;
}

function startBackend(port) {
  return startService("backend", [
    "backend",
    "--backend-addr", `127.0.0.1:${port}`,
    "--data-dir", dataDir,
    "--auth-issuer", idp.url,
  ]);
}

before(async () => {
  dataDir = await mkTempDir();
  idp = await startService("idp", ["idp", "--idp-addr", "127.0.0.1:0", "--data-dir", dataDir], {
    KEEL_TEMPLATE_TOKEN_TTL: `${TOKEN_TTL_SECONDS}s`,
  });
  backend = await startBackend(0);
  const user = await bapi("/v1/users", {
    email_address: ["ada@example.com"],
    password: "correct horse battery",
    first_name: "Ada",
    last_name: "Lovelace",
  });
  userId = user.id;
  sessionId = (await bapi("/v1/sessions", { user_id: userId })).id;
});

after(async () => {
  await backend?.stop();
  await idp?.stop();
});

test("ConvexHttpClient: anonymous calls", async () => {
  const client = new ConvexHttpClient(backend.url);
  assert.equal(await client.query(q("users:me"), {}), null);
  await assert.rejects(client.query(q("posts:list"), {}), (error) => {
    assert.ok(error instanceof ConvexError, `expected ConvexError, got ${error}`);
    assert.deepEqual(error.data, { code: "UNAUTHENTICATED" });
    return true;
  });
  await assert.rejects(client.query(q("posts:nope"), {}), /Could not find public function/);
});

test("ConvexHttpClient: authenticated query, mutation, action, errors", async () => {
  const client = new ConvexHttpClient(backend.url);
  client.setAuth(await convexToken());
  const me = await client.query(q("users:me"), {});
  assert.equal(me.tokenIdentifier, `${idp.url}|${userId}`);
  assert.equal(me.subject, userId);
  assert.equal(me.email, "ada@example.com");
  assert.equal(me.name, "Ada Lovelace");

  const id = await client.mutation(q("posts:create"), { title: "Hello", body: "First post" });
  assert.equal(typeof id, "string");
  const post = await client.query(q("posts:get"), { id });
  assert.equal(post.title, "Hello");
  assert.equal(post._id, id);
  assert.equal(typeof post._creationTime, "number");
  assert.equal(post.authorId, me.tokenIdentifier);

  const listed = await client.consistentQuery(q("posts:list"), { limit: 10 });
  assert.ok(listed.some((p) => p._id === id));

  await assert.rejects(client.mutation(q("posts:create"), { title: "", body: "x" }), (error) => {
    assert.ok(error instanceof ConvexError);
    assert.equal(error.data.code, "INVALID_ARGUMENT");
    assert.equal(error.data.field, "title");
    return true;
  });
  await assert.rejects(client.mutation(q("posts:create"), { title: 5 }), /title/);

  const created = await client.action(q("posts:importSample"), { count: 3 });
  assert.equal(created, 3);
  const after = await client.query(q("posts:list"), { limit: 100 });
  assert.equal(after.filter((p) => p.title.startsWith("Sample post")).length, 3);
});

// Refresh 2 s before expiry (the default 10 s leeway exceeds the 5-second test tokens).
function liveClient(options = {}) {
  return new ConvexClient(backend.url, {
    webSocketConstructor: WebSocket,
    authRefreshTokenLeewaySeconds: 2,
    ...options,
  });
}

function watch(client, name, args) {
  const state = { value: undefined, errors: [], updates: 0 };
  state.unsubscribe = client.onUpdate(
    q(name),
    args,
    (value) => {
      state.value = value;
      state.updates += 1;
    },
    (error) => state.errors.push(error),
  );
  return state;
}

test("ConvexClient: live updates and read-your-writes", async () => {
  const a = liveClient();
  const b = liveClient();
  a.setAuth(convexToken);
  b.setAuth(convexToken);
  try {
    const list = watch(a, "posts:list", { limit: 200 });
    await waitFor(() => Array.isArray(list.value), 5000, "first posts:list result");

    const started = Date.now();
    const id = await b.mutation(q("posts:create"), { title: "From B", body: "live" });
    await waitFor(() => list.value.some((p) => p._id === id), 1000, "B's post in A's subscription");
    assert.ok(Date.now() - started < 1000);

    // A mutation resolves only once its effect is visible in the client's subscriptions.
    const own = await a.mutation(q("posts:create"), { title: "From A", body: "ryw" });
    assert.ok(list.value.some((p) => p._id === own), "A's own write is visible when its mutation resolves");
    assert.deepEqual(list.errors, []);
  } finally {
    await a.close();
    await b.close();
  }
});

test("ConvexClient: tokens expiring every 5 s are refreshed without breaking the subscription", async () => {
  const a = liveClient();
  const b = liveClient();
  const authChanges = [];
  let fetchedByA = 0;
  a.setAuth(
    async () => {
      fetchedByA += 1;
      return convexToken();
    },
    (isAuthenticated) => authChanges.push(isAuthenticated),
  );
  b.setAuth(convexToken);
  const started = Date.now();
  try {
    const me = watch(a, "users:me", {});
    const list = watch(a, "posts:list", { limit: 200 });
    await waitFor(() => me.value && me.value.subject === userId, 5000, "authenticated users:me");
    // Three full token lifetimes: every token A started with has expired at least three times
    // over, and A fetched a fresh one each time.
    const lifetimes = 3;
    await waitFor(
      () => Date.now() - started > (lifetimes * TOKEN_TTL_SECONDS + 1) * 1000 && fetchedByA >= lifetimes + 2,
      (lifetimes + 3) * TOKEN_TTL_SECONDS * 1000,
      "three token lifetimes with refreshes",
    );
    const id = await b.mutation(q("posts:create"), { title: "After refreshes", body: "still live" });
    await waitFor(() => list.value?.some((p) => p._id === id), 1000, "update after refreshes");
    assert.deepEqual(me.errors, []);
    assert.deepEqual(list.errors, []);
    assert.ok(!authChanges.includes(false), `auth never lapsed: ${authChanges}`);
    assert.equal(me.value.subject, userId);
  } finally {
    await a.close();
    await b.close();
  }
});

test("ConvexClient: backend restart → reconnect, resubscribe, in-flight mutation applied once", async () => {
  const a = liveClient();
  a.setAuth(convexToken);
  try {
    const list = watch(a, "posts:list", { limit: 500 });
    await waitFor(() => Array.isArray(list.value), 5000, "first result");
    const port = new URL(backend.url).port;
    await backend.kill();
    const title = `in flight ${Date.now()}`;
    const pending = a.mutation(q("posts:create"), { title, body: "sent while the backend was down" });
    backend = await startBackend(port);
    const id = await pending;
    await waitFor(() => list.value.some((p) => p._id === id), 5000, "in-flight mutation visible");
    const http = new ConvexHttpClient(backend.url);
    http.setAuth(await convexToken());
    const all = await http.query(q("posts:list"), { limit: 1000 });
    assert.equal(all.filter((p) => p.title === title).length, 1, "applied exactly once");
    assert.deepEqual(list.errors, []);
  } finally {
    await a.close();
  }
});

test("ConvexClient: a backend stopped with SIGTERM closes the socket cleanly (1001) and exits 0; the client reconnects to its successor", async () => {
  // The official client's own transport (`ws`), recording how each socket closed.
  const closes = [];
  class RecordingWebSocket extends WebSocket {
    constructor(...args) {
      super(...args);
      this.addEventListener("close", (event) =>
        closes.push({ code: event.code, reason: event.reason, wasClean: event.wasClean }),
      );
    }
  }
  const a = liveClient({ webSocketConstructor: RecordingWebSocket });
  a.setAuth(convexToken);
  try {
    const list = watch(a, "posts:list", { limit: 500 });
    await waitFor(() => Array.isArray(list.value), 5000, "first result");
    const port = new URL(backend.url).port;
    const code = await backend.stop();
    assert.equal(code, 0, "keel backend exits 0 after SIGTERM");
    await waitFor(() => closes.length > 0, 5000, "the socket closed");
    assert.equal(closes[0].code, 1001, JSON.stringify(closes[0]));
    assert.ok(closes[0].wasClean, JSON.stringify(closes[0]));
    assert.match(closes[0].reason, /shutting down/);

    const title = `after a clean stop ${Date.now()}`;
    const pending = a.mutation(q("posts:create"), { title, body: "sent while the backend was stopped" });
    backend = await startBackend(port);
    const id = await pending;
    await waitFor(() => list.value.some((p) => p._id === id), 5000, "the mutation after the restart");
    assert.deepEqual(list.errors, []);
  } finally {
    await a.close();
  }
});
