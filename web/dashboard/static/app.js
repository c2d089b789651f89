// The throughput chart (uPlot), refreshed from /ui/series.json every 10 s. Everything
// else on the pages is plain HTML that htmx refreshes: no inline script anywhere, so the
// Content-Security-Policy can say script-src 'self'.
(function () {
  "use strict";
  var REFRESH_MS = 10000;

  function css(name) {
    return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  }

  function options(width) {
    return {
      width: width,
      height: 240,
      scales: { x: { time: true } },
      axes: [
        { stroke: css("--muted"), grid: { stroke: css("--line") } },
        { stroke: css("--muted"), grid: { stroke: css("--line") }, label: "per second" }
      ],
      series: [
        {},
        { label: "accepted/s", stroke: css("--ok"), width: 2 },
        { label: "errors/s", stroke: css("--bad"), width: 2 }
      ]
    };
  }

  function start(box) {
    var plot = null;
    function load() {
      fetch(box.dataset.series, { credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (s) {
          if (!s) { return; }
          var cols = [s.t, s.accepted, s.errors];
          if (plot) { plot.setData(cols); }
          else { plot = new uPlot(options(box.clientWidth || 800), cols, box); }
        })
        .catch(function () { /* the next refresh tries again */ });
    }
    load();
    setInterval(load, REFRESH_MS);
    window.addEventListener("resize", function () {
      if (plot) { plot.setSize({ width: box.clientWidth, height: 240 }); }
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var box = document.getElementById("throughput");
    if (box && window.uPlot) { start(box); }
  });
})();
