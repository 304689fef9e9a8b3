// Keel's argument checks as the official Convex JavaScript clients (convex@1.48.0) meet them.
//
// Run by crates/backend/tests/convex_js.rs, which serves a backend with its test functions
// (`counter:increment` takes `{ by?: number }`, `counter:get` takes `{ pad?: u32 }`) and sets
// KEEL_BACKEND_URL.
import { test } from "node:test";
import assert from "node:assert/strict";
import { ConvexHttpClient, ConvexClient } from "convex/browser";
import { makeFunctionReference } from "convex/server";
import WebSocket from "ws";

const url = process.env.KEEL_BACKEND_URL;
const f = (name) => makeFunctionReference(name);

/// The refusals every client must see, in Convex's words, naming the path.
async function assertRefusals(client) {
  // A JavaScript number holding a whole value fits a u32 argument.
  assert.equal((await client.query(f("counter:get"), { pad: 3 })).pad, "xxx");
  await assert.rejects(client.mutation(f("counter:increment"), { by: 1, extra: true }), (error) => {
    assert.match(
      error.message,
      /ArgumentValidationError: Object contains extra field `extra` that is not in the validator\./,
    );
    return true;
  });
  await assert.rejects(client.mutation(f("counter:increment"), { by: 1n }), (error) => {
    assert.match(
      error.message,
      /ArgumentValidationError: Value does not match validator\.\nPath: \.by\nValue: 1n\nValidator: v\.float64\(\)/,
    );
    return true;
  });
  await assert.rejects(client.query(f("counter:get"), { pad: 1.5 }), /Path: \.pad\nValue: 1\.5\n/);
  await assert.rejects(
    client.query(f("counter:nope"), {}),
    /Could not find public function for 'counter:nope'\. Module `counter` registers: get, increment/,
  );
}

test("ConvexHttpClient: strict arguments, messages in Convex's words", async () => {
  const client = new ConvexHttpClient(url);
  await assertRefusals(client);
  assert.equal(typeof (await client.mutation(f("counter:increment"), { by: 2 })), "number");
});

test("ConvexClient over WebSocket: the same refusals, and the connection keeps working", async () => {
  const client = new ConvexClient(url, { webSocketConstructor: WebSocket });
  try {
    await assertRefusals(client);
    assert.equal(typeof (await client.mutation(f("counter:increment"), {})), "number");
  } finally {
    await client.close();
  }
});
