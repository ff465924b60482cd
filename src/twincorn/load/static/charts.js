// The charts of a load run over time, drawn with uPlot (static/vendor/uplot).
//
// Shared by the web UI (web.js) and the HTML report (report_html.py). Each
// chart plots columns of the results' "timeline": one row per second, with
// "t" (seconds since the start) as the x axis. A series whose key no row has
// (p95_ms, say, or the open model's uncorrected figures) is left out.
"use strict";

window.TwincornCharts = (function () {
  const CHARTS = [
    {
      id: "throughput",
      title: "Requests/s and failures/s",
      series: [
        { key: "rps", label: "requests/s", color: "#2e7d32", fill: "rgba(46,125,50,0.08)" },
        { key: "failures_per_s", label: "failures/s", color: "#c62828" },
      ],
    },
    {
      id: "latency",
      title: "Latency percentiles (ms)",
      series: [
        { key: "p50_ms", label: "p50", color: "#1565c0" },
        { key: "p95_ms", label: "p95", color: "#ef6c00" },
        { key: "p99_ms", label: "p99", color: "#6a1b9a" },
        { key: "p99_uncorrected_ms", label: "p99 uncorrected", color: "#6a1b9a", dash: [6, 4] },
      ],
    },
    {
      id: "users",
      title: "Users and requests in flight",
      series: [
        { key: "users", label: "users", color: "#00838f", fill: "rgba(0,131,143,0.08)" },
        { key: "in_flight", label: "in flight", color: "#8d6e63" },
      ],
    },
  ];

  const HEIGHT = 240;
  // Ticks on the time axis: whole seconds, minutes, hours.
  const SECOND_STEPS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400];

  // 1500 -> "1.5k", 28000 -> "28k": labels that fit beside the chart.
  function compact(value) {
    const size = Math.abs(value);
    if (size >= 1e6) return +(value / 1e6).toFixed(1) + "M";
    if (size >= 1e3) return +(value / 1e3).toFixed(1) + "k";
    return String(+value.toFixed(2));
  }

  function present(rows, key) {
    return rows.some((row) => row[key] !== undefined && row[key] !== null);
  }

  function number(value) {
    return value === undefined || value === null ? null : Number(value);
  }

  // One chart: its uPlot instance, the series it shows and their columns.
  class Chart {
    constructor(parent, spec, rows) {
      this.spec = spec;
      this.shown = spec.series.filter((s) => present(rows, s.key));
      if (this.shown.length === 0) {
        this.shown = spec.series.slice(0, 1);
      }
      this.columns = [rows.map((row) => Number(row.t))];
      for (const s of this.shown) {
        this.columns.push(rows.map((row) => number(row[s.key])));
      }
      this.box = document.createElement("div");
      this.box.className = "chart";
      this.box.dataset.chart = spec.id;
      parent.appendChild(this.box);
      const width = Math.max(parent.clientWidth, 320);
      this.plot = new uPlot(this.options(width), this.columns, this.box);
    }

    options(width) {
      return {
        title: this.spec.title,
        width: width,
        height: HEIGHT,
        cursor: { sync: { key: "twincorn" } },
        scales: {
          x: { time: false },
          // From zero: a chart of counts that starts at 2.5 misleads.
          y: { range: (u, min, max) => [0, max > 0 ? max * 1.08 : 1] },
        },
        axes: [
          { label: "seconds since start", incrs: SECOND_STEPS },
          { size: 56, values: (u, splits) => splits.map(compact) },
        ],
        series: [{ label: "t (s)" }].concat(
          this.shown.map((s) => ({
            label: s.label,
            stroke: s.color,
            width: 2,
            fill: s.fill,
            dash: s.dash,
            points: { show: false },
          })),
        ),
      };
    }

    add(row) {
      this.columns[0].push(Number(row.t));
      this.shown.forEach((s, i) => this.columns[i + 1].push(number(row[s.key])));
      this.plot.setData(this.columns);
    }

    // A key that appeared since the chart was made calls for a new chart.
    missing(row) {
      return this.spec.series.some(
        (s) => !this.shown.includes(s) && row[s.key] !== undefined && row[s.key] !== null,
      );
    }

    resize(width) {
      if (width > 0) {
        this.plot.setSize({ width: width, height: HEIGHT });
      }
    }

    destroy() {
      this.plot.destroy();
      this.box.remove();
    }
  }

  // All the charts of one run, in one container element.
  class ChartSet {
    constructor(container) {
      this.container = container;
      this.rows = [];
      this.charts = [];
      if (window.ResizeObserver) {
        new ResizeObserver(() => this.resize()).observe(container);
      }
    }

    // Draw these rows, replacing whatever was drawn.
    setRows(rows) {
      this.rows = rows.slice();
      this.rebuild();
    }

    // One more row (the run's newest second).
    addRow(row) {
      const last = this.rows[this.rows.length - 1];
      if (last !== undefined && Number(row.t) <= Number(last.t)) {
        return; // already drawn (a snapshot may overlap the live events)
      }
      this.rows.push(row);
      if (this.charts.some((chart) => chart.missing(row))) {
        this.rebuild();
      } else {
        this.charts.forEach((chart) => chart.add(row));
      }
    }

    rebuild() {
      this.charts.forEach((chart) => chart.destroy());
      this.charts = CHARTS.map((spec) => new Chart(this.container, spec, this.rows));
    }

    resize() {
      const width = this.container.clientWidth;
      this.charts.forEach((chart) => chart.resize(width));
    }
  }

  return { ChartSet: ChartSet, CHARTS: CHARTS };
})();
