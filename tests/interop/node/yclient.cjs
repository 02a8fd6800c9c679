#!/usr/bin/env node
// A Yjs client we did not write: y-websocket's WebsocketProvider driven over stdin/stdout.
//
// Usage: node yclient.cjs ws://HOST:PORT/doc/<docid>?token=<tok>
//
// Commands arrive as JSON lines on stdin; every event leaves as one JSON line on stdout:
//   {"cmd":"set","map":"m","key":"k","value":<json>}        -> {"event":"ok","cmd":"set"}
//   {"cmd":"get","map":"m"}                                 -> {"event":"map","map":"m","value":{...}}
//   {"cmd":"wait","map":"m","key":"k","value":<json>,"timeout":s}
//                                     -> {"event":"ok","cmd":"wait",...} | {"event":"timeout","cmd":"wait",...}
//   {"cmd":"awareness","state":{...}}                       -> {"event":"ok","cmd":"awareness"}
//   {"cmd":"peers"}                                         -> {"event":"peers","states":[...]}
//   {"cmd":"disconnect"} / {"cmd":"connect"}                -> {"event":"ok","cmd":...}
//   {"cmd":"exit"}                                          -> destroys the provider, exits 0
// Unsolicited events: {"event":"started","url":...,"clientID":N}, {"event":"status","status":...},
// {"event":"synced"}, {"event":"closed","code":N|null,"reason":...},
// {"event":"connection-error","message":...}, {"event":"awareness","states":[...]},
// {"event":"error","message":...} (bad command).
//
// Env YCLIENT_NO_RECONNECT=1: after the first websocket close, stop reconnecting (so a client the
// server rejects reports the close once instead of retrying forever).
'use strict'

const readline = require('node:readline')
const WebSocket = require('ws')
const Y = require('yjs')
const { WebsocketProvider } = require('y-websocket')

/** Write one event as a JSON line (stdout to a pipe is synchronous on Linux, so it is flushed). */
function emit (event) {
  process.stdout.write(JSON.stringify(event) + '\n')
}

/**
 * Split a full document URL into WebsocketProvider's (serverUrl, roomname, params), which it
 * joins back as `serverUrl + '/' + roomname + '?' + params`. The room is the last path segment
 * (kept percent-encoded, as the provider does not encode it); everything before is the prefix.
 */
function splitDocUrl (docUrl) {
  const u = new URL(docUrl)
  const slash = u.pathname.lastIndexOf('/')
  const roomname = u.pathname.slice(slash + 1)
  if (roomname === '') throw new Error(`no document id in the last path segment of ${docUrl}`)
  const serverUrl = `${u.protocol}//${u.host}${u.pathname.slice(0, slash)}`
  const params = Object.fromEntries(u.searchParams)
  return { serverUrl, roomname, params }
}

/** Structural equality for JSON values (key order does not matter). */
function deepEqual (a, b) {
  if (a === b) return true
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false
  if (Array.isArray(a) !== Array.isArray(b)) return false
  const ka = Object.keys(a)
  const kb = Object.keys(b)
  return ka.length === kb.length && ka.every((k) => Object.hasOwn(b, k) && deepEqual(a[k], b[k]))
}

/** A map entry as plain JSON (nested Yjs types are converted with toJSON). */
function plain (value) {
  return value instanceof Y.AbstractType ? value.toJSON() : value
}

const docUrl = process.argv[2]
if (!docUrl) {
  process.stderr.write('usage: node yclient.cjs ws://HOST:PORT/PREFIX/<docid>?token=<tok>\n')
  process.exit(2)
}
const noReconnect = process.env.YCLIENT_NO_RECONNECT === '1'
const { serverUrl, roomname, params } = splitDocUrl(docUrl)

