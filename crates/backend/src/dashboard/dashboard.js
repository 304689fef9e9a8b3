// The Keel dashboard's only script: it keeps a page live. Everything works without it.
//
// * A page with `[data-live]` parts opens `/dashboard/live` (server-sent events, one `commit`
//   event per database commit) and, on each, fetches the page again and swaps in its
//   `[data-live]` parts by id. Commits during a fetch make one more fetch afterwards. A part
//   with `data-refresh-ms` (the health page's cluster members, which change without commits)
//   also makes the page fetch again at that interval.
// * The logs page's table (`#executions[data-stream]`) follows its stream: each `entries`
//   event carries the new rows' HTML, put on top of the table.
// * The data page's import form (`form[data-import]`) sends the chosen ZIP as the request body
//   with the session's CSRF token in `x-keel-csrf`, and shows what was imported or why not
//   beside the form (without the script, the browser posts the form as multipart/form-data
//   and gets a page back).

const live = document.querySelectorAll("[data-live][id]");
if (live.length > 0) {
  let fetching = false;
  let again = false;
  const refresh = async () => {
    if (fetching) {
      again = true;
      return;
    }
    fetching = true;
    try {
      const response = await fetch(location.href, { headers: { accept: "text/html" } });
      if (response.ok) {
        const fresh = new DOMParser().parseFromString(await response.text(), "text/html");
        for (const part of document.querySelectorAll("[data-live][id]")) {
          const next = fresh.getElementById(part.id);
          if (next && part.innerHTML !== next.innerHTML) part.innerHTML = next.innerHTML;
        }
        document.documentElement.dataset.liveTs = String(Date.now());
      }
    } finally {
      fetching = false;
      if (again) {
        again = false;
        refresh();
      }
    }
  };
  const every = Math.min(
    ...[...live].map((part) => Number(part.dataset.refreshMs)).filter((ms) => ms >= 100),
  );
  if (Number.isFinite(every)) setInterval(refresh, every);
  const events = new EventSource("/dashboard/live");
  events.addEventListener("commit", refresh);
  events.addEventListener("open", () => (document.documentElement.dataset.live = "open"));
}

const executions = document.querySelector("#executions[data-stream]");
if (executions) {
  const body = executions.tBodies[0];
  const events = new EventSource(executions.dataset.stream);
  events.addEventListener("open", () => (document.documentElement.dataset.live = "open"));
  events.addEventListener("entries", (event) => {
    const rows = new DOMParser().parseFromString(`<table><tbody>${event.data}</tbody></table>`, "text/html");
    // Oldest first in the event; the table is newest first.
    for (const row of rows.querySelectorAll("tr")) body.prepend(row);
  });
}

const importForm = document.querySelector("form[data-import]");
if (importForm) {
  const result = importForm.querySelector("output");
  importForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const file = importForm.elements.snapshot.files[0];
    if (!file) return;
    const mode = importForm.elements.mode.value;
    result.textContent = "importing…";
    try {
      const response = await fetch(`/dashboard/import?mode=${encodeURIComponent(mode)}`, {
        method: "POST",
        headers: { "content-type": "application/zip", "x-keel-csrf": importForm.dataset.csrf },
        body: file,
      });
      const text = await response.text();
      if (response.ok) {
        const summary = JSON.parse(text);
        const documents = summary.tables.reduce((sum, [, count]) => sum + count, 0);
        result.textContent = `imported ${documents} documents into ${summary.tables.length} tables` +
          (summary.deleted ? `, replacing ${summary.deleted}` : "") +
          (summary.files ? `, and ${summary.files} files` : "");
      } else {
        const page = new DOMParser().parseFromString(text, "text/html");
        const message = page.querySelector(".error") ?? page.querySelector("main") ?? page.body;
        result.textContent = `refused (${response.status}): ${message.textContent.trim()}`;
      }
      result.dataset.status = String(response.status);
    } catch (error) {
      result.textContent = `failed: ${error}`;
      result.dataset.status = "0";
    }
  });
}
