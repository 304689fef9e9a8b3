// Starting and stopping `keel` services (the binary in KEEL_BIN) for Node tests.
import { spawn } from "node:child_process";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";

export async function mkTempDir() {
  return mkdtemp(join(tmpdir(), "keel-node-"));
}

/** Polls `condition` until it holds, or fails after `ms` with `what` in the message. */
export async function waitFor(condition, ms, what) {
  const deadline = Date.now() + ms;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/**
 * Starts `keel <args>` and resolves once it prints `<name>: <url>`; also picks up the idp's
 * URL and secret key lines, the backend's site (HTTP actions), admin key and dashboard lines.
 * Resolves to { url, idp, secretKey, site, adminKey, dashboard, stop() (SIGTERM; resolves with
 * the exit code),
 * kill() (SIGKILL) }.
 */
export function startService(name, args, env = {}) {
  const bin = process.env.KEEL_BIN;
  if (!bin) throw new Error("KEEL_BIN is not set (run through `scripts/test`)");
  const child = spawn(bin, args, {
    // The site (HTTP actions) on a free port unless the test says otherwise.
    env: { ...process.env, RUST_LOG: process.env.RUST_LOG ?? "warn", KEEL_SITE_ADDR: "127.0.0.1:0", ...env },
    stdio: ["ignore", "pipe", "inherit"],
  });
  const exited = new Promise((resolve) => child.once("exit", resolve));
  return new Promise((resolve, reject) => {
    const service = { child, url: undefined, secretKey: undefined };
    service.kill = async () => {
      child.kill("SIGKILL");
      await exited;
    };
    // SIGTERM, as a supervisor stops it: resolves with the exit code (`null` if a signal
    // ended the process instead of its own graceful shutdown).
    service.stop = async () => {
      child.kill("SIGTERM");
      return exited;
    };
    const timer = setTimeout(() => reject(new Error(`keel ${name} did not start in 30 s`)), 30000);
    child.once("exit", (code) => reject(new Error(`keel ${name} exited early with ${code}`)));
    createInterface({ input: child.stdout }).on("line", (line) => {
      const secret = line.match(/^idp secret key: (sk_\S+)/);
      if (secret) service.secretKey = secret[1];
      const site = line.match(/^site: (http:\/\/\S+)/);
      if (site) service.site = site[1];
      const adminKey = line.match(/^admin key: (\S+) \(stored in/);
      if (adminKey) service.adminKey = adminKey[1];
      const dashboard = line.match(/^dashboard: (http:\/\/\S+)/);
      if (dashboard) service.dashboard = dashboard[1];
      const idp = line.match(/^idp: (http:\/\/\S+)/);
      if (idp) service.idp = idp[1];
      const url = line.match(new RegExp(`^${name}: (http://\\S+)`));
      if (url) service.url = url[1];
      const complete =
        (name !== "idp" || service.secretKey) && (name !== "backend" || service.site);
      if (service.url && complete) {
        clearTimeout(timer);
        resolve(service);
      }
    });
  });
}

/**
 * Starts the whole app with a data directory of its own; resolves as `startService("web", …)`
 * does (url, idp, secretKey, site, adminKey, dashboard, stop(), kill()), with `env` for every
 * process. The shape comes from `KEEL_TEST_SHAPE`: one `keel` process (idp, backend and web tier
 * on free ports; the default) or, with `processes`, `keel idp` + `keel backend` + `keel web` as
 * three processes talking HTTP, each on a free port.
 */
export async function startAllInOne(env = {}) {
  const dir = await mkTempDir();
  const shape = process.env.KEEL_TEST_SHAPE ?? "one-process";
  if (shape === "one-process") {
    return startService("web", [
      "--web-addr", "127.0.0.1:0",
      "--backend-addr", "127.0.0.1:0",
      "--idp-addr", "127.0.0.1:0",
      "--data-dir", dir,
    ], env);
  }
  if (shape !== "processes") throw new Error(`KEEL_TEST_SHAPE is one-process or processes, not ${shape}`);
  const idp = await startService("idp", ["idp", "--idp-addr", "127.0.0.1:0", "--data-dir", join(dir, "idp")], env);
  const backend = await startService("backend", [
    "backend",
    "--backend-addr", "127.0.0.1:0",
    "--data-dir", join(dir, "backend"),
    "--auth-issuer", idp.url,
  ], env);
  const web = await startService("web", [
    "web",
    "--web-addr", "127.0.0.1:0",
    "--data-dir", join(dir, "web"),
    "--backend-url", backend.url,
    "--idp-url", idp.url,
    "--idp-secret-key", idp.secretKey,
  ], env);
  const all = [web, backend, idp];
  return {
    url: web.url,
    idp: idp.url,
    secretKey: idp.secretKey,
    site: backend.site,
    adminKey: backend.adminKey,
    dashboard: backend.dashboard,
    processes: { idp, backend, web },
    // The web tier's exit code, once all three have stopped (web tier first).
    stop: async () => {
      const codes = [];
      for (const service of all) codes.push(await service.stop());
      return codes[0];
    },
    kill: async () => {
      for (const service of all) await service.kill();
    },
  };
}

/**
 * POSTs `body` to the idp's Backend API (`path` under `/v1`) as the secret-key holder; resolves
 * to the JSON answer, or throws with the status and body when it is not a success.
 */
export async function idpBapi(idp, path, body) {
  const response = await fetch(`${idp.url}/v1${path}`, {
    method: "POST",
    headers: { authorization: `Bearer ${idp.secretKey}`, "content-type": "application/json" },
    body: JSON.stringify(body ?? {}),
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`${path}: ${response.status} ${text}`);
  return JSON.parse(text);
}

/** Starts `keel idp` and a `keel backend` trusting it over one new data directory: { idp, backend }. */
export async function startIdpAndBackend() {
  const dataDir = await mkTempDir();
  const idp = await startService("idp", ["idp", "--idp-addr", "127.0.0.1:0", "--data-dir", dataDir]);
  const backend = await startService("backend", [
    "backend",
    "--backend-addr", "127.0.0.1:0",
    "--data-dir", dataDir,
    "--auth-issuer", idp.url,
  ]);
  return { idp, backend };
}

/**
 * Starts `keel web` in real-Clerk mode against `backend`: Clerk's publishable and secret keys, and
 * the URL of its Backend API (`keel idp`, or a double in front of it).
 */
export function startClerkWeb(backend, { publishableKey, secretKey, apiUrl }) {
  return startService(
    "web",
    ["web", "--web-addr", "127.0.0.1:0", "--backend-url", backend.url],
    { CLERK_PUBLISHABLE_KEY: publishableKey, CLERK_SECRET_KEY: secretKey, CLERK_API_URL: apiUrl },
  );
}

/**
 * Starts `keel idp` and a `keel backend` trusting it, on free ports over one new data directory,
 * and signs one user in through the idp's Backend API. Resolves to { idp, backend,
 * convexToken() (a fresh `convex` template token for the user's session), stop() }.
 */
export async function startBackendWithUser(user = {
  email_address: ["grace@example.com"],
  password: "correct horse battery",
  first_name: "Grace",
  last_name: "Hopper",
}) {
  const { idp, backend } = await startIdpAndBackend();
  const created = await idpBapi(idp, "/users", user);
  const sessionId = (await idpBapi(idp, "/sessions", { user_id: created.id })).id;
  return {
    idp,
    backend,
    convexToken: async () => (await idpBapi(idp, `/sessions/${sessionId}/tokens/convex`)).jwt,
    stop: async () => {
      await backend.stop();
      await idp.stop();
    },
  };
}
