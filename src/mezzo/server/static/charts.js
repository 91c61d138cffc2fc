// Small live line charts on canvas: one line per series, the last `capacity` samples.

const COLORS = ["#4f8cff", "#f5a623", "#3ecf8e", "#e5484d", "#b57cff", "#38bdf8"];

export class Sparkline {
  constructor(canvas, { capacity = 90, unit = "" } = {}) {
    this.canvas = canvas;
    this.capacity = capacity;
    this.unit = unit;
    this.series = new Map();
  }

  push(values) {
    for (const name of new Set([...this.series.keys(), ...Object.keys(values)])) {
      const samples = this.series.get(name) ?? [];
      samples.push(values[name] ?? 0);
      if (samples.length > this.capacity) samples.shift();
      this.series.set(name, samples);
    }
    this.draw();
  }

  draw() {
    const { canvas } = this;
    const ratio = window.devicePixelRatio || 1;
    const width = canvas.clientWidth;
    const height = canvas.clientHeight;
    if (!width || !height) return;
    canvas.width = width * ratio;
    canvas.height = height * ratio;
    const ctx = canvas.getContext("2d");
    ctx.scale(ratio, ratio);
    ctx.clearRect(0, 0, width, height);
    const all = [...this.series.values()].flat();
    const max = Math.max(1, ...all);
    const legendHeight = 14;
    const plot = height - legendHeight - 4;
    ctx.font = "11px system-ui, sans-serif";
    let legendX = 4;
    [...this.series.entries()].forEach(([name, samples], index) => {
      const color = COLORS[index % COLORS.length];
      ctx.strokeStyle = color;
      ctx.lineWidth = 1.5;
      ctx.beginPath();
      samples.forEach((value, i) => {
        const x = width - (samples.length - 1 - i) * (width / (this.capacity - 1));
        const y = legendHeight + 2 + plot - (value / max) * plot;
        if (i === 0) ctx.moveTo(x, y);
        else ctx.lineTo(x, y);
      });
      ctx.stroke();
      const label = `${name} ${formatNumber(samples.at(-1) ?? 0)}${this.unit}`;
      ctx.fillStyle = color;
      ctx.fillText(label, legendX, 11);
      legendX += ctx.measureText(label).width + 12;
    });
    ctx.fillStyle = "#8a93a6";
    ctx.textAlign = "right";
    ctx.fillText(`max ${formatNumber(max)}`, width - 2, height - 2);
    ctx.textAlign = "left";
  }
}

export function formatNumber(value) {
  if (value >= 1e6) return `${(value / 1e6).toFixed(1)}M`;
  if (value >= 1e4) return `${(value / 1e3).toFixed(0)}k`;
  return String(Math.round(value));
}
