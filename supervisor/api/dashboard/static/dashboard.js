/* dockyard dashboard: keeps the server-rendered pages live through server-sent events.
   Same origin only (the Content-Security-Policy allows nothing else); no inline code. */
"use strict";

(function () {
  const body = document.body;
  const page = body.dataset.page;
  const app = body.dataset.app;
  // what the page saw and when (seconds since the epoch): the browser tests read it
  const state = {errors: [], chart: null, events: 0, seen: []};
  window.dockyard = state;
  window.addEventListener("error", (e) => state.errors.push(String(e.message)));

  function $(sel) { return document.querySelector(sel); }
  function rate(v) { return v === null || v === undefined ? "–" : v.toFixed(1); }
  function ms(v) {
    if (v === null || v === undefined) return "–";
    const m = v * 1000;
    return m < 100 ? m.toFixed(1) + " ms" : m.toFixed(0) + " ms";
  }
  function clock(t) {
    return new Date(t * 1000).toISOString().replace("T", " ").substring(0, 19) + "Z";
  }
  function release(r) { return r === null || r === undefined ? "–" : "r" + r; }

  function connect(url, handlers) {
    const live = $("#live");
    const source = new EventSource(url);
    source.onopen = () => { live.textContent = "live"; live.className = "live on"; };
    source.onerror = () => { live.textContent = "reconnecting"; live.className = "live off"; };
    for (const [name, fn] of Object.entries(handlers)) {
      source.addEventListener(name, (e) => { state.events++; fn(JSON.parse(e.data)); });
    }
    window.addEventListener("pagehide", () => source.close());
    return source;
  }

  // -- the overview ----------------------------------------------------------------------------
  function overview() {
    connect("/stream", {
      apps: (apps) => {
        for (const [name, a] of Object.entries(apps)) {
          const row = document.querySelector('tr[data-app="' + CSS.escape(name) + '"]');
          if (!row) continue;
          const set = (field, text) => {
            const el = row.querySelector('[data-field="' + field + '"]');
            if (el && el.textContent !== text) el.textContent = text;
          };
          set("release", release(a.release));
          set("busy", a.busy ? " " + a.busy : "");
          set("inflight", String(a.inflight));
          set("rate", rate(a.rate));
          set("errors", rate(a.errors));
          set("p50", ms(a.p50));
          set("p99", ms(a.p99));
        }
      },
    });
  }

  // -- one app ---------------------------------------------------------------------------------
  function markerItem(m) {
    const li = document.createElement("li");
    li.className = "m-" + m.kind;
    li.dataset.kind = m.kind;
    li.dataset.release = m.release === null || m.release === undefined ? "" : String(m.release);
    li.textContent = clock(m.t) + " " + m.label;
    if (m.reason) {
      const span = document.createElement("span");
      span.className = "reason";
      span.textContent = " " + m.reason;
      li.appendChild(span);
    }
    return li;
  }

  function eventText(e) {
    switch (e.event) {
      case "step": {
        let text = e.step + " " + e.status;
        if (e.seconds !== undefined && e.seconds !== null) text += " (" + e.seconds + "s)";
        if (e.error) text += ": " + e.error;
        return text;
      }
      case "deploying": return (e.kind || "deploy") + " of r" + e.release + ": " + (e.image || "");
      case "deployed": return "deployed r" + e.release + " in " + e.seconds + "s";
      case "failed": return "failed r" + e.release + ": " + e.reason;
      case "retired": return "retired " + e.containers + " old container(s)";
      default: return String(e.event);
    }
  }

  let partsAsked = 0;  // answers can overtake each other: only the latest request's is shown
  async function refreshParts() {
    const mine = ++partsAsked;
    const response = await fetch("/apps/" + encodeURIComponent(app) + "/parts");
    if (!response.ok) return;
    const parts = await response.json();
    if (mine !== partsAsked) return;
    for (const name of ["releases", "containers", "routes"]) {
      $("#" + name).innerHTML = parts[name];  // HTML escaped by the server
    }
  }

  async function appPage() {
    const chart = new window.DockyardChart($("#chart"), {window: 900});
    state.chart = chart;
    document.querySelectorAll("#range button").forEach((button) => {
      button.addEventListener("click", () => {
        document.querySelectorAll("#range button").forEach((b) => b.classList.remove("on"));
        button.classList.add("on");
        chart.setRange(Number(button.dataset.range));
      });
    });
    const response = await fetch("/apps/" + encodeURIComponent(app) + "/series.json");
    const history = await response.json();
    chart.setData(history.points, history.markers);
    const last = history.points.t.length ? history.points.t[history.points.t.length - 1] : history.now;
    const steps = $("#deploy");
    connect("/apps/" + encodeURIComponent(app) + "/stream?since=" + last, {
      points: (points) => chart.addPoints(points),
      state: (s) => {
        if ($("#release").textContent !== release(s.release)) {
          state.seen.push({what: "release", release: s.release, at: Date.now() / 1000});
        }
        $("#release").textContent = release(s.release);
        $("#busy").textContent = s.busy ? s.busy + " running" : "";
        const m = s.minute;
        $("#minute").textContent = "last minute: " + rate(m.rate) + " req/s, " + rate(m.errors) +
          " 5xx/s, p50 " + ms(m.p50) + ", p99 " + ms(m.p99);
      },
      marker: (m) => {
        state.seen.push({what: "marker", kind: m.kind, release: m.release, t: m.t, at: Date.now() / 1000});
        chart.addMarker(m);
        $("#markers").appendChild(markerItem(m));
      },
      deploy: (e) => {
        if (e.event === "deploying") steps.replaceChildren();
        steps.querySelectorAll(".empty").forEach((n) => n.remove());
        const li = document.createElement("li");
        li.dataset.event = e.event;
        li.className = e.event === "failed" || e.status === "failed" ? "bad"
          : e.event === "deployed" || e.status === "done" ? "ok" : "";
        li.textContent = clock(e.time) + " " + eventText(e);
        steps.appendChild(li);
        if (["deploying", "deployed", "failed", "retired"].includes(e.event) ||
            (e.event === "step" && e.step === "swap")) {
          refreshParts().catch((err) => state.errors.push(String(err)));
        }
      },
    });
  }

  document.addEventListener("DOMContentLoaded", () => {
    if (page === "overview") overview();
    else if (page === "app") appPage().catch((err) => state.errors.push(String(err)));
  });
})();
