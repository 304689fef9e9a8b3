// Clerk's handshake in Chromium (real-Clerk mode): a browser that comes back with an outdated
// `__session` cookie (Clerk's `__client_uat` says it signed in after that token was minted) is
// never shown the page signed out. The web tier sends it to the Frontend API's handshake; Clerk
// (here a double on 127.0.0.1 that follows Clerk's documented handshake) sends it back with a
// signed `__clerk_handshake` payload listing fresh cookies; the web tier sets them and returns to
// the page, which renders signed in. Clerk's Backend API is `keel idp`, behind the double, whose
// JWKS adds the key that signs handshake payloads (as a Clerk instance's JWKS holds its keys).
import { test } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import crypto from "node:crypto";
import { chromium } from "playwright-core";
import { CHROMIUM_FLAGS, screenshot } from "./web-browser.mjs";
import { idpBapi, startClerkWeb, startIdpAndBackend } from "./keel-processes.mjs";

const DOUBLE_KID = "ins_clerk_double";
const b64url = (bytes) => Buffer.from(bytes).toString("base64url");

function signRs256(privateKey, claims) {
  const input = `${b64url(JSON.stringify({ alg: "RS256", typ: "JWT", kid: DOUBLE_KID }))}.${b64url(JSON.stringify(claims))}`;
  return `${input}.${b64url(crypto.sign("RSA-SHA256", Buffer.from(input), privateKey))}`;
}

const claimsOf = (jwt) => JSON.parse(Buffer.from(jwt.split(".")[1], "base64url").toString());

const bapi = idpBapi;

/** Clerk's Frontend API handshake and its Backend API (the idp's, JWKS extended) on one port. */
async function startClerkDouble(idp) {
  const { privateKey, publicKey } = crypto.generateKeyPairSync("rsa", { modulusLength: 2048 });
  const double = { sessionId: "", handshakes: 0 };
  const server = http.createServer(async (req, res) => {
    try {
      const url = new URL(req.url, "http://double");
      if (url.pathname === "/v1/client/handshake") {
        double.handshakes += 1;
        const back = url.searchParams.get("redirect_url");
        const { jwt } = await bapi(idp, `/sessions/${double.sessionId}/tokens`, {});
        const payload = signRs256(privateKey, {
          handshake: [
            `__session=${jwt}; Path=/; SameSite=Lax`,
            `__client_uat=${claimsOf(jwt).iat}; Path=/; SameSite=Lax; Max-Age=315360000`,
          ],
        });
        const joiner = back.includes("?") ? "&" : "?";
        res.writeHead(307, { location: `${back}${joiner}__clerk_handshake=${payload}` });
        return res.end();
      }
      if (url.pathname === "/v1/jwks") {
        const set = await (await fetch(`${idp.url}/v1/jwks`, {
          headers: { authorization: `Bearer ${idp.secretKey}` },
        })).json();
        const { n, e } = publicKey.export({ format: "jwk" });
        set.keys.push({ kty: "RSA", use: "sig", alg: "RS256", kid: DOUBLE_KID, n, e });
        res.writeHead(200, { "content-type": "application/json" });
        return res.end(JSON.stringify(set));
      }
      // Everything else is the Backend API: passed to the idp.
      const chunks = [];
      for await (const chunk of req) chunks.push(chunk);
      const headers = {};
      for (const name of ["authorization", "content-type"]) {
        if (req.headers[name]) headers[name] = req.headers[name];
      }
      const answer = await fetch(`${idp.url}${req.url}`, {
        method: req.method,
        headers,
        body: chunks.length ? Buffer.concat(chunks) : undefined,
      });
      res.writeHead(answer.status, { "content-type": answer.headers.get("content-type") ?? "text/plain" });
      res.end(Buffer.from(await answer.arrayBuffer()));
    } catch (error) {
      res.writeHead(500);
      res.end(String(error));
    }
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  double.url = `http://127.0.0.1:${server.address().port}`;
  double.host = `127.0.0.1:${server.address().port}`;
  double.stop = () => new Promise((resolve) => server.close(resolve));
  return double;
}

test("Clerk mode: an outdated session is renewed through the handshake before the page renders", async () => {
  const { idp, backend } = await startIdpAndBackend();
  const double = await startClerkDouble(idp);
  const publishableKey = `pk_test_${Buffer.from(`${double.host}$`).toString("base64").replace(/=+$/, "")}`;
  const web = await startClerkWeb(backend, {
    publishableKey, secretKey: idp.secretKey, apiUrl: double.url,
  });
  const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: CHROMIUM_FLAGS });
  try {
    // A Clerk user and session, as Clerk's hosted sign-in would make them, and a token of it.
    const user = await bapi(idp, "/users", {
      email_address: ["grace@example.com"],
      password: "correct horse battery",
      first_name: "Grace",
    });
    const session = await bapi(idp, "/sessions", { user_id: user.id });
    double.sessionId = session.id;
    const { jwt: stale } = await bapi(idp, `/sessions/${session.id}/tokens`, {});
    // Clerk's script recorded a sign-in after this token was minted: the token is outdated.
    const uat = claimsOf(stale).iat + 30;

    const context = await browser.newContext();
    await context.addCookies([
      { name: "__session", value: stale, url: web.url },
      { name: "__client_uat", value: String(uat), url: web.url },
    ]);
    const page = await context.newPage();
    const errors = [];
    page.on("pageerror", (e) => errors.push(e.message));
    // Every document the browser was sent on the way, with its status.
    const documents = [];
    page.on("response", (r) => {
      if (r.request().resourceType() === "document") documents.push({ url: r.url(), status: r.status() });
    });

    const response = await page.goto(`${web.url}/posts`);
    assert.equal(response.status(), 200);
    // The page the browser ends on is the one it asked for, signed in, without the payload.
    assert.equal(page.url(), `${web.url}/posts`);
    const html = await response.text();
    assert.doesNotMatch(html, /Sign in to see the posts/, "never rendered signed out");
    assert.match(html, /form[^>]+action="\/_keel\/fn\/posts\/create"/, "signed in: the create form");
    assert.ok(html.includes(`<meta name="keel-clerk-session" content="${session.id}">`));

    // The way there: the page → Clerk's handshake → back with the payload → the page.
    const path = documents.map(({ url, status }) => `${status} ${new URL(url).host === double.host ? "clerk" : "web"}${new URL(url).pathname}${new URL(url).searchParams.has("__clerk_handshake") ? "?__clerk_handshake" : ""}`);
    assert.deepEqual(path, [
      "307 web/posts",
      "307 clerk/v1/client/handshake",
      "307 web/posts?__clerk_handshake",
      "200 web/posts",
    ]);
    assert.equal(double.handshakes, 1);

    // The browser now holds the fresh cookies from the payload.
    const cookies = Object.fromEntries((await context.cookies(web.url)).map((c) => [c.name, c.value]));
    assert.notEqual(cookies.__session, stale, "a fresh session token");
    assert.equal(claimsOf(cookies.__session).sid, session.id);
    assert.ok(Number(cookies.__client_uat) > 0);
    await screenshot(page, "clerk-handshake-01-signed-in");

    // A reload renders signed in at once: no second handshake.
    const again = await page.reload();
    assert.equal(again.status(), 200);
    assert.doesNotMatch(await again.text(), /Sign in to see the posts/);
    assert.equal(double.handshakes, 1);
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
    await web.stop();
    await backend.stop();
    await double.stop();
    await idp.stop();
  }
});
