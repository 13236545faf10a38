/* dockyard's live chart: request rate and latency of one app over the last 15 minutes, with
   deploy markers. Plain canvas, no library, written for the dashboard (MIT, like dockyard).

   const chart = new DockyardChart(canvas, {window: 900});
   chart.setData(points, markers);   // points: {t: [...], rate: [...], errors: [...], p50: [...], p99: [...]}
   chart.addPoints(points); chart.addMarker({t, kind, label}); */
"use strict";

(function () {
  const COLORS = {
    rate: "#2563eb", errors: "#dc2626", p50: "#16a34a", p99: "#d97706",
    start: "#7c3aed", swap: "#0891b2", retire: "#64748b", failed: "#dc2626",
    grid: "#e5e7eb", text: "#374151",
  };
  const PAD = {left: 56, right: 12, top: 42, gap: 34, bottom: 22};
  const LABEL_ROWS = 3;  // marker labels stack in up to three rows, then are left to the list

  class DockyardChart {
    constructor(canvas, options) {
      this.canvas = canvas;
      this.window = (options && options.window) || 900;
      this.points = {t: [], rate: [], errors: [], p50: [], p99: []};
      this.markers = [];
      this.range = 0;  // seconds shown; 0: auto (the data's span, at least a minute)
      this.now = Date.now() / 1000;
      window.addEventListener("resize", () => this.draw());
    }

    setData(points, markers) {
      this.points = {t: [], rate: [], errors: [], p50: [], p99: []};
      this.markers = [];
      this.addPoints(points);
      (markers || []).forEach((m) => this.addMarker(m, true));
      this.draw();
    }

    addPoints(points) {
      const p = this.points;
      for (let i = 0; i < points.t.length; i++) {
        if (p.t.length && points.t[i] <= p.t[p.t.length - 1]) continue;
        for (const k of ["t", "rate", "errors", "p50", "p99"]) p[k].push(points[k][i]);
      }
      const cut = p.t.length ? p.t[p.t.length - 1] - this.window : 0;
      let drop = 0;
      while (drop < p.t.length && p.t[drop] < cut) drop++;
      if (drop) for (const k of Object.keys(p)) p[k].splice(0, drop);
      if (p.t.length) this.now = Math.max(this.now, p.t[p.t.length - 1]);
      this.draw();
    }

    setRange(seconds) {
      this.range = seconds;
      this.draw();
    }

    span() {
      if (this.range) return this.range;
      const firsts = [];
      if (this.points.t.length) firsts.push(this.points.t[0]);
      for (const m of this.markers) if (m.t >= this.now - this.window) firsts.push(m.t);
      const first = firsts.length ? Math.min(...firsts) : this.now;
      return Math.min(this.window, Math.max(60, (this.now - first) * 1.05 + 5));
    }

    addMarker(marker, quiet) {
      this.markers.push(marker);
      this.now = Math.max(this.now, marker.t);
      if (!quiet) this.draw();
    }

    draw() {
      const c = this.canvas;
      const ratio = window.devicePixelRatio || 1;
      const width = c.clientWidth || 800;
      const height = c.clientHeight || 360;
      if (c.width !== Math.round(width * ratio)) c.width = Math.round(width * ratio);
      if (c.height !== Math.round(height * ratio)) c.height = Math.round(height * ratio);
      const g = c.getContext("2d");
      g.setTransform(ratio, 0, 0, ratio, 0, 0);
      g.clearRect(0, 0, width, height);
      g.font = "11px system-ui, sans-serif";
      const end = this.now;
      const span = this.span();
      const start = end - span;
      const panel = (height - PAD.top - PAD.gap - PAD.bottom) / 2;
      const x = (t) => PAD.left + (t - start) / span * (width - PAD.left - PAD.right);
      const top = {y0: PAD.top, h: panel};
      const bottom = {y0: PAD.top + panel + PAD.gap, h: panel};

      const p = this.shown(start);
      const rateMax = niceMax(Math.max(1, ...p.rate.filter(isNum), ...p.errors.filter(isNum)));
      const msOf = (v) => (isNum(v) ? v * 1000 : null);
      const latMax = niceMax(Math.max(1, ...p.p99.filter(isNum).map(msOf), ...p.p50.filter(isNum).map(msOf)));
      this.axes(g, top, rateMax, "req/s", width);
      this.axes(g, bottom, latMax, "ms", width);
      this.timeAxis(g, x, start, end, span, height);

      this.line(g, x, top, p.t, p.rate, rateMax, COLORS.rate);
      this.line(g, x, top, p.t, p.errors, rateMax, COLORS.errors);
      this.line(g, x, bottom, p.t, p.p50.map(msOf), latMax, COLORS.p50);
      this.line(g, x, bottom, p.t, p.p99.map(msOf), latMax, COLORS.p99);

      const rowEnds = new Array(LABEL_ROWS).fill(-1e9);
      for (const m of this.markers) {
        if (m.t < start) continue;
        const mx = x(m.t);
        g.strokeStyle = COLORS[m.kind] || COLORS.text;
        g.setLineDash(m.kind === "start" ? [4, 3] : []);
        g.lineWidth = m.kind === "swap" ? 2 : 1;
        g.beginPath();
        g.moveTo(mx, PAD.top - 4);
        g.lineTo(mx, height - PAD.bottom);
        g.stroke();
        g.setLineDash([]);
        g.fillStyle = g.strokeStyle;
        const w = g.measureText(m.label).width;
        const labelX = Math.min(Math.max(PAD.left, mx - w / 2), width - PAD.right - w);
        const row = rowEnds.findIndex((end) => labelX > end + 6);
        if (row >= 0) {
          g.fillText(m.label, labelX, 11 + row * 11);
          rowEnds[row] = labelX + w;
        }
      }
      this.drawn = {markers: this.markers.filter((m) => m.t >= start).map((m) => m.kind + ":" + m.release),
                    points: p.t.length};
    }

    axes(g, panel, max, unit, width) {
      g.strokeStyle = COLORS.grid;
      g.fillStyle = COLORS.text;
      g.lineWidth = 1;
      for (let i = 0; i <= 4; i++) {
        const y = panel.y0 + panel.h - (i / 4) * panel.h;
        g.beginPath();
        g.moveTo(PAD.left, y);
        g.lineTo(width - PAD.right, y);
        g.stroke();
        const v = (max * i) / 4;
        g.fillText(fmt(v), 4, y + 4);
      }
      g.fillText(unit, 4, panel.y0 - 6);
    }

    shown(start) {
      const p = this.points;
      let i = 0;
      while (i < p.t.length && p.t[i] < start) i++;
      const out = {};
      for (const k of Object.keys(p)) out[k] = p[k].slice(i);
      return out;
    }

    timeAxis(g, x, start, end, span, height) {
      g.fillStyle = COLORS.text;
      const step = [10, 15, 30, 60, 120, 300].find((s) => span / s <= 10) || 300;
      for (let t = Math.ceil(start / step) * step; t <= end; t += step) {
        const d = new Date(t * 1000);
        const label = d.toISOString().substring(11, step < 60 ? 19 : 16);
        g.fillText(label, x(t) - (step < 60 ? 22 : 14), height - 6);
      }
    }

    line(g, x, panel, ts, values, max, color) {
      g.strokeStyle = color;
      g.lineWidth = 1.5;
      g.beginPath();
      let pen = false;
      for (let i = 0; i < ts.length; i++) {
        const v = values[i];
        if (!isNum(v)) { pen = false; continue; }
        const px = x(ts[i]);
        const py = panel.y0 + panel.h - Math.min(v / max, 1) * panel.h;
        if (pen) g.lineTo(px, py); else g.moveTo(px, py);
        pen = true;
      }
      g.stroke();
    }
  }

  function isNum(v) { return typeof v === "number" && isFinite(v); }

  function niceMax(v) {
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 2, 4, 5, 8, 10]) if (v <= m * p) return m * p;
    return 10 * p;
  }

  function fmt(v) { return v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1).replace(/\.0$/, "") : v.toFixed(2).replace(/\.?0+$/, ""); }

  window.DockyardChart = DockyardChart;
})();
