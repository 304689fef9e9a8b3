// The web tier in real-Clerk mode in Chromium: `keel idp` stands in for Clerk's Backend API
// (CLERK_API_URL), and Clerk's browser script, which the runtime loads from the Frontend API
// host of the publishable key, is a double following clerk-js's documented surface
// (`Clerk.load()`, `Clerk.session` with `id` and `getToken()`, `addListener`, `mountUserButton`,
// `openSignIn`, `signOut`). It writes the `__session` cookie as clerk-js does.
//
// Checked: a page rendered signed out because the browser had no fresh `__session` cookie (the
// tab was away longer than the token's minute) is re-rendered signed in once Clerk has its
// session; signing out through Clerk re-renders it signed out; Clerk's user button replaces the
// server-rendered one.
import { test } from "node:test";
import assert from "node:assert/strict";
import { chromium } from "playwright-core";
import { CHROMIUM_FLAGS, recordCspViolations, screenshot } from "./web-browser.mjs";
import { idpBapi, startClerkWeb, startIdpAndBackend } from "./keel-processes.mjs";

const FRONTEND_API = "clerk.keel.test";
const PUBLISHABLE_KEY = `pk_test_${Buffer.from(`${FRONTEND_API}$`).toString("base64").replace(/=+$/, "")}`;

const bapi = idpBapi;

/** The clerk-js double: one signed-in session whose token comes from `tokenUrl`. */
function clerkScript(sessionId, tokenUrl, signedInAt) {
  return `
(() => {
  // clerk-js records the client's last sign-in or sign-out (seconds; 0 when signed out).
  document.cookie = "__client_uat=${signedInAt}; path=/; SameSite=Lax";
  const listeners = [];
  const emit = () => listeners.forEach((l) => l({ session: window.Clerk.session }));
  const session = {
    id: ${JSON.stringify(sessionId)},
    async getToken() {
      const response = await fetch(${JSON.stringify(tokenUrl)}, { method: "POST" });
      const { jwt } = await response.json();
      document.cookie = "__session=" + jwt + "; path=/; SameSite=Lax";
      return jwt;
    },
  };
  window.Clerk = {
    session: null,
    async load() { this.session = session; window.__clerkLoaded = true; },
    addListener(listener) { listeners.push(listener); listener({ session: this.session }); return () => {}; },
    mountUserButton(el) { el.textContent = "Clerk user button"; },
    openSignIn() {},
    async signOut() {
      document.cookie = "__session=; path=/; max-age=0";
      document.cookie = "__client_uat=0; path=/; SameSite=Lax";
      this.session = null;
      emit();
    },
  };
})();
`;
}

test("Clerk mode: the page follows Clerk's session in the browser", async () => {
  const { idp, backend } = await startIdpAndBackend();
  const web = await startClerkWeb(backend, {
    publishableKey: PUBLISHABLE_KEY, secretKey: idp.secretKey, apiUrl: idp.url,
  });
  const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: CHROMIUM_FLAGS });
  try {
    // A Clerk user and session, as Clerk's hosted sign-in would make them.
    const user = await bapi(idp, "/users", {
      email_address: ["grace@example.com"],
      password: "correct horse battery",
      first_name: "Grace",
    });
    const session = await bapi(idp, "/sessions", { user_id: user.id });
    const signedInAt = Math.floor(Date.now() / 1000) - 1;

    const context = await browser.newContext();
    // Clerk's script and API come from its Frontend API host, which the policy allows.
    const cspViolations = await recordCspViolations(context);
    // Clerk's hosted script and its token endpoint (same path as the Frontend API's), served by
    // the test; tokens come from the Backend API of the stand-in.
    const tokenUrl = `https://${FRONTEND_API}/v1/client/sessions/${session.id}/tokens`;
    await context.route(`https://${FRONTEND_API}/**`, async (route) => {
      const url = new URL(route.request().url());
      if (url.pathname === "/npm/@clerk/clerk-js@5/dist/clerk.browser.js") {
        return route.fulfill({
          contentType: "application/javascript",
          headers: { "access-control-allow-origin": "*" },
          body: clerkScript(session.id, tokenUrl, signedInAt),
        });
      }
      if (url.pathname === `/v1/client/sessions/${session.id}/tokens`) {
        const token = await bapi(idp, `/sessions/${session.id}/tokens`, {});
        return route.fulfill({
          contentType: "application/json",
          headers: { "access-control-allow-origin": web.url },
          body: JSON.stringify({ object: "token", jwt: token.jwt }),
        });
      }
      return route.fulfill({ status: 404, body: "not in the double" });
    });
    const page = await context.newPage();
    const errors = [];
    page.on("pageerror", (e) => errors.push(e.message));
    const refreshes = [];
    page.on("request", (r) => {
      // The runtime's own fetches of the page, prefetches aside.
      const headers = r.headers();
      if (r.resourceType() === "fetch" && headers["x-keel-navigation"] && !headers["sec-purpose"]) refreshes.push(r.url());
    });

    // No `__session` cookie yet: the server renders signed out, and says for which session.
    const response = await page.goto(`${web.url}/posts`);
    const first = await response.text();
    assert.match(first, /Sign in to see the posts/);
    assert.match(first, /<meta name="keel-clerk-session" content="">/, "rendered for no session");
    // Clerk loads with its session: the runtime gets a fresh token into the cookie and
    // re-renders, now signed in (the form to create a post), with Clerk's user button.
    await page.waitForSelector('form[action="/_keel/fn/posts/create"]', { timeout: 5000 });
    await page.waitForSelector("text=Clerk user button", { timeout: 5000 });
    assert.equal(await page.locator("text=Sign in to see the posts").count(), 0);
    assert.equal(await page.getAttribute('meta[name="keel-clerk-session"]', "content"), session.id);
    assert.equal(refreshes.length, 1, `one re-render: ${refreshes}`);
    await screenshot(page, "clerk-01-signed-in-after-clerk-loaded");

    // With the fresh cookie the server renders the page signed in, for Clerk's session.
    const again = await (await page.goto(`${web.url}/posts`)).text();
    assert.doesNotMatch(again, /Sign in to see the posts/);
    assert.ok(again.includes(`<meta name="keel-clerk-session" content="${session.id}">`));
    await page.waitForFunction(() => window.__clerkLoaded === true);
    await page.waitForSelector("text=Clerk user button", { timeout: 5000 });

    // Signed out in another tab: clerk-js there sets __client_uat to 0. A __session cookie
    // still held here is stale, and the server renders signed out.
    const token = await bapi(idp, `/sessions/${session.id}/tokens`, {});
    const stale = await fetch(`${web.url}/posts`, {
      headers: { cookie: `__session=${token.jwt}; __client_uat=0` },
    });
    assert.match(await stale.text(), /Sign in to see the posts/);

    // Signing out through Clerk re-renders the page signed out.
    await page.evaluate(() => window.Clerk.signOut());
    await page.waitForSelector("text=Sign in to see the posts", { timeout: 5000 });
    assert.equal(await page.getAttribute('meta[name="keel-clerk-session"]', "content"), "");
    await screenshot(page, "clerk-02-signed-out-through-clerk");
    assert.deepEqual(errors, []);
    assert.deepEqual(cspViolations, [], "no Content-Security-Policy violations");
  } finally {
    await browser.close();
    await web.stop();
    await backend.stop();
    await idp.stop();
  }
});
