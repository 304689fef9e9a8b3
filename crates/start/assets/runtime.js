// Keel browser runtime: a plain ES module, no build step, no dependencies.
//
// It progressively enhances a server-rendered page; everything works without it.
//  * Live: one EventSource per page (the address is in <meta name="keel-live">). On `render`
//    the server has re-rendered the page from the session's live data: the new body (or
//    splices of the previous one) is morphed in place, without a fetch. On `refresh` (the page
//    cannot be rendered that way) the page is refetched and morphed; on `signed-out` the page
//    is refetched once and the stream is not reopened. The stream reconnects with backoff
//    when it drops, and the page is refetched after such a gap.
//  * Navigation: same-origin links are fetched and morphed in, with history.pushState; a link
//    with data-keel-scroll="keep" (a "Load more") leaves the reader where they are.
//  * Prefetch on intent: hover, focus or touch of a link fetches it; reused for 30 s.
//  * Scroll restoration: positions are kept per history entry in sessionStorage and restored
//    on back/forward.
//  * Forms: same-origin POST forms are sent with fetch and the answer (after redirects) is
//    morphed in; the URL follows the redirect.
//  * Modal sign-in: links with data-keel-modal open the target page's form in a <dialog>.
//  * DefaultCatchBoundary: data-keel-back goes back in history.
//  * window.__keel: navigate/refresh/prefetch and a read-only `live` status (see liveStatus).
//  * Real Clerk (when the page carries keel-clerk-* meta tags): Clerk's browser script is
//    loaded from the instance's Frontend API; the sign-in button opens Clerk's modal, the user
//    button is Clerk's, and a session change refreshes the page.

const PREFETCH_TTL_MS = 30_000;
const SCROLL_KEY = "keel-scroll-v1";
const prefetched = new Map(); // url -> { at, promise }
let live = null;
let liveUrl = null;
let retryDelay = 500;
let refreshing = null;
let refreshAgain = false;
// The body of the last pushed render and its number: the next one may be a splice of it.
let pushedBody = null;
let pushedSeq = null;

// ---------------------------------------------------------------------------------------
// Morph: update `from` in place to look like `to`, keeping element identity where the tag
// (and id, if any) match, and the value of the focused input.

function sameNode(a, b) {
  if (a.nodeType !== b.nodeType) return false;
  if (a.nodeType !== Node.ELEMENT_NODE) return true;
  if (a.tagName !== b.tagName) return false;
  return (a.id || "") === (b.id || "");
}

function morphAttributes(from, to) {
  for (const attr of Array.from(from.attributes)) {
    if (!to.hasAttribute(attr.name)) from.removeAttribute(attr.name);
  }
  for (const attr of Array.from(to.attributes)) {
    if (from.getAttribute(attr.name) !== attr.value) from.setAttribute(attr.name, attr.value);
  }
}

function morphNode(from, to) {
  if (from.nodeType === Node.TEXT_NODE || from.nodeType === Node.COMMENT_NODE) {
    if (from.nodeValue !== to.nodeValue) from.nodeValue = to.nodeValue;
    return;
  }
  const focused = from === document.activeElement;
  const isField = from.tagName === "INPUT" || from.tagName === "TEXTAREA" || from.tagName === "SELECT";
  if (isField && focused) {
    // Keep what the user is typing: only non-value attributes change.
    const value = from.value;
    morphAttributes(from, to);
    from.value = value;
    return;
  }
  if (from.tagName === "DETAILS" && from.open && !to.hasAttribute("open")) to.setAttribute("open", "");
  if (from.tagName === "DIALOG") return; // an open modal is left alone
  morphAttributes(from, to);
  if (isField && from.tagName !== "SELECT") {
    if (from.type === "checkbox" || from.type === "radio") from.checked = to.hasAttribute("checked");
    else if (from.tagName === "TEXTAREA") from.value = to.textContent;
    else from.value = to.getAttribute("value") ?? "";
  }
  morphChildren(from, to);
}

