// The lab report's charts, drawn with uPlot (the load tester's vendored
// copy, static/vendor/uplot) from the specs of src/twincorn/lab/charts.py.
//
// Every choice of what a chart shows (scales, styles, labels, notes) is made
// in charts.py; this file only draws it. uPlot draws the axes and the lines;
// a draw hook adds what uPlot has no option for: a marker per configuration,
// the names at the ends of the lines, and the annotations.
"use strict";

(function () {
  const HEIGHT = 400;
  const FONT = "12px system-ui, sans-serif";

  // 0.5 -> "0.5", 16 -> "16", 1500 -> "1.5k".
  function tick(value) {
    if (value >= 1000) return +(value / 1000).toFixed(1) + "k";
    return String(+value.toFixed(2));
  }

  function scale(axis) {
    const s = { time: false, range: [axis.min, axis.max] };
    if (axis.log) {
      s.distr = 3;
      s.log = axis.log;
    }
    return s;
  }

  function axisOptions(axis) {
    const a = { label: axis.label, labelSize: 28, font: FONT, labelFont: "bold " + FONT };
    if (axis.ticks) {
      a.splits = () => axis.ticks;
      a.values = (u, splits) => splits.map(tick);
    }
    return a;
  }

  function marker(ctx, shape, x, y, r) {
    ctx.beginPath();
    if (shape === "circle") {
      ctx.arc(x, y, r, 0, 2 * Math.PI);
    } else if (shape === "square") {
      ctx.rect(x - r * 0.9, y - r * 0.9, r * 1.8, r * 1.8);
    } else if (shape === "triangle" || shape === "down") {
      const d = shape === "triangle" ? 1 : -1;
      ctx.moveTo(x, y - d * r * 1.15);
      ctx.lineTo(x + r * 1.05, y + d * r * 0.75);
      ctx.lineTo(x - r * 1.05, y + d * r * 0.75);
      ctx.closePath();
    } else if (shape === "diamond") {
      ctx.moveTo(x, y - r * 1.2);
      ctx.lineTo(x + r * 1.2, y);
      ctx.lineTo(x, y + r * 1.2);
      ctx.lineTo(x - r * 1.2, y);
      ctx.closePath();
    } else {  // cross, plus: strokes only
      const c = shape === "cross" ? r * 0.8 : 0;
      const p = shape === "plus" ? r * 1.1 : 0;
      ctx.moveTo(x - c - p, y - c);
      ctx.lineTo(x + c + p, y + c);
      ctx.moveTo(x - c, y + c + p);
      ctx.lineTo(x + c, y - c - p);
    }
  }

  function drawMarkers(u, spec, px) {
    const ctx = u.ctx;
    spec.series.forEach((s) => {
      if (!s.marker) return;
      ctx.save();
      ctx.fillStyle = s.colour;
      ctx.strokeStyle = "#ffffff";
      ctx.lineWidth = 1.2 * px;
      for (const [x, y] of s.points) {
        marker(ctx, s.marker, u.valToPos(x, "x", true), u.valToPos(y, "y", true), 4.5 * px);
        if (s.marker === "cross" || s.marker === "plus") {
          ctx.strokeStyle = s.colour;
          ctx.lineWidth = 2.2 * px;
          ctx.stroke();
        } else {
          ctx.fill();
          ctx.stroke();
        }
      }
      ctx.restore();
    });
  }

  // Each line's name right of its last point, pushed apart where two meet.
  function drawEndLabels(u, spec, px) {
    const ctx = u.ctx;
    const gap = 15 * px;
    const labels = spec.series
      .filter((s) => s.end_label && s.points.length)
      .map((s) => {
        const [x, y] = s.points[s.points.length - 1];
        return { s: s, x: u.valToPos(x, "x", true) + 9 * px, y: u.valToPos(y, "y", true) };
      })
      .sort((a, b) => a.y - b.y);
    for (let i = 1; i < labels.length; i++) {
      if (Math.abs(labels[i].x - labels[i - 1].x) < 200 * px &&
          labels[i].y - labels[i - 1].y < gap) {
        labels[i].y = labels[i - 1].y + gap;
      }
    }
    ctx.save();
    ctx.font = "bold " + Math.round(12.5 * px) + "px system-ui, sans-serif";
    ctx.textAlign = "left";
    ctx.textBaseline = "middle";
    ctx.lineJoin = "round";
    for (const l of labels) {
      halo(ctx, l.s.end_label, l.x, l.y, px);
      ctx.fillStyle = l.s.colour;
      ctx.fillText(l.s.end_label, l.x, l.y);
    }
    ctx.restore();
  }

  // A white outline under a text, so that it reads over the lines it crosses.
  function halo(ctx, text, x, y, px) {
    ctx.strokeStyle = "rgba(255, 255, 255, 0.9)";
    ctx.lineWidth = 4 * px;
    ctx.strokeText(text, x, y);
  }

  function drawAnnotations(u, spec, px) {
    const ctx = u.ctx;
    ctx.save();
    ctx.font = Math.round(11.5 * px) + "px system-ui, sans-serif";
    ctx.textAlign = "left";
    ctx.textBaseline = "top";
    for (const a of spec.annotations) {  // below and right of its point
      const x = u.valToPos(a.x, "x", true) + 8 * px;
      const y = u.valToPos(a.y, "y", true) + 12 * px;
      halo(ctx, a.text, x, y, px);
      ctx.fillStyle = a.colour;
      ctx.fillText(a.text, x, y);
    }
    ctx.restore();
  }

  function draw(el, spec, columns) {
    const longest = Math.max(0, ...spec.series.map((s) => (s.end_label || "").length));
    const width = Math.max(420, el.clientWidth || 600);
    const series = [{ label: spec.x.label }].concat(spec.series.map((s) => ({
      label: s.label, stroke: s.colour, width: s.width,
      dash: s.dash.length ? s.dash : undefined, spanGaps: true, points: { show: false },
    })));
    const px = uPlot.pxRatio;
    new uPlot({
      width: width, height: HEIGHT, series: series,
      padding: [12, Math.min(16 + longest * 7.6, width * 0.3), 0, 0],
      scales: { x: scale(spec.x), y: scale(spec.y) },
      axes: [axisOptions(spec.x), Object.assign(axisOptions(spec.y), { size: 52 })],
      legend: { show: false },
      cursor: { drag: { x: false, y: false }, points: { show: false } },
      hooks: { draw: [(u) => {
        drawMarkers(u, spec, px);
        drawAnnotations(u, spec, px);
        drawEndLabels(u, spec, px);
      }] },
    }, columns, el);
  }

  const data = JSON.parse(document.getElementById("chart-data").textContent);
  for (const chart of data) {
    draw(document.getElementById("chart-" + chart.spec.id), chart.spec, chart.columns);
  }
})();
