// Pushed renders in a real Chromium: Ada has /posts open in two tabs of one session; Bob's
// posts reach both tabs as renders the web tier made from Ada's live data and pushed down the
// pages' event streams — no page fetch in either tab's network log — the first as the whole
// body, later ones as splices; her half-typed input and focus survive the morph.
import { test } from "node:test";
import assert from "node:assert/strict";
import { chromium } from "playwright-core";
import { CHROMIUM_FLAGS, createPost, recordCspViolations, screenshot, signUp } from "./web-browser.mjs";
import { startAllInOne } from "./keel-processes.mjs";

test("an open page updates from pushed renders, without fetching itself", async () => {
  const keel = await startAllInOne();
  const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: CHROMIUM_FLAGS });
  try {
    const errors = [];
    const [adasContext, bobsContext] = [await browser.newContext(), await browser.newContext()];
    const violations = [await recordCspViolations(adasContext), await recordCspViolations(bobsContext)];
    const bob = await bobsContext.newPage();
    bob.on("pageerror", (e) => errors.push(`bob: ${e.message}`));
    await signUp(bob, keel.url, "bob@example.com", "Bob");
    const tabs = [await adasContext.newPage(), await adasContext.newPage()];
    const [ada, adasOtherTab] = tabs;
    // The events the first tab's stream receives (the network domain is on before it opens).
    const events = [];
    const cdp = await adasContext.newCDPSession(ada);
    await cdp.send("Network.enable");
    cdp.on("Network.eventSourceMessageReceived", (e) => {
      events.push({ name: e.eventName, bytes: Buffer.byteLength(e.data), data: e.data });
    });
    await signUp(ada, keel.url, "ada@example.com", "Ada");
    await adasOtherTab.goto(`${keel.url}/posts`);

    // Every request either tab makes from now on.
    const requests = [];
    for (const [i, tab] of tabs.entries()) {
      tab.on("pageerror", (e) => errors.push(`ada ${i}: ${e.message}`));
      await tab.waitForFunction(() => window.__keel.live.state === "open");
      tab.on("request", (r) => requests.push(`tab ${i}: ${r.method()} ${r.url()} (${r.resourceType()})`));
      await tab.evaluate(() => (window.__marker = "no reload"));
    }
    await ada.focus("input[name=title]");
    await ada.keyboard.type("half-typed");

    for (const title of ["Pushed one", "Pushed two", "Pushed three"]) {
      const posted = Date.now();
      await createPost(bob, title);
      for (const tab of tabs) await tab.waitForSelector(`li >> text=${title}`, { timeout: 5000 });
      const lag = Date.now() - posted;
      assert.ok(lag < 2000, `${title} reached Ada's tabs after ${lag} ms`);
    }
    await screenshot(ada, "push-01-after-pushed-renders");

    // No page fetch: the tabs asked the server for nothing while they updated.
    assert.deepEqual(requests, [], "no request from Ada's tabs");
    for (const tab of tabs) assert.equal(await tab.evaluate(() => window.__marker), "no reload");
    assert.equal(await ada.inputValue("input[name=title]"), "half-typed");
    assert.equal(await ada.evaluate(() => document.activeElement?.getAttribute("name")), "title");
    assert.equal((await ada.evaluate(() => window.__keel.live)).state, "open");
    // The page's live address names the page the server re-renders.
    const address = await ada.getAttribute('meta[name="keel-live"]', "content");
    assert.ok(address.includes("&p=%2Fposts"), address);

    // The renders as the stream carried them: the first whole, later ones splices of it.
    const renders = events.filter((e) => e.name === "render").map((e) => ({ ...e, render: JSON.parse(e.data) }));
    assert.ok(renders.length >= 3, `renders: ${events.map((e) => e.name)}`);
    assert.equal(typeof renders[0].render.body, "string", "the first push is the whole body");
    const splices = renders.filter((e) => Array.isArray(e.render.splices));
    assert.ok(splices.length >= 2, "later pushes are splices");
    for (const { render, bytes } of splices) {
      // The page's own segment changed by one list item (the devtools panel, when shown, is
      // a segment of its own).
      const [, , inserted] = render.splices[0];
      assert.ok(inserted.length < 1024 && /Pushed (two|three)/.test(inserted), inserted);
      assert.ok(bytes < renders[0].bytes, `splices ${bytes} B vs whole ${renders[0].bytes} B`);
    }
    console.log(`bytes per update: whole body ${renders[0].bytes} B, splices ${splices.map((e) => e.bytes).join(", ")} B`);
    assert.ok(events.every((e) => e.name !== "refresh"), "no refetch was asked for");

    assert.deepEqual(errors, []);
    assert.deepEqual(violations.flat(), [], "no Content-Security-Policy violations");
  } finally {
    await browser.close();
    await keel.stop();
  }
});
