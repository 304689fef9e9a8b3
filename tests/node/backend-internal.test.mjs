// Internal functions and calls between functions as the official Convex JavaScript clients
// (convex@1.48.0) meet them.
//
// Run by crates/backend/tests/convex_js.rs, which serves a backend with its test functions and
// sets KEEL_BACKEND_URL: `counter:peek` (internal query), `counter:reset` (internal mutation),
// `counter:resetVia` (internal action); `calls:peek` (a query reading the counter through
// `counter:peek`), `calls:refuseInside` (a mutation passing on its callee's ConvexError),
// `calls:panicInside` (a mutation passing on its callee's internal failure), `calls:reset` (an
// action running `counter:resetVia`).
import { test } from "node:test";
import assert from "node:assert/strict";
import { ConvexHttpClient, ConvexClient } from "convex/browser";
import { ConvexError } from "convex/values";
import { makeFunctionReference } from "convex/server";
import WebSocket from "ws";

const url = process.env.KEEL_BACKEND_URL;
const f = (name) => makeFunctionReference(name);

/// The error `call` rejects with.
async function errorOf(call) {
  try {
    await call;
  } catch (error) {
    return error;
  }
  assert.fail("the call was expected to fail");
}

async function assertCalls(client) {
  // Every internal function, asked as any kind, gets exactly the error of a missing function
  // (which names the module's public functions only), and is no ConvexError.
  for (const kind of ["query", "mutation", "action"]) {
    const missing = await errorOf(client[kind](f("counter:nope"), {}));
    assert.match(
      missing.message,
      /Could not find public function for 'counter:nope'\. Module `counter` registers: get, increment, slowGet, slowIncrement\./,
    );
    for (const path of ["counter:peek", "counter:reset", "counter:resetVia"]) {
      const error = await errorOf(client[kind](f(path), {}));
      assert.ok(!(error instanceof ConvexError), `not a ConvexError: ${error}`);
      assert.equal(error.message.replaceAll(path, "counter:nope"), missing.message);
    }
  }
  // Public functions calling them work, and errors cross the calls as they were raised.
  await assert.rejects(client.mutation(f("calls:refuseInside"), {}), (error) => {
    assert.ok(error instanceof ConvexError, `a ConvexError: ${error}`);
    assert.deepEqual(error.data, { code: "NESTED" });
    return true;
  });
  await assert.rejects(client.mutation(f("calls:panicInside"), {}), (error) => {
    assert.ok(!(error instanceof ConvexError));
    assert.match(error.message, /Your request couldn't be completed\. Try again later\./);
    assert.doesNotMatch(error.message, /a bug/);
    return true;
  });
  assert.equal(typeof (await client.action(f("calls:reset"), {})), "number");
  assert.equal(await client.query(f("calls:peek"), {}), 0);
}

test("ConvexHttpClient: internal functions are unknown, calls between functions work", async () => {
  await assertCalls(new ConvexHttpClient(url));
});

test("ConvexClient over WebSocket: the same, and a query reading through its callee stays live", async () => {
  const client = new ConvexClient(url, { webSocketConstructor: WebSocket });
  try {
    await assertCalls(client);
    const seen = [];
    let resolveTwo;
    const two = new Promise((resolve) => (resolveTwo = resolve));
    const unsubscribe = client.onUpdate(f("calls:peek"), {}, (value) => {
      seen.push(value);
      if (value === 2) resolveTwo();
    });
    await client.mutation(f("counter:increment"), { by: 2 });
    await two;
    unsubscribe();
    assert.equal(seen.at(-1), 2);
  } finally {
    await client.close();
  }
});
