#!/usr/bin/env node
// A small console client for the telesurgery arm server, written from docs/PROTOCOL.md only.
//
// It connects as the *controller* (§4), learns where the tool is from the arm's `state` (§3.6),
// streams absolute `servo_cp` commands (§5.2) that trace a horizontal circle around that point,
// measures the round trip from the acknowledgments (§6) and leaves with `bye` (§5.3).
//
//   node client.js --endpoint tcp://127.0.0.1:5570 --seconds 5 --radius-mm 5 --json
//
// Exit codes: 0 done, 1 error, 2 no answer to the handshake, 3 rejected by the arm.
"use strict";

const crypto = require("node:crypto");
const { Dealer, Subscriber } = require("zeromq");
const { Encoder, Decoder } = require("@msgpack/msgpack");

// ---------------------------------------------------------------------------------------------
// Command line
// ---------------------------------------------------------------------------------------------

const HELP = `usage: node client.js [options]

  --endpoint URL   the arm's base endpoint (control; state is PORT+1)  [tcp://127.0.0.1:5570]
  --seconds S      how long to stream commands                          [5]
  --radius-mm R    radius of the circle traced around the start point   [5]
  --period-s P     one circle per P seconds                             [2]
  --rate-hz F      command rate                                         [1000]
  --versions LIST  protocol versions offered in the hello, e.g. 1,2     [1]
  --name NAME      client_name sent in the hello                        [node-client]
  --json           print a final "SUMMARY {...}" line on stdout
  --help           show this text`;

function parseArgs(argv) {
  const o = { endpoint: "tcp://127.0.0.1:5570", seconds: 5, radiusMm: 5, periodS: 2,
              rateHz: 1000, versions: [1], name: "node-client", json: false };
  const num = (flag, v, min) => {
    const x = Number(v);
    if (!Number.isFinite(x) || x < min) throw new Error(`${flag} needs a number >= ${min}, got ${v}`);
    return x;
  };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const value = () => {
      if (i + 1 >= argv.length) throw new Error(`${flag} needs a value`);
      return argv[++i];
    };
    switch (flag) {
      case "--help": case "-h": console.log(HELP); process.exit(0); break;
      case "--json": o.json = true; break;
      case "--endpoint": o.endpoint = value(); break;
      case "--name": o.name = value(); break;
      case "--seconds": o.seconds = num(flag, value(), 0.5); break;
      case "--radius-mm": o.radiusMm = num(flag, value(), 0); break;
      case "--period-s": o.periodS = num(flag, value(), 0.1); break;
      case "--rate-hz": o.rateHz = num(flag, value(), 1); break;
      case "--versions":
        o.versions = value().split(",").map((s) => Number(s.trim()));
        if (!o.versions.length || o.versions.length > 16
            || o.versions.some((v) => !Number.isInteger(v) || v < 0 || v > 65535)) {
          throw new Error("--versions needs 1 to 16 integers 0..65535, comma separated");
        }
        break;
      default: throw new Error(`unknown option ${flag} (see --help)`);
    }
  }
  if ([...o.name].length > 64) throw new Error("--name: at most 64 characters"); // §2.4
  return o;
}

// §1.2: the three channels derive from one base endpoint (we use control and state, not video).
function channelEndpoints(base) {
  const m = /^tcp:\/\/(\[[^\]]+\]|[^:/]+):(\d+)$/.exec(base);
  if (m) {
    const port = Number(m[2]);
    if (port < 1 || port > 65533) throw new Error(`port must be 1..65533: ${base}`);
    return { control: `tcp://${m[1]}:${port}`, state: `tcp://${m[1]}:${port + 1}` };
  }
  if (/^(ipc|inproc):\/\/.+/.test(base)) return { control: `${base}.control`, state: `${base}.state` };
  throw new Error(`not an endpoint: ${base} (tcp://HOST:PORT, ipc://PATH or inproc://NAME)`);
}

// ---------------------------------------------------------------------------------------------
// Small helpers: time, statistics, validation
// ---------------------------------------------------------------------------------------------

