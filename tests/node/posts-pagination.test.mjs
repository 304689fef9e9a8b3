// A live paginated list of posts (`posts:page`) kept by the official Convex JavaScript client
// (convex@1.48.0: ConvexClient.onPaginatedUpdate_experimental, the page logic usePaginatedQuery
// shares: pages subscribed with their cursors, split at splitCursor when they grow) while other
// clients insert and delete posts at the same time. At every update the list is in order with
// no post twice; once the writers stop it is exactly the posts up to where the loaded pages end,
// and loading on to the end gives every post once.
//
// Run by apps/posts/tests/convex_js_clients.rs, which sets KEEL_BIN to the `keel` binary; this
// script starts `keel idp` and `keel backend` on 127.0.0.1.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { ConvexHttpClient, ConvexClient } from "convex/browser";
import { makeFunctionReference } from "convex/server";
import WebSocket from "ws";
import { waitFor, startBackendWithUser } from "./keel-processes.mjs";

const f = (name) => makeFunctionReference(name);
const PAGE = 5;

let keel, backend, convexToken;

before(async () => {
  keel = await startBackendWithUser();
  ({ backend, convexToken } = keel);
});

after(async () => {
  await keel?.stop();
});

/** Every post, newest first, as one consistent read. */
async function allPosts(http) {
  return http.query(f("posts:list"), { limit: 1000 });
}

/** The ids of `posts`, checking they are newest first with none twice. */
function checkedIds(posts, when) {
  const ids = posts.map((p) => p._id);
  assert.equal(new Set(ids).size, ids.length, `no post twice ${when}`);
  for (let i = 1; i < posts.length; i++) {
    assert.ok(posts[i - 1]._creationTime > posts[i]._creationTime, `newest first ${when}`);
  }
  return ids;
}

test("a paginated subscription neither duplicates nor skips posts under concurrent inserts and deletes", async () => {
  const http = new ConvexHttpClient(backend.url);
  http.setAuth(await convexToken());
  for (let i = 0; i < 23; i++) {
    await http.mutation(f("posts:create"), { title: `Post ${i}`, body: "" });
  }

  const reader = new ConvexClient(backend.url, { webSocketConstructor: WebSocket });
  const writers = [0, 1, 2].map(() => new ConvexClient(backend.url, { webSocketConstructor: WebSocket }));
  reader.setAuth(convexToken);
  for (const w of writers) w.setAuth(convexToken);
  // What each update broke is kept and reported by the test (a throw inside the client's
  // callback would land in the client, not in the test).
  const list = { value: undefined, updates: 0, errors: [], broken: [] };
  const unsubscribe = reader.onPaginatedUpdate_experimental(
    f("posts:page"),
    {},
    { initialNumItems: PAGE },
    (value) => {
      try {
        checkedIds(value.results, `at update ${list.updates}`);
      } catch (error) {
        list.broken.push(error);
      }
      list.value = value;
      list.updates += 1;
    },
    (error) => list.errors.push(error),
  );
  const intact = () => {
    if (list.broken.length > 0) throw list.broken[0];
    return true;
  };
  try {
    await waitFor(() => intact() && list.value?.status === "CanLoadMore", 10000, "the first page");
    assert.equal(list.value.results.length, PAGE);
    for (let n = 2; n <= 3; n++) {
      list.value.loadMore(PAGE);
      await waitFor(
        () => intact() && list.value.status === "CanLoadMore" && list.value.results.length === n * PAGE,
        10000,
        `page ${n}`,
      );
    }
    const loaded = list.value.results;
    // The loaded pages end at this post: it bounds the list while the others write.
    const boundary = loaded[loaded.length - 1]._creationTime;

    // Three writers at once: new posts (newest first, so they land inside the first page until
    // it splits), and deletions of loaded posts — the first, one in the middle, the last loaded
    // one (the end of the last page) — and of posts not loaded yet.
    const notLoaded = (await allPosts(http)).slice(3 * PAGE).map((p) => p._id);
    const victims = [loaded[0]._id, loaded[7]._id, loaded[PAGE * 3 - 1]._id, loaded[PAGE]._id, notLoaded[2]];
    const updatesBefore = list.updates;
    await Promise.all([
      (async () => {
        for (let i = 0; i < 12; i++) {
          await writers[0].mutation(f("posts:create"), { title: `New ${i}`, body: "" });
        }
      })(),
      (async () => {
        for (const id of victims.slice(0, 3)) {
          await writers[1].mutation(f("posts:remove"), { id });
        }
      })(),
      (async () => {
        for (const id of victims.slice(3)) {
          await writers[2].mutation(f("posts:remove"), { id });
        }
        for (let i = 0; i < 4; i++) {
          await writers[2].mutation(f("posts:create"), { title: `Other ${i}`, body: "" });
        }
      })(),
    ]);
    assert.ok(intact() && list.updates > updatesBefore, "the list changed live");

    // Once the writers are done the list is exactly the posts up to the loaded pages' end.
    const expected = (await allPosts(http)).filter((p) => p._creationTime >= boundary).map((p) => p._id);
    assert.equal(expected.length, 3 * PAGE + 12 + 4 - 4, "every new post, minus the four loaded ones deleted");
    await waitFor(
      () => intact() && JSON.stringify(list.value.results.map((p) => p._id)) === JSON.stringify(expected),
      10000,
      "the live list to show exactly the posts up to its end",
    );
    assert.equal(list.value.status, "CanLoadMore");

    // Loading on from the end of the last page gives every remaining post once, in order.
    while (list.value.status !== "Exhausted") {
      const before = list.value.results.length;
      list.value.loadMore(PAGE);
      await waitFor(
        () =>
          intact() &&
          (list.value.status === "Exhausted" ||
            (list.value.status === "CanLoadMore" && list.value.results.length > before)),
        10000,
        "the next page",
      );
    }
    const everything = checkedIds(await allPosts(http), "in posts:list");
    assert.deepEqual(checkedIds(list.value.results, "at the end"), everything);
    assert.deepEqual(list.errors, []);
    intact();
  } finally {
    unsubscribe();
    await reader.close();
    for (const w of writers) await w.close();
  }
});

test("posts:page refuses bad paginationOpts with Convex's errors", async () => {
  const http = new ConvexHttpClient(backend.url);
  await assert.rejects(http.query(f("posts:page"), { paginationOpts: { numItems: 5, cursor: null } }), (error) => {
    assert.deepEqual(error.data, { code: "UNAUTHENTICATED" }, "signed-in only");
    return true;
  });
  http.setAuth(await convexToken());
  const page = await http.query(f("posts:page"), { paginationOpts: { numItems: 2, cursor: null } });
  assert.deepEqual(Object.keys(page).sort(), ["continueCursor", "isDone", "page", "pageStatus", "splitCursor"]);
  for (const [opts, message] of [
    [{ numItems: 5, cursor: "not a cursor" }, /InvalidCursor/],
    [{ numItems: -1, cursor: null }, /Path: \.paginationOpts\.numItems/],
    [{ numItems: 1e300, cursor: null }, /Path: \.paginationOpts\.numItems/],
    [{ numItems: 0, cursor: null }, /NoDocumentsForPagination/],
    [{ numItems: 5 }, /cursor/],
  ]) {
    await assert.rejects(http.query(f("posts:page"), { paginationOpts: opts }), message);
  }
});