function morphChildren(from, to) {
  const wanted = Array.from(to.childNodes);
  let current = from.firstChild;
  for (const next of wanted) {
    // Look ahead a little for a matching node (handles insertions at the front of lists).
    let match = null;
    for (let c = current, i = 0; c && i < 8; c = c.nextSibling, i++) {
      if (sameNode(c, next) && (next.nodeType !== Node.ELEMENT_NODE || keyOf(c) === keyOf(next))) {
        match = c;
        break;
      }
    }
    if (match) {
      while (current !== match) {
        const drop = current;
        current = current.nextSibling;
        drop.remove();
      }
      morphNode(match, next);
      current = match.nextSibling;
    } else {
      from.insertBefore(document.importNode(next, true), current);
    }
  }
  while (current) {
    const drop = current;
    current = current.nextSibling;
    drop.remove();
  }
}

function keyOf(el) {
  return el.getAttribute?.("data-post-id") ?? el.getAttribute?.("data-key") ?? el.id ?? "";
}

function applyDocument(html) {
  const next = new DOMParser().parseFromString(html, "text/html");
  document.title = next.title;
  morphHead(next.head);
  morphNode(document.body, next.body);
  connectLive();
  mountClerkUi();
}

function morphHead(nextHead) {
  // Meta and title follow the new page; scripts and stylesheets already loaded stay.
  for (const el of Array.from(document.head.querySelectorAll("meta[name], title"))) {
    if (!nextHead.querySelector(`${el.tagName.toLowerCase()}${el.name ? `[name="${el.name}"]` : ""}`)) el.remove();
  }
  for (const el of Array.from(nextHead.querySelectorAll("meta[name]"))) {
    const existing = document.head.querySelector(`meta[name="${el.getAttribute("name")}"]`);
    if (existing) existing.setAttribute("content", el.getAttribute("content") ?? "");
    else document.head.appendChild(document.importNode(el, true));
  }
  for (const el of Array.from(nextHead.querySelectorAll("link[rel=stylesheet]"))) {
    if (!document.head.querySelector(`link[rel=stylesheet][href="${el.getAttribute("href")}"]`)) {
      document.head.appendChild(document.importNode(el, true));
    }
  }
}

// ---------------------------------------------------------------------------------------
// Fetching pages.

async function fetchPage(url, init = {}) {
  const response = await fetch(url, {
    credentials: "same-origin",
    ...init,
    headers: { "X-Keel-Navigation": "1", ...(init.headers || {}) },
  });
  const type = response.headers.get("content-type") || "";
  if (!type.includes("text/html")) throw new Error(`not a page: ${type}`);
  return { url: response.url, html: await response.text() };
}

function prefetch(url) {
  const hit = prefetched.get(url);
  if (hit && Date.now() - hit.at < PREFETCH_TTL_MS) return hit.promise;
  const promise = fetchPage(url, { headers: { "Sec-Purpose": "prefetch" } });
  promise.catch(() => prefetched.delete(url));
  prefetched.set(url, { at: Date.now(), promise });
  return promise;
}

function invalidatePrefetches() {
  prefetched.clear();
}

// ---------------------------------------------------------------------------------------
// Scroll restoration: positions per history entry (a random key in history.state), recorded
// as the page scrolls and kept in sessionStorage, so they survive reloads of the tab.

const positions = loadPositions();
let currentKey = null;
let persistTimer = null;

function loadPositions() {
  try {
    return JSON.parse(sessionStorage.getItem(SCROLL_KEY) || "{}");
  } catch {
    return {};
  }
}

function persistPositions() {
  clearTimeout(persistTimer);
  persistTimer = null;
  try {
    sessionStorage.setItem(SCROLL_KEY, JSON.stringify(positions));
  } catch {
    // Storage full or disabled: scroll restoration is best effort.
  }
}

function newKey() {
  return Math.random().toString(36).slice(2);
}