const now = () => process.hrtime.bigint(); // the monotonic clock in ns (§3.1, §8)
const MS = 1_000_000n;
const nsToMs = (ns) => Number(ns) / 1e6;
const big = (x) => BigInt(x); // received integers are `number` or `bigint` (§8): normalise
const sleepMs = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const nextTurn = () => new Promise((resolve) => setImmediate(resolve));

// Wait until an absolute deadline (ns). setTimeout is only good to ~1 ms, so it covers the long
// part of a wait; the last 2 ms spin on setImmediate, which still runs a full event-loop turn
// each time, so the zeromq sockets keep receiving while we wait.
const SPIN_NS = 2n * MS;
async function sleepUntil(deadline) {
  for (;;) {
    const left = deadline - now();
    if (left <= 0n) return;
    if (left > SPIN_NS) await sleepMs(Math.floor(nsToMs(left - SPIN_NS)));
    else await nextTurn();
  }
}

function percentile(values, p) {
  if (!values.length) return null;
  const s = Float64Array.from(values).sort();
  const x = (p / 100) * (s.length - 1), i = Math.floor(x);
  return i + 1 < s.length ? s[i] + (x - i) * (s[i + 1] - s[i]) : s[i];
}
// Per-tick samples, bounded: a long run keeps the newest ones (10 min at 1 kHz and more).
const MAX_SAMPLES = 600_000;
function record(samples, x) {
  samples.push(x);
  if (samples.length > MAX_SAMPLES) samples.splice(0, MAX_SAMPLES / 2);
}
const maxOf = (values) => values.reduce((a, b) => (b > a ? b : a), values.length ? -Infinity : null);
const round = (x, d = 3) => (x === null ? null : Number(x.toFixed(d)));

// Receivers validate every message before using it and drop invalid ones (§2.6). This checks
// what this client reads: the set of fields (unknown ones are invalid, §2.2) and their types.
const isUint = (x) => (typeof x === "bigint" ? x >= 0n && x < 2n ** 63n : Number.isSafeInteger(x) && x >= 0);
const isFloat = (x) => typeof x === "number" && Number.isFinite(x); // integers are fine (§2.3)
const isArr = (x, n) => Array.isArray(x) && x.length === n && x.every(isFloat);
const isStr = (x) => typeof x === "string";
const isMap = (x) => x !== null && typeof x === "object" && !Array.isArray(x) && !(x instanceof Uint8Array);
const isPose = (x) => isArr(x, 7) && Math.abs(Math.hypot(x[3], x[4], x[5], x[6]) - 1) <= 1e-3;
const SCHEMAS = {
  welcome: { send_ns: isUint, hello_send_ns: isUint, role: isStr, version: Number.isInteger, session: isStr,
             arm: isMap, heartbeat_interval_ms: isFloat, controller_timeout_ms: isFloat },
  reject: { send_ns: isUint, hello_send_ns: isUint, code: isStr, reason: isStr,
            "supported_versions?": Array.isArray },
  state: { seq: isUint, send_ns: isUint, ack_seq: isUint, ack_send_ns: isUint, ack_rx_ns: isUint,
           operating_state: isStr, is_homed: (x) => typeof x === "boolean", is_busy: (x) => typeof x === "boolean",
           measured_cp: isPose, setpoint_cp: isPose, measured_js: isMap, measured_cf: (x) => isArr(x, 6),
           measured_jaw: isFloat, "safety_flags?": (x) => Array.isArray(x) && x.every(isStr),
           "counters?": (x) => isMap(x) && Object.values(x).every(isUint) },
  heartbeat: { seq: isUint, send_ns: isUint, "echo_seq?": isUint, "echo_send_ns?": isUint, "echo_rx_ns?": isUint },
};
// Returns null when `m` is a valid message of one of `types` (envelope `v` = `version`), else why not.
function invalid(m, types, version) {
  if (!isMap(m)) return "not a map";
  if (m.v !== version) return `v is ${m.v}, expected ${version}`;
  if (!types.includes(m.type)) return `unexpected type ${m.type}`;
  const schema = SCHEMAS[m.type];
  for (const [key, check] of Object.entries(schema)) {
    const name = key.replace("?", "");
    if (!(name in m)) { if (key.endsWith("?")) continue; return `missing ${name}`; }
    if (!check(m[name])) return `bad ${name}`;
  }
  for (const name of Object.keys(m)) {
    if (name !== "v" && name !== "type" && !(name in schema) && !(`${name}?` in schema)) return `unknown field ${name}`;
  }
  return null;
}

