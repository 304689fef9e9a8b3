// The dashboard in a real Chromium (playwright-core driving /usr/bin/chromium) against the
// all-in-one `keel` binary: the operator signs in with the admin key printed at start (a wrong
// key is refused), sees the `posts` and `users` tables, edits a post — and Ada's open /posts
// page shows the edit live — while a document the schema refuses shows its error and changes
// nothing; a value with markup stays text; the users page lists Ada and runs `posts:list` as
// her, with its result and log line; the logs page, open meanwhile, receives that execution
// live; a snapshot exported, then imported again after an edit, brings the old title back on
// Ada's page, and a file that is no ZIP is refused; the import form also works without
// JavaScript (posted as multipart/form-data); the health page lists the lone backend as the
// only member. No page error, no CSP violation.
// Screenshots land in `test-artifacts/`.
import { test } from "node:test";
import assert from "node:assert/strict";
import { chromium } from "playwright-core";
import { CHROMIUM_FLAGS, createPost, recordCspViolations, screenshot, signUp } from "./web-browser.mjs";
import { startAllInOne } from "./keel-processes.mjs";

const postTitles = (page) => page.$$eval("ul.posts li > a", (links) => links.map((a) => a.textContent));

/** The document textarea's JSON, changed by `edit`. */
async function editDocument(page, edit) {
  const text = await page.inputValue("form.document textarea[name=document]");
  const changed = edit(JSON.parse(text));
  await page.fill("form.document textarea[name=document]", typeof changed === "string" ? changed : JSON.stringify(changed));
  await page.click("form.document button[type=submit]");
}

