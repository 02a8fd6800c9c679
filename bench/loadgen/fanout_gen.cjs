#!/usr/bin/env node
// Load generator for bench/relay_fanout.py and bench/conn_scaling.py (see relay_fanout's
// docstring for the load model).
//
// Speaks y-websocket over `ws` (no permessage-deflate) using `yjs` and `lib0` from the node
// directory given through NODE_PATH. It is driven by the Python orchestrator over stdio:
// one JSON command per line on stdin, one JSON event per line on stdout; logs go to stderr.
//
// Commands:
//   {"cmd":"connect","rooms":[{"url":..., "clients":C, "writers":W}], "concurrency":N,
//    "timeout_s":T}                       -> {"ev":"connected", ...}
//   (a room may give "urls":[...] instead of "url": client i of the room connects to
//    urls[i % urls.length], e.g. one relay process each, for bench/relay_scaleout.py)
//   {"cmd":"run","mode":"rate"|"saturate","rate":U,"window":K,"t_start_ns":"<monotonic ns>",
//    "warmup_s":..,"duration_s":..,"drain_s":..}   -> {"ev":"result", ...}
//   {"cmd":"idle","rooms":[...same as connect, writers 0...],"concurrency":N,"timeout_s":T,
//    "tolerate_failures":false,"deadline_s":null}
//                                          -> {"ev":"idle_connected", ...}
//   {"cmd":"idle_count"}                   -> {"ev":"idle_count","clients":..,"open":.., ...}
//   {"cmd":"idle_close"}                   -> {"ev":"idle_closed"}
//   {"cmd":"quit"}                         -> exits
//
// `idle` always reports every connection's open -> synced time (`connect_latency`, a histogram
// like `latency`). By default the first connection that fails fails the command; with
// "tolerate_failures" each failure is counted (`failed`, `failure_reasons`) and the rest go on,
// and with "deadline_s" no new room is started after that many seconds (`not_attempted`).
//
// Times: performance.now() locally; the orchestrator's CLOCK_MONOTONIC nanoseconds (Python's
// time.monotonic_ns) are mapped onto it through process.hrtime.bigint(), the same clock.
'use strict'

const readline = require('readline')
const WebSocket = require('ws')
const Y = require('yjs')
const encoding = require('lib0/encoding')
const decoding = require('lib0/decoding')

const MSG_SYNC = 0
const SYNC_STEP1 = 0
const SYNC_STEP2 = 1
const SYNC_UPDATE = 2
const EMPTY_UPDATE = Y.encodeStateAsUpdate(new Y.Doc())
const EMPTY_STATE_VECTOR = Y.encodeStateVector(new Y.Doc())
const MAP_NAME = 'bench'
const CATCH_UP_GRACE_MS = 1000
// Latency histogram: log buckets, 1% wide, over microseconds (bucket b covers
// [HIST_BASE^b, HIST_BASE^(b+1)) us).
const HIST_BASE = 1.01
const LOG_HIST_BASE = Math.log(HIST_BASE)

// Offset that maps monotonic ms onto performance.now() ms.
const perfMinusMonoMs = performance.now() - Number(process.hrtime.bigint()) / 1e6
const monoNsToPerf = (ns) => Number(BigInt(ns)) / 1e6 + perfMinusMonoMs

const emit = (obj) => process.stdout.write(JSON.stringify(obj) + '\n')
const log = (...args) => console.error('[fanout_gen]', ...args)

class Histogram {
  constructor () {
    this.buckets = new Map()
    this.count = 0
    this.maxMs = 0
  }

  add (ms) {
    const us = ms * 1000
    const b = us < 1 ? 0 : Math.floor(Math.log(us) / LOG_HIST_BASE)
    this.buckets.set(b, (this.buckets.get(b) || 0) + 1)
    this.count++
    if (ms > this.maxMs) this.maxMs = ms
  }

  toJSON () {
    return { base: HIST_BASE, unit: 'us', count: this.count, max_ms: this.maxMs, buckets: Object.fromEntries(this.buckets) }
  }
}

const syncMessage = (syncType, payload) => {
  const enc = encoding.createEncoder()
  encoding.writeVarUint(enc, MSG_SYNC)
  encoding.writeVarUint(enc, syncType)
  encoding.writeVarUint8Array(enc, payload)
  return encoding.toUint8Array(enc)
}

// ---------------------------------------------------------------------------------------------
// State of one generator process (no module-level mutable state outside this object).

