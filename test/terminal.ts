/**
 * A terminal for tests: what a screen shows after the bytes a program wrote, with the cursor
 * moves and erases Node's readline and cli-progress send (CSI G, K, J, A-D, save/restore).
 * Lines that scroll off stay in `screen()`, as a terminal's scrollback.
 */
export class VirtualTerminal {
  readonly isTTY = true;
  readonly columns = 120;
  readonly rows = 40;
  #lines: string[] = [""];
  #row = 0;
  #col = 0;
  #saved: [number, number] = [0, 0];
  /** Writes that drew a progress bar (cli-progress's `[===---]`), to tell that one was shown at all. */
  bars = 0;

  write(chunk: string | Uint8Array, cb?: () => void): boolean {
    const s = typeof chunk === "string" ? chunk : Buffer.from(chunk).toString("utf8");
    if (/\[[=\-\u2588\u2591]{10,}\]/.test(s)) this.bars++;
    for (let i = 0; i < s.length; i++) {
      const c = s[i];
      if (c === "\x1b") {
        i = this.#escape(s, i);
        continue;
      }
      if (c === "\n") {
        this.#row++;
        this.#col = 0;
        if (this.#row === this.#lines.length) this.#lines.push("");
      } else if (c === "\r") this.#col = 0;
      else this.#put(c);
    }
    cb?.();
    return true;
  }

  /** Every line as the screen and its scrollback show it, trailing spaces trimmed, empty last lines dropped. */
  screen(): string[] {
    const lines = this.#lines.map((l) => l.trimEnd());
    while (lines.length && lines[lines.length - 1] === "") lines.pop();
    return lines;
  }

  // The stream methods readline's helpers and cli-progress look for.
  cursorTo(x: number, y?: number | (() => void)): boolean {
    this.#col = x;
    if (typeof y === "number") this.#row = y;
    return true;
  }
  clearLine(dir: -1 | 0 | 1): boolean {
    this.#clear(dir);
    return true;
  }
  moveCursor(dx: number, dy: number): boolean {
    this.#col = Math.max(0, this.#col + dx);
    this.#row = Math.max(0, this.#row + dy);
    return true;
  }
  on(): this {
    return this;
  }
  removeListener(): this {
    return this;
  }

  #put(c: string): void {
    const line = this.#lines[this.#row].padEnd(this.#col);
    this.#lines[this.#row] = line.slice(0, this.#col) + c + line.slice(this.#col + 1);
    this.#col++;
  }

  #clear(dir: number): void {
    const line = this.#lines[this.#row];
    if (dir === 0) this.#lines[this.#row] = "";
    else if (dir === 1) this.#lines[this.#row] = line.slice(0, this.#col);
    else this.#lines[this.#row] = " ".repeat(this.#col) + line.slice(this.#col);
  }

  /** One escape sequence from s[i]; returns the index of its last character. */
  #escape(s: string, i: number): number {
    if (s[i + 1] === "7") {
      this.#saved = [this.#row, this.#col];
      return i + 1;
    }
    if (s[i + 1] === "8") {
      [this.#row, this.#col] = this.#saved;
      return i + 1;
    }
    if (s[i + 1] !== "[") throw new Error(`escape sequence ESC ${JSON.stringify(s[i + 1])} not modelled`);
    let j = i + 2;
    while (j < s.length && !/[A-Za-z]/.test(s[j])) j++;
    const params = s.slice(i + 2, j);
    const n = Number(params.replace("?", "")) || 0;
    switch (s[j]) {
      case "G":
        this.#col = Math.max(0, (n || 1) - 1);
        break;
      case "K":
        this.#clear(n === 2 ? 0 : n === 1 ? -1 : 1);
        break;
      case "J":
        this.#lines.length = this.#row + 1;
        this.#clear(1);
        break;
      case "A":
        this.#row = Math.max(0, this.#row - (n || 1));
        break;
      case "B":
        this.#row += n || 1;
        while (this.#lines.length <= this.#row) this.#lines.push("");
        break;
      case "C":
        this.#col += n || 1;
        break;
      case "D":
        this.#col = Math.max(0, this.#col - (n || 1));
        break;
      case "h":
      case "l":
        break; // cursor visibility, line wrap: nothing on the screen changes
      default:
        throw new Error(`CSI ${params}${s[j]} not modelled`);
    }
    return j;
  }
}
