// The Keel dashboard's only script: it keeps a page live. Everything works without it.
//
// * A page with `[data-live]` parts opens `/dashboard/live` (server-sent events, one `commit`
//   event per database commit) and, on each, fetches the page again and swaps in its
//   `[data-live]` parts by id. Commits during a fetch make one more fetch afterwards.
// * The logs page's table (`#executions[data-stream]`) follows its stream: each `entries`
//   event carries the new rows' HTML, put on top of the table.

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