// ---------------------------------------------------------------------------------------------
// The client
// ---------------------------------------------------------------------------------------------

class Client {
  constructor(opts) {
    this.o = opts;
    this.eps = channelEndpoints(opts.endpoint);
    // §8: bigint <-> msgpack (u)int64 both ways; every uint64 field we send is a bigint.
    this.enc = new Encoder({ useBigInt64: true });
    this.dec = new Decoder({ useBigInt64: true });
    this.helloVersion = Math.min(...opts.versions); // §4.3: write the hello in the lowest version
    this.version = this.helloVersion;                 // then welcome.version
    // §7: an explicit routing id (stable across TCP reconnects), IMMEDIATE, small send queue,
    // non-blocking sends, no linger.
    this.ctl = new Dealer({ routingId: "n" + crypto.randomBytes(8).toString("hex"), immediate: true,
                            sendHighWaterMark: 100, sendTimeout: 0, linger: 0 });
    this.st = new Subscriber({ receiveHighWaterMark: 1000, linger: 0 });
    this.seq = 0n;                         // our stream: commands + heartbeats share it (§5.1)
    this.lastTx = 0n;                      // when we last sent on our stream (for heartbeats)
    this.echo = { seq: 0n, sendNs: 0n, rxNs: 0n }; // newest state-channel message (§3.5 echo_*)
    this.lastRx = 0n;                      // when anything last came in on the state channel
    this.lastAck = 0n;                     // highest ack_seq / echo_seq used for a round trip (§6.1)
    this.sent = new Map();                 // seq -> { ns: send_ns, xyz: commanded xyz or null }
    this.state = null;                     // newest valid `state`
    this.welcome = null; this.reject = null; this.onControl = null;
    this.stop = false;
    this.n = { commands: 0, heartbeats: 0, states: 0, armHeartbeats: 0, invalid: 0, rtt: 0 };
    this.dropped = {};                     // sends that could not be queued, by message type
    this.firstSeq = null; this.maxSeq = 0n;
    this.rtt = []; this.late = []; this.track = []; this.circle = []; this.fMax = 0;
    this.flagsSeen = new Set();
  }

  // Non-blocking send (§5.2, §7: sendTimeout 0). With sendTimeout 0 zeromq.js queues the message
  // at once or rejects the returned promise (EAGAIN: no connection yet, or a full queue): then the
  // message is dropped, counted by `kind`; the next one supersedes it anyway.
  send(msg, kind = "other") {
    const drop = () => { this.dropped[kind] = (this.dropped[kind] ?? 0) + 1; };
    try {
      this.ctl.send(this.enc.encode({ v: this.version, ...msg })).catch(drop);
    } catch { drop(); } // e.g. the socket is closed
  }

  // The next message on our stream (a command or a heartbeat): takes the next seq, adds echoes.
  // We remember what we sent under each seq, to recognise our own acknowledgments (§5.5).
  sendOnStream(type, fields, xyz = null) {
    this.seq += 1n;
    const t = now();
    this.sent.set(this.seq, { ns: t, xyz });
    this.sent.delete(this.seq - 5000n); // keep the recent ones only
    this.send({ type, seq: this.seq, send_ns: t, ...fields,
                echo_seq: this.echo.seq, echo_send_ns: this.echo.sendNs, echo_rx_ns: this.echo.rxNs }, type);
    this.lastTx = t;
  }

  heartbeatIfIdle() { // §5.4: a heartbeat after heartbeat_interval_ms without sending anything
    if (now() - this.lastTx >= this.hbNs) { this.sendOnStream("heartbeat", {}); this.n.heartbeats++; }
  }

