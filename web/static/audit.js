/* Sou: the treasurer's audit page — start a run in the background and follow its progress
 * without reloading.
 *
 * The page gives the running run (if any) and its messages (in the reader's language) in a
 * <script type="application/json" id="page-data"> block. A button posts to
 * /api/v1/audit/runs; the run is then read from /api/v1/audit/runs/<id> every second until
 * it finishes. Without this script the forms post to the page, which names the run started.
 */
"use strict";

(() => {
  const data = JSON.parse(document.getElementById("page-data").textContent);
  const M = data.messages;
  const box = document.getElementById("audit-progress");
  const bar = document.getElementById("audit-bar");
  const said = document.getElementById("audit-said");
  const result = document.getElementById("audit-result");
  const buttons = document.querySelectorAll("form.start-audit button");
  const EVERY_MS = 1000;

  function busy(yes) {
    buttons.forEach((button) => { button.disabled = yes; });
  }

  function show(run) {
    box.hidden = false;
    if (run.status === "running") {
      if (run.total) {
        bar.max = run.total;
        bar.value = run.done;
        said.textContent = Sou.fill(M.progress, { done: run.done, total: run.total });
      } else {
        said.textContent = M.starting;
      }
      return false;
    }
    bar.max = 1;
    bar.value = 1;
    said.textContent = M[run.status] || M.failed;
    said.dataset.status = run.status;
    result.hidden = false;
    busy(false);
    return true;
  }

  async function follow(id) {
    busy(true);
    for (;;) {
      let run;
      try {
        run = await Sou.api("GET", "/api/v1/audit/runs/" + id);
      } catch (error) {  // a lost answer: the next poll may get one
        said.textContent = error.message;
        run = null;
      }
      if (run && show(run)) return;
      await new Promise((resolve) => setTimeout(resolve, EVERY_MS));
    }
  }

  async function runningRun() {
    try {
      const listed = await Sou.api("GET", "/api/v1/audit/runs?limit=1");
      return listed.runs.find((run) => run.status === "running") || null;
    } catch (error) {
      return null;
    }
  }

  async function start(event) {
    event.preventDefault();
    const full = event.target.elements.full !== undefined;
    busy(true);
    box.hidden = false;
    result.hidden = true;
    said.textContent = M.starting;
    try {
      const run = await Sou.api("POST", "/api/v1/audit/runs", { full });
      follow(run.id);
    } catch (error) {
      said.textContent = error.message;
      // Another run started first (two starts at once make one run): follow that one.
      const latest = error.code === "audit_running" ? await runningRun() : null;
      if (latest) follow(latest.id);
      else busy(false);
    }
  }

  document.querySelectorAll("form.start-audit").forEach((form) => {
    form.addEventListener("submit", start);
  });
  if (data.running) follow(data.running);
})();
