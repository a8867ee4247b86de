/* Two small SVG charts drawn with DOM calls (no library, no inline style: the page's CSP
 * forbids both): a line chart for trends and a horizontal funnel for the closed loop. */
"use strict";

(function () {
  const NS = "http://www.w3.org/2000/svg";

  function el(name, attrs, text) {
    const node = document.createElementNS(NS, name);
    for (const [key, value] of Object.entries(attrs || {})) {
      node.setAttribute(key, String(value));
    }
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function clear(container) {
    while (container.firstChild) container.removeChild(container.firstChild);
  }

  function niceMax(value) {
    if (!(value > 0)) return 1;
    const power = Math.pow(10, Math.floor(Math.log10(value)));
    for (const step of [1, 2, 2.5, 5, 10]) {
      if (step * power >= value) return step * power;
    }
    return 10 * power;
  }

  /* points: [{label, value (number|null), title}] oldest first.
   * opts: {format(v) -> text, max (fixed top of the scale), empty (text when no value)} */
  function lineChart(container, points, opts) {
    clear(container);
    const width = 960, height = 260;
    const left = 48, right = 16, top = 16, bottom = 40;
    const values = points.map((p) => p.value).filter((v) => typeof v === "number");
    const svg = el("svg", {
      viewBox: `0 0 ${width} ${height}`,
      class: "line-chart",
      "data-testid": "trend-svg",
      preserveAspectRatio: "xMidYMid meet",
    });
    if (!values.length) {
      svg.appendChild(el("text", { x: width / 2, y: height / 2, class: "empty", "text-anchor": "middle" }, opts.empty));
      container.appendChild(svg);
      return;
    }
    const minValue = Math.min(0, ...values);
    const maxValue = opts.max !== undefined ? Math.max(opts.max, ...values) : niceMax(Math.max(...values));
    const plotW = width - left - right, plotH = height - top - bottom;
    const x = (i) => left + (points.length === 1 ? plotW / 2 : (i * plotW) / (points.length - 1));
    const y = (v) => top + plotH - ((v - minValue) / (maxValue - minValue || 1)) * plotH;
    for (let k = 0; k <= 4; k += 1) {
      const v = minValue + ((maxValue - minValue) * k) / 4;
      const gy = y(v);
      svg.appendChild(el("line", { x1: left, x2: width - right, y1: gy, y2: gy, class: "grid" }));
      svg.appendChild(el("text", { x: left - 6, y: gy + 4, "text-anchor": "end", class: "axis" }, opts.format(v)));
    }
    const step = Math.max(1, Math.ceil(points.length / 8));
    points.forEach((p, i) => {
      if (i % step === 0 || i === points.length - 1) {
        svg.appendChild(el("text", { x: x(i), y: height - 14, "text-anchor": "middle", class: "axis" }, p.label));
      }
    });
    let path = "";
    let pen = false;
    points.forEach((p, i) => {
      if (typeof p.value === "number") {
        path += `${pen ? "L" : "M"}${x(i).toFixed(1)},${y(p.value).toFixed(1)} `;
        pen = true;
      } else {
        pen = false;
      }
    });
    svg.appendChild(el("path", { d: path.trim(), class: "series" }));
    points.forEach((p, i) => {
      if (typeof p.value !== "number") return;
      const dot = el("circle", {
        cx: x(i), cy: y(p.value), r: 4, class: "dot",
        "data-period": p.key, "data-value": p.value,
      });
      dot.appendChild(el("title", {}, `${p.label}: ${opts.format(p.value)}`));
      svg.appendChild(dot);
    });
    container.appendChild(svg);
  }

  /* steps: [{key, label, value}] from the widest stage down. */
  function funnel(container, steps) {
    clear(container);
    const width = 520, rowH = 44, labelW = 96, gap = 8;
    const height = steps.length * (rowH + gap);
    const svg = el("svg", { viewBox: `0 0 ${width} ${height}`, class: "funnel", "data-testid": "funnel-svg" });
    const top = Math.max(1, ...steps.map((s) => s.value || 0));
    const barMax = width - labelW - 120;
    steps.forEach((s, i) => {
      const yy = i * (rowH + gap);
      const w = Math.max(2, ((s.value || 0) / top) * barMax);
      const xx = labelW + (barMax - w) / 2;
      svg.appendChild(el("text", { x: 0, y: yy + rowH / 2 + 5, class: "funnel-label" }, s.label));
      const bar = el("rect", { x: xx, y: yy, width: w, height: rowH, rx: 4, class: `funnel-bar step-${i}` });
      bar.appendChild(el("title", {}, `${s.label}: ${s.value}`));
      svg.appendChild(bar);
      const share = i === 0 || !steps[0].value ? "" : ` (${Math.round((100 * s.value) / steps[0].value)}%)`;
      svg.appendChild(el("text", {
        x: labelW + barMax + 8, y: yy + rowH / 2 + 5, class: "funnel-count",
        "data-testid": `funnel-${s.key}`, "data-value": s.value,
      }, `${s.value}${share}`));
    });
    container.appendChild(svg);
  }

  window.PE_CHARTS = { lineChart, funnel };
})();
