// hush node driven by web3.js's own Whisper module (web3-shh 1.10) over HTTP and WebSocket.
//
// Starts two real `hush node` processes on loopback with ephemeral ports (HUSH_BIN, else
// target/release/hush, else target/debug/hush), connected to each other, and checks:
//   1. symmetric: a key from a password, a WebSocket subscription on B, a post on A, received;
//   2. asymmetric: a new key pair on B, a signed post from A to its public key, received on B;
//   3. filters with polling over HTTP (newMessageFilter / getFilterMessages / delete).
// Any failure or a step that does not finish within its deadline exits non-zero, loudly.
'use strict';

const { spawn } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');
const readline = require('readline');
const assert = require('assert');

const Shh = require('web3-shh');
const HttpProvider = require('web3-providers-http');
const WsProvider = require('web3-providers-ws');

const ROOT = path.resolve(__dirname, '..', '..');
const STEP_TIMEOUT_MS = 30000;
const TOPIC = '0xffaadd11';

function hushBin() {
  if (process.env.HUSH_BIN) return process.env.HUSH_BIN;
  for (const p of ['target/release/hush', 'target/debug/hush']) {
    const full = path.join(ROOT, p);
    if (fs.existsSync(full)) return full;
  }
  throw new Error('no hush binary: build it (cargo build --bin hush) or set HUSH_BIN');
}

const children = [];
const dirs = [];

function cleanup() {
  for (const c of children) {
    try { c.kill('SIGKILL'); } catch (_) { /* already gone */ }
  }
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
}

function withTimeout(promise, what, ms = STEP_TIMEOUT_MS) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

// Starts a node; resolves with its enode, HTTP and WS URLs once it printed them.
function startNode(name, extraArgs) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `hush-js-${name}-`));
  dirs.push(dir);
  const args = ['node', '--data-dir', dir, '--listen', '127.0.0.1:0',
    '--http', '127.0.0.1:0', '--ws', '127.0.0.1:0', ...extraArgs];
  const child = spawn(hushBin(), args, { stdio: ['pipe', 'pipe', 'pipe'] });
  children.push(child);
  const log = [];
  const node = { name, child, log, enode: null, http: null, ws: null };
  const ready = new Promise((resolve, reject) => {
    const check = () => {
      if (node.enode && node.http && node.ws) resolve(node);
    };
    readline.createInterface({ input: child.stdout }).on('line', (line) => {
      log.push(`${name} out: ${line}`);
      if (!node.enode && line.startsWith('enode://')) node.enode = line.trim();
      check();
    });
    readline.createInterface({ input: child.stderr }).on('line', (line) => {
      log.push(`${name} err: ${line}`);
      const m = line.match(/^hush: (http|ws) rpc listening on (\S+)$/);
      if (m) node[m[1]] = `${m[1]}://${m[2]}`;
      check();
    });
    child.on('exit', (code) => reject(new Error(`${name} exited early (${code})\n${log.join('\n')}`)));
  });
  return withTimeout(ready, `${name} start`);
}

function waitLog(node, pattern, what) {
  return withTimeout(new Promise((resolve) => {
    const tick = () => (node.log.some((l) => pattern.test(l)) ? resolve() : setTimeout(tick, 50));
    tick();
  }), what);
}

function nextData(subscription, what) {
  return withTimeout(new Promise((resolve, reject) => {
    subscription.on('data', resolve);
    subscription.on('error', reject);
  }), what);
}

async function pollUntil(fn, what) {
  return withTimeout((async () => {
    for (;;) {
      const got = await fn();
      if (got) return got;
      await new Promise((r) => setTimeout(r, 100));
    }
  })(), what);
}