/** The key of the current history entry, creating one for an entry that has none. */
function entryKey() {
  if (!history.state || !history.state.keel) {
    history.replaceState({ ...(history.state || {}), keel: newKey() }, "");
  }
  return history.state.keel;
}

function restoreScroll() {
  const position = positions[currentKey];
  if (position) window.scrollTo(position[0], position[1]);
}

window.addEventListener(
  "scroll",
  () => {
    positions[currentKey] = [window.scrollX, window.scrollY];
    if (!persistTimer) persistTimer = setTimeout(persistPositions, 200);
  },
  { passive: true },
);

// ---------------------------------------------------------------------------------------
// Navigation.

function isLocalLink(a) {
  if (!a || !a.href || a.target || a.hasAttribute("download") || a.dataset.keelReload !== undefined) return false;
  if (a.getAttribute("href").startsWith("#")) return false;
  const url = new URL(a.href, location.href);
  return url.origin === location.origin && !url.pathname.startsWith("/_keel/");
}

async function navigate(url, { push = true, keepScroll = false } = {}) {
  // The page being left keeps its position as of now: the scroll event of a recent scroll
  // may only fire after the next entry became current, and would be recorded there.
  positions[currentKey] = [window.scrollX, window.scrollY];
  persistPositions();
  if (!push) prefetched.delete(url); // back/forward shows the page as it is now
  let page;
  try {
    page = await prefetch(url);
  } catch {
    location.href = url; // let the browser do it
    return;
  }
  prefetched.delete(url);
  if (push) {
    history.pushState({ keel: newKey() }, "", page.url);
    currentKey = history.state.keel;
    applyDocument(page.html);
    if (!keepScroll) window.scrollTo(0, 0);
  } else {
    currentKey = entryKey();
    applyDocument(page.html);
    restoreScroll();
  }
}

