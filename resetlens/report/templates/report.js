// resetlens report: optional filtering (cause / role / kind) and timeline zoom. The page is complete
// without this script; it only reads the JSON data block and the data-* attributes; it never parses HTML.
(function () {
  "use strict";
  var SVGNS = "http://www.w3.org/2000/svg";
  var dataEl = document.getElementById("resetlens-data");
  var data = dataEl ? JSON.parse(dataEl.textContent) : { combos: [], total: 0 };

  // ---- filtering -------------------------------------------------------------------------
  var controls = document.getElementById("filters");
  var selects = controls ? controls.querySelectorAll("select[data-filter]") : [];
  var status = document.getElementById("filter-status");

  function applyFilters() {
    var want = {};
    selects.forEach(function (s) { if (s.value) { want[s.getAttribute("data-filter")] = s.value; } });
    // every element that stands for a whole reset carries data-cause/role/kind (rows, sections, timeline groups)
    document.querySelectorAll("[data-reset-id][data-cause]").forEach(function (el) {
      var ok = true;
      Object.keys(want).forEach(function (k) { if (el.getAttribute("data-" + k) !== want[k]) { ok = false; } });
      el.classList.toggle("filtered-out", !ok);
    });
    if (status) {
      var n = 0;
      data.combos.forEach(function (c) {
        if ((!want.cause || c[0] === want.cause) && (!want.role || c[1] === want.role) &&
            (!want.kind || c[2] === want.kind)) { n += c[3]; }
      });
      status.textContent = Object.keys(want).length ? n + " of " + data.total + " resets match" : "";
    }
  }
  if (controls) {
    controls.hidden = false;
    selects.forEach(function (s) { s.addEventListener("change", applyFilters); });
    var clear = document.getElementById("filter-clear");
    if (clear) {
      clear.addEventListener("click", function () {
        selects.forEach(function (s) { s.value = ""; });
        applyFilters();
      });
    }
  }

  // ---- timeline zoom and pan -------------------------------------------------------------
  var plot = document.getElementById("tl-plot");
  var labels = document.getElementById("tl-tick-labels");
  var grid = document.getElementById("tl-grid");
  if (!plot || data.t0 === null || data.t1 === null) { return; }
  var plotW = parseFloat(plot.getAttribute("data-plot-w"));
  var plotH = parseFloat(plot.getAttribute("data-plot-h"));
  var labelW = parseFloat(plot.getAttribute("x"));
  var view = { x: 0, w: plotW };

  function niceStep(span) {
    var raw = Math.max(span / 8, 1e-6), mag = Math.pow(10, Math.floor(Math.log10(raw)));
    var ms = [1, 2, 5, 10];
    for (var i = 0; i < ms.length; i++) { if (raw <= ms[i] * mag) { return ms[i] * mag; } }
    return 10 * mag;
  }
  function fmt(ts, step) {
    var s = new Date(ts * 1000).toISOString().slice(11, 23);
    return step < 1 ? s : s.slice(0, 8);
  }
  function redraw() {
    plot.setAttribute("viewBox", view.x + " 0 " + view.w + " " + plotH);
    var secPerUnit = (data.t1 - data.t0) / plotW;
    var a = data.t0 + view.x * secPerUnit, b = a + view.w * secPerUnit;
    var step = niceStep(b - a);
    while (grid.firstChild) { grid.removeChild(grid.firstChild); }
    while (labels.firstChild) { labels.removeChild(labels.firstChild); }
    for (var t = Math.ceil(a / step) * step, n = 0; t <= b && n < 40; t += step, n++) {
      var ux = (t - data.t0) / secPerUnit;
      var line = document.createElementNS(SVGNS, "line");
      line.setAttribute("class", "grid");
      line.setAttribute("x1", ux); line.setAttribute("x2", ux);
      line.setAttribute("y1", 0); line.setAttribute("y2", plotH);
      grid.appendChild(line);
      var text = document.createElementNS(SVGNS, "text");
      text.setAttribute("class", "tick-label");
      text.setAttribute("x", labelW + (ux - view.x) * plotW / view.w);
      text.setAttribute("y", 16);
      text.setAttribute("text-anchor", "middle");
      text.textContent = fmt(t, step);
      labels.appendChild(text);
    }
    var zl = document.getElementById("zoom-level");
    if (zl) { zl.textContent = (plotW / view.w).toFixed(1) + "×"; }
  }
  function zoom(factor, centre) {
    var c = centre === undefined ? view.x + view.w / 2 : centre;
    var w = Math.min(plotW, Math.max(plotW / 100000, view.w / factor));
    var x = c - (c - view.x) * (w / view.w);
    view.w = w;
    view.x = Math.min(plotW - w, Math.max(0, x));
    redraw();
  }
  var zc = document.getElementById("zoom-controls");
  if (zc) {
    zc.hidden = false;
    document.getElementById("zoom-in").addEventListener("click", function () { zoom(2); });
    document.getElementById("zoom-out").addEventListener("click", function () { zoom(0.5); });
    document.getElementById("zoom-reset").addEventListener("click", function () { view.x = 0; view.w = plotW; redraw(); });
  }
  plot.addEventListener("wheel", function (ev) {
    if (!ev.ctrlKey && !ev.shiftKey) { return; }
    ev.preventDefault();
    var box = plot.getBoundingClientRect();
    var c = view.x + (ev.clientX - box.left) / box.width * view.w;
    zoom(ev.deltaY < 0 ? 1.5 : 1 / 1.5, c);
  }, { passive: false });
  var drag = null;
  plot.addEventListener("mousedown", function (ev) { drag = { x: ev.clientX, vx: view.x }; });
  window.addEventListener("mouseup", function () { drag = null; });
  window.addEventListener("mousemove", function (ev) {
    if (!drag) { return; }
    var box = plot.getBoundingClientRect();
    var dx = (ev.clientX - drag.x) / box.width * view.w;
    view.x = Math.min(plotW - view.w, Math.max(0, drag.vx - dx));
    redraw();
  });
  window.resetlensZoom = zoom;
})();
