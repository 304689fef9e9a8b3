// Function logs as the official Convex JavaScript clients (convex@1.48.0) receive them: each line
// a function logged reaches the client's logger as Convex's own backend sends it, which the
// client prints as `[CONVEX Q(logs:query)] [LOG] 'hello from a query'`.
//
// Run by crates/backend/tests/convex_js.rs, which serves a backend with its test functions and
// sets KEEL_BACKEND_URL: `logs:query` (logs a line and a warning), `logs:mutation` (logs at INFO
// and increments the counter), `logs:action` (logs, then runs `logs:mutation`), `logs:fail`
// (logs at ERROR, then throws a ConvexError).
import { test } from "node:test";
import assert from "node:assert/strict";
import { ConvexHttpClient, ConvexClient } from "convex/browser";
import { ConvexError } from "convex/values";
import { makeFunctionReference } from "convex/server";
import WebSocket from "ws";

const url = process.env.KEEL_BACKEND_URL;
const f = (name) => makeFunctionReference(name);

/** A logger as the clients take one, keeping what they print: `[prefix, line]` pairs. */
function recordingLogger() {
  const printed = [];
  const errors = [];
  return {
    printed,
    errors,
    logVerbose() {},
    // The clients print a function's line as ("%c[CONVEX Q(path)] [LEVEL]", color, message).
    log(...args) {
      printed.push([String(args[0]).replace("%c", ""), args[2]]);
    },
    warn(...args) {
      errors.push(args.join(" "));
    },
    error(...args) {
      errors.push(args.join(" "));
    },
  };
}

const queryLines = [
  ["[CONVEX Q(logs:query)] [LOG]", "'hello from a query'"],
  ["[CONVEX Q(logs:query)] [WARN]", "'careful'"],
];

test("ConvexHttpClient: a query's, a mutation's and an action's lines, and a failed call's", async () => {
  const logger = recordingLogger();
  const client = new ConvexHttpClient(url, { logger });
  assert.equal(typeof (await client.query(f("logs:query"), {})), "number");
  assert.deepEqual(logger.printed, queryLines);
  logger.printed.length = 0;
  await client.mutation(f("logs:mutation"), {});
  assert.deepEqual(logger.printed, [["[CONVEX M(logs:mutation)] [INFO]", "'hello from a mutation'"]]);
  logger.printed.length = 0;
  await client.action(f("logs:action"), {});
  // The mutation the action ran is an execution of its own: its line is not the action's.
  assert.deepEqual(logger.printed, [["[CONVEX A(logs:action)] [LOG]", "'hello from an action'"]]);
  logger.printed.length = 0;
  await assert.rejects(client.mutation(f("logs:fail"), {}), (error) => error instanceof ConvexError);
  assert.deepEqual(logger.printed, [["[CONVEX M(logs:fail)] [ERROR]", "'about to fail'"]]);
  assert.deepEqual(logger.errors, []);
});

test("ConvexClient over WebSocket: a subscribed query's lines in its Transition, a mutation's in its response", async () => {
  const logger = recordingLogger();
  const client = new ConvexClient(url, { webSocketConstructor: WebSocket, logger });
  try {
    let resolveFirst;
    const first = new Promise((resolve) => (resolveFirst = resolve));
    const unsubscribe = client.onUpdate(f("logs:query"), {}, (value) => resolveFirst(value));
    assert.equal(typeof (await first), "number");
    assert.deepEqual(logger.printed, queryLines);
    logger.printed.length = 0;
    await client.mutation(f("logs:mutation"), {});
    assert.deepEqual(
      logger.printed.filter(([prefix]) => prefix.startsWith("[CONVEX M(")),
      [["[CONVEX M(logs:mutation)] [INFO]", "'hello from a mutation'"]],
    );
    await client.action(f("logs:action"), {});
    assert.ok(
      logger.printed.some(
        ([prefix, line]) => prefix === "[CONVEX A(logs:action)] [LOG]" && line === "'hello from an action'",
      ),
      JSON.stringify(logger.printed),
    );
    await assert.rejects(client.mutation(f("logs:fail"), {}), (error) => error instanceof ConvexError);
    assert.ok(
      logger.printed.some(([prefix, line]) => prefix === "[CONVEX M(logs:fail)] [ERROR]" && line === "'about to fail'"),
    );
    unsubscribe();
    // The WebSocket client reports a failed mutation as an error of its own; no line failed
    // to parse ("Could not parse console.log").
    assert.deepEqual(logger.errors, ["[CONVEX M(logs:fail)] Refused after logging"]);
  } finally {
    await client.close();
  }
});
