// emotrace highlights report: the curves and the viewers x time map drawn from the data the
// page embeds (#emotrace-data), a cursor that follows the episode, and clicks that seek it.
// Plain DOM and SVG/canvas, no library: the page works offline, from a file.
(function () {
  "use strict";
  var D = JSON.parse(document.getElementById("emotrace-data").textContent);
  var video = document.getElementById("episode");
  var NS = "http://www.w3.org/2000/svg";
  var LEFT = 130, RIGHT = 12, AXIS = 18;  // the same margins everywhere: time lines up
  var charts = [], now = 0, stopAt = null;
  var tip = document.createElement("div");
  tip.className = "tip";
  document.body.appendChild(tip);

  function clamp(v, a, b) { return Math.max(a, Math.min(b, v)); }
  function fmt(v, d) { return v === null || v === undefined ? "\u2013" : v.toFixed(d); }
  function xOf(t, w) { return LEFT + (t - D.t0) / (D.t1 - D.t0) * (w - LEFT - RIGHT); }
  function tOf(px, w) { return D.t0 + clamp((px - LEFT) / (w - LEFT - RIGHT), 0, 1) * (D.t1 - D.t0); }
  function stepAt(t) { return clamp(Math.floor((t - D.times[0]) / D.bin), 0, D.times.length - 1); }
  function el(tag, attrs, parent) {
    var e = document.createElementNS(NS, tag);
    for (var k in attrs) { e.setAttribute(k, attrs[k]); }
    if (parent) { parent.appendChild(e); }
    return e;
  }
  function text(parent, x, y, s, attrs) {
    var t = el("text", Object.assign({x: x, y: y, "font-size": 11, fill: "#555"}, attrs || {}), parent);
    t.textContent = s;
    return t;
  }

  // -- time: the player, or (without an episode) the cursor alone ---------------------------
  function seek(t) {
    var end = video && isFinite(video.duration) ? video.duration : (D.duration || D.t1);
    t = clamp(t, 0, end);
    stopAt = null;
    if (video) { video.currentTime = t; }
    show(t);
  }
  function show(t) {
    now = t;
    charts.forEach(function (c) { c.cursor(t); });
    var clock = document.getElementById("clock");
    if (clock) { clock.textContent = t.toFixed(1) + " s"; }
    document.querySelectorAll(".moment").forEach(function (m) {
      var a = parseFloat(m.dataset.start), b = parseFloat(m.dataset.end);
      m.classList.toggle("active", t >= a && t < b);
    });
  }
  if (video) {
    var follow = function () {
      if (stopAt !== null && video.currentTime >= stopAt) { video.pause(); stopAt = null; }
      show(video.currentTime);
    };
    video.addEventListener("timeupdate", follow);
    video.addEventListener("seeked", follow);
    video.addEventListener("play", function tick() {  // smoother than timeupdate's 4 Hz
      follow();
      if (!video.paused) { requestAnimationFrame(tick); }
    });
    video.addEventListener("error", function () {
      var note = document.getElementById("episode-error");
      var code = video.error ? video.error.code : "?";
      note.textContent = "This browser could not load or play the episode (media error " + code +
        "): the file is not where the report expects it, or its format is not supported here " +
        "(an open-source Chromium may lack H.264: try Chrome, Firefox or a WebM copy).";
      note.hidden = false;
    });
  }
  document.addEventListener("click", function (ev) {
    var play = ev.target.closest("[data-play]");
    var target = play || ev.target.closest("[data-seek]");
    if (!target) { return; }
    ev.preventDefault();  // a link that seeks goes nowhere else
    seek(parseFloat(target.dataset.seek));
    if (play && video) { stopAt = parseFloat(play.dataset.play); video.play(); }
  });

  // -- hover read-out ----------------------------------------------------------------------
  function hover(node, describe) {
    node.addEventListener("mousemove", function (ev) {
      var s = describe(ev);
      if (!s) { tip.style.display = "none"; return; }
      tip.textContent = s;
      tip.style.display = "block";
      tip.style.left = (ev.clientX + 12) + "px";
      tip.style.top = (ev.clientY + 12) + "px";
    });
    node.addEventListener("mouseleave", function () { tip.style.display = "none"; });
  }

  // -- charts ------------------------------------------------------------------------------
  function niceStep(span, target) {
    var steps = [0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600];
    for (var i = 0; i < steps.length; i++) { if (span / steps[i] <= target) { return steps[i]; } }
    return 7200;
  }
  function timeAxis(svg, w, y0) {
    var step = niceStep(D.t1 - D.t0, Math.max(2, Math.floor((w - LEFT) / 70)));
    for (var t = Math.ceil(D.t0 / step) * step; t <= D.t1 + 1e-9; t += step) {
      var x = xOf(t, w);
      el("line", {x1: x, x2: x, y1: 0, y2: y0, stroke: "#eee"}, svg);
      text(svg, x, y0 + 13, (Math.round(t * 10) / 10) + " s", {"text-anchor": "middle"});
    }
  }
  function path(values, w, y) {
    var d = "", pen = false;
    values.forEach(function (v, i) {
      if (v === null) { pen = false; return; }
      d += (pen ? "L" : "M") + xOf(D.times[i] + D.bin / 2, w).toFixed(1) + "," + y(v).toFixed(1);
      pen = true;
    });
    return d;
  }
  function maxOf(series) {
    var m = 0;
    series.forEach(function (s) { s.values.forEach(function (v) { if (v !== null && v > m) { m = v; } }); });
    return m;
  }
  // A line (or bar) chart of `spec.series` against episode time, with the moments shaded.
  function lineChart(box, spec) {
    function draw(w) {
      var h = spec.height, top = 6, y0 = h - AXIS;
      var ymax = spec.ymax || Math.max(1, maxOf(spec.series) * 1.1);
      var y = function (v) { return y0 - (v / ymax) * (y0 - top); };
      var svg = el("svg", {width: w, height: h, role: "img", "aria-label": spec.label});
      timeAxis(svg, w, y0);
      [0, ymax / 2, ymax].forEach(function (v) {
        el("line", {x1: LEFT, x2: w - RIGHT, y1: y(v), y2: y(v), stroke: "#eee"}, svg);
        text(svg, LEFT - 4, y(v) + 4, v.toFixed(ymax < 3 ? 1 : 0), {"text-anchor": "end"});
      });
      text(svg, 4, top + 10, spec.label, {"font-weight": 600, fill: "#333"});
      if (spec.moments) {
        D.moments.forEach(function (m) {
          el("rect", {x: xOf(m.start, w), y: top, width: xOf(m.end, w) - xOf(m.start, w),
                      height: y0 - top, fill: "#e69500", "fill-opacity": 0.18}, svg);
          text(svg, xOf(m.peak, w), top + 10, "#" + m.rank,
               {"text-anchor": "middle", "font-weight": 700, fill: "#8a5a00"});
        });
      }
      spec.series.forEach(function (s) {
        if (s.bars) {
          var bw = Math.max(1, xOf(D.bin, w) - xOf(0, w) - 1);
          s.values.forEach(function (v, i) {
            if (v === null) { return; }
            el("rect", {x: xOf(D.times[i], w), y: y(v), width: bw, height: y0 - y(v),
                        fill: s.color, "fill-opacity": 0.7}, svg);
          });
        } else {
          el("path", {d: path(s.values, w, y), fill: "none", stroke: s.color,
                      "stroke-width": s.width || 1.5, "stroke-dasharray": s.dash || "none"}, svg);
        }
      });
      var cursor = el("line", {class: "cursor", x1: LEFT, x2: LEFT, y1: top, y2: y0,
                               stroke: "#1565c0", "stroke-width": 2}, svg);
      el("rect", {class: "hit", x: LEFT, y: 0, width: w - LEFT - RIGHT, height: h,
                  fill: "transparent"}, svg);
      return {node: svg, cursor: function (t) {
        var x = xOf(t, w);
        cursor.setAttribute("x1", x);
        cursor.setAttribute("x2", x);
      }};
    }
    return mount(box, draw, function (t) {
      var i = stepAt(t);
      return t.toFixed(1) + " s: " + spec.series.map(function (s) {
        return s.label + " " + fmt(s.values[i], 2);
      }).join(", ");
    });
  }

  // The viewers x time map: a row per viewer, intensity as colour (magma), grey where the
  // face was missing, lighter where the recording does not cover the episode.
  var MAGMA = [[0, 0, 4], [28, 16, 68], [79, 18, 123], [129, 37, 129], [181, 54, 122],
               [229, 80, 100], [251, 135, 97], [254, 194, 135], [252, 253, 191]];
  function magma(f) {
    f = clamp(f, 0, 1) * (MAGMA.length - 1);
    var i = Math.min(MAGMA.length - 2, Math.floor(f)), r = f - i, a = MAGMA[i], b = MAGMA[i + 1];
    return "rgb(" + [0, 1, 2].map(function (k) { return Math.round(a[k] + (b[k] - a[k]) * r); }) + ")";
  }
  function heatMap(box) {
    var n = D.viewers.length, row = n <= 20 ? 16 : Math.max(4, Math.floor(320 / n));
    function draw(w) {
      var h = n * row + AXIS, ratio = window.devicePixelRatio || 1;
      var canvas = document.createElement("canvas");
      canvas.width = w * ratio;
      canvas.height = h * ratio;
      canvas.style.width = w + "px";
      canvas.style.height = h + "px";
      var g = canvas.getContext("2d");
      g.scale(ratio, ratio);
      g.font = "11px system-ui, sans-serif";
      var cell = Math.max(1, xOf(D.bin, w) - xOf(0, w));
      D.viewers.forEach(function (v, r) {
        g.fillStyle = "#f1f1ef";
        g.fillRect(LEFT, r * row, w - LEFT - RIGHT, row - 1);
        v.intensity.forEach(function (x, i) {
          if (i < v.first || i > v.last) { return; }
          g.fillStyle = x === null ? "#c8c8c8" : magma(x / D.vmax);
          g.fillRect(xOf(D.times[i], w), r * row, cell + 0.5, row - 1);
        });
        if (row >= 10) {
          g.fillStyle = "#333";
          g.textAlign = "right";
          g.fillText(v.name.length > 18 ? v.name.slice(0, 17) + "\u2026" : v.name, LEFT - 6, r * row + row - 4);
        }
      });
      var step = niceStep(D.t1 - D.t0, Math.max(2, Math.floor((w - LEFT) / 70)));
      g.fillStyle = "#555";
      g.textAlign = "center";
      for (var t = Math.ceil(D.t0 / step) * step; t <= D.t1 + 1e-9; t += step) {
        g.fillText((Math.round(t * 10) / 10) + " s", xOf(t, w), n * row + 13);
      }
      var cursor = document.createElement("div");
      cursor.className = "vcursor";
      cursor.style.bottom = AXIS + "px";
      var wrap = document.createElement("div");
      wrap.appendChild(canvas);
      wrap.appendChild(cursor);
      return {node: wrap, cursor: function (t) { cursor.style.left = (xOf(t, w) - 1) + "px"; }};
    }
    return mount(box, draw, function (t, ev, rect) {
      var r = Math.floor((ev.clientY - rect.top) / row), i = stepAt(t), v = D.viewers[r];
      if (!v) { return ""; }
      var x = v.intensity[i];
      var what = i < v.first || i > v.last ? "not recorded" :
        x === null ? "face missing" : "intensity " + x.toFixed(2);
      return v.name + ", " + t.toFixed(1) + " s: " + what;
    });
  }

  // Put a chart in its box, (re)draw it at the box's width, seek on click, read out on hover.
  function mount(box, draw, describe) {
    var chart = {width: 0, drawn: null};
    chart.render = function () {
      var w = Math.max(LEFT + 100, box.clientWidth);
      if (w === chart.width) { return; }
      chart.width = w;
      chart.drawn = draw(w);
      box.replaceChildren(chart.drawn.node);
      chart.drawn.cursor(now);
    };
    chart.cursor = function (t) { if (chart.drawn) { chart.drawn.cursor(t); } };
    box.addEventListener("click", function (ev) {
      var rect = box.getBoundingClientRect();
      if (ev.clientX - rect.left >= LEFT) { seek(tOf(ev.clientX - rect.left, chart.width)); }
    });
    hover(box, function (ev) {
      var rect = box.getBoundingClientRect(), px = ev.clientX - rect.left;
      return px < LEFT ? "" : describe(tOf(px, chart.width), ev, rect);
    });
    charts.push(chart);
    chart.render();
    return chart;
  }

  // A still picture (matplotlib PNG) whose axes span [t0, t1] between the fractions
  // data-left and data-right of its width: a cursor over it, and a click seeks.
  function picture(box) {
    var t0 = parseFloat(box.dataset.t0), t1 = parseFloat(box.dataset.t1);
    var a = parseFloat(box.dataset.left), b = parseFloat(box.dataset.right);
    var cursor = document.createElement("div");
    cursor.className = "vcursor";
    box.appendChild(cursor);
    box.addEventListener("click", function (ev) {
      var rect = box.getBoundingClientRect(), f = (ev.clientX - rect.left) / rect.width;
      if (f >= a && f <= b) { seek(t0 + (f - a) / (b - a) * (t1 - t0)); }
    });
    charts.push({render: function () {}, cursor: function (t) {
      var f = a + (clamp(t, t0, t1) - t0) / (t1 - t0) * (b - a);
      cursor.style.left = (100 * f) + "%";
    }});
  }

  var PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf"];
  var kinds = {
    reaction: function (box) {
      return lineChart(box, {height: 200, label: "reaction", moments: true, series: [
        {values: D.agg.mean_intensity, color: "#999", width: 1, label: "mean intensity"},
        {values: D.agg.score, color: "#d62728", width: 2, label: "score"}]});
    },
    reacting: function (box) {
      return lineChart(box, {height: 80, ymax: 1, label: "reacting", series: [
        {values: D.agg.share_reacting, color: "#1f77b4", bars: true, label: "share reacting"}]});
    },
    attention: function (box) {
      return lineChart(box, {height: 80, ymax: 1, label: "attention", series: [
        {values: D.agg.attention, color: "#2ca02c", width: 1.5, label: "facing the screen"}]});
    },
    heatmap: heatMap,
    group: function (box) {
      var gr = D.groups[parseInt(box.dataset.group, 10)];
      var series = [{values: D.agg.score, color: "#333", width: 1.5, dash: "4 3",
                     label: "all viewers"}];
      gr.curves.forEach(function (c, k) {
        series.push({values: c.score, color: PALETTE[k % PALETTE.length], width: 2,
                     label: c.value || "(none)"});
      });
      return lineChart(box, {height: 170, label: "score", moments: true, series: series});
    }
  };
  document.querySelectorAll(".chart[data-kind]").forEach(function (box) {
    kinds[box.dataset.kind](box);
  });
  document.querySelectorAll(".png[data-t0]").forEach(picture);
  document.querySelectorAll(".legend [data-colour]").forEach(function (i) {
    i.style.background = PALETTE[parseInt(i.dataset.colour, 10) % PALETTE.length];
  });
  var bar = document.getElementById("colorbar");
  if (bar) {
    bar.style.background = "linear-gradient(to right, " +
      [0, 0.25, 0.5, 0.75, 1].map(magma).join(", ") + ")";
  }
  var pending = false;
  window.addEventListener("resize", function () {
    if (pending) { return; }
    pending = true;
    requestAnimationFrame(function () { pending = false; charts.forEach(function (c) { c.render(); }); });
  });
  show(video ? video.currentTime : 0);
  window.emotrace = {seek: seek, time: function () { return now; }, data: D};
})();
