/**
 * The softphone: sign in, see who is online, call (with or without video),
 * answer, mute, hold, turn the camera on and off, switch devices, hang up,
 * the call's quality at both ends, the recent calls, and a check of the
 * connection (`phone.preflight()`) — all through `@switchboard/client`.
 */
import { Phone, type Call, type PreflightReport, type QualityLevel, type QualityWarning } from '@switchboard/client';
import { devToken, fetchHistory, SignInError, tokenFromFragment, type HistoryEntry } from './api.js';
import { audioContext, LevelMeter, Ringtone } from './audio.js';
import { canChooseSpeaker, Devices, type DeviceKind } from './devices.js';
import {
  cameraNotice,
  clock,
  endedNotice,
  errorNotice,
  initials,
  levelWords,
  localWarning,
  outcomeWords,
  preflightFailure,
  preflightFigures,
  preflightHeadline,
  remoteWarning,
  stateWords,
  worstWarning,
} from './words.js';
import './style.css';

const $ = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;

const ui = {
  signin: $('signin'),
  form: $<HTMLFormElement>('signin-form'),
  user: $<HTMLInputElement>('signin-user'),
  submit: $<HTMLButtonElement>('signin-submit'),
  home: $('home'),
  me: $('me'),
  link: $('link'),
  contacts: $<HTMLUListElement>('contacts'),
  noContacts: $('no-contacts'),
  history: $<HTMLUListElement>('history'),
  noHistory: $('no-history'),
  incoming: $('incoming'),
  incomingFrom: $('incoming-from'),
  incomingAvatar: $('incoming-avatar'),
  incomingTitle: $('incoming-title'),
  accept: $<HTMLButtonElement>('accept'),
  acceptAudio: $<HTMLButtonElement>('accept-audio'),
  reject: $<HTMLButtonElement>('reject'),
  inCall: $('in-call'),
  inCallPeer: $('in-call-peer'),
  inCallAvatar: $('in-call-avatar'),
  inCallStatus: $('in-call-status'),
  timer: $('call-timer'),
  badges: $('badges'),
  mute: $<HTMLButtonElement>('mute'),
  hold: $<HTMLButtonElement>('hold'),
  hangup: $<HTMLButtonElement>('hangup'),
  videoToggle: $<HTMLButtonElement>('video-toggle'),
  videoStage: $('video-stage'),
  remoteVideo: $<HTMLVideoElement>('remote-video'),
  localVideo: $<HTMLVideoElement>('local-video'),
  speakerChoice: $('speaker-choice'),
  audio: $<HTMLAudioElement>('remote-audio'),
  quality: $('quality'),
  qualityLabel: $('quality-label'),
  remoteQuality: $('remote-quality'),
  remoteQualityLabel: $('remote-quality-label'),
  qualityWarnings: $<HTMLUListElement>('quality-warnings'),
  preflight: $<HTMLButtonElement>('preflight'),
  preflightStatus: $('preflight-status'),
  preflightResult: $('preflight-result'),
  preflightHeadline: $('preflight-headline'),
  preflightReason: $('preflight-reason'),
  preflightFigures: $('preflight-figures'),
  notice: $('notice'),
};

/** How long the connection check may take in all. */
const PREFLIGHT_TIMEOUT_MS = 20_000;
/** How long the ended call stays on screen before the view closes. */
const ENDED_LINGER_MS = 1500;
const NOTICE_MS = 6000;