test("dashboard: sign in, data, live edit, run as a user, live logs", async () => {
  const keel = await startAllInOne();
  assert.ok(keel.adminKey, "the admin key is printed at start");
  assert.match(keel.dashboard, /^http:\/\/127\.0\.0\.1:\d+\/dashboard$/);
  const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: CHROMIUM_FLAGS });
  try {
    const errors = [];
    // Ada, a user of the app, with /posts open.
    const adasContext = await browser.newContext();
    const ada = await adasContext.newPage();
    ada.on("pageerror", (e) => errors.push(`ada: ${e.message}`));
    await signUp(ada, keel.url, "ada@example.com", "Ada");
    await createPost(ada, "Hello from Ada");
    await ada.waitForSelector("ul.posts li >> text=Hello from Ada");
    await ada.waitForFunction(() => window.__keel?.live?.state === "open");

    // The operator.
    const context = await browser.newContext();
    const violations = await recordCspViolations(context);
    const op = await context.newPage();
    op.on("pageerror", (e) => errors.push(`operator: ${e.message}`));
    const first = await op.goto(keel.dashboard);
    assert.equal(first.status(), 401, "the dashboard wants the key first");
    await op.fill("input[name=key]", "not-the-key");
    await op.click("main.sign-in button[type=submit]");
    await op.waitForSelector("p.error >> text=BadAdminKey");
    await op.fill("input[name=key]", keel.adminKey);
    await op.click("main.sign-in button[type=submit]");
    await op.waitForSelector("#role >> text=single");
    // In one process the health page counts Ada's open page; a backend of its own says where
    // to look instead.
    if (keel.processes) {
      assert.match(await op.textContent("#live-pages"), /the web tier runs in another process/);
    } else {
      assert.match(await op.textContent("#live-pages"), /^\s*[1-9]\d*\s*$/);
    }
    // A lone backend is its cluster's only member.
    assert.match(await op.textContent("#members-live"), /1 live of 1 recorded/);
    assert.match(await op.textContent("#members-table tr.member[data-state=live]"), /this node/);
    const cookies = await context.cookies();
    const session = cookies.find((c) => c.name === "keel_dashboard");
    assert.ok(session?.httpOnly && session.sameSite === "Strict", JSON.stringify(cookies));
    assert.ok(!session.value.includes(keel.adminKey), "the cookie holds a MAC, not the key");
    await screenshot(op, "dashboard-health");

    // Tables with their counts and indexes.
    await op.click("nav >> text=Data");
    await op.waitForSelector("#tables a >> text=posts");
    await op.waitForSelector("#tables a >> text=users");
    const tables = await op.$$eval("#tables tr", (rows) => rows.map((r) => r.textContent));
    assert.ok(tables.some((t) => t.startsWith("posts1")), tables.join(" | "));
    await screenshot(op, "dashboard-tables");

    // The logs page, open in another tab, follows executions live.
    const logs = await context.newPage();
    logs.on("pageerror", (e) => errors.push(`logs: ${e.message}`));
    await logs.goto(`${keel.dashboard}/logs?path=posts%3Alist`);
    await logs.waitForFunction(() => document.documentElement.dataset.live === "open");

    // Edit Ada's post: her open page shows it without a reload.
    await op.click("#tables a >> text=posts");
    await op.waitForSelector("#documents >> text=Hello from Ada");
    await op.waitForFunction(() => document.documentElement.dataset.live === "open");
    await op.click("#documents a >> text=edit");
    await op.waitForSelector("form.document textarea");
    await editDocument(op, (doc) => ({ ...doc, title: "Edited in the dashboard" }));
    await op.waitForSelector("#documents >> text=Edited in the dashboard");
    await ada.waitForSelector("ul.posts li >> text=Edited in the dashboard");
    assert.deepEqual(await postTitles(ada), ["Edited in the dashboard"]);

    // A document the schema refuses: the error is shown, nothing changes.
    await op.click("#documents a >> text=edit");
    await editDocument(op, (doc) => ({ ...doc, title: 42 }));
    await op.waitForSelector("p.error");
    const refusal = await op.textContent("p.error");
    assert.match(refusal, /title/, refusal);
    await editDocument(op, () => "{ not json");
    await op.waitForSelector("p.error >> text=BadDocument");
    await screenshot(op, "dashboard-refused-document");

    // Markup in a value stays text, in the dashboard and on Ada's page.
    await op.goto(`${keel.dashboard}/data/posts`);
    await op.click("#documents a >> text=edit");
    await editDocument(op, (doc) => ({ ...doc, title: "<img src=x onerror=\"window.__owned=1\">" }));
    await op.waitForSelector("#documents >> text=<img src=x");
    await ada.waitForSelector("ul.posts li >> text=<img src=x");
    assert.equal(await op.evaluate(() => window.__owned), undefined);
    assert.equal(await ada.evaluate(() => window.__owned), undefined);
    assert.equal(await op.$$eval("#documents img", (imgs) => imgs.length), 0);
    assert.deepEqual(await postTitles(ada), ["<img src=x onerror=\"window.__owned=1\">"]);

    // The users page lists Ada when the idp runs in the backend's process; run posts:list as
    // her. A backend of its own has no idp to ask: its users page says so, and the run form
    // takes her identity as the idp's tokens name her.
    await op.click("nav >> text=Users");
    if (keel.processes) {
      await op.waitForSelector("#no-idp");
      const users = await fetch(`${keel.idp}/v1/users?email_address=ada@example.com`, {
        headers: { authorization: `Bearer ${keel.secretKey}` },
      }).then((r) => r.json());
      assert.equal(users.length, 1, JSON.stringify(users));
      const identity = JSON.stringify({ subject: users[0].id, issuer: keel.idp });
      await op.goto(`${keel.dashboard}/functions/run?${new URLSearchParams({ identity })}`);
    } else {
      await op.waitForSelector("#users >> text=ada@example.com");
      await screenshot(op, "dashboard-users");
      await op.click("#users a.run-as");
    }
    await op.fill("input[name=path]", "posts:list");
    await op.click("form.run button[type=submit]");
    await op.waitForSelector("#result");
    assert.match(await op.textContent("#result"), /onerror/);
    assert.match(await op.textContent("#log-lines"), /\[LOG\] 'listed 1 posts'/);
    await screenshot(op, "dashboard-run");

    // Anonymous, the same function fails with its error.
    await op.fill("textarea[name=identity]", "");
    await op.click("form.run button[type=submit]");
    await op.waitForSelector("#error >> text=Not authenticated");

    // The run's execution arrived on the logs page, with its caller and log line.
    await logs.waitForSelector("#executions tr.execution >> text=listed 1 posts");
    const row = await logs.textContent("#executions tr.execution:has-text('listed 1 posts')");
    assert.match(row, /posts:list/);
    assert.match(row, /user_/);
    await logs.waitForSelector("#executions tr.execution >> text=Not authenticated");
    await screenshot(logs, "dashboard-logs");

    // Import: an export taken now, imported again (replacing) after an edit, brings the old
    // title back on Ada's open page (one commit, seen by subscribers); a file that is no ZIP
    // is refused and changes nothing.
    await op.goto(`${keel.dashboard}/data`);
    const snapshot = await op.evaluate(async () => {
      const bytes = new Uint8Array(await (await fetch("/dashboard/export")).arrayBuffer());
      return Array.from(bytes);
    });
    await op.goto(`${keel.dashboard}/data/posts`);
    await op.click("#documents a >> text=edit");
    await editDocument(op, (doc) => ({ ...doc, title: "Changed after the export" }));
    await ada.waitForSelector("ul.posts li >> text=Changed after the export");
    await op.goto(`${keel.dashboard}/data`);
    const chooseFile = (name, bytes) =>
      op.setInputFiles("form[data-import] input[type=file]", { name, mimeType: "application/zip", buffer: Buffer.from(bytes) });
    await chooseFile("garbage.zip", Array.from(Buffer.from("not a zip at all")));
    await op.selectOption("form[data-import] select[name=mode]", "replace");
    await op.click("form[data-import] button");
    await op.waitForSelector("#import-result[data-status='400']");
    assert.match(await op.textContent("#import-result"), /refused \(400\)/);
    assert.deepEqual(await postTitles(ada), ["Changed after the export"]);
    await chooseFile("snapshot.zip", snapshot);
    await op.click("form[data-import] button");
    await op.waitForSelector("#import-result[data-status='200']");
    assert.match(await op.textContent("#import-result"), /imported \d+ documents/);
    await ada.waitForSelector("ul.posts li >> text=<img src=x");
    assert.deepEqual(await postTitles(ada), ["<img src=x onerror=\"window.__owned=1\">"]);
    await screenshot(op, "dashboard-import");

    // The same form without JavaScript: the browser posts it as multipart/form-data, the
    // import is one commit (Ada's open page shows the old title back), the answer a page.
    await op.goto(`${keel.dashboard}/data/posts`);
    await op.click("#documents a >> text=edit");
    await editDocument(op, (doc) => ({ ...doc, title: "Changed once more" }));
    await ada.waitForSelector("ul.posts li >> text=Changed once more");
    const plainContext = await browser.newContext({ javaScriptEnabled: false });
    const plainViolations = await recordCspViolations(plainContext);
    const plain = await plainContext.newPage();
    await plain.goto(keel.dashboard);
    await plain.fill("input[name=key]", keel.adminKey);
    await plain.click("main.sign-in button[type=submit]");
    await plain.waitForSelector("#role >> text=single");
    await plain.goto(`${keel.dashboard}/data`);
    await plain.setInputFiles("form#import input[type=file]", {
      name: "snapshot.zip",
      mimeType: "application/zip",
      buffer: Buffer.from(snapshot),
    });
    await plain.selectOption("form#import select[name=mode]", "replace");
    await Promise.all([plain.waitForNavigation(), plain.click("form#import button")]);
    assert.match(await plain.textContent("#import-summary"), /Imported \d+ documents into \d+ tables/);
    await ada.waitForSelector("ul.posts li >> text=<img src=x");
    assert.deepEqual(await postTitles(ada), ["<img src=x onerror=\"window.__owned=1\">"]);
    await screenshot(plain, "dashboard-import-without-javascript");
    assert.deepEqual(plainViolations, []);

    assert.deepEqual(errors, []);
    assert.deepEqual(violations, []);
  } finally {
    await browser.close();
    await keel.stop();
  }
});
