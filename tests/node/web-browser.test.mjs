// The web tier in a real Chromium (playwright-core driving Debian's /usr/bin/chromium) against
// the all-in-one `keel` binary: intent prefetch reused by the click, client-side navigation,
// the sign-in modal, sign-up, form posts morphed in, the server-rendered page for the same
// cookies without JavaScript, live updates from another user within 2 s that keep a half-typed
// input, scroll restoration on back, sign-out ending the live stream, sign-in through the
// modal, and the not-found page. Screenshots of the main states go to `test-artifacts/`.
import { test } from "node:test";
import assert from "node:assert/strict";
import { chromium } from "playwright-core";
import {
  CHROMIUM_FLAGS,
  liveState,
  recordCspViolations,
  screenshot,
  signUp,
  userMenuSignOut,
} from "./web-browser.mjs";
import { startAllInOne } from "./keel-processes.mjs";

test("the browser runtime: navigation, forms, modal, live morph, scroll restoration", async () => {
  const keel = await startAllInOne();
  const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: CHROMIUM_FLAGS });
  try {
    const adasContext = await browser.newContext({ viewport: { width: 800, height: 300 } });
    const cspViolations = await recordCspViolations(adasContext);
    const ada = await adasContext.newPage();
    const errors = [];
    ada.on("pageerror", (e) => errors.push(e.message));
    const requested = [];
    ada.on("request", (r) => requested.push(r.url()));
    const requestsOf = (path) => requested.filter((url) => url === `${keel.url}${path}`).length;

    await ada.goto(`${keel.url}/`);
    await ada.waitForFunction(() => window.__keel !== undefined);
    await ada.waitForSelector("text=Welcome Home!!!");
    await screenshot(ada, "01-home-signed-out");

    // Hovering a link fetches its page before the click; the click uses that fetch, and the
    // navigation is client-side (a window marker survives).
    await ada.evaluate(() => (window.__marker = "kept"));
    assert.equal(requestsOf("/posts"), 0);
    const prefetched = ada.waitForEvent("requestfinished", {
      predicate: (r) => r.url() === `${keel.url}/posts`,
      timeout: 5000,
    });
    await ada.hover('a[href="/posts"]');
    await prefetched;
    assert.equal(requestsOf("/posts"), 1, "hover fetched /posts");
    await ada.click('a[href="/posts"]');
    await ada.waitForFunction(() => location.pathname === "/posts");
    await ada.waitForSelector("text=Sign in to see the posts");
    assert.equal(requestsOf("/posts"), 1, "the click reused the prefetched page");
    assert.equal(await ada.evaluate(() => window.__marker), "kept");
    assert.equal(await ada.getAttribute('a[href="/posts"]', "class"), "font-bold");

    // The sign-in button opens the sign-in form in a modal dialog.
    await ada.click(".ml-auto a[data-keel-modal]");
    await ada.waitForSelector("dialog.keel-modal form.keel-sign-in input[name=email]");
    await screenshot(ada, "02-sign-in-modal");
    await ada.click("dialog.keel-modal >> text=Close");

    await signUp(ada, keel.url, "ada@example.com", "Ada");
    assert.match(await ada.textContent(".keel-user-button"), /Ada/);

    // The create form is posted by the runtime and the answer morphed in.
    await ada.evaluate(() => (window.__marker = "kept again"));
    await ada.fill("input[name=title]", "From the browser");
    await ada.click("text=Create post");
    await ada.waitForSelector("li >> text=From the browser");
    assert.equal(await ada.evaluate(() => window.__marker), "kept again");
    assert.equal(await ada.inputValue("input[name=title]"), "", "the form was reset");
    await screenshot(ada, "03-posts-signed-in");

    // The browser's cookies alone (a plain fetch from Node, no JavaScript run) get the
    // server-rendered list with the post; without them, the sign-in prompt.
    const cookies = await ada.context().cookies(keel.url);
    assert.ok(cookies.some((c) => c.name === "__session"), "a session cookie");
    const withCookies = await fetch(`${keel.url}/posts`, {
      headers: { cookie: cookies.map((c) => `${c.name}=${c.value}`).join("; ") },
      redirect: "manual",
    });
    assert.equal(withCookies.status, 200);
    const html = await withCookies.text();
    assert.match(html, /<li data-post-id="[^"]+"><a href="\/posts\/[^"]+">From the browser<\/a> by Ada/);
    const anonymous = await (await fetch(`${keel.url}/posts`)).text();
    assert.ok(!anonymous.includes("From the browser") && anonymous.includes("Sign in to see the posts"));

    // Live: Bob posts while Ada is typing; her page updates in place within 2 s, without a
    // reload, and keeps her input and focus.
    const bobsContext = await browser.newContext();
    const bobsViolations = await recordCspViolations(bobsContext);
    const bob = await bobsContext.newPage();
    bob.on("pageerror", (e) => errors.push(`bob: ${e.message}`));
    await signUp(bob, keel.url, "bob@example.com", "Bob");
    await ada.waitForFunction(() => window.__keel.live.state === "open");
    await ada.focus("input[name=title]");
    await ada.keyboard.type("half-typed");
    await bob.fill("input[name=title]", "From Bob");
    const posted = Date.now();
    await bob.click("text=Create post");
    await ada.waitForSelector("li >> text=From Bob", { timeout: 5000 });
    const lag = Date.now() - posted;
    assert.ok(lag < 2000, `Bob's post reached Ada's page after ${lag} ms`);
    assert.equal(await ada.evaluate(() => window.__marker), "kept again");
    assert.equal(await ada.inputValue("input[name=title]"), "half-typed");
    assert.equal(await ada.evaluate(() => document.activeElement?.getAttribute("name")), "title");
    await screenshot(ada, "04-after-live-update");

    // Scroll restoration: scroll the list, open a post, go back.
    await bob.click("text=Import 5 sample posts");
    await ada.waitForSelector("li >> text=Sample post 5", { timeout: 5000 });
    // Scroll positions as the page sees them, for the failure message below.
    await ada.evaluate(() => {
      window.__scrolls = [];
      const titles = () => [...document.querySelectorAll("li a")].map((a) => a.textContent).join(", ");
      window.addEventListener("scroll", () => window.__scrolls.push([location.pathname, window.scrollY, titles()]));
    });
    await ada.evaluate(() => window.scrollTo(0, 120));
    await ada.waitForFunction(() => window.scrollY === 120);
    // A scripted click: Playwright's own would first scroll the link into view.
    await ada.evaluate(() =>
      [...document.querySelectorAll("li a")].find((a) => a.textContent === "Sample post 1").click(),
    );
    await ada.waitForFunction(() => location.pathname.startsWith("/posts/") && document.title === "Sample post 1");
    await ada.goBack();
    await ada
      .waitForFunction(() => location.pathname === "/posts" && window.scrollY === 120, null, { timeout: 5000 })
      .catch(async (error) => {
        const seen = await ada.evaluate(() =>
          JSON.stringify({ path: location.pathname, y: window.scrollY, scrolls: window.__scrolls }),
        );
        throw new Error(`scroll not restored: ${seen}`, { cause: error });
      });
    assert.equal(await ada.evaluate(() => window.__marker), "kept again");

    // Signing out from the user button on /posts lands on home, signed out, and the page's
    // live stream is closed.
    await ada.waitForFunction(() => window.__keel.live.state === "open");
    await userMenuSignOut(ada);
    await ada.waitForFunction(() => location.pathname === "/");
    await ada.waitForSelector("text=Welcome Home!!!");
    await ada.waitForSelector(".ml-auto a[data-keel-modal]");
    assert.equal(await ada.$(".keel-user-button"), null);
    assert.deepEqual(await liveState(ada), { state: "closed", url: null });

    // Signing in through the modal (the runtime posts the dialog's form) lands on /posts,
    // signed in, with Ada's post and its delete button; still no reload.
    await ada.click('a[href="/posts"]');
    await ada.waitForSelector(".keel-sign-in-prompt a[data-keel-modal]");
    await ada.click(".keel-sign-in-prompt a[data-keel-modal]");
    await ada.fill("dialog.keel-modal input[name=email]", "ada@example.com");
    await ada.fill("dialog.keel-modal input[name=password]", "correct horse battery");
    await ada.click("dialog.keel-modal button[type=submit]");
    await ada.waitForSelector("li >> text=From the browser");
    assert.equal(await ada.evaluate(() => location.pathname), "/posts");
    assert.equal(await ada.$("dialog.keel-modal"), null, "the modal closed");
    assert.match(await ada.textContent(".keel-user-button"), /Ada/);
    assert.equal(await ada.locator("li", { hasText: "From the browser" }).locator("text=Delete").count(), 1);
    assert.equal(await ada.evaluate(() => window.__marker), "kept again");
    await ada.waitForFunction(() => window.__keel.live.state === "open");

    // Bob signs out in another tab: his open /posts page hears `signed-out`, refreshes to the
    // signed-out prompt and closes its stream.
    const bobsOtherTab = await bob.context().newPage();
    await bobsOtherTab.goto(`${keel.url}/`);
    await userMenuSignOut(bobsOtherTab);
    await bob.waitForSelector("text=Sign in to see the posts", { timeout: 5000 });
    assert.deepEqual(await liveState(bob), { state: "closed", url: null });

    // An unknown path: the NotFound page with a link home, HTTP 404.
    const notFound = await ada.goto(`${keel.url}/nope`);
    assert.equal(notFound.status(), 404);
    await ada.waitForSelector(".keel-not-found >> text=Not Found");
    assert.equal(await ada.getAttribute(".keel-not-found a", "href"), "/");
    await screenshot(ada, "05-not-found");

    assert.deepEqual(errors, []);
    // Everything above ran under the pages' Content-Security-Policy (with the devtools panel in
    // debug builds) without the browser blocking anything.
    assert.deepEqual([...cspViolations, ...bobsViolations], []);
  } finally {
    await browser.close();
    await keel.stop();
  }
});