let phone: Phone | undefined;
let token = '';
let current: Call | undefined;
let ringing: Call | undefined;
let timerHandle: number | undefined;
/** The current call's audio connected at least once (an `ice_failed` then is a dropped call, not one that never connected). */
let everConnected = false;
/** The current call's received-media level and raised warnings, from its last `quality` event. */
let localQuality: { level: QualityLevel; warnings: readonly QualityWarning[] } | null = null;
let noticeHandle: number | undefined;
const ringtone = new Ringtone();
const meter = new LevelMeter($('remote-level'));
/** Tracks the page acquired itself to switch a device mid-call (the SDK stops its own): stopped once the call no longer sends them. */
const pageTracks = new Set<MediaStreamTrack>();
const devices = new Devices(
  {
    audioinput: $<HTMLSelectElement>('microphone-select'),
    videoinput: $<HTMLSelectElement>('camera-select'),
    audiooutput: $<HTMLSelectElement>('speaker-select'),
  },
  (kind) => void switchDevice(kind),
);
ui.speakerChoice.hidden = !canChooseSpeaker;

function notify(text: string): void {
  ui.notice.textContent = text;
  ui.notice.hidden = false;
  window.clearTimeout(noticeHandle);
  noticeHandle = window.setTimeout(() => (ui.notice.hidden = true), NOTICE_MS);
}

function setLink(text: string | null): void {
  ui.link.hidden = text === null;
  ui.link.textContent = text ?? '';
}

// ---- sign-in -------------------------------------------------------------

async function signIn(getToken: () => Promise<string>): Promise<void> {
  ui.submit.disabled = true;
  try {
    token = await getToken();
    phone = new Phone({ url: location.origin, token, media: devices.media });
    wirePhone(phone);
    const me = await phone.connect();
    ui.signin.hidden = true;
    ui.home.hidden = false;
    ui.me.hidden = false;
    ui.me.textContent = `Signed in as ${me.name}`;
    renderContacts();
    void refreshHistory();
  } catch (err) {
    phone?.disconnect();
    phone = undefined;
    notify(err instanceof SignInError ? err.message : `Sign-in failed: ${(err as Error).message}`);
  } finally {
    ui.submit.disabled = false;
  }
}

ui.form.addEventListener('submit', (event) => {
  event.preventDefault();
  audioContext(); // unlock audio on this click, for the ringtone and the meter
  const name = ui.user.value.trim();
  if (name) void signIn(() => devToken(name));
});

// ---- presence ------------------------------------------------------------

function wirePhone(p: Phone): void {
  p.on('presence', () => renderContacts());
  p.on('incoming', (call) => showIncoming(call));
  p.on('reconnecting', () => setLink('Connection lost — reconnecting…'));
  p.on('reconnected', () => {
    setLink(null);
    void refreshHistory();
  });
  p.on('disconnected', () => setLink('Offline. Reload the page to sign in again.'));
}

function renderContacts(): void {
  if (!phone) return;
  const users = [...phone.users.values()].sort((a, b) => a.name.localeCompare(b.name));
  ui.noContacts.hidden = users.length > 0;
  const items = users.map((u) => {
    const li = document.createElement('li');
    li.className = `contact ${u.status}`;
    li.dataset.testid = 'contact';
    li.dataset.userId = u.id;
    const avatar = document.createElement('span');
    avatar.className = 'avatar small';
    avatar.setAttribute('aria-hidden', 'true');
    avatar.textContent = initials(u.name);
    const label = document.createElement('span');
    label.className = 'name';
    label.textContent = u.name;
    const status = document.createElement('span');
    status.className = 'presence';
    status.textContent = u.status === 'busy' ? 'On a call' : 'Available';
    const buttons = (['call', 'video-call'] as const).map((testid) => {
      const video = testid === 'video-call';
      const button = document.createElement('button');
      button.dataset.testid = testid;
      button.className = video ? 'ok video' : 'ok';
      button.textContent = video ? 'Video' : 'Call';
      button.setAttribute('aria-label', `${video ? 'Video call' : 'Call'} ${u.name}`);
      button.disabled = current !== undefined || ringing !== undefined;
      button.addEventListener('click', () => void placeCall(u.id, u.name, video));
      return button;
    });
    li.append(avatar, label, status, ...buttons);
    return li;
  });
  ui.contacts.replaceChildren(...items);
}