  async readControl() { // replies on the DEALER: one frame each (§2.1)
    for await (const frames of this.ctl) {
      let m = null;
      try { m = frames.length === 1 ? this.dec.decode(frames[0]) : null; } catch { /* invalid */ }
      // A welcome is written in the version it grants; a reject in a version of the arm's, which
      // may be none of ours (that is why it rejects): read its fields whatever its `v`.
      const ok = m !== null && (m.type === "reject" ? Number.isInteger(m.v) : this.o.versions.includes(m.v));
      if (!ok || invalid(m, ["welcome", "reject"], m.v)) { this.n.invalid++; continue; }
      if (m.type === "reject") this.reject = m;
      else if (!this.welcome && big(m.hello_send_ns) !== 0n) this.welcome = { ...m, rxNs: now() }; // first one only
      if (this.onControl) this.onControl();
    }
  }

  async readState() { // the state channel: `state` and the arm's `heartbeat` (§5.4, §5.5)
    for await (const frames of this.st) {
      const t4 = now(); // our receive time, taken first
      let m = null;
      try { m = frames.length === 1 ? this.dec.decode(frames[0]) : null; } catch { /* invalid */ }
      if (m === null || invalid(m, ["state", "heartbeat"], this.version)) { this.n.invalid++; continue; }
      this.onStateChannel(m, t4);
    }
  }

  onStateChannel(m, t4) {
    const seq = big(m.seq), t3 = big(m.send_ns);
    this.lastRx = t4;
    if (this.firstSeq === null) this.firstSeq = seq;
    if (seq > this.maxSeq) this.maxSeq = seq;
    if (seq > this.echo.seq) this.echo = { seq, sendNs: t3, rxNs: t4 }; // echoed in our next message
    // §6.1: the four timestamps; each acknowledgment is used once, and only if it is one of
    // ours: the ack fields still name the previous controller's last command until the arm
    // applies one of ours, and the arm acknowledges only commands it applies (§5.5).
    const isState = m.type === "state";
    const [s, t1, t2] = (isState ? [m.ack_seq, m.ack_send_ns, m.ack_rx_ns]
                                 : [m.echo_seq ?? 0, m.echo_send_ns ?? 0, m.echo_rx_ns ?? 0]).map(big);
    const mine = this.sent.get(s);
    if (s > this.lastAck && mine && mine.ns === t1 && t2 !== 0n && t3 !== 0n) {
      const total = t4 - t1, hold = t3 - t2;
      if (total >= 0n && hold >= 0n && total - hold >= 0n) {
        this.lastAck = s;
        record(this.rtt, nsToMs(total - hold)); // §6.2: rtt = (t4 - t1) - (t3 - t2)
        this.n.rtt++;
        this.theta = ((t2 - t1) + (t3 - t4)) / 2n; // clock offset, arm - console (not used further)
      }
    }
    if (!isState) { this.n.armHeartbeats++; return; }
    this.n.states++;
    this.state = m;
    const f = Math.hypot(m.measured_cf[0], m.measured_cf[1], m.measured_cf[2]);
    if (f > this.fMax) this.fMax = f;
    for (const flag of m.safety_flags ?? []) this.flagsSeen.add(flag);
    // While engaged and on the circle: tracking error (measured vs the acknowledged command's
    // target: includes the arm's lag) and the measured points for the radius.
    if (this.onCircle) {
      const p = m.measured_cp, cmd = this.sent.get(big(m.ack_seq)), c = this.centre;
      if (cmd?.xyz && cmd.ns === big(m.ack_send_ns)) {
        record(this.track, 1000 * Math.hypot(p[0] - cmd.xyz[0], p[1] - cmd.xyz[1], p[2] - cmd.xyz[2]));
      }
      record(this.circle, [nsToMs(t4) / 1000, 1000 * Math.hypot(p[0] - c[0], p[1] - c[1])]);
    }
  }

  // §4.1: hello every 250 ms until a welcome or a reject, for at most 5 s.
  async handshake() {
    const t0 = now();
    while (!this.welcome && !this.reject && !this.stop && now() - t0 < 5000n * MS) {
      this.send({ type: "hello", send_ns: now(), role: "controller", client_name: this.o.name,
                  versions: this.o.versions }, "hello");
      await new Promise((resolve) => { this.onControl = resolve; setTimeout(resolve, 250); });
      this.onControl = null;
    }
    if (this.reject || !this.welcome) return;
    const w = this.welcome;
    this.version = w.version;
    this.lastTx = w.rxNs; // the first heartbeat is due one interval after the welcome
    // A controller uses the smaller of its own interval (20 ms here) and the arm's (§5.4).
    this.hbNs = BigInt(Math.round(Math.min(20, w.heartbeat_interval_ms) * 1e6));
    this.lostNs = BigInt(Math.round(2 * w.heartbeat_interval_ms * 1e6)); // §6.5 LOST: silent > 2 H
  }

