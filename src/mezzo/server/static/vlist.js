// A virtualised list of fixed-height rows: only the rows in view are in the DOM, so a run with
// many thousands of events scrolls as lightly as one with ten. Follows the tail while the
// reader is at the bottom.

const OVERSCAN = 8;

export class VirtualList {
  constructor(viewport, { rowHeight, render }) {
    this.viewport = viewport;
    this.rowHeight = rowHeight;
    this.render = render;
    this.items = [];
    this.follow = true;
    this.pending = false;
    viewport.classList.add("vlist");
    this.spacer = document.createElement("div");
    this.spacer.className = "vlist-spacer";
    this.rows = document.createElement("div");
    this.rows.className = "vlist-rows";
    viewport.replaceChildren(this.spacer, this.rows);
    viewport.addEventListener("scroll", () => {
      this.follow = this.atBottom();
      this.schedule();
    });
    new ResizeObserver(() => this.schedule()).observe(viewport);
  }

  atBottom() {
    const { scrollTop, clientHeight, scrollHeight } = this.viewport;
    return scrollTop + clientHeight >= scrollHeight - this.rowHeight;
  }

  setItems(items) {
    this.items = items;
    this.follow = true;
    this.viewport.scrollTop = 0;
    this.schedule();
  }

  // The items array grew in place (or changed): redraw, keeping to the tail when following.
  changed() {
    this.schedule();
  }

  schedule() {
    if (this.pending) return;
    this.pending = true;
    requestAnimationFrame(() => {
      this.pending = false;
      this.draw();
    });
  }

  draw() {
    const height = this.items.length * this.rowHeight;
    this.spacer.style.height = `${height}px`;
    if (this.follow) this.viewport.scrollTop = height;
    const top = this.viewport.scrollTop;
    const first = Math.max(0, Math.floor(top / this.rowHeight) - OVERSCAN);
    const last = Math.min(
      this.items.length,
      Math.ceil((top + this.viewport.clientHeight) / this.rowHeight) + OVERSCAN,
    );
    const rows = [];
    for (let index = first; index < last; index += 1) {
      const row = this.render(this.items[index], index);
      row.classList.add("vlist-row");
      row.style.top = `${index * this.rowHeight}px`;
      row.style.height = `${this.rowHeight}px`;
      rows.push(row);
    }
    this.rows.replaceChildren(...rows);
  }
}
