/**
 * Sound on the page: a WebAudio ringtone, and a meter of the remote audio's
 * level — linear from 0 (silence) to 1, updated ten times a second, each peak
 * held for 400 ms so short sounds show.
 */
const PEAK_HOLD_MS = 400;
const METER_INTERVAL_MS = 100;

let context: AudioContext | undefined;

/** One AudioContext for the page, created (or resumed) on a user gesture. */
export function audioContext(): AudioContext {
  context ??= new AudioContext();
  if (context.state === 'suspended') void context.resume();
  return context;
}

export class Ringtone {
  private timer: number | undefined;
  private nodes: AudioScheduledSourceNode[] = [];

  start(): void {
    if (this.timer !== undefined) return;
    const ring = () => {
      const ctx = audioContext();
      const gain = ctx.createGain();
      gain.gain.value = 0.08;
      gain.connect(ctx.destination);
      // The North American ring: 440 + 480 Hz, two seconds on.
      for (const freq of [440, 480]) {
        const osc = ctx.createOscillator();
        osc.frequency.value = freq;
        osc.connect(gain);
        osc.start();
        osc.stop(ctx.currentTime + 2);
        this.nodes.push(osc);
      }
    };
    ring();
    this.timer = window.setInterval(ring, 4000);
  }

  stop(): void {
    if (this.timer !== undefined) window.clearInterval(this.timer);
    this.timer = undefined;
    for (const node of this.nodes) {
      try {
        node.stop();
      } catch {
        // already stopped
      }
    }
    this.nodes = [];
  }
}

export class LevelMeter {
  private timer: number | undefined;
  private source: MediaStreamAudioSourceNode | undefined;
  private peak = 0;
  private peakAt = 0;

  constructor(private readonly element: HTMLElement) {}

  attach(stream: MediaStream): void {
    this.detach();
    const ctx = audioContext();
    this.source = ctx.createMediaStreamSource(stream);
    const analyser = ctx.createAnalyser();
    analyser.fftSize = 2048;
    this.source.connect(analyser);
    const samples = new Float32Array(analyser.fftSize);
    this.timer = window.setInterval(() => {
      analyser.getFloatTimeDomainData(samples);
      let max = 0;
      for (const s of samples) max = Math.max(max, Math.abs(s));
      const now = performance.now();
      if (max >= this.peak || now - this.peakAt > PEAK_HOLD_MS) {
        this.peak = max;
        this.peakAt = now;
      }
      this.show(Math.min(1, this.peak));
    }, METER_INTERVAL_MS);
  }

  detach(): void {
    if (this.timer !== undefined) window.clearInterval(this.timer);
    this.timer = undefined;
    this.source?.disconnect();
    this.source = undefined;
    this.peak = 0;
    this.show(0);
  }

  private show(level: number): void {
    const value = level.toFixed(3);
    this.element.dataset.level = value;
    this.element.setAttribute('aria-valuenow', value);
    this.element.style.width = `${Math.round(Math.sqrt(level) * 100)}%`;
  }
}