const doc = new Y.Doc()
const provider = new WebsocketProvider(serverUrl, roomname, doc, {
  params,
  WebSocketPolyfill: WebSocket,
  disableBc: true // every byte must cross the websocket, never an in-process channel
})
if (provider.url !== docUrl) {
  process.stderr.write(`yclient: note: connecting to ${provider.url} (given ${docUrl})\n`)
}
emit({ event: 'started', url: provider.url, clientID: doc.clientID })

/** Awareness states of every client except this one. */
function otherStates () {
  return [...provider.awareness.getStates()]
    .filter(([clientID]) => clientID !== doc.clientID)
    .map(([, state]) => state)
}

provider.on('status', ({ status }) => {
  if (status === 'connected' || status === 'disconnected') emit({ event: 'status', status })
})
provider.on('sync', (isSynced) => {
  if (isSynced) emit({ event: 'synced' })
})
// Emitted before the provider schedules its reconnect; `event` is the ws CloseEvent, or null
// when the provider closed the socket itself (disconnect/destroy or a message timeout).
provider.on('connection-close', (event) => {
  emit({ event: 'closed', code: event ? event.code : null, reason: event ? event.reason : null })
  if (noReconnect) provider.shouldConnect = false // the scheduled setupWS checks this flag
})
provider.on('connection-error', (event) => {
  emit({ event: 'connection-error', message: event && event.message ? event.message : String(event) })
})
provider.awareness.on('change', () => emit({ event: 'awareness', states: otherStates() }))

// Pending "wait" commands, re-checked after every document update.
const waits = new Set()
function checkWaits () {
  for (const w of waits) {
    if (deepEqual(plain(doc.getMap(w.map).get(w.key)), w.value)) {
      clearTimeout(w.timer)
      waits.delete(w)
      emit({ event: 'ok', cmd: 'wait', map: w.map, key: w.key })
    }
  }
}
doc.on('update', checkWaits)

/** Destroy the provider, give the close frame a moment to leave, then exit 0. */
let exiting = false
function exit () {
  if (exiting) return
  exiting = true
  const ws = provider.ws
  provider.destroy()
  if (!ws || ws.readyState === WebSocket.CLOSED) process.exit(0)
  ws.addEventListener('close', () => process.exit(0))
  setTimeout(() => process.exit(0), 1000).unref()
}

const handlers = {
  set (c) {
    doc.getMap(c.map).set(c.key, c.value)
    emit({ event: 'ok', cmd: 'set' })
  },
  get (c) {
    emit({ event: 'map', map: c.map, value: doc.getMap(c.map).toJSON() })
  },
  wait (c) {
    const w = { map: c.map, key: c.key, value: c.value }
    w.timer = setTimeout(() => {
      waits.delete(w)
      emit({ event: 'timeout', cmd: 'wait', map: w.map, key: w.key, value: plain(doc.getMap(w.map).get(w.key)) ?? null })
    }, 1000 * (c.timeout ?? 10))
    waits.add(w)
    checkWaits() // it may already hold
  },
  awareness (c) {
    provider.awareness.setLocalState(c.state)
    emit({ event: 'ok', cmd: 'awareness' })
  },
  peers () {
    emit({ event: 'peers', states: otherStates() })
  },
  disconnect () {
    provider.disconnect()
    emit({ event: 'ok', cmd: 'disconnect' })
  },
  connect () {
    provider.connect()
    emit({ event: 'ok', cmd: 'connect' })
  },
  exit
}

const input = readline.createInterface({ input: process.stdin })
input.on('line', (line) => {
  if (line.trim() === '') return
  let command
  try {
    command = JSON.parse(line)
    const handler = Object.hasOwn(handlers, command.cmd) ? handlers[command.cmd] : null
    if (!handler) throw new Error(`unknown command ${JSON.stringify(command.cmd)}`)
    handler(command)
  } catch (err) {
    emit({ event: 'error', cmd: command ? command.cmd : null, message: String(err && err.message ? err.message : err) })
  }
})
input.on('close', exit) // the test harness went away: leave too