// ---- calls ---------------------------------------------------------------

async function placeCall(userId: string, name: string, video: boolean): Promise<void> {
  if (!phone || current) return;
  audioContext();
  try {
    const call = await phone.call(userId, { video });
    showCall(call);
  } catch (err) {
    notify(errorNotice((err as { code?: string }).code, name));
  }
}

function showIncoming(call: Call): void {
  ringing = call;
  const video = call.media.video;
  ui.incomingTitle.textContent = video ? 'Incoming video call' : 'Incoming call';
  ui.incomingFrom.textContent = `${call.peer.name} is calling`;
  ui.incomingAvatar.textContent = initials(call.peer.name);
  ui.accept.textContent = video ? 'Accept with video' : 'Accept';
  ui.acceptAudio.hidden = !video;
  ui.incoming.hidden = false;
  ui.accept.focus();
  ringtone.start();
  renderContacts();
  call.on('ended', (info) => {
    if (ringing !== call) return;
    closeIncoming();
    notify(endedNotice(info.reason, call.peer.name));
    void refreshHistory();
  });
}

function closeIncoming(): void {
  ringtone.stop();
  ringing = undefined;
  ui.incoming.hidden = true;
  renderContacts();
}

/** Answers the ringing call: with our camera if it is a video call and `video`, else audio only (we still see theirs). */
function answer(video: boolean): void {
  const call = ringing;
  if (!call) return;
  closeIncoming();
  showCall(call);
  call.accept({ video: video && call.media.video }).catch((err: { code?: string; message?: string }) => notify(`Could not answer: ${err.message ?? err.code}`));
}

ui.accept.addEventListener('click', () => answer(true));
ui.acceptAudio.addEventListener('click', () => answer(false));

ui.reject.addEventListener('click', () => {
  const call = ringing;
  if (!call) return;
  closeIncoming();
  void call.reject();
});

function showCall(call: Call): void {
  current = call;
  ui.inCallPeer.textContent = call.peer.name;
  ui.inCallAvatar.textContent = initials(call.peer.name);
  ui.timer.textContent = '00:00';
  setPressed(ui.mute, false);
  setPressed(ui.hold, false);
  everConnected = false;
  localQuality = null;
  setCallButtons(true);
  ui.inCall.hidden = false;
  ui.hangup.focus();
  renderState(call);
  renderBadges(call);
  renderQuality(call);
  renderContacts();
  call.on('state', (state, previous) => {
    renderState(call);
    renderQuality(call);
    // The devices' names come once the page may use them: for a callee, only once it has answered.
    if (previous === 'ringing') void devices.refresh();
  });
  call.on('remote', () => {
    renderBadges(call);
    renderQuality(call);
    renderVideo(call);
  });
  call.on('local', () => renderQuality(call));
  call.on('quality', (sample) => {
    if (current !== call) return;
    localQuality = { level: sample.level, warnings: sample.warnings };
    renderQuality(call);
  });
  call.on('remote-quality', () => renderQuality(call));
  call.on('remoteStream', (stream) => attachRemote(stream));
  if (call.remoteStream) attachRemote(call.remoteStream);
  call.on('video', () => renderVideo(call));
  renderVideo(call);
  void devices.refresh();
  call.on('ended', (info) => {
    if (current !== call) return;
    notify(endedNotice(info.reason, call.peer.name, everConnected));
    // The sheet lingers a moment to say how it ended: nothing on it acts on the call any more.
    setCallButtons(false);
    renderState(call);
    renderQuality(call);
    stopTimer();
    meter.detach();
    ui.audio.srcObject = null;
    renderVideo(call);
    releasePageTracks(undefined);
    window.setTimeout(() => {
      if (current !== call) return;
      current = undefined;
      ui.inCall.hidden = true;
      renderContacts();
    }, ENDED_LINGER_MS);
    void refreshHistory();
    // The record is written as the call ends; fetch once more in case we asked before it landed.
    window.setTimeout(() => void refreshHistory(), 1000);
  });
}

