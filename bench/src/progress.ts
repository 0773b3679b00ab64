/**
 * The progress line: rewritten in place when stdout is a terminal, plain lines
 * otherwise (at most one every few seconds, plus every phase change).
 */
export class Progress {
  private readonly tty: boolean;
  private lastPlainAt = 0;
  private lastPhase = '';
  private shown = false;

  constructor(
    private readonly out: NodeJS.WriteStream | null = process.stdout,
    private readonly plainEveryMs = 3000,
  ) {
    this.tty = !!out?.isTTY;
  }

  /** Updates the live line. `phase` groups updates: a new phase always prints a plain line. */
  update(phase: string, detail = ''): void {
    if (!this.out) return;
    const text = detail ? `${phase}  ${detail}` : phase;
    if (this.tty) {
      const width = (this.out.columns ?? 100) - 1;
      this.out.write(`\r\x1b[2K${text.slice(0, width)}`);
      this.shown = true;
      return;
    }
    const now = Date.now();
    if (phase !== this.lastPhase || now - this.lastPlainAt >= this.plainEveryMs) {
      this.out.write(`${text}\n`);
      this.lastPhase = phase;
      this.lastPlainAt = now;
    }
  }

  /** A line that stays (a result, a warning). */
  log(line: string): void {
    if (!this.out) return;
    if (this.tty && this.shown) this.out.write('\r\x1b[2K');
    this.shown = false;
    this.out.write(`${line}\n`);
  }

  done(): void {
    if (this.out && this.tty && this.shown) this.out.write('\r\x1b[2K');
    this.shown = false;
  }
}
