/**
 * A call's in-call flags: this side's mute and hold — applied to the local
 * tracks at once, and told to the server once the call is answered — whether
 * we send our camera (told as `call:video-on`/`call:video-off`), and the
 * peer's flags, as its control events report them.
 */
import { CONTROL_FLAGS, type ControlEvent, type PartyFlags } from '@switchboard/protocol/wire';
import type { LocalFlags } from './types.js';

/** What the server holds for a party that has sent no control yet. */
export const NO_LOCAL_FLAGS: Readonly<LocalFlags> = Object.freeze({ muted: false, held: false });

export interface ControlHooks {
  /** Tells the server of a local change (it may drop it while offline: `sync` repairs that later). */
  send(event: ControlEvent): void;
  localChanged(flags: Readonly<LocalFlags>): void;
  remoteChanged(flags: Readonly<PartyFlags>): void;
}

export class Controls {
  local: Readonly<LocalFlags> = NO_LOCAL_FLAGS;
  /** We send no camera. Not a `LocalFlags` field: the call's `video` tells it to apps. */
  videoOff = true;
  remote: Readonly<PartyFlags> = Object.freeze({ muted: false, held: false, videoOff: false });
  private stream: MediaStream | undefined;
  /** The call is answered: the server accepts controls for it. */
  private live = false;

  constructor(private readonly hooks: ControlHooks) {}

  /** The local audio whose tracks mute and hold silence. */
  attach(stream: MediaStream | undefined): void {
    this.stream = stream;
    this.applyToTracks();
  }

  set(flag: keyof LocalFlags, value: boolean): void {
    if (this.local[flag] === value) return;
    this.local = Object.freeze({ ...this.local, [flag]: value });
    this.applyToTracks();
    this.hooks.localChanged(this.local);
    if (this.live) this.hooks.send(eventFor(flag, value));
  }

  setVideoOff(value: boolean): void {
    if (this.videoOff === value) return;
    this.videoOff = value;
    if (this.live) this.hooks.send(value ? 'call:video-off' : 'call:video-on');
  }

  /**
   * From now on changes go to the server; first, whatever differs from what
   * it holds (`server`; its `videoOff` is true for a call without video).
   */
  sync(server: Readonly<LocalFlags> & { videoOff: boolean }): void {
    this.live = true;
    for (const flag of ['muted', 'held'] as const) {
      if (this.local[flag] !== server[flag]) this.hooks.send(eventFor(flag, this.local[flag]));
    }
    if (server.videoOff !== this.videoOff) {
      this.hooks.send(this.videoOff ? 'call:video-off' : 'call:video-on');
    }
  }

  /** A control event from the peer. */
  heard(event: ControlEvent): void {
    const [flag, value] = CONTROL_FLAGS[event];
    this.setRemote({ ...this.remote, [flag]: value });
  }

  setRemote(flags: PartyFlags): void {
    const before = this.remote;
    if (before.muted === flags.muted && before.held === flags.held && before.videoOff === flags.videoOff) return;
    this.remote = Object.freeze({ muted: flags.muted, held: flags.held, videoOff: flags.videoOff });
    this.hooks.remoteChanged(this.remote);
  }

  /** Mute silences the microphone; hold silences it and blanks the camera. */
  private applyToTracks(): void {
    const audio = !(this.local.muted || this.local.held);
    for (const track of this.stream?.getTracks() ?? []) track.enabled = track.kind === 'audio' ? audio : !this.local.held;
  }
}

function eventFor(flag: keyof LocalFlags, value: boolean): ControlEvent {
  if (flag === 'muted') return value ? 'call:mute' : 'call:unmute';
  return value ? 'call:hold' : 'call:resume';
}
