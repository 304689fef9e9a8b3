// Account flows in a real Chromium against the `keel` binary (no JavaScript needed by any of
// them; the browser just submits forms): sign-up → the code from the idp's development mailbox
// page → verified (the `convex` token says so); the "Manage account" page from the user button
// (names, sessions with revoke, password change, delete); password reset by emailed code.
import { test } from "node:test";
import assert from "node:assert/strict";
import { chromium } from "playwright-core";
import { CHROMIUM_FLAGS, screenshot, signUp } from "./web-browser.mjs";
import { startAllInOne, waitFor } from "./keel-processes.mjs";

/** The newest code the idp's development mailbox page lists for `to` with `subject` in it. */
async function mailedCode(idpUrl, to, subject) {
  let code;
  await waitFor(async () => {
    const page = await (await fetch(`${idpUrl}/dev/mailbox`)).text();
    for (const row of page.matchAll(/<td class="to">([^<]*)<\/td><td class="subject">([^<]*)<\/td><td class="code">(\d{6})<\/td>/g)) {
      if (row[1] === to && row[2].includes(subject)) {
        code = row[3];
        return true;
      }
    }
    return false;
  }, 10000, `a "${subject}" email to ${to}`);
  return code;
}

/** A Backend-API call to the idp. */
async function bapi(keel, path, init = {}) {
  const response = await fetch(`${keel.idp}/v1${path}`, {
    ...init,
    headers: { authorization: `Bearer ${keel.secretKey}`, "content-type": "application/json" },
  });
  return response.json();
}

async function signIn(page, base, email, password) {
  await page.goto(`${base}/sign-in?redirect_url=%2Fposts`);
  await page.fill("form.keel-sign-in input[name=email]", email);
  await page.fill("form.keel-sign-in input[name=password]", password);
  await page.click("form.keel-sign-in button[type=submit]");
  await page.waitForFunction(() => location.pathname === "/posts");
}