  // The target of the circle at time t (s since engaging) given where the arm was when engaged:
  // a horizontal (x, y) circle around the centre, blended in from the engage point over 0.5 s
  // so the arm never jumps; orientation and jaw stay those of the start.
  target(t) {
    const { radiusMm, periodS } = this.o, r = radiusMm / 1000, w = (2 * Math.PI) / periodS;
    const c = this.centre, ph = w * (t + this.phase0);
    const onCircle = [c[0] + r * Math.cos(ph), c[1] + r * Math.sin(ph), c[2]];
    const a = Math.min(1, t / 0.5), s = a * a * (3 - 2 * a); // smoothstep
    return onCircle.map((x, i) => this.engageAt[i] + s * (x - this.engageAt[i]));
  }

  command(mode, xyz, clutch) {
    this.sendOnStream("command", { mode, servo_cp: [...xyz, ...this.quat], servo_jaw: this.jaw,
                                   clutch_engaged: clutch, operator_present: true }, xyz);
    this.n.commands++;
  }

  status(elapsed) {
    const s = this.state;
    if (!s) return console.log(`${elapsed.toFixed(2).padStart(6)} s  (no state yet)`);
    const p = s.measured_cp.slice(0, 3).map((x) => (1000 * x).toFixed(3).padStart(8));
    const f = s.measured_cf.slice(0, 3), fn = Math.hypot(...f);
    const rtt = percentile(this.rtt.slice(-2048), 50);
    const flags = s.safety_flags?.length ? s.safety_flags.join(",") : "-";
    console.log(`${elapsed.toFixed(2).padStart(6)} s  seq ${s.seq}  xyz [${p.join(",")}] mm  ` +
      `|f| ${fn.toFixed(3)} N (${f.map((x) => x.toFixed(3)).join(", ")})  ` +
      `rtt p50 ${rtt === null ? "-" : rtt.toFixed(3)} ms  ${s.operating_state}  flags ${flags}`);
  }

  // §5: stream at the rate on absolute deadlines. Phases: clutch released (0.2 s, at the start
  // pose), engaged (the circle), then hold (0.1 s, the arm's own setpoint, clutch released).
  // Ctrl-C jumps to the hold phase.
  async stream() {
    const period = BigInt(Math.round(1e9 / this.o.rateHz));
    const t0 = now(), releasedUntil = t0 + 200n * MS;
    let end = t0 + BigInt(Math.round(this.o.seconds * 1e9)), holdFrom = end - 100n * MS;
    let k = 0n, lastStatus = t0 - 500n * MS, engagedAt = null, lost = false, interrupted = false;
    this.streamStart = t0;
    while (!this.reject) {
      if (this.stop && !interrupted) {
        interrupted = true; holdFrom = now(); end = holdFrom + 100n * MS;
        console.log("interrupted: holding, then leaving");
      }
      const deadline = t0 + k * period;
      if (deadline >= end) break;
      // Below 1 / heartbeat interval, heartbeats fill the gaps between commands (§5.2, §5.4).
      while (this.lastTx + this.hbNs < deadline && !this.stop) {
        await sleepUntil(this.lastTx + this.hbNs);
        this.heartbeatIfIdle();
      }
      await sleepUntil(deadline);
      const t = now();
      record(this.late, nsToMs(t - deadline));
      // Too far behind (a stall)? Skip the missed ticks instead of sending a burst.
      k = t - deadline > 5n * period ? (t - t0) / period + 1n : k + 1n;

      // §6.5: nothing on the state channel for > 2 heartbeat periods = LOST: stop motion; on
      // recovery, release the clutch again before re-engaging (§5.7).
      const silent = t - this.lastRx > this.lostNs;
      if (silent && !lost) { lost = true; console.log("link LOST: clutch released, holding"); }
      if (lost && !silent) { lost = false; this.relAt = t; console.log("link back: re-engaging"); }
      const engage = !lost && t >= releasedUntil && t < holdFrom && t - (this.relAt ?? 0n) >= 200n * MS;
      if (engage) {
        if (engagedAt === null) { // engagement anchored on the arm's setpoint: no jump
          engagedAt = t; this.engageAt = this.state.setpoint_cp.slice(0, 3);
          this.phase0 = this.circleT ?? 0;
        }
        this.circleT = this.phase0 + nsToMs(t - engagedAt) / 1000;
        this.onCircle = nsToMs(t - engagedAt) >= 500; // blend done
        this.command("servo_cp", this.target(this.circleT - this.phase0), true);
      } else {
        if (engagedAt !== null) { engagedAt = null; this.onCircle = false; }
        const mode = t >= holdFrom ? "hold" : "servo_cp"; // at the end: ask the arm to hold
        this.command(mode, (t < releasedUntil ? this.start : this.state.setpoint_cp).slice(0, 3), false);
      }
      if (t - lastStatus >= 500n * MS) { lastStatus = t; this.status(nsToMs(t - t0) / 1000); }
    }
    this.streamEnd = now();
  }

