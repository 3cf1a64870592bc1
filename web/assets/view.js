// Drover's web view: keeps a run page current from its event stream, ticks the RTO clock, and
// sends the operator actions. No other script, no other origin.
"use strict";
(function () {
  const root = document.getElementById("run");
  if (!root) return;
  const run = root.dataset.run;
  const status = document.getElementById("live-status");
  const clock = document.getElementById("rto-clock");

  function pad(n) { return String(n).padStart(2, "0"); }
  function tick() {
    const since = Number(clock.dataset.since);
    const until = clock.dataset.until ? Number(clock.dataset.until) : Date.now();
    let s = Math.max(0, Math.floor((until - since) / 1000));
    const h = Math.floor(s / 3600); s -= h * 3600;
    const m = Math.floor(s / 60); s -= m * 60;
    clock.textContent = h + ":" + pad(m) + ":" + pad(s) + (clock.dataset.until ? " (ended)" : "");
  }
  tick();
  setInterval(tick, 1000);

  function show(view) {
    const state = document.getElementById("run-state");
    state.textContent = view.state;
    state.className = "badge " + view.state;
    clock.dataset.until = view.finished_at == null ? "" : String(view.finished_at);
    tick();
    const actions = document.getElementById("actions");
    // A form someone is typing into stays as long as the same things wait.
    if (actions.dataset.sig !== view.actions_sig) {
      actions.innerHTML = view.actions;
      actions.dataset.sig = view.actions_sig;
    }
    document.getElementById("now").innerHTML = view.now;
    document.getElementById("report").innerHTML = view.report;
    document.getElementById("events").innerHTML = view.events;
    status.dataset.seq = String(view.seq);
    status.textContent = "live · journal event " + view.seq + " · " + new Date().toLocaleTimeString();
    status.className = "live";
  }

  const stream = new EventSource("/api/runs/" + encodeURIComponent(run) + "/stream");
  stream.addEventListener("view", function (e) { show(JSON.parse(e.data)); });
  stream.onerror = function () {
    status.textContent = "connection lost; retrying…";
    status.className = "lost";
  };

  function csrf() {
    const meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.content : "";
  }

  document.addEventListener("submit", async function (e) {
    const form = e.target.closest("form.action");
    if (!form) return;
    e.preventDefault();
    const result = document.getElementById("action-result");
    const body = {};
    if (form.dataset.stepKey) body.step = form.dataset.stepKey;
    const comment = form.querySelector('[name="comment"]');
    if (comment && comment.value.trim() !== "") body.comment = comment.value;
    const output = form.querySelector('[name="output"]');
    if (output) {
      try { body.output = JSON.parse(output.value || "{}"); }
      catch (err) { result.textContent = "The output is not JSON: " + err.message; result.className = "err"; return; }
    }
    const button = form.querySelector("button");
    button.disabled = true;
    try {
      const response = await fetch(form.dataset.url, {
        method: "POST",
        headers: { "content-type": "application/json", "x-csrf-token": csrf() },
        body: JSON.stringify(body),
        credentials: "same-origin",
      });
      const answer = await response.json().catch(function () { return {}; });
      if (response.ok) {
        result.textContent = answer.command + (answer.step ? " " + answer.step : "") + " by " + answer.by + ": " + answer.delivery;
        result.className = "ok";
      } else {
        result.textContent = answer.error || ("refused: HTTP " + response.status);
        result.className = "err";
      }
    } finally {
      button.disabled = false;
    }
  });
})();