function setCallButtons(enabled: boolean): void {
  for (const button of [ui.mute, ui.hold, ui.videoToggle, ui.hangup]) button.disabled = !enabled;
}

/**
 * The video tiles: the peer's camera while it sends one (not while it holds
 * us: its camera is blanked then, and the badge says why), ours picture in
 * picture while we send ours, and the camera button's state. An audio call
 * shows neither (the avatar stays).
 */
function renderVideo(call: Call): void {
  if (current !== call) return;
  const over = call.state === 'ended';
  const remote = !over && call.video.remote && !call.remote.held;
  const local = !over && call.video.local;
  showVideo(ui.remoteVideo, remote ? (call.remoteStream ?? null) : null);
  const camera = local ? call.localStream?.getVideoTracks()[0] : undefined;
  const preview = ui.localVideo.srcObject as MediaStream | null;
  if (!camera) showVideo(ui.localVideo, null);
  else if (preview?.getVideoTracks()[0] !== camera) showVideo(ui.localVideo, new MediaStream([camera]));
  ui.videoStage.hidden = !remote && !local;
  ui.inCall.classList.toggle('with-video', remote || local);
  setPressed(ui.videoToggle, local); // "Camera", pressed while ours is on
  if (!over) releasePageTracks(call);
}

function showVideo(element: HTMLVideoElement, stream: MediaStream | null): void {
  element.hidden = stream === null;
  if (element.srcObject === stream) return;
  element.srcObject = stream;
  if (stream) void element.play().catch(() => undefined);
}

/** Stops the tracks the page acquired that `call` no longer sends (all of them when the call is over: `undefined`). */
function releasePageTracks(call: Call | undefined): void {
  const sending = call?.localStream?.getTracks() ?? [];
  for (const track of pageTracks) {
    if (sending.includes(track)) continue;
    track.stop();
    pageTracks.delete(track);
  }
}

ui.videoToggle.addEventListener('click', () => {
  const call = current;
  if (!call || ui.videoToggle.getAttribute('aria-busy') === 'true') return;
  const on = !call.video.local;
  ui.videoToggle.setAttribute('aria-busy', 'true');
  (on ? call.enableVideo() : call.disableVideo())
    .catch((err: { code?: string; message?: string }) => notify(cameraNotice(err.code, err.message)))
    .finally(() => {
      ui.videoToggle.removeAttribute('aria-busy');
      renderVideo(call);
    });
});

/**
 * A device chosen in the lists: the speaker at once; a microphone, or a
 * camera while ours is on, is switched in the call in place (the call's
 * other track is kept). Otherwise the choice waits for the next call or the
 * next time the camera goes on.
 */
async function switchDevice(kind: DeviceKind): Promise<void> {
  if (kind === 'audiooutput') {
    const sink = ui.audio as HTMLAudioElement & { setSinkId?(id: string): Promise<void> };
    await sink.setSinkId?.(devices.choice(kind)).catch((err: Error) => notify(`Could not switch the speaker: ${err.message}`));
    return;
  }
  const call = current;
  const local = call?.localStream;
  if (!call || !local || call.state === 'ended' || (kind === 'videoinput' && !call.video.local)) return;
  try {
    const [track] = (await devices.acquire(kind)).getTracks();
    if (!track) return;
    pageTracks.add(track);
    if (current !== call || call.endInfo) {
      track.stop(); // the call ended meanwhile
      pageTracks.delete(track);
      return;
    }
    const kept = kind === 'audioinput' ? local.getVideoTracks() : local.getAudioTracks();
    await call.setLocalStream(new MediaStream([track, ...kept]));
    renderVideo(call);
  } catch (err) {
    notify(kind === 'videoinput' ? cameraNotice((err as { code?: string }).code, (err as Error).message) : `Could not switch the microphone: ${(err as Error).message}`);
  }
}

