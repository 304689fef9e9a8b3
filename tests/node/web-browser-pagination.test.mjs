// "Load more" on /posts in a real Chromium (playwright-core driving /usr/bin/chromium) against
// the all-in-one `keel` binary: the runtime loads the next page in place (client-side, the
// reader's scroll position kept), the longer list stays live (another user's post appears
// without a reload, nothing already shown moves off the list), and no CSP violation or page
// error happens. A screenshot lands in `test-artifacts/`.
import { test } from "node:test";
import assert from "node:assert/strict";
import { chromium } from "playwright-core";
import { CHROMIUM_FLAGS, liveState, recordCspViolations, screenshot, signUp } from "./web-browser.mjs";
import { startAllInOne } from "./keel-processes.mjs";

/** The titles listed on `page`, in order. */
function titles(page) {
  return page.$$eval("ul.posts li > a", (links) => links.map((a) => a.textContent));
}

/** Creates `count` posts from `page` with same-origin form posts (what the form sends). */
function createPosts(page, first, count) {
  return page.evaluate(
    async ({ first, count }) => {
      for (let n = first; n < first + count; n++) {
        const body = new URLSearchParams({ title: `Post ${n}`, body: "" });
        const response = await fetch("/_keel/fn/posts/create", { method: "POST", body, redirect: "manual" });
        if (response.type !== "opaqueredirect" && !response.ok) throw new Error(`create: ${response.status}`);
      }
    },
    { first, count },
  );
}

const numbered = (from, to) => Array.from({ length: to - from + 1 }, (_, i) => `Post ${to - i}`);

test("Load more: loaded in place, scroll kept, the longer list live", async () => {
  const keel = await startAllInOne();
  const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: CHROMIUM_FLAGS });
  try {
    const context = await browser.newContext({ viewport: { width: 800, height: 400 } });
    const violations = await recordCspViolations(context);
    const ada = await context.newPage();
    const errors = [];
    ada.on("pageerror", (e) => errors.push(e.message));
    await signUp(ada, keel.url, "ada@example.com", "Ada");
    await createPosts(ada, 1, 23);
    await ada.goto(`${keel.url}/posts`);
    await ada.waitForFunction(() => window.__keel?.live?.state === "open");
    assert.deepEqual(await titles(ada), numbered(14, 23));

    // Scrolled to the link, the reader clicks it: the runtime fetches the longer list and morphs
    // it in (a window marker survives), the address follows, the scroll position stays.
    await ada.evaluate(() => (window.__marker = "kept"));
    await ada.locator("a.load-more").scrollIntoViewIfNeeded();
    const scrolled = await ada.evaluate(() => window.scrollY);
    assert.ok(scrolled > 0, "the link is below the fold");
    await ada.click("a.load-more");
    await ada.waitForFunction(() => document.querySelectorAll("ul.posts li").length === 20);
    assert.deepEqual(await titles(ada), numbered(4, 23));
    assert.equal(await ada.evaluate(() => window.__marker), "kept", "loaded in place");
    assert.match(await ada.evaluate(() => location.search), /^\?until=[0-9a-f]+$/);
    assert.ok((await ada.evaluate(() => window.scrollY)) >= scrolled, "the reader stays where they were");
    await ada.waitForFunction(() => window.__keel.live.state === "open" && window.__keel.live.url.includes("posts%3Apage"));

    // Another user's post appears on top without a reload, and the twenty posts already shown
    // all stay.
    const bobsContext = await browser.newContext();
    const bob = await bobsContext.newPage();
    bob.on("pageerror", (e) => errors.push(`bob: ${e.message}`));
    await signUp(bob, keel.url, "bob@example.com", "Bob");
    await createPosts(bob, 24, 1);
    await ada.waitForSelector("ul.posts li >> text=Post 24");
    assert.deepEqual(await titles(ada), numbered(4, 24));
    assert.equal(await ada.evaluate(() => window.__marker), "kept", "morphed, not reloaded");
    await screenshot(ada, "pagination-load-more");

    // Loading on to the end shows every post once, and no more link.
    await ada.click("a.load-more");
    await ada.waitForFunction(() => document.querySelectorAll("ul.posts li").length === 24);
    assert.deepEqual(await titles(ada), numbered(1, 24));
    assert.equal(await ada.$("a.load-more"), null);
    assert.equal((await liveState(ada)).state, "open");
    assert.deepEqual(errors, []);
    assert.deepEqual(violations, []);
  } finally {
    await browser.close();
    await keel.stop();
  }
});
