// Resources over time, drawn by uPlot (vendor/uPlot.iife.min.js, loaded before the modules).
import { html } from "./html.js";
import { useEffect, useRef } from "preact/hooks";

const WINDOW_S = 300;
const SERIES = [
  { label: "total", stroke: "#7a869a", width: 1.5 },
  { label: "used", stroke: "#2f7d32", fill: "rgba(47,125,50,0.15)", width: 2 },
  { label: "offered", stroke: "#1f6fb2", width: 1.5, dash: [4, 4] },
];

// columns: [times, total, used, offered]
export function ResourceChart({ title, columns, unit, version }) {
  const box = useRef(null);
  const plot = useRef(null);
  useEffect(() => {
    if (!window.uPlot || !box.current) return undefined;
    plot.current = new window.uPlot({
      title, width: Math.max(320, box.current.clientWidth || 480), height: 200,
      // At least the last five minutes: a few samples alone would stretch over years.
      scales: { x: { time: true, range: (u, min, max) => [Math.min(min, max - WINDOW_S), max] } },
      series: [{}, ...SERIES.map((s) => ({ ...s, value: (u, v) => (v == null ? "" : `${+v.toFixed(2)} ${unit}`) }))],
      axes: [{}, { size: 60, values: (u, vals) => vals.map((v) => `${+v.toFixed(1)}`) }],
    }, columns, box.current);
    return () => plot.current.destroy();
  }, []);
  useEffect(() => {
    if (plot.current) plot.current.setData(columns);
  }, [version]);
  return html`<div class="chart" ref=${box} data-chart=${title}></div>`;
}