document.addEventListener("click", (event) => {
  if (event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
  const back = event.target.closest?.("[data-keel-back]");
  if (back && history.length > 1) {
    event.preventDefault();
    history.back();
    return;
  }
  const modal = event.target.closest?.("a[data-keel-modal]");
  if (modal) {
    event.preventDefault();
    if (clerk) {
      // Back here after signing in, but never to another site (the link's target is input).
      const wanted = new URL(new URL(modal.href).searchParams.get("redirect_url") || location.pathname, location.href);
      const target = wanted.origin === location.origin ? wanted.pathname + wanted.search + wanted.hash : "/";
      clerk.openSignIn({ forceRedirectUrl: target });
    } else {
      openModal(modal.href);
    }
    return;
  }
  const a = event.target.closest?.("a");
  if (!isLocalLink(a)) return;
  event.preventDefault();
  navigate(a.href, { keepScroll: a.dataset.keelScroll === "keep" });
});

for (const type of ["mouseover", "focusin", "touchstart"]) {
  document.addEventListener(
    type,
    (event) => {
      const a = event.target.closest?.("a");
      if (isLocalLink(a)) prefetch(a.href).catch(() => {});
    },
    { passive: true },
  );
}

window.addEventListener("popstate", () => {
  navigate(location.href, { push: false });
});

// ---------------------------------------------------------------------------------------
// Forms.

document.addEventListener("submit", async (event) => {
  const form = event.target;
  if (!(form instanceof HTMLFormElement) || event.defaultPrevented) return;
  const method = (form.getAttribute("method") || "get").toLowerCase();
  const action = new URL(form.getAttribute("action") || location.href, location.href);
  if (action.origin !== location.origin || form.target) return;
  event.preventDefault();
  const data = new FormData(form, event.submitter);
  // A form with a file input posts its files as multipart/form-data, as without JavaScript.
  const multipart = method === "post" && form.enctype === "multipart/form-data";
  const body = multipart ? data : new URLSearchParams(data);
  const buttons = form.querySelectorAll("button, input[type=submit]");
  buttons.forEach((b) => (b.disabled = true));
  try {
    let page;
    if (method === "post") {
      page = await fetchPage(action, { method: "POST", body });
    } else {
      action.search = body.toString();
      page = await fetchPage(action);
    }
    invalidatePrefetches();
    closeModal();
    if (page.url !== location.href) {
      history.pushState({ keel: newKey() }, "", page.url);
      currentKey = history.state.keel;
    }
    applyDocument(page.html);
    if (method === "post" && form.isConnected && !form.querySelector(".keel-form-error")) form.reset();
  } catch {
    form.submit(); // fall back to a plain submission
  } finally {
    buttons.forEach((b) => (b.disabled = false));
  }
});

// ---------------------------------------------------------------------------------------
// Modal sign-in: the sign-in page's form in a <dialog>.

let dialog = null;

async function openModal(href) {
  let page;
  try {
    page = await prefetch(href);
  } catch {
    location.href = href;
    return;
  }
  const doc = new DOMParser().parseFromString(page.html, "text/html");
  const form = doc.querySelector("form.keel-form");
  if (!form) {
    location.href = href;
    return;
  }
  closeModal();
  dialog = document.createElement("dialog");
  dialog.className = "keel-modal";
  dialog.appendChild(document.importNode(form, true));
  const close = document.createElement("button");
  close.type = "button";
  close.textContent = "Close";
  close.addEventListener("click", closeModal);
  dialog.appendChild(close);
  document.body.appendChild(dialog);
  dialog.showModal();
  dialog.querySelector("input[type=email]")?.focus();
}

function closeModal() {
  if (dialog) {
    dialog.close();
    dialog.remove();
    dialog = null;
  }
}

// ---------------------------------------------------------------------------------------
// Real Clerk: its script, modal and user button.

let clerk = null;
let clerkSession;

function metaContent(name) {
  return document.querySelector(`meta[name="${name}"]`)?.getAttribute("content") ?? null;
}

async function loadClerk() {
  const key = metaContent("keel-clerk-publishable-key");
  const frontendApi = metaContent("keel-clerk-frontend-api");
  if (!key || !frontendApi) return;
  await new Promise((resolve, reject) => {
    const script = document.createElement("script");
    script.src = `https://${frontendApi}/npm/@clerk/clerk-js@5/dist/clerk.browser.js`;
    script.crossOrigin = "anonymous";
    script.async = true;
    script.dataset.clerkPublishableKey = key;
    script.onload = resolve;
    script.onerror = reject;
    document.head.appendChild(script);
  });
  await window.Clerk.load();
  clerk = window.Clerk;
  // The session the server rendered this page for. Clerk may know better: a `__session` cookie
  // that expired while the tab was away renders signed out until Clerk refreshes it.
  clerkSession = metaContent("keel-clerk-session") || null;
  clerk.addListener(({ session }) => syncClerkSession(session));
  syncClerkSession(clerk.session);
  mountClerkUi();
}

/** Re-renders the page when Clerk's session is not the one it was rendered for. */
async function syncClerkSession(session) {
  const id = session?.id ?? null;
  if (id === clerkSession) return;
  clerkSession = id;
  if (session) {
    try {
      await session.getToken(); // Clerk writes the fresh token to the __session cookie
    } catch {
      // The refresh below shows whatever the server makes of the cookies.
    }
  }
  refresh();
}

/** Replaces the server-rendered user button with Clerk's (again after every morph). */
function mountClerkUi() {
  if (!clerk) return;
  for (const details of document.querySelectorAll("details.keel-user-button")) {
    if (details.nextElementSibling?.hasAttribute("data-keel-clerk-user-button")) continue;
    details.hidden = true;
    const mount = document.createElement("div");
    mount.setAttribute("data-keel-clerk-user-button", "");
    details.after(mount);
    clerk.mountUserButton(mount);
  }
}

// ---------------------------------------------------------------------------------------
// Live updates.

async function refresh() {
  if (refreshing) {
    refreshAgain = true;
    return refreshing;
  }
  refreshing = (async () => {
    do {
      refreshAgain = false;
      const url = location.href;
      try {
        const page = await fetchPage(url);
        invalidatePrefetches();
        // A navigation or form answer that landed meanwhile is newer: keep it.
        if (location.href === url) applyDocument(page.html);
      } catch {
        // The next event (or reconnect) tries again.
      }
    } while (refreshAgain);
    refreshing = null;
  })();
  return refreshing;
}

/** Morphs in a render the server pushed (`render` event): a whole body or splices. */
function applyRender(render) {
  let body;
  if (typeof render.body === "string") {
    body = render.body;
  } else if (render.base === pushedSeq && pushedBody !== null && Array.isArray(render.splices)) {
    // [at, del, ins] in UTF-16 units of the previous body, in order: applied from the last.
    body = pushedBody;
    for (const [at, del, ins] of render.splices.slice().reverse()) {
      body = body.slice(0, at) + ins + body.slice(at + del);
    }
  } else {
    refresh(); // a splice of something this page does not have: fetch it instead
    return;
  }
  pushedBody = body;
  pushedSeq = render.seq;
  const next = new DOMParser().parseFromString(`<!DOCTYPE html><html><head></head><body>${body}</body></html>`, "text/html");
  if (typeof render.title === "string") document.title = render.title;
  morphNode(document.body, next.body);
  mountClerkUi();
}

function connectLive() {
  const meta = document.querySelector('meta[name="keel-live"]');
  const url = meta ? meta.getAttribute("content") : null;
  if (url === liveUrl && live) return;
  if (live) live.close();
  live = null;
  liveUrl = url;
  if (!url) return;
  const source = new EventSource(url);
  live = source;
  pushedBody = null;
  pushedSeq = null;
  source.addEventListener("ready", () => {
    retryDelay = 500;
  });
  source.addEventListener("render", (event) => {
    if (live !== source) return;
    let render;
    try {
      render = JSON.parse(event.data);
    } catch {
      refresh();
      return;
    }
    invalidatePrefetches();
    applyRender(render);
  });
  source.addEventListener("refresh", () => refresh());
  source.addEventListener("signed-out", () => {
    source.close();
    if (live === source) live = null;
    liveUrl = null;
    refresh();
  });
  source.onerror = () => {
    if (source.readyState !== EventSource.CLOSED) return; // the browser retries by itself
    if (live !== source) return;
    live = null;
    const address = liveUrl; // pushed renders may have updated it since the stream opened
    const delay = retryDelay;
    retryDelay = Math.min(retryDelay * 2, 15_000);
    setTimeout(() => {
      if (live === null && liveUrl === address) {
        liveUrl = null;
        // The page may be stale after a gap: refetch, which also reconnects.
        refresh();
      }
    }, delay);
  };
}

// ---------------------------------------------------------------------------------------

if ("scrollRestoration" in history) history.scrollRestoration = "manual";
currentKey = entryKey();
restoreScroll();
window.addEventListener("pagehide", persistPositions);
connectLive();
loadClerk().catch((error) => console.warn("keel: Clerk could not be loaded", error));
/**
 * The live stream as tests and devtools see it (read-only): `open`, `connecting` (the
 * browser is retrying), `reconnecting` (waiting to reopen after a drop) or `closed` (the page
 * has no stream, or the session ended), with the stream's address.
 */
function liveStatus() {
  if (live) {
    const state = ["connecting", "open", "closed"][live.readyState] ?? "closed";
    return { state, url: liveUrl };
  }
  return liveUrl ? { state: "reconnecting", url: liveUrl } : { state: "closed", url: null };
}

// The devtools panel (development builds) shows the live stream's state as it changes.
function showLiveStatusInDevtools() {
  const slot = document.querySelector("[data-keel-devtools-live]");
  if (slot) slot.textContent = liveStatus().state;
}
setInterval(showLiveStatusInDevtools, 500);

window.__keel = Object.freeze({
  navigate,
  refresh,
  prefetch,
  version: 1,
  get live() {
    return liveStatus();
  },
});