function attachRemote(stream: MediaStream): void {
  ui.audio.srcObject = stream;
  void ui.audio.play().catch(() => undefined);
  meter.attach(stream);
}

function renderState(call: Call): void {
  ui.inCall.dataset.state = call.state;
  ui.inCallStatus.textContent = stateWords(call.state, call.direction);
  if (call.state === 'connected') everConnected = true;
  if (call.state === 'connected' && timerHandle === undefined) startTimer(call);
}

/**
 * The call's quality: our side's received media (`quality`) and the peer's
 * (`remote-quality`) as signal bars, each once it is measured; and, while a
 * warning is raised on either side, the worst one in plain words. Nothing
 * more is said when all is well. Warnings wait while the call is not
 * connected (its status says why) or the side that sends is on hold.
 */
function renderQuality(call: Call): void {
  if (current !== call) return;
  const over = call.state === 'ended';
  const peer = call.peer.name;
  showSignal(ui.quality, ui.qualityLabel, over ? null : (localQuality?.level ?? null), `You hear ${peer}`);
  const remote = call.remoteQuality;
  showSignal(ui.remoteQuality, ui.remoteQualityLabel, over ? null : (remote?.level ?? null), `${peer} hears you`);

  const lines: HTMLElement[] = [];
  if (call.state === 'connected') {
    const local = localQuality && !call.remote.held ? worstWarning(localQuality.warnings) : null;
    const theirs = remote && !call.local.held ? worstWarning(remote.warnings) : null;
    const localText = local ? localWarning(local, peer) : null;
    const remoteText = theirs ? remoteWarning(theirs, peer) : null;
    if (local && localText) lines.push(warningLine('local', local, localText));
    if (theirs && remoteText && remoteText !== localText) lines.push(warningLine('remote', theirs, remoteText));
  }
  ui.qualityWarnings.replaceChildren(...lines);
}

function showSignal(element: HTMLElement, label: HTMLElement, level: QualityLevel | null, text: string): void {
  element.hidden = level === null;
  if (level === null) {
    delete element.dataset.level;
    return;
  }
  element.dataset.level = level;
  label.textContent = text;
  const words = `${text}: ${levelWords(level).toLowerCase()} quality`;
  element.setAttribute('aria-label', words);
  element.title = words;
}

function warningLine(side: 'local' | 'remote', warning: QualityWarning, text: string): HTMLElement {
  const li = document.createElement('li');
  li.className = 'quality-warning';
  li.dataset.testid = 'quality-warning';
  li.dataset.side = side;
  li.dataset.warning = warning;
  li.textContent = text;
  return li;
}

function renderBadges(call: Call): void {
  const badges: HTMLElement[] = [];
  if (call.remote.muted) badges.push(badge('remote-muted', `${call.peer.name} muted`));
  if (call.remote.held) badges.push(badge('remote-held', `${call.peer.name} put you on hold`));
  ui.badges.replaceChildren(...badges);
}

function badge(testid: string, text: string): HTMLElement {
  const el = document.createElement('span');
  el.className = 'badge';
  el.dataset.testid = testid;
  el.textContent = text;
  return el;
}

function startTimer(call: Call): void {
  const since = call.answeredAt ?? Date.now();
  const tick = () => (ui.timer.textContent = clock(Date.now() - since));
  tick();
  timerHandle = window.setInterval(tick, 500);
}

function stopTimer(): void {
  window.clearInterval(timerHandle);
  timerHandle = undefined;
}

function setPressed(button: HTMLButtonElement, pressed: boolean): void {
  button.setAttribute('aria-pressed', String(pressed));
}

ui.mute.addEventListener('click', () => {
  if (!current) return;
  const muted = ui.mute.getAttribute('aria-pressed') !== 'true';
  if (muted) current.mute();
  else current.unmute();
  setPressed(ui.mute, muted);
  ui.mute.textContent = muted ? 'Unmute' : 'Mute';
});

