// The reference app's scheduler as the official Convex JavaScript clients (convex@1.48.0) meet it:
// `posts:publishLater` returns the id of a scheduled function, the post it schedules arrives on a
// live `posts:list` subscription once it is due, and the internal `posts:publish` it schedules is
// unknown to clients.
//
// Run by apps/posts/tests/convex_js_clients.rs (inside `scripts/test`), which sets KEEL_BIN to
// the `keel` binary; this script starts `keel idp` and `keel backend` on 127.0.0.1.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { ConvexHttpClient, ConvexClient } from "convex/browser";
import { makeFunctionReference } from "convex/server";
import { ConvexError } from "convex/values";
import WebSocket from "ws";
import { startBackendWithUser } from "./keel-processes.mjs";

const f = (name) => makeFunctionReference(name);
let keel, backend, convexToken;

before(async () => {
  keel = await startBackendWithUser();
  ({ backend, convexToken } = keel);
});

after(async () => {
  await keel?.stop();
});

test("a scheduled post arrives on a subscription; posts:publish is not public", async () => {
  const client = new ConvexClient(backend.url, { webSocketConstructor: WebSocket });
  client.setAuth(convexToken);
  try {
    let resolveArrived;
    const arrived = new Promise((resolve) => (resolveArrived = resolve));
    const unsubscribe = client.onUpdate(f("posts:list"), {}, (posts) => {
      const post = posts.find((p) => p.title === "Scheduled hello");
      if (post) resolveArrived(post);
    });
    const scheduledAt = Date.now();
    const id = await client.mutation(f("posts:publishLater"), {
      title: "Scheduled hello",
      body: "from the scheduler",
      delayMs: 300,
    });
    assert.equal(typeof id, "string");
    assert.ok(id.length > 0);
    const post = await arrived;
    unsubscribe();
    assert.ok(Date.now() - scheduledAt >= 300, "not before its time");
    assert.equal(post.body, "from the scheduler");
    assert.equal(typeof post.authorName, "string");

    // The internal mutation, called by a client, is a missing function (not a ConvexError).
    const http = new ConvexHttpClient(backend.url);
    http.setAuth(await convexToken());
    for (const c of [client, http]) {
      const error = await c
        .mutation(f("posts:publish"), {
          title: "forged",
          body: "",
          authorId: "someone",
          authorName: "someone",
        })
        .then(() => assert.fail("posts:publish is internal"), (e) => e);
      assert.ok(!(error instanceof ConvexError), `${error}`);
      assert.match(error.message, /Could not find public function for 'posts:publish'/);
    }
    // A hostile delay is the app's typed error.
    const error = await http
      .mutation(f("posts:publishLater"), { title: "x", body: "", delayMs: -5 })
      .then(() => assert.fail("a negative delay is refused"), (e) => e);
    assert.ok(error instanceof ConvexError, `${error}`);
    assert.equal(error.data.field, "delayMs");
  } finally {
    await client.close();
  }
});