async function main() {
  const a = await startNode('a', []);
  const b = await startNode('b', ['--peer', a.enode]);
  const aKey = a.enode.slice('enode://'.length, 'enode://'.length + 128);
  await waitLog(b, new RegExp(`peer connected .*key=${aKey}`), 'b connects to a');

  const aHttp = new Shh(new HttpProvider(a.http));
  const bHttp = new Shh(new HttpProvider(b.http));
  const bWsProvider = new WsProvider(b.ws);
  const bWs = new Shh(bWsProvider);

  assert.strictEqual(await aHttp.getVersion(), '6.0');
  const info = await aHttp.getInfo();
  assert.ok(info.maxMessageSize > 0, JSON.stringify(info));

  // 1. Symmetric key from a password; subscribe over WebSocket on B; post on A.
  const symA = await aHttp.generateSymKeyFromPassword('hush-web3-test');
  const symB = await bWs.generateSymKeyFromPassword('hush-web3-test');
  assert.strictEqual(await aHttp.getSymKey(symA), await bWs.getSymKey(symB));
  assert.strictEqual(await bWs.hasSymKey(symB), true);
  const sub = bWs.subscribe('messages', { symKeyID: symB, topics: [TOPIC] });
  await withTimeout(new Promise((resolve, reject) => {
    sub.on('connected', resolve);
    sub.on('error', reject);
  }), 'subscription connected');
  const received = nextData(sub, 'symmetric message over the subscription');
  const hash = await aHttp.post({
    symKeyID: symA, ttl: 10, topic: TOPIC, payload: '0xffffffdddddd1122', powTime: 3, powTarget: 0.5,
  });
  const msg = await received;
  assert.strictEqual(msg.payload, '0xffffffdddddd1122');
  assert.strictEqual(msg.topic, TOPIC);
  assert.strictEqual(msg.hash, hash);
  await sub.unsubscribe();

  // 2. A key pair on B; A posts to its public key, signed with a key pair of its own.
  const pairB = await bWs.newKeyPair();
  const pubB = await bWs.getPublicKey(pairB);
  assert.ok(/^0x04[0-9a-f]{128}$/.test(pubB), pubB);
  const pairA = await aHttp.newKeyPair();
  const pubA = await aHttp.getPublicKey(pairA);
  const asym = bWs.subscribe('messages', { privateKeyID: pairB });
  await withTimeout(new Promise((resolve) => asym.on('connected', resolve)), 'asym subscription');
  const asymReceived = nextData(asym, 'asymmetric message');
  await aHttp.post({
    pubKey: pubB, sig: pairA, ttl: 10, topic: TOPIC, payload: '0x68757368', powTime: 2, powTarget: 0.5,
  });
  const asymMsg = await asymReceived;
  assert.strictEqual(asymMsg.payload, '0x68757368');
  assert.strictEqual(asymMsg.sig, pubA);
  assert.strictEqual(asymMsg.recipientPublicKey, pubB);
  await asym.unsubscribe();

  // 3. Filters with polling over HTTP.
  const filter = await bHttp.newMessageFilter({ symKeyID: symB, topics: [TOPIC] });
  await aHttp.post({ symKeyID: symA, ttl: 10, topic: TOPIC, payload: '0x0102', powTime: 1, powTarget: 0.5 });
  const polled = await pollUntil(async () => {
    const got = await bHttp.getFilterMessages(filter);
    return got.length > 0 ? got : null;
  }, 'polled filter message');
  assert.strictEqual(polled.length, 1);
  assert.strictEqual(polled[0].payload, '0x0102');
  assert.deepStrictEqual(await bHttp.getFilterMessages(filter), []);
  assert.strictEqual(await bHttp.deleteMessageFilter(filter), true);
  await assert.rejects(bHttp.getFilterMessages(filter), /filter not found/);

  // Key clean-up calls.
  assert.strictEqual(await bHttp.deleteSymKey(symB), true);
  assert.strictEqual(await bHttp.hasSymKey(symB), false);
  assert.strictEqual(await bHttp.deleteKeyPair(pairB), true);
  assert.strictEqual(await bHttp.hasKeyPair(pairB), false);

  bWsProvider.disconnect(1000, 'done');
  console.log('web3-shh test: ok (symmetric over WS subscription, asymmetric, HTTP polling)');
}

main()
  .then(() => { cleanup(); process.exit(0); })
  .catch((e) => {
    console.error('web3-shh test FAILED:', e && e.stack ? e.stack : e);
    for (const c of children) c.kill('SIGKILL');
    setTimeout(() => { cleanup(); process.exit(1); }, 100);
  });
