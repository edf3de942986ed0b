/* compressor report: sortable tables, variant drill-downs, and the Pareto chart (inline SVG).
   Plain DOM code with no library; every figure shown comes rounded from Python, and text from the
   data only ever goes in through textContent. */
(function () {
  "use strict";
  var SVG = "http://www.w3.org/2000/svg";
  var PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2"];
  var W = 860, H = 440, M = {l: 70, r: 24, t: 18, b: 50};

  /* ---------- sortable tables ---------- */
  function sortKey(td) {
    var v = td ? td.getAttribute("data-v") : null;
    if (v === null || v === "") return null;
    var n = Number(v);
    return isNaN(n) ? v.toLowerCase() : n;
  }

  function sortTable(table, col, th) {
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    var dir = th.getAttribute("aria-sort") === "ascending" ? -1 : 1;
    rows.sort(function (a, b) {
      var x = sortKey(a.cells[col]), y = sortKey(b.cells[col]);
      if (x === null || y === null) return (x === null) - (y === null);  // missing figures last, either way
      if (typeof x !== typeof y) { x = String(x); y = String(y); }
      return (x < y ? -1 : x > y ? 1 : 0) * dir;
    });
    Array.prototype.forEach.call(th.parentNode.cells, function (c) { c.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", dir === 1 ? "ascending" : "descending");
    rows.forEach(function (r) { body.appendChild(r); });
  }

  function makeSortable(table) {
    if (!table.tHead) return;
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, col) {
      var button = th.querySelector("button");
      if (button) button.addEventListener("click", function () { sortTable(table, col, th); });
    });
  }

  /* ---------- drill-downs ---------- */
  function openVariant(id, scroll) {
    var box = document.getElementById(id);
    if (!box || box.tagName !== "DETAILS") return;
    box.open = true;
    if (scroll) box.scrollIntoView({block: "start"});
  }

  function openFromHash() {
    if (location.hash.indexOf("#v-") === 0) openVariant(location.hash.slice(1), true);
  }

  /* ---------- the chart ---------- */
  function el(name, attrs, parent) {
    var node = document.createElementNS(SVG, name);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (parent) parent.appendChild(node);
    return node;
  }

  function tick(v, step) {  /* an axis figure: 3 significant digits, or the decimals the tick step needs */
    if (v === 0) return "0";
    var decimals = step ? Math.max(0, -Math.floor(Math.log10(step) + 1e-9))
                        : Math.max(0, 2 - Math.floor(Math.log10(Math.abs(v))));
    if (!step) v = Number(v.toPrecision(3));
    return v.toLocaleString("en-US", {minimumFractionDigits: step ? decimals : 0, maximumFractionDigits: Math.min(decimals, 20)});
  }

  function logTicks(lo, hi) {
    var out = [];
    for (var k = Math.floor(Math.log10(lo)); k <= Math.ceil(Math.log10(hi)); k++) {
      [1, 2, 5].forEach(function (m) { var v = m * Math.pow(10, k); if (v >= lo && v <= hi) out.push(v); });
    }
    return out.length >= 2 ? out : [lo, hi];
  }

  function linTicks(lo, hi) {
    var raw = (hi - lo) / 5, p = Math.pow(10, Math.floor(Math.log10(raw))), f = raw / p;
    var step = (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) * p, out = [];
    for (var v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(Number(v.toPrecision(12)));
    out.step = step;
    return out;
  }

  function domain(values, log) {
    var lo = Math.min.apply(null, values), hi = Math.max.apply(null, values);
    if (log) { lo = Math.log10(lo); hi = Math.log10(hi); }
    var pad = hi > lo ? (hi - lo) * 0.1 : (log ? 0.3 : (Math.abs(hi) * 0.01 || 0.01));
    return [lo - pad, hi + pad];
  }

  function overlaps(a, b) {
    return a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h;
  }

  /* Greedy placement: the front first, then by latency; each label takes the first spot around its point
     that touches no placed label, no marker and stays in the plot; a label with no free spot is left out
     (its point still shows it on hover). */
  function placeLabels(layer, marks, order, line) {
    var placed = [], hidden = 0;
    var obstacles = marks.map(function (m) { return {x: m.x - m.r, y: m.y - m.r, w: 2 * m.r, h: 2 * m.r}; });
    for (var s = 1; s < line.length; s++) {  /* the front's dashed line, as small boxes every few pixels */
      var a = line[s - 1], b = line[s], steps = Math.ceil(Math.hypot(b.x - a.x, b.y - a.y) / 4);
      for (var k = 0; k <= steps; k++) {
        obstacles.push({x: a.x + (b.x - a.x) * k / steps - 1, y: a.y + (b.y - a.y) * k / steps - 1, w: 2, h: 2});
      }
    }
    order.forEach(function (m) {
      var label = el("text", {"class": "label", x: 0, y: 0}, layer);
      label.textContent = m.p.name.length > 28 ? m.p.name.slice(0, 26) + "\u2026" : m.p.name;  /* whole in the tooltip */
      var box = label.getBBox(), w = box.width + 2, h = box.height;
      var spots = [], d = m.r + 3;
      [0, 12].forEach(function (extra) {
        var e = d + extra;
        spots.push([e, -h / 2], [-e - w, -h / 2], [-w / 2, -e - h], [-w / 2, e], [e * 0.7, -e * 0.7 - h],
                   [e * 0.7, e * 0.7], [-e * 0.7 - w, -e * 0.7 - h], [-e * 0.7 - w, e * 0.7]);
      });
      var chosen = null, far = false;
      for (var i = 0; i < spots.length && !chosen; i++) {
        var b = {x: m.x + spots[i][0], y: m.y + spots[i][1], w: w, h: h};
        var inside = b.x >= M.l && b.x + b.w <= W - 2 && b.y >= 0 && b.y + b.h <= H - M.b;
        if (inside && !placed.some(function (o) { return overlaps(b, o); }) &&
            !obstacles.some(function (o) { return overlaps(b, o); })) { chosen = b; far = i >= 8; }
      }
      if (!chosen) { layer.removeChild(label); hidden++; return; }
      placed.push(chosen);
      if (far) {  /* a label set further out gets a thin leader to its point */
        var tx = Math.max(chosen.x, Math.min(m.x, chosen.x + w)), ty = Math.max(chosen.y, Math.min(m.y, chosen.y + h));
        var len = Math.hypot(tx - m.x, ty - m.y) || 1;
        el("line", {"class": "leader", x1: m.x + (tx - m.x) * m.r / len, y1: m.y + (ty - m.y) * m.r / len, x2: tx, y2: ty},
           layer);
      }
      label.setAttribute("x", chosen.x + 1);
      label.setAttribute("y", chosen.y + h * 0.8);
      label.setAttribute("data-box", [chosen.x, chosen.y, chosen.w, chosen.h].map(Math.round).join(","));
    });
    return hidden;
  }

  function tipRow(tip, key, value) {
    if (!value) return;
    var row = document.createElement("div"), k = document.createElement("span");
    k.className = "k";
    k.textContent = key + " ";
    row.appendChild(k);
    row.appendChild(document.createTextNode(value));
    tip.appendChild(row);
  }

  function showTip(chart, tip, mark, onFront, metricName) {
    var p = mark.p;
    tip.textContent = "";
    var title = document.createElement("strong");
    title.textContent = p.name + (onFront ? "  (Pareto front)" : "");
    tip.appendChild(title);
    tipRow(tip, "passes", p.passes);
    tipRow(tip, "target", p.target + ", batch " + p.batch);
    tipRow(tip, metricName, p.metric_text);
    tipRow(tip, "size", p.size);
    tipRow(tip, "p50", p.p50 + (p.cv ? "  (cv " + p.cv + ")" : "") + (p.unstable ? "  unstable" : ""));
    tipRow(tip, "check", p.check);
    if (p.drill !== null) tipRow(tip, "", "click for its ledger");
    tip.hidden = false;
    var box = chart.getBoundingClientRect(), dot = mark.node.getBoundingClientRect();
    var left = dot.right - box.left + 8, top = dot.top - box.top - 8;
    if (left + tip.offsetWidth > chart.clientWidth) left = dot.left - box.left - tip.offsetWidth - 8;
    tip.style.left = Math.max(0, left) + "px";
    tip.style.top = Math.max(0, top) + "px";
  }

  function axes(svg, xd, yd, sx, sy, metricName) {
    var grid = el("g", {"class": "grid"}, svg);
    logTicks(Math.pow(10, xd[0]), Math.pow(10, xd[1])).forEach(function (v) {
      var x = sx(v);
      el("line", {x1: x, x2: x, y1: M.t, y2: H - M.b}, grid);
      el("text", {x: x, y: H - M.b + 16, "text-anchor": "middle", "class": "tick"}, grid).textContent = tick(v);
    });
    var yticks = linTicks(yd[0], yd[1]);
    yticks.forEach(function (v) {
      var y = sy(v);
      el("line", {x1: M.l, x2: W - M.r, y1: y, y2: y}, grid);
      el("text", {x: M.l - 6, y: y + 4, "text-anchor": "end", "class": "tick"}, grid).textContent = tick(v, yticks.step);
    });
    el("rect", {x: M.l, y: M.t, width: W - M.l - M.r, height: H - M.t - M.b, "class": "frame"}, svg);
    el("text", {x: (M.l + W - M.r) / 2, y: H - 10, "text-anchor": "middle", "class": "axis"}, svg)
      .textContent = "p50 latency, ms (log scale)";
    el("text", {x: 16, y: (M.t + H - M.b) / 2, "text-anchor": "middle", "class": "axis",
                transform: "rotate(-90 16 " + (M.t + H - M.b) / 2 + ")"}, svg).textContent = metricName;
  }

  function marker(layer, m, colour, onFront) {
    var cls = "pt" + (onFront ? " front" : "") + (m.p.unstable ? " unstable" : "") + (m.p.reference ? " ref" : "");
    var g = el("g", {"class": cls, tabindex: 0, "data-id": m.p.id, role: "img", "aria-label": m.p.name}, layer);
    if (m.p.reference) {
      var half = m.r / Math.SQRT2;  /* a square turned 45 degrees: its corners reach m.r, like a circle's edge */
      el("rect", {x: m.x - half, y: m.y - half, width: 2 * half, height: 2 * half, fill: colour,
                  transform: "rotate(45 " + m.x + " " + m.y + ")"}, g);
    } else {
      el("circle", {cx: m.x, cy: m.y, r: m.r, fill: colour}, g);
    }
    m.node = g;
    return g;
  }

  function Chart(data) {
    this.data = data;
    this.svg = document.getElementById("pareto");
    this.tip = document.getElementById("tip");
    this.chart = document.getElementById("chart");
    this.target = document.getElementById("target");
    this.batch = document.getElementById("batch");
    this.note = document.getElementById("chart-note");
  }

  Chart.prototype.controls = function () {
    var self = this;
    var options = [["*", "all targets"]].concat(this.data.targets.map(function (t) { return [t, t]; }));
    options.forEach(function (o) { self.target.add(new Option(o[1], o[0])); });
    this.data.batches.forEach(function (b) { self.batch.add(new Option(String(b), String(b))); });
    [this.target, this.batch].forEach(function (s) { s.addEventListener("change", function () { self.render(); }); });
    this.chart.addEventListener("mouseleave", function () { self.tip.hidden = true; });
  };

  Chart.prototype.render = function () {
    var self = this, data = this.data, svg = this.svg, target = this.target.value, batch = Number(this.batch.value);
    var pts = data.points.filter(function (p) { return p.batch === batch && (target === "*" || p.target === target); });
    var front = data.fronts[target + "|" + batch] || [];
    svg.textContent = "";
    this.tip.hidden = true;
    svg.setAttribute("viewBox", "0 0 " + W + " " + H);
    if (!pts.length) {
      el("text", {x: W / 2, y: H / 2, "text-anchor": "middle", "class": "axis"}, svg).textContent =
        "no measurement with a metric on this target and batch";
      this.note.textContent = "";
      return;
    }
    var xd = domain(pts.map(function (p) { return p.p50_ms; }), true);
    var yd = domain(pts.map(function (p) { return p.metric; }), false);
    var sx = function (v) { return M.l + (Math.log10(v) - xd[0]) / (xd[1] - xd[0]) * (W - M.l - M.r); };
    var sy = function (v) { return H - M.b - (v - yd[0]) / (yd[1] - yd[0]) * (H - M.t - M.b); };
    axes(svg, xd, yd, sx, sy, data.metric);
    var biggest = Math.max.apply(null, pts.map(function (p) { return p.size_bytes || 0; })) || 1;
    var marks = pts.map(function (p) {
      return {p: p, x: sx(p.p50_ms), y: sy(p.metric), r: 4 + 9 * Math.sqrt((p.size_bytes || 0) / biggest)};
    });
    var onFront = function (m) { return front.indexOf(m.p.id) >= 0; };
    var line = marks.filter(onFront).sort(function (a, b) { return a.x - b.x; });
    el("polyline", {"class": "front-line", points: line.map(function (m) { return m.x + "," + m.y; }).join(" ")}, svg);
    var layer = el("g", {"class": "points"}, svg);
    marks.forEach(function (m) {
      var g = marker(layer, m, PALETTE[data.targets.indexOf(m.p.target) % PALETTE.length], onFront(m));
      var show = function () { showTip(self.chart, self.tip, m, onFront(m), data.metric); };
      g.addEventListener("mouseenter", show);
      g.addEventListener("focus", show);
      g.addEventListener("blur", function () { self.tip.hidden = true; });
      g.addEventListener("click", function () { if (m.p.drill !== null) openVariant("v-" + m.p.drill, true); });
    });
    var order = marks.slice().sort(function (a, b) { return (onFront(b) - onFront(a)) || (a.x - b.x); });
    var hidden = placeLabels(el("g", {"class": "labels"}, svg), marks, order, line);
    svg.setAttribute("data-points", pts.length);
    svg.setAttribute("data-front", line.length);
    this.note.textContent = pts.length + " models, " + line.length + " on the Pareto front (no other model is both " +
      "faster and better)" + (hidden ? "; " + hidden + " labels left out so none overlap: hover a point for its name" : "") +
      ". Marker area follows file size; diamond: the reference; dashed outline: unstable figure.";
    this.legend();
  };

  Chart.prototype.legend = function () {
    var box = document.getElementById("legend"), data = this.data;
    box.textContent = "";
    data.targets.forEach(function (t, i) {
      var item = document.createElement("span"), dot = document.createElement("i");
      dot.style.background = PALETTE[i % PALETTE.length];
      item.appendChild(dot);
      item.appendChild(document.createTextNode(t));
      box.appendChild(item);
    });
  };

  function start() {
    Array.prototype.forEach.call(document.querySelectorAll("table.sortable"), makeSortable);
    Array.prototype.forEach.call(document.querySelectorAll("a.drill"), function (a) {
      a.addEventListener("click", function () { openVariant(a.getAttribute("href").slice(1), false); });
    });
    var all = document.getElementById("open-all");
    if (all) all.addEventListener("click", function () {
      var boxes = document.querySelectorAll("details.variant"), open = !boxes[0] || !boxes[0].open;
      Array.prototype.forEach.call(boxes, function (d) { d.open = open; });
    });
    window.addEventListener("hashchange", openFromHash);
    openFromHash();
    var source = document.getElementById("chart-data");
    if (!source) return;
    var chart = new Chart(JSON.parse(source.textContent));
    if (!chart.data.points.length) { chart.note.textContent = "No model has both a p50 and a metric to plot."; return; }
    chart.controls();
    chart.render();
    chart.svg.setAttribute("data-rendered", "1");
  }

  start();
}());