  async close(reason) {
    if (this.welcome && !this.reject) this.send({ type: "bye", send_ns: now(), reason }, "bye");
    await sleepMs(50); // linger is 0: give the I/O thread a moment to write the bye
    this.ctl.close(); this.st.close();
  }

  summary() {
    const o = this.o, arm = this.welcome.arm;
    // Radius: mean distance of the measured xy from the centre over the last full circle.
    const lastT = this.circle.length ? this.circle[this.circle.length - 1][0] : 0;
    const last = this.circle.filter(([t]) => t >= lastT - o.periodS).map(([, d]) => d);
    const dur = Number(this.streamEnd - this.streamStart) / 1e9;
    const commands = this.n.commands - (this.dropped.command ?? 0);
    const stateSeqs = this.firstSeq === null ? 0 : Number(this.maxSeq - this.firstSeq + 1n);
    return {
      version: this.version, arm_name: arm.name, session: this.welcome.session,
      commands_sent: commands,
      heartbeats_sent: this.n.heartbeats - (this.dropped.heartbeat ?? 0), sends_dropped: this.dropped,
      states_received: this.n.states, arm_heartbeats_received: this.n.armHeartbeats,
      states_lost: stateSeqs - this.n.states - this.n.armHeartbeats, // §6.4 (ignoring duplicates)
      invalid_received: this.n.invalid,
      rate_hz: o.rateHz, achieved_rate_hz: round(commands / dur, 1), stream_s: round(dur),
      lateness_ms: { p50: round(percentile(this.late, 50)), p99: round(percentile(this.late, 99)),
                     max: round(maxOf(this.late)) },
      rtt_ms: { p50: round(percentile(this.rtt, 50)), p99: round(percentile(this.rtt, 99)), n: this.n.rtt },
      radius_mm_commanded: o.radiusMm,
      radius_mm_measured: round(last.length ? last.reduce((a, b) => a + b, 0) / last.length : null),
      tracking_error_mm: { p50: round(percentile(this.track, 50)), max: round(maxOf(this.track)) },
      force_n_max: round(this.fMax), safety_flags_seen: [...this.flagsSeen].sort(),
      counters: Object.fromEntries(Object.entries(this.state?.counters ?? {}).map(([k, v]) => [k, Number(v)])),
    };
  }
}

// ---------------------------------------------------------------------------------------------
// Main
// ---------------------------------------------------------------------------------------------

