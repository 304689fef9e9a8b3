// Golden Convex JSON from the official encoder (convex/values, convex@1.48.0), for
// crates/values/tests/golden_convex_js.rs.
//
// Usage:
//   node values-golden.mjs emit     prints one line per value: JSON.stringify(convexToJson(v))
//   node values-golden.mjs recode   reads Convex JSON lines on stdin; for each prints
//                                   "OK <JSON.stringify(convexToJson(jsonToConvex(JSON.parse(line))))>"
//                                   or "ERR <message>" when decoding or re-encoding throws.
import { convexToJson, jsonToConvex } from "convex/values";
import { createInterface } from "node:readline";

function bytes(list) {
  return new Uint8Array(list).buffer;
}

// A varied set of values: int64 and float64 edges, awkward strings, bytes, nesting, key order.
function values() {
  const ints = [0n, 1n, -1n, 42n, 2n ** 53n + 1n, 2n ** 63n - 1n, -(2n ** 63n)];
  const floats = [
    0, -0, NaN, Infinity, -Infinity, 1, -1, 0.1, -2.5, 1e21, 1e20, 1e-7, 1.5e-6, -1e-7, 5e-324,
    Number.MAX_VALUE, Number.MIN_VALUE, 123456789.123, 2 ** 53, 1e300, 0.30000000000000004,
  ];
  const strings = [
    "",
    "hello",
    "é ü 中文 ﬃ",
    "😀 emoji 👩‍👩‍👧",
    "\u0000\u0001\u001f\u007f",
    'quote " backslash \\ slash /',
    "\b\f\n\r\t\v",
    "\u2028\u2029\ufeff",
    "</script>",
  ];
  const allBytes = [];
  for (let i = 0; i < 256; i++) allBytes.push(i);
  const buffers = [new ArrayBuffer(0), bytes([0]), bytes([0, 16, 131]), bytes([255, 254]), bytes(allBytes)];
  const nested = [
    [],
    {},
    [[], {}],
    [[[1n]]],
    { a: { b: { c: [1, 2n, "x", null, true, false] } } },
    Array.from({ length: 100 }, (_, i) => i / 7),
  ];
  const keyOrder = [
    { b: 1, a: 2, 10: 3, 9: 4, _x: 5, A: 6, " ": 7, "~": 8, "": 9, "01": 10, 4294967295: 11, 4294967294: 12 },
    { z: { y: { x: 1 } }, "a b": [null], "a.b": bytes([1]) },
  ];
  const all = [null, true, false, ...ints, ...floats, ...strings, ...buffers, ...nested, ...keyOrder];
  return [...all, { everything: all, count: BigInt(all.length) }];
}

function emit() {
  for (const v of values()) {
    process.stdout.write(JSON.stringify(convexToJson(v)) + "\n");
  }
}

async function recode() {
  const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
  for await (const line of lines) {
    let out;
    try {
      out = "OK " + JSON.stringify(convexToJson(jsonToConvex(JSON.parse(line))));
    } catch (e) {
      out = "ERR " + String(e && e.message).replace(/\n/g, " ");
    }
    process.stdout.write(out + "\n");
  }
}

const mode = process.argv[2];
if (mode === "emit") {
  emit();
} else if (mode === "recode") {
  await recode();
} else {
  process.stderr.write("usage: node values-golden.mjs emit|recode\n");
  process.exit(2);
}
