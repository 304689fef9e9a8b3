// The web tier in a real Chromium (playwright-core driving Debian's /usr/bin/chromium) against
// the all-in-one `keel` binary: sign-up through the enhanced form, client-side navigation with
// intent prefetch, the sign-in modal, form posts morphed in, live updates from another user
// that keep a half-typed input, and scroll restoration on back.
import { test } from "node:test";
import assert from "node:assert/strict";
import { chromium } from "playwright-core";
import { mkTempDir, startService } from "./keel-processes.mjs";

const CHROMIUM_FLAGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--no-first-run",
];

async function signUp(page, base, email, name) {
  await page.goto(`${base}/sign-up?redirect_url=%2Fposts`);
  await page.fill("input[name=first_name]", name);
  await page.fill("input[name=email]", email);
  await page.fill("input[name=password]", "correct horse battery");
  await page.click("form.keel-sign-up button[type=submit]");
  await page.waitForFunction(
    () => location.pathname === "/posts" && document.querySelector('form[action="/_keel/fn/posts/create"]'),
  );
}

test("the browser runtime: navigation, forms, modal, live morph, scroll restoration", async () => {
  const dir = await mkTempDir();
  const keel = await startService("web", [
    "--web-addr", "127.0.0.1:0",
    "--backend-addr", "127.0.0.1:0",
    "--idp-addr", "127.0.0.1:0",
    "--data-dir", dir,
  ]);
  const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: CHROMIUM_FLAGS });
  try {
    const ada = await (await browser.newContext({ viewport: { width: 800, height: 300 } })).newPage();
    const errors = [];
    ada.on("pageerror", (e) => errors.push(e.message));

    // Client-side navigation: the page is not reloaded (a window marker survives).
    await ada.goto(`${keel.url}/`);
    await ada.waitForFunction(() => window.__keel !== undefined);
    await ada.evaluate(() => (window.__marker = "kept"));
    await ada.hover('a[href="/posts"]');
    await ada.click('a[href="/posts"]');
    await ada.waitForFunction(() => location.pathname === "/posts");
    await ada.waitForSelector("text=Sign in to see the posts");
    assert.equal(await ada.evaluate(() => window.__marker), "kept");
    assert.equal(await ada.getAttribute('a[href="/posts"]', "class"), "font-bold");

    // The sign-in button opens the sign-in form in a modal dialog.
    await ada.click(".ml-auto a[data-keel-modal]");
    await ada.waitForSelector("dialog.keel-modal form.keel-sign-in input[name=email]");
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

    // Live: Bob posts while Ada is typing; her page updates in place and keeps her input.
    const bob = await (await browser.newContext()).newPage();
    await signUp(bob, keel.url, "bob@example.com", "Bob");
    await ada.focus("input[name=title]");
    await ada.keyboard.type("half-typed");
    await bob.fill("input[name=title]", "From Bob");
    await bob.click("text=Create post");
    await ada.waitForSelector("li >> text=From Bob", { timeout: 5000 });
    assert.equal(await ada.inputValue("input[name=title]"), "half-typed");
    assert.equal(await ada.evaluate(() => document.activeElement?.getAttribute("name")), "title");

    // Scroll restoration: scroll the list, open a post, go back.
    await bob.click("text=Import 5 sample posts");
    await ada.waitForSelector("li >> text=Sample post 5", { timeout: 5000 });
    await ada.evaluate(() => window.scrollTo(0, 120));
    await ada.waitForFunction(() => window.scrollY === 120);
    // A scripted click: Playwright's own would first scroll the link into view.
    await ada.evaluate(() =>
      [...document.querySelectorAll("li a")].find((a) => a.textContent === "Sample post 1").click(),
    );
    await ada.waitForFunction(() => location.pathname.startsWith("/posts/") && document.title === "Sample post 1");
    await ada.goBack();
    await ada.waitForFunction(() => location.pathname === "/posts" && window.scrollY === 120, null, { timeout: 5000 });
    assert.equal(await ada.evaluate(() => window.__marker), "kept again");

    // Signing out from the user button lands on home, signed out.
    await ada.evaluate(() => (document.querySelector("details.keel-user-button").open = true));
    await ada.click("text=Sign out");
    await ada.waitForFunction(() => location.pathname === "/");
    await ada.waitForSelector(".ml-auto a[data-keel-modal]");
    // Bob signs out in another tab: his open /posts page hears `signed-out` and refreshes
    // to the signed-out prompt.
    const bobsOtherTab = await bob.context().newPage();
    await bobsOtherTab.goto(`${keel.url}/`);
    await bobsOtherTab.evaluate(() => (document.querySelector("details.keel-user-button").open = true));
    await bobsOtherTab.click("text=Sign out");
    await bob.waitForSelector("text=Sign in to see the posts", { timeout: 5000 });
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
    await keel.stop();
  }
});
