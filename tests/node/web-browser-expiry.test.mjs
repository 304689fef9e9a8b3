// Live updates across token expiries in a real Chromium: `keel` runs with 5-second session
// and template tokens; Ada's open /posts page keeps receiving Bob's posts (each within 2 s,
// without a reload) for more than three token lifetimes.
import { test } from "node:test";
import assert from "node:assert/strict";
import { chromium } from "playwright-core";
import {
  CHROMIUM_FLAGS,
  createPost,
  liveState,
  recordCspViolations,
  screenshot,
  signUp,
} from "./web-browser.mjs";
import { startAllInOne } from "./keel-processes.mjs";

const TTL_MS = 5000;

test("an open page stays live across three 5-second token expiries", async () => {
  const keel = await startAllInOne({ KEEL_SESSION_TOKEN_TTL: "5s", KEEL_TEMPLATE_TOKEN_TTL: "5s" });
  const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: CHROMIUM_FLAGS });
  try {
    const errors = [];
    const [adasContext, bobsContext] = [await browser.newContext(), await browser.newContext()];
    const violations = [
      await recordCspViolations(adasContext),
      await recordCspViolations(bobsContext),
    ];
    const ada = await adasContext.newPage();
    const bob = await bobsContext.newPage();
    ada.on("pageerror", (e) => errors.push(`ada: ${e.message}`));
    bob.on("pageerror", (e) => errors.push(`bob: ${e.message}`));
    await signUp(bob, keel.url, "bob@example.com", "Bob");
    await signUp(ada, keel.url, "ada@example.com", "Ada");
    await ada.waitForFunction(() => window.__keel.live.state === "open");
    await ada.evaluate(() => (window.__marker = "no reload"));
    const opened = Date.now();

    // The session token in Ada's cookies really is short-lived.
    const session = (await ada.context().cookies(keel.url)).find((c) => c.name === "__session");
    const claims = JSON.parse(Buffer.from(session.value.split(".")[1], "base64url").toString());
    assert.ok(claims.exp - claims.iat <= TTL_MS / 1000, `token lifetime ${claims.exp - claims.iat} s`);

    for (const round of [1, 2, 3]) {
      // Bob posts at about 6, 12 and 18 s: each time past another token expiry.
      const at = opened + round * 6000;
      if (Date.now() < at) await new Promise((resolve) => setTimeout(resolve, at - Date.now()));
      const title = `After expiry ${round}`;
      const posted = Date.now();
      await createPost(bob, title);
      await ada.waitForSelector(`li >> text=${title}`, { timeout: 5000 });
      const lag = Date.now() - posted;
      assert.ok(lag < 2000, `round ${round}: Bob's post reached Ada's page after ${lag} ms`);
      assert.equal(await ada.evaluate(() => window.__marker), "no reload");
    }
    assert.ok(Date.now() - opened >= 3 * TTL_MS + 1000, "the page was open past three expiries");
    assert.equal((await liveState(ada)).state, "open");
    assert.match(await ada.textContent(".keel-user-button"), /Ada/);
    await screenshot(ada, "06-live-after-token-expiries");
    assert.deepEqual(errors, []);
    assert.deepEqual(violations.flat(), [], "no Content-Security-Policy violations");
  } finally {
    await browser.close();
    await keel.stop();
  }
});
