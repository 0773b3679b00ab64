/**
 * The microphone, camera and speaker the person chose. New calls get their
 * media from the chosen devices (the phone's `media` option); a change
 * mid-call is handed to the page, which switches the call's tracks. Choices
 * are remembered in this browser. Device names are known only once the page
 * may use the microphone, so the lists are filled again when a call starts
 * and whenever the devices change.
 */
import type { MediaRequest } from '@switchboard/client';

export type DeviceKind = 'audioinput' | 'videoinput' | 'audiooutput';

const STORE_KEY = 'switchboard.devices';
const NOUNS: Record<DeviceKind, string> = { audioinput: 'Microphone', videoinput: 'Camera', audiooutput: 'Speaker' };

/** Whether this browser can choose where audio plays (`HTMLMediaElement.setSinkId`). */
export const canChooseSpeaker = typeof HTMLMediaElement !== 'undefined' && 'setSinkId' in HTMLMediaElement.prototype;

export class Devices {
  private readonly chosen: Partial<Record<DeviceKind, string>>;

  constructor(
    private readonly selects: Record<DeviceKind, HTMLSelectElement>,
    onChange: (kind: DeviceKind) => void,
  ) {
    this.chosen = load();
    for (const kind of Object.keys(selects) as DeviceKind[]) {
      selects[kind].addEventListener('change', () => {
        this.chosen[kind] = selects[kind].value;
        save(this.chosen);
        onChange(kind);
      });
    }
    navigator.mediaDevices?.addEventListener?.('devicechange', () => void this.refresh());
  }

  /** The chosen device of `kind`, or '' for the browser's default. */
  choice(kind: DeviceKind): string {
    return this.chosen[kind] ?? '';
  }

  /** The phone's `media` option: the chosen microphone and camera, as the call asks (another if the chosen one has gone). */
  media = (request: MediaRequest): Promise<MediaStream> => this.open(request, false);

  /** A stream with one fresh track of exactly the microphone or camera just chosen. */
  acquire(kind: 'audioinput' | 'videoinput'): Promise<MediaStream> {
    return this.open({ audio: kind === 'audioinput', video: kind === 'videoinput' }, true);
  }

  /** Fills the lists with the devices there are now, keeping each choice (or the default when its device is gone). */
  async refresh(): Promise<void> {
    const all = await navigator.mediaDevices?.enumerateDevices?.().catch(() => []) ?? [];
    for (const kind of Object.keys(this.selects) as DeviceKind[]) {
      const select = this.selects[kind];
      const devices = all.filter((d) => d.kind === kind && d.deviceId !== 'default' && d.deviceId !== '');
      const options = [new Option(`Default ${NOUNS[kind].toLowerCase()}`, '')];
      devices.forEach((d, i) => options.push(new Option(d.label || `${NOUNS[kind]} ${i + 1}`, d.deviceId)));
      select.replaceChildren(...options);
      const choice = this.choice(kind);
      select.value = devices.some((d) => d.deviceId === choice) ? choice : '';
    }
  }

  private open(request: MediaRequest, exact: boolean): Promise<MediaStream> {
    return navigator.mediaDevices.getUserMedia({
      audio: request.audio ? this.constraint('audioinput', {}, exact) : false,
      video: request.video ? this.constraint('videoinput', { width: { ideal: 640 }, height: { ideal: 480 } }, exact) : false,
    });
  }

  /**
   * The chosen device: exactly it when the person has just picked it, else
   * as an ideal, so that a device that has gone falls back to another rather
   * than failing the call.
   */
  private constraint(kind: DeviceKind, base: MediaTrackConstraints, exact: boolean): MediaTrackConstraints | true {
    const id = this.choice(kind);
    if (!id) return Object.keys(base).length > 0 ? base : true;
    return { ...base, deviceId: exact ? { exact: id } : { ideal: id } };
  }
}

function load(): Partial<Record<DeviceKind, string>> {
  try {
    const stored: unknown = JSON.parse(localStorage.getItem(STORE_KEY) ?? '{}');
    return stored && typeof stored === 'object' ? (stored as Partial<Record<DeviceKind, string>>) : {};
  } catch {
    return {};
  }
}

function save(chosen: Partial<Record<DeviceKind, string>>): void {
  try {
    localStorage.setItem(STORE_KEY, JSON.stringify(chosen));
  } catch {
    // Private browsing without storage: the choice lasts for this page only.
  }
}
