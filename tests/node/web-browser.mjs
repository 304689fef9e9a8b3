// Shared steps of the Chromium tests (web-browser*.test.mjs).
import { mkdir } from "node:fs/promises";
import { fileURLToPath } from "node:url";

export const CHROMIUM_FLAGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--no-first-run",
];

/** `test-artifacts/` at the workspace root (ignored by git). */
export const ARTIFACTS = fileURLToPath(new URL("../../test-artifacts/", import.meta.url));

/** Saves a full-page screenshot as `test-artifacts/<name>.png`. */
export async function screenshot(page, name) {
  await mkdir(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: `${ARTIFACTS}${name}.png`, fullPage: true });
}

/**
 * Signs up through the sign-up page's form; it leads to the "enter the code" step, which this
 * helper skips (verification is not required by default) for the signed-in /posts page.
 */
export async function signUp(page, base, email, name) {
  await page.goto(`${base}/sign-up?redirect_url=%2Fposts`);
  await page.fill("input[name=first_name]", name);
  await page.fill("input[name=email]", email);
  await page.fill("input[name=password]", "correct horse battery");
  await page.click("form.keel-sign-up button[type=submit]");
  await page.waitForFunction(() => location.pathname === "/verify-email");
  await page.goto(`${base}/posts`);
  await page.waitForFunction(
    () => location.pathname === "/posts" && document.querySelector('form[action="/_keel/fn/posts/create"]'),
  );
}

/** Opens the user button's menu and clicks "Sign out". */
export async function userMenuSignOut(page) {
  await page.evaluate(() => (document.querySelector("details.keel-user-button").open = true));
  await page.click("details.keel-user-button button[type=submit]");
}

/** The runtime's read-only live-stream status (`window.__keel.live`). */
export async function liveState(page) {
  return page.evaluate(() => ({ ...window.__keel.live }));
}

/** Creates a post from `page`'s form (a signed-in /posts page). */
export async function createPost(page, title) {
  await page.fill("input[name=title]", title);
  await page.click("text=Create post");
}

/**
 * Records every Content-Security-Policy violation in `context`'s pages: the browser's
 * `securitypolicyviolation` events and its "Refused to …" console errors. Returns the list,
 * which a test expects to stay empty (the runtime, devtools and Clerk all work under the CSP).
 */
export async function recordCspViolations(context) {
  const violations = [];
  await context.exposeFunction("__keelCspViolation", (v) => violations.push(v));
  await context.addInitScript(() => {
    document.addEventListener("securitypolicyviolation", (e) => {
      window.__keelCspViolation(`${e.effectiveDirective} blocked ${e.blockedURI || "inline"} on ${location.pathname}`);
    });
  });
  context.on("console", (message) => {
    if (message.type() === "error" && /Content Security Policy/.test(message.text())) {
      violations.push(`console: ${message.text()}`);
    }
  });
  return violations;
}