class Generator {
  constructor () {
    this.clients = [] // load clients
    this.writers = [] // load clients that write, indexed by writer id (wid)
    this.schedule = [] // the same writers in open-loop send order
    this.idleClients = []
    this.run = null // the run in progress, or null
    this.runId = 0
    this.unexpectedCloses = 0
    this.closedAfterSync = 0 // unexpected closes of connections that had synced
  }

  // -- connections ----------------------------------------------------------------------------

  // `latency`, when given, gets the time from creating the socket to the server's sync step 2.
  openClient (url, room, indexInRoom, writer, timeoutMs, latency = null) {
    return new Promise((resolve, reject) => {
      const t0 = performance.now()
      const ws = new WebSocket(url, { perMessageDeflate: false, maxPayload: 64 * 1024 * 1024 })
      ws.binaryType = 'nodebuffer'
      const client = { ws, room, indexInRoom, synced: false, wid: -1, closing: false }
      if (writer) {
        client.wid = this.writers.length
        client.doc = new Y.Doc()
        client.map = client.doc.getMap(MAP_NAME)
        client.key = 'w' + client.wid
        client.seq = 0
        client.inflight = 0
        client.pending = new Map() // seq -> record
        client.lastUpdate = null
        client.doc.on('update', (u) => { client.lastUpdate = u })
        this.writers.push(client)
      }
      const timer = setTimeout(() => {
        reject(new Error(`sync timeout after ${timeoutMs} ms: ${url}`))
        ws.terminate()
      }, timeoutMs)
      client.onSynced = () => {
        clearTimeout(timer)
        if (latency) latency.add(performance.now() - t0)
        resolve(client)
      }
      ws.on('open', () => {
        const sv = client.doc ? Y.encodeStateVector(client.doc) : EMPTY_STATE_VECTOR
        ws.send(syncMessage(SYNC_STEP1, sv))
      })
      ws.on('message', (data) => this.onMessage(client, data))
      ws.on('error', (err) => { clearTimeout(timer); reject(err) })
      ws.on('close', () => {
        if (!client.closing) {
          this.unexpectedCloses++
          if (client.synced) this.closedAfterSync++
          clearTimeout(timer)
          reject(new Error(`closed before sync: ${url}`))
        }
      })
    })
  }

  // Opens `clients` connections to every room: the first one alone (and synced) before the
  // others, because pycrdt-websocket deadlocks when two clients create a room concurrently.
  // `concurrency` rooms are in progress at a time. With `stats` (see newConnectStats), every
  // connection's open -> synced time is recorded, and in tolerant mode a failed connection is
  // counted instead of failing the whole call, and no room is started after the deadline.
  async connectRooms (rooms, concurrency, timeoutMs, into, stats = null) {
    let next = 0
    const latency = stats ? stats.latency : null
    const open = async (r, room, i, writer) => {
      const url = r.urls ? r.urls[i % r.urls.length] : r.url
      if (!(stats && stats.tolerant)) return this.openClient(url, room, i, writer, timeoutMs, latency)
      try {
        return await this.openClient(url, room, i, writer, timeoutMs, latency)
      } catch (err) {
        stats.failed++
        const kind = failureKind(err)
        stats.reasons[kind] = (stats.reasons[kind] || 0) + 1
        if (stats.examples.length < 5) stats.examples.push(String(err && err.message ? err.message : err))
        return null
      }
    }
    const worker = async () => {
      while (next < rooms.length) {
        if (stats && performance.now() >= stats.deadline) return
        const r = rooms[next++]
        const room = { url: r.url, clients: r.clients, index: r.index }
        const first = await open(r, room, 0, r.writers > 0)
        if (first) into.push(first)
        const rest = []
        for (let i = 1; i < r.clients; i++) {
          rest.push(open(r, room, i, i < r.writers))
        }
        for (const c of await Promise.all(rest)) if (c) into.push(c)
      }
    }
    const t0 = performance.now()
    await Promise.all(Array.from({ length: Math.max(1, concurrency) }, worker))
    if (stats) {
      for (let k = next; k < rooms.length; k++) stats.notAttempted += rooms[k].clients
    }
    return (performance.now() - t0) / 1000
  }