test("verify by code, manage the account, reset the password", async () => {
  const keel = await startAllInOne();
  const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: CHROMIUM_FLAGS });
  try {
    const errors = [];
    const ada = await (await browser.newContext()).newPage();
    ada.on("pageerror", (e) => errors.push(e.message));

    // Sign-up leads to the code step; a wrong code is refused, the mailed one verifies.
    await ada.goto(`${keel.url}/sign-up?redirect_url=%2Fposts`);
    await ada.fill("input[name=first_name]", "Ada");
    await ada.fill("input[name=email]", "ada@example.com");
    await ada.fill("input[name=password]", "correct horse battery");
    await ada.click("form.keel-sign-up button[type=submit]");
    await ada.waitForFunction(() => location.pathname === "/verify-email");
    const code = await mailedCode(keel.idp, "ada@example.com", "verification code");
    await ada.fill("form[action='/_keel/auth/verify-email'] input[name=code]", code === "000000" ? "111111" : "000000");
    await ada.click("form[action='/_keel/auth/verify-email'] button[type=submit]");
    await ada.waitForSelector(".keel-form-error");
    assert.match(await ada.textContent(".keel-form-error"), /code/i);
    await ada.fill("form[action='/_keel/auth/verify-email'] input[name=code]", code);
    await ada.click("form[action='/_keel/auth/verify-email'] button[type=submit]");
    await ada.waitForFunction(() => location.pathname === "/posts");
    const [user] = await bapi(keel, "/users?email_address=ada%40example.com");
    assert.equal(user.email_addresses[0].verification.status, "verified");
    const [session] = await bapi(keel, `/sessions?user_id=${user.id}&status=active`);
    const { jwt } = await bapi(keel, `/sessions/${session.id}/tokens/convex`, { method: "POST" });
    const claims = JSON.parse(Buffer.from(jwt.split(".")[1], "base64url").toString());
    assert.equal(claims.email_verified, true);

    // A second browser signs in as Ada too.
    const other = await (await browser.newContext()).newPage();
    await signIn(other, keel.url, "ada@example.com", "correct horse battery");

    // Manage account, from the user button.
    await ada.evaluate(() => (document.querySelector("details.keel-user-button").open = true));
    await ada.click("details.keel-user-button a.keel-manage-account");
    await ada.waitForFunction(() => location.pathname === "/account");
    assert.equal(await ada.textContent(".keel-account-email .keel-badge"), "Verified");
    await ada.fill("form.keel-account-names input[name=first_name]", "Augusta Ada");
    await ada.click("form.keel-account-names button[type=submit]");
    await ada.waitForSelector(".keel-form-notice");
    assert.equal(await ada.inputValue("form.keel-account-names input[name=first_name]"), "Augusta Ada");
    assert.equal(await ada.locator(".keel-account-sessions li").count(), 2);
    await ada.click(".keel-account-sessions li form button[type=submit]");
    await ada.waitForFunction(() => document.querySelectorAll(".keel-account-sessions li").length === 1);
    assert.deepEqual(
      (await bapi(keel, `/sessions?user_id=${user.id}&status=revoked`)).map((s) => s.status),
      ["revoked"],
    );
    await screenshot(ada, "account-manage");

    // Changing the password: a wrong current one is refused; then it works.
    await ada.fill("form.keel-account-password input[name=current_password]", "not my password");
    await ada.fill("form.keel-account-password input[name=new_password]", "a newer passphrase");
    await ada.click("form.keel-account-password button[type=submit]");
    await ada.waitForFunction(() => document.querySelector(".keel-form-error")?.textContent.includes("current password"));
    await ada.fill("form.keel-account-password input[name=current_password]", "correct horse battery");
    await ada.fill("form.keel-account-password input[name=new_password]", "a newer passphrase");
    await ada.click("form.keel-account-password button[type=submit]");
    await ada.waitForFunction(() => document.querySelector(".keel-form-notice")?.textContent.includes("Password changed"));

    // Forgot it anyway: reset by emailed code from a fresh browser.
    const reset = await (await browser.newContext()).newPage();
    await reset.goto(`${keel.url}/sign-in`);
    await reset.click("text=Forgot password?");
    await reset.waitForFunction(() => location.pathname === "/reset-password");
    await reset.fill("form.keel-reset-request input[name=email]", "ada@example.com");
    await reset.click("form.keel-reset-request button[type=submit]");
    await reset.waitForSelector("form.keel-reset-password");
    const resetCode = await mailedCode(keel.idp, "ada@example.com", "password reset code");
    await reset.fill("form.keel-reset-password input[name=code]", resetCode);
    await reset.fill("form.keel-reset-password input[name=password]", "the reset passphrase");
    await reset.click("form.keel-reset-password button[type=submit]");
    await reset.waitForFunction(() => location.pathname === "/sign-in" && document.querySelector(".keel-form-notice"));
    await signIn(reset, keel.url, "ada@example.com", "the reset passphrase");
    await screenshot(reset, "account-after-reset");

    // Delete the account: without the confirmation nothing happens; with it, gone.
    await reset.goto(`${keel.url}/account`);
    await reset.fill("form.keel-account-delete input[name=confirm]", "nope");
    await reset.click("form.keel-account-delete button[type=submit]");
    await reset.waitForSelector(".keel-form-error");
    await reset.fill("form.keel-account-delete input[name=confirm]", "DELETE");
    await reset.click("form.keel-account-delete button[type=submit]");
    await reset.waitForFunction(() => location.pathname === "/" && !document.querySelector("details.keel-user-button"));
    assert.deepEqual(await bapi(keel, "/users?email_address=ada%40example.com"), []);

    // Signing up again still works, and skipping the code step is allowed by default.
    await signUp(reset, keel.url, "ada@example.com", "Ada");
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
    await keel.stop();
  }
});