async function main() {
  let opts;
  try { opts = parseArgs(process.argv.slice(2)); } catch (e) { console.error(e.message); return 1; }
  const c = new Client(opts);
  c.ctl.connect(c.eps.control);
  c.st.connect(c.eps.state);
  c.st.subscribe(); // everything: no topics (§7)
  c.readControl().catch(() => {});
  c.readState().catch(() => {});
  // A closed stdout (e.g. piped into `head`) must not stop us before we say bye.
  process.stdout.on("error", () => {});
  let interrupts = 0;
  process.on("SIGINT", () => { c.stop = true; if (++interrupts > 1) process.exit(130); });

  console.log(`connecting to ${c.eps.control} (state ${c.eps.state}) as controller "${opts.name}", ` +
              `offering protocol versions [${opts.versions.join(", ")}]`);
  await c.handshake();
  if (c.stop && !c.welcome) { await c.close(""); return 130; }
  if (c.reject || !c.welcome) {
    if (c.reject) console.error(`rejected (${c.reject.code}): ${c.reject.reason}`);
    else console.error(`no answer from the arm at ${c.eps.control} within 5 s: is slave-arm running? ` +
                       "(or are the CURVE keys wrong?)");
    await c.close(""); return c.reject ? 3 : 2;
  }
  const w = c.welcome, arm = w.arm, mm = (v) => `[${v.map((x) => (1000 * x).toFixed(1)).join(", ")}]`;
  console.log(`welcome: protocol version ${w.version}, session ${w.session}, handshake round trip ` +
              `${nsToMs(w.rxNs - big(w.hello_send_ns)).toFixed(2)} ms`);
  console.log(`arm "${arm.name}": ${arm.dof} dof (${arm.joint_names.join(", ")}), control rate ` +
              `${arm.control_rate_hz} Hz, workspace ${mm(arm.workspace_min_m)} .. ${mm(arm.workspace_max_m)} mm, ` +
              `max speed ${arm.max_tool_speed_m_s} m/s, max force ${arm.max_force_n} N`);

  // Wait for the first state to learn the tool pose (keeping the slot alive with heartbeats).
  const t0 = now();
  while (!c.state && !c.reject && !c.stop && now() - t0 < 2000n * MS) { c.heartbeatIfIdle(); await sleepMs(1); }
  if (!c.state) {
    if (c.reject) console.error(`rejected (${c.reject.code}): ${c.reject.reason}`);
    else if (!c.stop) console.error(`no state from the arm on ${c.eps.state} within 2 s`);
    await c.close("no state"); return c.reject ? 3 : c.stop ? 130 : 1;
  }
  const p = c.state.measured_cp, q = p.slice(3, 7), qn = Math.hypot(...q);
  c.start = p.slice(0, 3); c.centre = c.start; c.quat = q.map((x) => x / qn); c.jaw = c.state.measured_jaw;
  const r = opts.radiusMm / 1000;
  if ([0, 1].some((i) => c.centre[i] - r < arm.workspace_min_m[i] || c.centre[i] + r > arm.workspace_max_m[i])) {
    console.log("warning: the circle leaves the workspace; the arm will clamp it");
  }
  console.log(`start: xyz ${mm(c.start)} mm, jaw ${c.jaw.toFixed(3)} rad, ${c.state.operating_state}; ` +
              `circle of ${opts.radiusMm} mm every ${opts.periodS} s at ${opts.rateHz} Hz for ${opts.seconds} s`);

  await c.stream();
  if (c.reject) { // e.g. not_controller or shutting_down while streaming (§4.2)
    console.error(`rejected (${c.reject.code}): ${c.reject.reason}`);
    await c.close(""); return 3;
  }
  await c.close(c.stop ? "interrupted" : "done");
  const s = c.summary();
  console.log(`done: ${s.commands_sent} commands in ${s.stream_s} s (${s.achieved_rate_hz} Hz, lateness p50 ` +
    `${s.lateness_ms.p50} / p99 ${s.lateness_ms.p99} ms), ${s.states_received} states; rtt p50 ${s.rtt_ms.p50} / ` +
    `p99 ${s.rtt_ms.p99} ms (n=${s.rtt_ms.n}); radius ${s.radius_mm_measured} mm (commanded ${opts.radiusMm}); ` +
    `tracking error p50 ${s.tracking_error_mm.p50} / max ${s.tracking_error_mm.max} mm; ` +
    `max |f| ${s.force_n_max} N; safety flags seen: ${s.safety_flags_seen.join(", ") || "none"}`);
  if (opts.json) console.log("SUMMARY " + JSON.stringify(s));
  return 0;
}

main().then((code) => process.exit(code), (e) => { console.error(e?.stack ?? e); process.exit(1); });