  closeAll (list) {
    for (const c of list) {
      c.closing = true
      c.ws.close()
    }
    return new Promise((resolve) => {
      const deadline = performance.now() + 5000
      const check = () => {
        if (list.every((c) => c.ws.readyState === WebSocket.CLOSED) || performance.now() > deadline) {
          for (const c of list) if (c.ws.readyState !== WebSocket.CLOSED) c.ws.terminate()
          resolve()
        } else setTimeout(check, 20)
      }
      check()
    })
  }

  // -- receiving ------------------------------------------------------------------------------

  onMessage (client, data) {
    const decoder = decoding.createDecoder(data)
    if (decoding.readVarUint(decoder) !== MSG_SYNC) return // awareness, auth, ...: ignored
    const syncType = decoding.readVarUint(decoder)
    if (syncType === SYNC_STEP1) {
      const sv = decoding.readVarUint8Array(decoder)
      const update = client.doc ? Y.encodeStateAsUpdate(client.doc, sv) : EMPTY_UPDATE
      client.ws.send(syncMessage(SYNC_STEP2, update))
    } else if (syncType === SYNC_STEP2) {
      if (!client.synced) {
        client.synced = true
        client.onSynced()
      }
    } else if (syncType === SYNC_UPDATE) {
      this.onUpdate(client, decoding.readVarUint8Array(decoder))
    }
  }

  // Matches a received update to (writer, seq) by decoding it with Yjs: robust to servers
  // that re-encode or merge updates, since only the item content ("wid.seq") is used.
  onUpdate (client, payload) {
    const now = performance.now()
    const run = this.run
    let structs
    try {
      structs = Y.decodeUpdate(payload).structs
    } catch (e) {
      if (run) run.unmatched++
      return
    }
    for (const s of structs) {
      if (!(s instanceof Y.Item) || !(s.content instanceof Y.ContentAny)) continue
      const value = s.content.getContent()[0]
      if (typeof value !== 'string') continue
      const dot = value.indexOf('.')
      const writer = this.writers[+value.slice(0, dot)]
      if (writer === undefined) {
        if (run) run.unmatched++
        continue
      }
      if (writer === client) {
        if (run) run.echoes++
        continue
      }
      const rec = writer.pending.get(+value.slice(dot + 1))
      if (rec === undefined || run === null || rec.run !== run.id) {
        if (run) run.stale++
        continue
      }
      const bit = 2 ** client.indexInRoom
      if (client.indexInRoom < 53 && Math.floor(rec.mask / bit) % 2 === 1) {
        run.duplicates++
        continue
      }
      rec.mask += bit
      if (now >= run.winStart && now < run.winEnd) run.deliveredInWindow++
      if (rec.measured) {
        run.received++
        run.latency.add(now - rec.t)
        if (structs.length === 1 && Buffer.compare(payload, rec.payload) === 0) run.bytesIdentical++
        else run.bytesDifferent++
      }
      if (--rec.remaining === 0) {
        writer.pending.delete(rec.seq)
        writer.inflight--
        if (run.mode === 'saturate') this.pump(writer)
      }
    }
  }

  // -- sending --------------------------------------------------------------------------------

  // Latency counts from the moment the update is handed to the socket; in open loop the
  // generator's lag behind the schedule is reported separately (schedule_lag).
  sendUpdate (writer, scheduledAt) {
    const run = this.run
    const seq = writer.seq++
    writer.map.set(writer.key, writer.wid + '.' + seq)
    const payload = writer.lastUpdate
    const t = performance.now()
    const slot = run.mode === 'rate' ? scheduledAt : t
    const measured = slot >= run.winStart && slot < run.winEnd
    const receivers = writer.room.clients - 1
    if (receivers > 0) {
      writer.pending.set(seq, { seq, t, run: run.id, measured, remaining: receivers, mask: 0, payload })
      writer.inflight++
    }
    run.sent++
    if (measured) {
      run.sentMeasured++
      run.expected += receivers
    }
    writer.ws.send(syncMessage(SYNC_UPDATE, payload))
    const buffered = writer.ws.bufferedAmount
    if (buffered > run.maxBuffered) run.maxBuffered = buffered
  }

  pump (writer) {
    const run = this.run
    if (!run.sending) return
    while (writer.inflight < run.window && writer.ws.readyState === WebSocket.OPEN) {
      this.sendUpdate(writer, 0)
      if (performance.now() >= run.sendEnd) {
        run.sending = false
        return
      }
    }
  }