ui.hold.addEventListener('click', () => {
  if (!current) return;
  const held = ui.hold.getAttribute('aria-pressed') !== 'true';
  if (held) current.hold();
  else current.resume();
  setPressed(ui.hold, held);
  ui.hold.textContent = held ? 'Resume' : 'Hold';
});

ui.hangup.addEventListener('click', () => void current?.hangup());

document.addEventListener('keydown', (event) => {
  if (event.key !== 'Escape') return;
  if (ringing) ui.reject.click();
  else if (current) ui.hangup.click();
});

// ---- connection check -----------------------------------------------------

ui.preflight.addEventListener('click', () => void runPreflight());

async function runPreflight(): Promise<void> {
  if (!phone || ui.preflight.disabled) return;
  ui.preflight.disabled = true;
  ui.preflight.setAttribute('aria-busy', 'true');
  ui.preflightResult.hidden = true;
  delete ui.preflightResult.dataset.ok;
  ui.preflightStatus.textContent = 'Checking… this takes about ten seconds.';
  try {
    showPreflight(await phone.preflight({ timeoutMs: PREFLIGHT_TIMEOUT_MS }));
    ui.preflightStatus.textContent = '';
  } catch (err) {
    // preflight() reports every failure in its result; this is a bug or a browser without WebRTC.
    ui.preflightStatus.textContent = `The check could not run: ${(err as Error).message}`;
  } finally {
    ui.preflight.disabled = false;
    ui.preflight.removeAttribute('aria-busy');
  }
}

function showPreflight(report: PreflightReport): void {
  ui.preflightResult.dataset.ok = String(report.ok);
  ui.preflightHeadline.textContent = preflightHeadline(report);
  ui.preflightReason.hidden = report.ok;
  ui.preflightReason.textContent = report.ok ? '' : preflightFailure(report.reason);
  ui.preflightFigures.replaceChildren(
    ...preflightFigures(report).map((figure) => {
      const row = document.createElement('div');
      row.dataset.figure = figure.key;
      const dt = document.createElement('dt');
      dt.textContent = figure.label;
      const dd = document.createElement('dd');
      dd.textContent = figure.value;
      row.append(dt, dd);
      return row;
    }),
  );
  ui.preflightResult.hidden = false;
}

// ---- history -------------------------------------------------------------

async function refreshHistory(): Promise<void> {
  if (!token) return;
  renderHistory(await fetchHistory(token));
}

function renderHistory(entries: HistoryEntry[]): void {
  ui.noHistory.hidden = entries.length > 0;
  ui.history.replaceChildren(
    ...entries.map((e) => {
      const li = document.createElement('li');
      const missed = e.direction === 'incoming' && (e.outcome === 'missed' || e.outcome === 'cancelled');
      li.className = `history-item${missed ? ' missed' : ''}`;
      li.dataset.testid = 'history-item';
      li.dataset.outcome = e.outcome;
      li.dataset.callId = e.callId;
      const arrow = document.createElement('span');
      arrow.className = 'arrow';
      arrow.setAttribute('aria-hidden', 'true');
      arrow.textContent = e.direction === 'outgoing' ? '↗' : '↙';
      const who = document.createElement('span');
      who.className = 'name';
      who.textContent = e.peer.name;
      const what = document.createElement('span');
      what.className = 'outcome';
      what.textContent = outcomeWords(e.outcome, e.direction) + (e.durationMs > 0 ? ` · ${clock(e.durationMs)}` : '');
      const when = document.createElement('time');
      when.dateTime = new Date(e.createdAt).toISOString();
      when.textContent = new Date(e.createdAt).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
      li.append(arrow, who, what, when);
      return li;
    }),
  );
}

// ---- start ---------------------------------------------------------------

const handed = tokenFromFragment();
if (handed) void signIn(async () => handed);
else ui.user.focus();
