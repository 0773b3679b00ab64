/**
 * Session mail (Redis mode's messages to sessions and rooms on other nodes):
 * what one tick sends a session or announces to a room goes out as one
 * message, in order, and arrives as it was sent. The transport here hands messages straight back, as Redis would
 * to the node holding the session; the cluster tests run it over Redis.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { SessionId } from '@switchboard/protocol';
import { userKey, type CallRecord } from '../calls/types.js';
import { MAIL_MARK, SessionMail, type MailItem, type RoomEntry } from './session-mail.js';

const A = 'session-a' as SessionId;
const B = 'session-b' as SessionId;

function mailbox(origin = 'node-1') {
  const published: { session: SessionId; data: string; land: () => void }[] = [];
  const toRooms: { room: string; data: string; land: () => void }[] = [];
  const delivered: { session: SessionId; items: MailItem[] }[] = [];
  const announced: { room: string; entries: RoomEntry[] }[] = [];
  const bad: unknown[] = [];
  const counted: string[] = [];
  const mail = new SessionMail(
    {
      // Redis answers a publish when the test says so (`land`).
      publish: (session, data) => new Promise<void>((land) => published.push({ session, data, land })),
      publishToRoom: (room, data) => new Promise<void>((land) => toRooms.push({ room, data, land })),
      channelOf: (session) => `chan#${session}#`,
    },
    {
      session: (session, items) => delivered.push({ session, items }),
      room: (room, entries) => announced.push({ room, entries }),
    },
    origin,
    (err) => bad.push(err),
    (direction, kind) => counted.push(`${direction} ${kind}`),
  );
  const nextTick = () => new Promise<void>((resolve) => process.nextTick(resolve));
  return { mail, published, toRooms, delivered, announced, bad, counted, nextTick };
}

const call = { id: 'call-1', state: 'active' } as unknown as CallRecord;

test('what one tick sends a session goes out as one message per session, in order, after the tick', async () => {
  const { mail, published, nextTick } = mailbox();
  mail.emit(A, 'webrtc:offer', { sdp: 'v=0' });
  mail.emit(B, 'call:incoming', { callId: 'c' });
  mail.emit(A, 'webrtc:ice-candidate', { candidate: null });
  assert.equal(published.length, 0, 'nothing is published within the tick');
  assert.ok(mail.pending(A) && mail.pending(B));
  await nextTick();
  assert.deepEqual(published.map((p) => p.session), [A, B]);
  assert.equal(published[0]!.data.charCodeAt(0), MAIL_MARK);
  assert.deepEqual(JSON.parse(published[0]!.data), [A, [0, 'webrtc:offer', { sdp: 'v=0' }], [0, 'webrtc:ice-candidate', { candidate: null }]]);
  assert.ok(mail.pending(A), 'still pending until Redis has taken it');
  for (const p of published) p.land();
  await nextTick();
  await nextTick();
  assert.ok(!mail.pending(A), 'the outbox is empty once sent and taken');
  mail.emit(A, 'call:ended', { callId: 'c' });
  await nextTick();
  assert.equal(published.length, 3, 'a later tick is a new message');
});

test('a call version goes once per message, before the events that follow it, and arrives decoded', async () => {
  const { mail, published, delivered, nextTick } = mailbox();
  mail.tell(A, { version: 2, value: call });
  mail.emit(A, 'call:accepted', { callId: 'call-1' });
  mail.tell(A, { version: 2, value: call });
  mail.emit(A, 'call:answered', { callId: 'call-1' });
  mail.tell(A, { version: 3, value: call });
  await nextTick();
  assert.equal(published.length, 1);
  mail.receive(Buffer.from(published[0]!.data));
  assert.deepEqual(delivered, [
    {
      session: A,
      items: [
        { kind: 'call', call: { version: 2, value: call } },
        { kind: 'emit', event: 'call:accepted', payload: { callId: 'call-1' } },
        { kind: 'emit', event: 'call:answered', payload: { callId: 'call-1' } },
        { kind: 'call', call: { version: 3, value: call } },
      ],
    },
  ]);
});

test('an offer and an answer cross with their SDP raw after the JSON, unescaped, and arrive as sent, between the events around them', async () => {
  const { mail, published, delivered, nextTick } = mailbox();
  const line = 'a=candidate:2672889355 1 udp 2122260223 192.168.1.119 45684 typ host generation 0\r\n';
  // Line breaks, a NUL (the separator itself), a quote, non-ASCII and a surrogate pair: each must survive as it was.
  const offer = `v=0\r\no=- 7648 2 IN IP4 127.0.0.1\r\ns="caf\u00e9 \u{1F4DE}"\r\n${line.repeat(6)}x=\u0000end\r\n`;
  const answer = `v=0\r\n${line.repeat(4)}`;
  mail.emit(A, 'webrtc:offer', { callId: 'c', from: 'ann', sdp: offer });
  mail.emit(A, 'webrtc:ice-candidate', { callId: 'c', candidate: { candidate: 'candidate:1 1 udp 1 10.0.0.1 9 typ host' } });
  mail.emit(A, 'webrtc:answer', { callId: 'c', from: 'ann', sdp: answer });
  await nextTick();
  assert.equal(published.length, 1, 'one message');
  const data = published[0]!.data;
  assert.equal(data.charCodeAt(0), MAIL_MARK);
  assert.ok(data.endsWith(`${offer}${answer}`), 'both SDPs raw, in order, at the end');
  assert.ok(!data.includes('\\r\\n'), 'no line break escaped');
  mail.receive(Buffer.from(data));
  assert.deepEqual(delivered, [
    {
      session: A,
      items: [
        { kind: 'emit', event: 'webrtc:offer', payload: { callId: 'c', from: 'ann', sdp: offer } },
        { kind: 'emit', event: 'webrtc:ice-candidate', payload: { callId: 'c', candidate: { candidate: 'candidate:1 1 udp 1 10.0.0.1 9 typ host' } } },
        { kind: 'emit', event: 'webrtc:answer', payload: { callId: 'c', from: 'ann', sdp: answer } },
      ],
    },
  ]);
});

test('a raw SDP said to run past the end of its message is reported and delivers nothing', () => {
  const { mail, delivered, bad, counted } = mailbox();
  mail.receive(Buffer.from(`${JSON.stringify([A, [0, 'call:accepted', {}], [2, 'webrtc:offer', { callId: 'c' }, 10]])}\u0000v=0`));
  mail.receive(Buffer.from(JSON.stringify([A, [2, 'webrtc:offer', { callId: 'c' }, 3]])));
  assert.equal(delivered.length, 0, 'not even the event before it');
  assert.equal(bad.length, 2);
  assert.deepEqual(counted, ['in unreadable', 'in unreadable']);
});

test('a message that is not ours to read is reported and delivers nothing', () => {
  const { mail, delivered, bad, counted } = mailbox();
  mail.receive(Buffer.from('[not json'));
  mail.receive(Buffer.from('[1,2]'));
  assert.equal(delivered.length, 0);
  assert.equal(bad.length, 2);
  assert.deepEqual(counted, ['in unreadable', 'in unreadable']);
});

test('every message sent and received is counted by direction and kind', async () => {
  const { mail, published, toRooms, counted, nextTick } = mailbox();
  mail.emit(A, 'call:incoming', { callId: 'c' });
  mail.emit(A, 'call:ended', { callId: 'c' });
  mail.emit(B, 'call:incoming', { callId: 'c' });
  mail.announce('t:acme', [], 'user:status', { userId: 'a', status: 'busy' });
  await nextTick();
  assert.deepEqual(counted, ['out session', 'out session', 'out room']);
  mail.receive(Buffer.from(published[0]!.data));
  mail.receive(Buffer.from(toRooms[0]!.data));
  assert.deepEqual(counted.slice(3), ['in session', 'in room']);
});

test('announcements to a room within a tick are one message in order; other nodes hear it, the sender does not', async () => {
  const { mail, toRooms, nextTick, announced, delivered } = mailbox('node-1');
  mail.announce('t:acme', ['u:acme:a'], 'user:online', { user: { id: 'a', name: 'A' } });
  mail.announce('t:acme', ['u:acme:a', 'u:acme:b'], 'user:status', { userId: 'a', status: 'busy' });
  mail.announce('t:other', [], 'user:offline', { userId: 'c', lastSeen: 1 });
  mail.announce('t:acme', ['u:acme:a'], 'user:offline', { userId: 'a', lastSeen: 2 });
  await nextTick();
  assert.deepEqual(toRooms.map((m) => m.room), ['t:acme', 't:other']);
  const elsewhere = mailbox('node-2');
  for (const { data } of toRooms) {
    elsewhere.mail.receive(Buffer.from(data));
    mail.receive(Buffer.from(data));
  }
  assert.deepEqual(delivered, [], 'not a session message');
  assert.deepEqual(announced, [], 'the sender hears its own message');
  assert.deepEqual(elsewhere.announced, [
    {
      room: 't:acme',
      entries: [
        [['u:acme:a'], 'user:online', { user: { id: 'a', name: 'A' } }],
        [['u:acme:a', 'u:acme:b'], 'user:status', { userId: 'a', status: 'busy' }],
        [['u:acme:a'], 'user:offline', { userId: 'a', lastSeen: 2 }],
      ],
    },
    { room: 't:other', entries: [[[], 'user:offline', { userId: 'c', lastSeen: 1 }]] },
  ]);
});

test('a presence announcement carries the user it is about (the receiver checks it against the store); others carry none', async () => {
  const { mail, toRooms, nextTick } = mailbox('node-1');
  const key = userKey('acme', 'a');
  mail.announce('t:acme', ['u:acme:a'], 'user:offline', { userId: 'a', lastSeen: 2 }, key);
  mail.announce('t:acme', [], 'user:status', { userId: 'a', status: 'available' });
  await nextTick();
  const elsewhere = mailbox('node-2');
  elsewhere.mail.receive(Buffer.from(toRooms[0]!.data));
  assert.deepEqual(elsewhere.announced, [
    {
      room: 't:acme',
      entries: [
        [['u:acme:a'], 'user:offline', { userId: 'a', lastSeen: 2 }, key],
        [[], 'user:status', { userId: 'a', status: 'available' }],
      ],
    },
  ]);
});

test('a session is pending from the moment mail is queued for it until Redis has taken every message: a sealed message never overtakes', async () => {
  const { mail, published, nextTick } = mailbox();
  assert.equal(mail.pending(A), false);
  mail.emit(A, 'webrtc:ice-candidate', { candidate: null });
  assert.equal(mail.pending(A), true, 'queued');
  await nextTick();
  assert.equal(published.length, 1);
  assert.equal(mail.pending(A), true, 'published, not yet taken by Redis');
  mail.emit(A, 'webrtc:ice-candidate', { candidate: { candidate: 'c1' } });
  await nextTick();
  mail.emit(A, 'webrtc:ice-candidate', { candidate: { candidate: 'c2' } });
  mail.emit(B, 'call:incoming', { callId: 'c' });
  await nextTick();
  assert.deepEqual(
    published.map((p) => p.session),
    [A, B],
    "A's next message waits until Redis has answered the one on its way (ioredis may send that one again after a redirect); B's goes",
  );
  published[0]!.land();
  await nextTick();
  await nextTick();
  assert.equal(published.length, 3, 'then what was sent meanwhile goes, as one message');
  assert.deepEqual(JSON.parse(published[2]!.data), [A, [0, 'webrtc:ice-candidate', { candidate: { candidate: 'c1' } }], [0, 'webrtc:ice-candidate', { candidate: { candidate: 'c2' } }]]);
  assert.equal(mail.pending(A), true, 'that one is on its way');
  published[2]!.land();
  published[1]!.land();
  await nextTick();
  await nextTick();
  assert.equal(mail.pending(A), false, 'every message taken');
  assert.equal(mail.pending(B), false);
});

test("a room's next announcement waits until Redis has answered the one on its way, then goes with all announced meanwhile", async () => {
  const { mail, toRooms, nextTick } = mailbox();
  mail.announce('t:acme', [], 'user:status', { userId: 'a', status: 'busy' });
  await nextTick();
  mail.announce('t:acme', [], 'user:status', { userId: 'a', status: 'available' });
  mail.announce('t:other', [], 'user:offline', { userId: 'c', lastSeen: 1 });
  await nextTick();
  mail.announce('t:acme', [], 'user:offline', { userId: 'a', lastSeen: 2 });
  await nextTick();
  assert.deepEqual(toRooms.map((m) => m.room), ['t:acme', 't:other'], "t:acme's second waits (busy and available must not cross); t:other's goes");
  toRooms[0]!.land();
  await nextTick();
  await nextTick();
  assert.equal(toRooms.length, 3);
  assert.deepEqual((JSON.parse(toRooms[2]!.data) as unknown[]).slice(3), [
    [[], 'user:status', { userId: 'a', status: 'available' }],
    [[], 'user:offline', { userId: 'a', lastSeen: 2 }],
  ]);
});

test('a sealed message is what the mail would send once its commit puts the call in: the call first, then the events in order, on the session channel', () => {
  const { mail, delivered } = mailbox();
  const sealed = mail.seal(A, 3, [
    { event: 'call:accepted', payload: { callId: 'call-1' } },
    { event: 'call:mute', payload: { callId: 'call-1', muted: true } },
  ]);
  assert.equal(sealed.channel, `chan#${A}#`);
  assert.equal(sealed.before.charCodeAt(0), MAIL_MARK);
  assert.ok(!sealed.before.includes('call-1') && !sealed.after.includes('"state"'), 'the record is not in the message: the commit puts it in');
  // As COMMIT_CALL publishes it: the text before, the call's JSON as written (ARGV[2]), the text after.
  mail.receive(Buffer.from(`${sealed.before}${JSON.stringify(call)}${sealed.after}`));
  assert.deepEqual(delivered, [
    {
      session: A,
      items: [
        { kind: 'call', call: { version: 3, value: call } },
        { kind: 'emit', event: 'call:accepted', payload: { callId: 'call-1' } },
        { kind: 'emit', event: 'call:mute', payload: { callId: 'call-1', muted: true } },
      ],
    },
  ]);
});
