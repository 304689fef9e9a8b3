// Two-step verification in a real Chromium against the `keel` binary (plain forms, no
// JavaScript needed): turning on an authenticator app from "Manage account" (the secret and
// its otpauth:// link shown, confirmed with a code, ten backup codes shown once), then signing
// in asks for a code after the password — a wrong one is refused, the app's code or a backup
// code signs in — and turning it off takes a code.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { chromium } from "playwright-core";
import { CHROMIUM_FLAGS, screenshot, signUp, userMenuSignOut } from "./web-browser.mjs";
import { startAllInOne } from "./keel-processes.mjs";

/** RFC 4648 base32 (no padding) to bytes. */
function base32(text) {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  let bits = 0;
  let value = 0;
  const out = [];
  for (const c of text.replace(/=+$/, "").toUpperCase()) {
    value = (value << 5) | alphabet.indexOf(c);
    bits += 5;
    if (bits >= 8) {
      out.push((value >>> (bits - 8)) & 0xff);
      bits -= 8;
    }
  }
  return Buffer.from(out);
}

/** The 6-digit TOTP (RFC 6238: SHA-1, 30 s) an authenticator app shows at `unixSecs`. */
function totp(secret, unixSecs) {
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(Math.floor(unixSecs / 30)));
  const mac = createHmac("sha1", base32(secret)).update(counter).digest();
  const offset = mac[mac.length - 1] & 0x0f;
  const binary = mac.readUInt32BE(offset) & 0x7fffffff;
  return String(binary % 1_000_000).padStart(6, "0");
}

const now = () => Date.now() / 1000;

/** Email and password, up to the code step. */
async function password(page, base, email) {
  await page.goto(`${base}/sign-in?redirect_url=%2Fposts`);
  await page.fill("form.keel-sign-in input[name=email]", email);
  await page.fill("form.keel-sign-in input[name=password]", "correct horse battery");
  await page.click("form.keel-sign-in button[type=submit]");
  await page.waitForFunction(() => location.pathname === "/sign-in/factor-two");
}

async function enterCode(page, code) {
  await page.fill("form.keel-second-factor input[name=code]", code);
  await page.click("form.keel-second-factor button[type=submit]");
}

test("turn on an authenticator app, sign in with its code or a backup code, turn it off", async () => {
  const keel = await startAllInOne();
  const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: CHROMIUM_FLAGS });
  try {
    const errors = [];
    const page = await (await browser.newContext()).newPage();
    page.on("pageerror", (e) => errors.push(e.message));
    await signUp(page, keel.url, "totp@example.com", "Tess");

    // Set-up: the secret and its link, confirmed by the app's code; the backup codes page.
    await page.goto(`${keel.url}/account`);
    await page.click("form[action='/_keel/account/two-factor/start'] button[type=submit]");
    await page.waitForSelector(".keel-totp-secret");
    const secret = (await page.textContent(".keel-totp-secret")).trim();
    assert.match(secret, /^[A-Z2-7]{32}$/);
    const uri = await page.getAttribute("a.keel-totp-uri", "href");
    assert.ok(uri.startsWith("otpauth://totp/") && uri.includes(`secret=${secret}`), uri);
    await screenshot(page, "totp-set-up");
    await page.fill("form[action='/_keel/account/two-factor/confirm'] input[name=code]", totp(secret, now()));
    await page.click("form[action='/_keel/account/two-factor/confirm'] button[type=submit]");
    await page.waitForSelector(".keel-backup-codes");
    const backupCodes = await page.$$eval(".keel-backup-codes li code", (codes) => codes.map((c) => c.textContent));
    assert.equal(backupCodes.length, 10);
    await screenshot(page, "totp-backup-codes");
    await page.click("text=Back to your account");
    await page.waitForSelector(".keel-account-two-factor .keel-verified");

    // Sign-in now takes a code after the password: a wrong one is refused, the app's works.
    await page.goto(`${keel.url}/posts`);
    await userMenuSignOut(page);
    await page.waitForFunction(() => !document.querySelector("details.keel-user-button"));
    await password(page, keel.url, "totp@example.com");
    const valid = [-1, 0, 1, 2].map((i) => totp(secret, now() + 30 * i));
    const wrong = ["000000", "111111", "222222"].find((c) => !valid.includes(c));
    await enterCode(page, wrong);
    await page.waitForSelector(".keel-form-error");
    assert.match(await page.textContent(".keel-form-error"), /code/i);
    await screenshot(page, "totp-sign-in-wrong-code");
    await enterCode(page, totp(secret, now() + 30));
    await page.waitForFunction(() => location.pathname === "/posts" && document.querySelector("details.keel-user-button"));

    // A backup code signs in once.
    await userMenuSignOut(page);
    await page.waitForFunction(() => !document.querySelector("details.keel-user-button"));
    await password(page, keel.url, "totp@example.com");
    await enterCode(page, backupCodes[0]);
    await page.waitForFunction(() => location.pathname === "/posts" && document.querySelector("details.keel-user-button"));

    // Turning it off needs a code (a backup code here); then the password alone signs in.
    await page.goto(`${keel.url}/account`);
    await page.fill("form[action='/_keel/account/two-factor/disable'] input[name=code]", backupCodes[0]);
    await page.click("form[action='/_keel/account/two-factor/disable'] button[type=submit]");
    await page.waitForSelector(".keel-form-error");
    await page.fill("form[action='/_keel/account/two-factor/disable'] input[name=code]", backupCodes[1]);
    await page.click("form[action='/_keel/account/two-factor/disable'] button[type=submit]");
    await page.waitForSelector("form[action='/_keel/account/two-factor/start']");
    await userMenuSignOut(page);
    await page.waitForFunction(() => !document.querySelector("details.keel-user-button"));
    await page.goto(`${keel.url}/sign-in?redirect_url=%2Fposts`);
    await page.fill("form.keel-sign-in input[name=email]", "totp@example.com");
    await page.fill("form.keel-sign-in input[name=password]", "correct horse battery");
    await page.click("form.keel-sign-in button[type=submit]");
    await page.waitForFunction(() => location.pathname === "/posts");
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
    await keel.stop();
  }
});