  async runLoad (cmd) {
    const start = monoNsToPerf(cmd.t_start_ns)
    const run = {
      id: ++this.runId,
      mode: cmd.mode,
      window: cmd.window || 4,
      winStart: start + cmd.warmup_s * 1000,
      winEnd: start + (cmd.warmup_s + cmd.duration_s) * 1000,
      sendEnd: start + (cmd.warmup_s + cmd.duration_s) * 1000,
      sending: false,
      sent: 0,
      sentMeasured: 0,
      expected: 0,
      received: 0,
      deliveredInWindow: 0,
      duplicates: 0,
      echoes: 0,
      stale: 0,
      unmatched: 0,
      bytesIdentical: 0,
      bytesDifferent: 0,
      maxBuffered: 0,
      unsent: 0,
      latency: new Histogram(),
      lag: new Histogram(),
      cpuAtWinStart: null,
      cpuAtWinEnd: null,
      closesAtStart: this.unexpectedCloses
    }
    for (const w of this.writers) {
      // Updates still outstanding from an earlier run no longer hold back the window.
      w.pending.clear()
      w.inflight = 0
    }
    this.run = run
    const sleepUntil = (t) => new Promise((resolve) => setTimeout(resolve, Math.max(0, t - performance.now())))
    setTimeout(() => { run.cpuAtWinStart = process.cpuUsage() }, Math.max(0, run.winStart - performance.now()))
    setTimeout(() => { run.cpuAtWinEnd = process.cpuUsage() }, Math.max(0, run.winEnd - performance.now()))
    await sleepUntil(start)
    run.sending = true
    if (run.mode === 'saturate') {
      for (const w of this.writers) this.pump(w)
      await sleepUntil(run.sendEnd)
      run.sending = false
    } else {
      await this.rateLoop(run, start, cmd.rate)
    }
    // Drain: wait for the measured updates still in flight, at most drain_s.
    const drainDeadline = Math.max(performance.now(), run.winEnd) + cmd.drain_s * 1000
    while (run.received + run.duplicates < run.expected && performance.now() < drainDeadline) {
      await sleepUntil(performance.now() + 10)
    }
    await sleepUntil(run.winEnd + 1) // cpuAtWinEnd is set
    const drainS = Math.max(0, (performance.now() - run.winEnd) / 1000)
    this.run = null
    const cpu = (a, b) => (a && b ? { user_s: (b.user - a.user) / 1e6, system_s: (b.system - a.system) / 1e6 } : null)
    emit({
      ev: 'result',
      mode: run.mode,
      offered_rate: run.mode === 'rate' ? cmd.rate : null,
      window: run.mode === 'saturate' ? run.window : null,
      writers: this.writers.length,
      clients: this.clients.length,
      duration_s: (run.winEnd - run.winStart) / 1000,
      sent_total: run.sent,
      unsent: run.unsent,
      sent_measured: run.sentMeasured,
      expected_deliveries: run.expected,
      received_deliveries: run.received,
      lost_deliveries: Math.max(0, run.expected - run.received),
      delivered_in_window: run.deliveredInWindow,
      duplicates: run.duplicates,
      echoes: run.echoes,
      stale: run.stale,
      unmatched: run.unmatched,
      bytes_identical: run.bytesIdentical,
      bytes_different: run.bytesDifferent,
      max_send_buffer_bytes: run.maxBuffered,
      unexpected_closes: this.unexpectedCloses - run.closesAtStart,
      drain_s: drainS,
      latency: run.latency.toJSON(),
      schedule_lag: run.mode === 'rate' ? run.lag.toJSON() : null,
      gen_cpu: cpu(run.cpuAtWinStart, run.cpuAtWinEnd)
    })
  }

