// Charts drawn as inline SVG, each with a text summary for screen readers and a table
// alternative. No chart library: a bar chart is a few rectangles.
"use strict";

(function () {
  const NS = "http://www.w3.org/2000/svg";
  let uid = 0;

  function svg(tag, attrs, ...children) {
    const node = document.createElementNS(NS, tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value !== null && value !== undefined) node.setAttribute(name, String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  // A round upper bound for the axis, four equal steps of 1, 2, 2.5 or 5 times a power of
  // ten; whole steps for counts, so gridlines never read 1.25 calls.
  function niceMax(value, integer) {
    if (value <= 0) return integer ? 4 : 1;
    const raw = value / 4;
    const power = Math.pow(10, Math.floor(Math.log10(raw)));
    for (const step of integer ? [1, 2, 5, 10] : [1, 2, 2.5, 5, 10]) {
      const size = step * power;
      if (size >= raw && (!integer || Number.isInteger(size))) return size * 4;
    }
    return Math.max(4, Math.ceil(raw) * 4);
  }

  // Room for a label of this many characters at the charts' 11px font (no text measuring
  // before the SVG is in the page): a text is never cut at the chart's edge.
  function textWidth(text) {
    return Math.ceil(String(text).length * 7) + 8;
  }

  /**
   * Vertical bars, one per point; optional second series drawn over the first (e.g. errors
   * within calls). points: [{label, value, display, part?, partDisplay?}].
   */
  function bars(options) {
    const { el, table } = window.aigw;
    const id = "chart-" + ++uid;
    const points = options.points;
    const width = 720;
    const height = 220;
    const max = niceMax(Math.max(0, ...points.map((p) => p.value)), options.integer);
    const ticks = [0, 0.25, 0.5, 0.75, 1].map((f) => options.axis(max * f));
    const pad = { top: 12, right: 24, bottom: 28, left: Math.max(48, ...ticks.map(textWidth)) };
    const plotW = width - pad.left - pad.right;
    const plotH = height - pad.top - pad.bottom;
    const slot = plotW / Math.max(points.length, 1);
    const barW = Math.max(2, Math.min(40, slot * 0.7));
    const y = (v) => pad.top + plotH - (v / max) * plotH;
    const labelEvery = Math.ceil(points.length / 10);

    const grid = [0, 0.25, 0.5, 0.75, 1].map((f, i) =>
      svg(
        "g",
        { class: "grid" },
        svg("line", { x1: pad.left, x2: width - pad.right, y1: y(max * f), y2: y(max * f) }),
        svg("text", { x: pad.left - 6, y: y(max * f) + 4, "text-anchor": "end" }, ticks[i])
      )
    );
    const marks = points.map((p, i) => {
      const x = pad.left + i * slot + (slot - barW) / 2;
      const group = svg("g", { class: "bar" });
      group.append(
        svg("rect", { x, y: y(p.value), width: barW, height: Math.max(0, y(0) - y(p.value)), class: "series-a" },
          svg("title", {}, p.label + ": " + p.display + (p.partDisplay ? ", " + p.partDisplay : "")))
      );
      if (p.part) {
        group.append(svg("rect", { x, y: y(p.part), width: barW, height: Math.max(0, y(0) - y(p.part)), class: "series-b" }));
      }
      if (i % labelEvery === 0) {
        group.append(svg("text", { x: x + barW / 2, y: height - 8, "text-anchor": "middle", class: "xlabel" }, options.short ? options.short(p.label) : p.label));
      }
      return group;
    });

    const summary = options.summary || options.title;
    const chart = svg(
      "svg",
      { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-labelledby": id + "-t " + id + "-d", class: "chart", preserveAspectRatio: "xMidYMid meet" },
      svg("title", { id: id + "-t" }, options.title),
      svg("desc", { id: id + "-d" }, summary),
      grid,
      svg("line", { class: "axis", x1: pad.left, x2: width - pad.right, y1: y(0), y2: y(0) }),
      marks
    );
    const legend = options.legend
      ? el("p", { class: "legend" }, options.legend.map((item, i) => el("span", { class: "key series-" + "ab"[i] }, item)))
      : null;
    return el(
      "figure",
      { class: "figure", "data-chart": options.name || id },
      el("figcaption", {}, options.title),
      chart,
      legend,
      el("details", { class: "as-table" }, el("summary", {}, "Show as table"), table(options.columns, options.rows, { rowHeaders: true }))
    );
  }

  /** Horizontal bars, for categories (models, keys, routes). points: [{label, value, display}]. */
  function hbars(options) {
    const { el, table } = window.aigw;
    const id = "chart-" + ++uid;
    const points = options.points;
    const rowH = 26;
    const width = 720;
    const labelW = 220;
    const valueW = Math.max(110, ...points.map((p) => textWidth(p.display)));
    const height = Math.max(rowH, points.length * rowH) + 8;
    const max = Math.max(0, ...points.map((p) => p.value)) || 1;
    const plotW = width - labelW - valueW;
    const marks = points.map((p, i) =>
      svg(
        "g",
        { class: "bar" },
        svg("text", { x: labelW - 8, y: 4 + i * rowH + rowH / 2 + 4, "text-anchor": "end", class: "ylabel" }, p.label.length > 30 ? p.label.slice(0, 29) + "…" : p.label),
        svg("rect", { x: labelW, y: 4 + i * rowH + 4, width: Math.max(1, (p.value / max) * plotW), height: rowH - 8, class: "series-a" }, svg("title", {}, p.label + ": " + p.display)),
        svg("text", { x: labelW + Math.max(1, (p.value / max) * plotW) + 6, y: 4 + i * rowH + rowH / 2 + 4, class: "vlabel" }, p.display)
      )
    );
    return el(
      "figure",
      { class: "figure", "data-chart": options.name || id },
      el("figcaption", {}, options.title),
      points.length
        ? svg(
            "svg",
            { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-labelledby": id + "-t " + id + "-d", class: "chart" },
            svg("title", { id: id + "-t" }, options.title),
            svg("desc", { id: id + "-d" }, options.summary || options.title),
            marks
          )
        : el("p", { class: "empty" }, "No calls in this period."),
      el("details", { class: "as-table" }, el("summary", {}, "Show as table"), table(options.columns, options.rows, { rowHeaders: true }))
    );
  }

  window.aigw.charts = { bars, hbars, niceMax };
})();
