// File storage and HTTP actions of the reference app, as an app on the official Convex
// JavaScript client (convex@1.48.0) uses them: an upload URL from `files:generateUploadUrl`,
// `fetch` of the image to it, a post with that `imageId`, and a GET of its `imageUrl`; then
// `POST /posts` on the site origin with and without a Convex token.
//
// Run by apps/posts/tests/convex_js_clients.rs, which sets KEEL_BIN to the `keel` binary.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { ConvexHttpClient, ConvexClient } from "convex/browser";
import { makeFunctionReference } from "convex/server";
import { ConvexError } from "convex/values";
import WebSocket from "ws";
import { startBackendWithUser } from "./keel-processes.mjs";

const f = (name) => makeFunctionReference(name);
// A tiny PNG (1×1, red).
const PNG = Buffer.from(
  "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg==",
  "base64",
);

let keel, backend, convexToken;

before(async () => {
  keel = await startBackendWithUser();
  ({ backend, convexToken } = keel);
});

after(async () => {
  await keel?.stop();
});

test("an image uploaded with fetch to the generated URL is served at the post's imageUrl", async () => {
  const client = new ConvexHttpClient(backend.url);
  client.setAuth(await convexToken());
  const uploadUrl = await client.mutation(f("files:generateUploadUrl"), {});
  assert.match(uploadUrl, /\/api\/storage\/upload\?token=/);
  const uploaded = await fetch(uploadUrl, {
    method: "POST",
    headers: { "Content-Type": "image/png" },
    body: PNG,
  });
  assert.equal(uploaded.status, 200);
  const { storageId } = await uploaded.json();
  assert.equal(typeof storageId, "string");

  const id = await client.mutation(f("posts:create"), {
    title: "With a picture",
    body: "see above",
    imageId: storageId,
  });
  const post = await client.query(f("posts:get"), { id });
  assert.equal(post.imageId, storageId);
  assert.equal(post.imageUrl, `${backend.url}/api/storage/${storageId}`);
  const listed = await client.query(f("posts:list"), {});
  assert.equal(listed.find((p) => p._id === id).imageUrl, post.imageUrl);

  const image = await fetch(post.imageUrl);
  assert.equal(image.status, 200);
  assert.equal(image.headers.get("content-type"), "image/png");
  const bytes = Buffer.from(await image.arrayBuffer());
  assert.deepEqual(bytes, PNG);
  const partial = await fetch(post.imageUrl, { headers: { Range: "bytes=1-3" } });
  assert.equal(partial.status, 206);
  assert.equal(Buffer.from(await partial.arrayBuffer()).toString("latin1"), "PNG");

  // The same URL stores nothing more.
  const again = await fetch(uploadUrl, { method: "POST", body: PNG });
  assert.equal(again.status, 401);
  assert.equal((await again.json()).code, "InvalidUploadToken");
});

test("posts:create refuses an imageId that is no uploaded image; uploads need a signed-in user", async () => {
  const client = new ConvexHttpClient(backend.url);
  await assert.rejects(client.mutation(f("files:generateUploadUrl"), {}), (error) => {
    assert.ok(error instanceof ConvexError);
    assert.deepEqual(error.data, { code: "UNAUTHENTICATED" });
    return true;
  });
  client.setAuth(await convexToken());
  const uploadUrl = await client.mutation(f("files:generateUploadUrl"), {});
  const text = await fetch(uploadUrl, {
    method: "POST",
    headers: { "Content-Type": "text/plain" },
    body: "not an image",
  });
  const { storageId } = await text.json();
  for (const imageId of [storageId, "../../etc/passwd", "k".repeat(32)]) {
    await assert.rejects(
      client.mutation(f("posts:create"), { title: "t", body: "b", imageId }),
      (error) => {
        assert.ok(error instanceof ConvexError, `${imageId}: ${error}`);
        assert.equal(error.data.code, "INVALID_ARGUMENT");
        assert.equal(error.data.field, "imageId");
        return true;
      },
    );
  }
});

test("POST /posts on the site creates a post for a Convex token's bearer, 401 without", async () => {
  const token = await convexToken();
  const created = await fetch(`${backend.site}/posts`, {
    method: "POST",
    headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
    body: JSON.stringify({ title: "Over HTTP", body: "from an HTTP action" }),
  });
  assert.equal(created.status, 201);
  const { id } = await created.json();
  const client = new ConvexClient(backend.url, { webSocketConstructor: WebSocket });
  try {
    client.setAuth(async () => token);
    const post = await client.query(f("posts:get"), { id });
    assert.equal(post.title, "Over HTTP");
    assert.equal(typeof post.authorName, "string");
  } finally {
    await client.close();
  }
  const anonymous = await fetch(`${backend.site}/posts`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ title: "Nobody", body: "" }),
  });
  assert.equal(anonymous.status, 401);
  assert.equal((await anonymous.json()).code, "UNAUTHENTICATED");
  const badToken = await fetch(`${backend.site}/posts`, {
    method: "POST",
    headers: { Authorization: "Bearer nonsense" },
    body: "{}",
  });
  assert.equal(badToken.status, 401);
  const badBody = await fetch(`${backend.site}/posts`, {
    method: "POST",
    headers: { Authorization: `Bearer ${token}` },
    body: "title=x",
  });
  assert.equal(badBody.status, 400);
  const unknown = await fetch(`${backend.site}/nowhere`);
  assert.equal(unknown.status, 404);
});