  // Open loop: update k (round-robin over writers, rooms interleaved) is due at
  // start + k / rate, whatever happened to earlier ones (a late generator catches up in a
  // burst, so the offered rate holds); how late each send was is recorded as schedule lag.
  rateLoop (run, start, rate) {
    const writers = this.schedule
    const n = writers.length
    const intervalMs = 1000 / rate
    let k = 0
    return new Promise((resolve) => {
      if (n === 0 || !(rate > 0)) {
        setTimeout(resolve, Math.max(0, run.sendEnd - performance.now()))
        return
      }
      const tick = () => {
        let now = performance.now()
        let burst = 0
        if (now >= run.sendEnd + CATCH_UP_GRACE_MS) {
          // Hopelessly behind (starved of CPU): drop the rest of the schedule, so the run stays
          // bounded in time; sent < offered then shows it.
          run.unsent = Math.max(0, Math.ceil((run.sendEnd - start) / intervalMs) - k)
          run.sending = false
          resolve()
          return
        }
        while (true) {
          const due = start + k * intervalMs
          if (due >= run.sendEnd) {
            run.sending = false
            resolve()
            return
          }
          if (due > now) break
          const w = writers[k % n]
          if (w.ws.readyState === WebSocket.OPEN) {
            if (due >= run.winStart) run.lag.add(now - due)
            this.sendUpdate(w, due)
          }
          k++
          if (++burst >= 256) { // let incoming messages through
            setImmediate(tick)
            return
          }
          now = performance.now()
        }
        // Timers have 1 ms granularity: updates due within the next millisecond go out in the
        // next tick, as a burst (no busy-waiting, which would burn the generator's core).
        setTimeout(tick, Math.max(1, Math.floor(start + k * intervalMs - performance.now())))
      }
      tick()
    })
  }

  // -- command loop ---------------------------------------------------------------------------

  async handle (cmd) {
    switch (cmd.cmd) {
      case 'connect': {
        const elapsed = await this.connectRooms(cmd.rooms, cmd.concurrency, cmd.timeout_s * 1000, this.clients)
        // Send order: rooms interleaved, so consecutive updates go to different rooms.
        this.schedule = this.writers.slice().sort((a, b) => (a.indexInRoom - b.indexInRoom) || (a.room.index - b.room.index))
        emit({ ev: 'connected', clients: this.clients.length, writers: this.writers.length, elapsed_s: elapsed })
        break
      }
      case 'run':
        await this.runLoad(cmd)
        break
      case 'idle': {
        const stats = newConnectStats(cmd)
        const before = this.idleClients.length
        const elapsed = await this.connectRooms(cmd.rooms, cmd.concurrency, cmd.timeout_s * 1000, this.idleClients, stats)
        emit({
          ev: 'idle_connected',
          clients: this.idleClients.length,
          elapsed_s: elapsed,
          synced: this.idleClients.length - before,
          failed: stats.failed,
          not_attempted: stats.notAttempted,
          failure_reasons: stats.reasons,
          failure_examples: stats.examples,
          connect_latency: stats.latency.toJSON()
        })
        break
      }
      case 'idle_count':
        emit({
          ev: 'idle_count',
          clients: this.idleClients.length,
          open: this.idleClients.filter((c) => c.ws.readyState === WebSocket.OPEN).length,
          closed_after_sync: this.closedAfterSync
        })
        break
      case 'idle_close':
        await this.closeAll(this.idleClients)
        this.idleClients = []
        emit({ ev: 'idle_closed' })
        break
      case 'quit':
        await this.closeAll(this.clients.concat(this.idleClients))
        process.exit(0)
        break
      default:
        throw new Error('unknown command ' + cmd.cmd)
    }
  }
}

// What `idle` collects while connecting (see connectRooms).
const newConnectStats = (cmd) => ({
  latency: new Histogram(),
  tolerant: cmd.tolerate_failures === true,
  deadline: cmd.deadline_s > 0 ? performance.now() + cmd.deadline_s * 1000 : Infinity,
  failed: 0,
  notAttempted: 0,
  reasons: {},
  examples: []
})

// A short class for a failed connection: "timeout", "closed", "http 503", "ECONNREFUSED", ...
const failureKind = (err) => {
  const message = String(err && err.message ? err.message : err)
  if (message.startsWith('sync timeout')) return 'timeout'
  if (message.startsWith('closed before sync')) return 'closed'
  const http = /Unexpected server response: (\d+)/.exec(message)
  if (http) return 'http ' + http[1]
  return (err && err.code) || 'error'
}

const main = () => {
  const gen = new Generator()
  const rl = readline.createInterface({ input: process.stdin, terminal: false })
  let chain = Promise.resolve()
  rl.on('line', (line) => {
    if (!line.trim()) return
    const cmd = JSON.parse(line)
    chain = chain.then(() => gen.handle(cmd)).catch((err) => {
      emit({ ev: 'error', cmd: cmd.cmd, message: String(err && err.message ? err.message : err) })
    })
  })
  rl.on('close', () => { chain.then(() => process.exit(0)) })
  emit({ ev: 'hello', pid: process.pid, node: process.version, yjs: require('yjs/package.json').version })
}

main()
