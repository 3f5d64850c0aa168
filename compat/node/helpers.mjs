// Shared helpers for the kafkajs suites. Run through compat/run.sh, which sets SLUICE_BOOTSTRAP
// (host:port, or host:port,host:port,... in cluster mode) and SLUICE_COMPAT_BROKERS.
import { spawnSync } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { createRequire } from 'node:module'

process.env.KAFKAJS_NO_PARTITIONER_WARNING = '1'

const require = createRequire(import.meta.url)
export const kafkajs = require('kafkajs')

export const TIMEOUT_MS = 15000

/** The number of broker processes run.sh started (1, or N of `sluice dev --brokers N`). */
export const BROKERS = Number(process.env.SLUICE_COMPAT_BROKERS || '1')
if (!Number.isInteger(BROKERS) || BROKERS < 1) throw new Error(`bad SLUICE_COMPAT_BROKERS ${process.env.SLUICE_COMPAT_BROKERS}`)
/** The replication factor the tests create topics with: `sluice dev`'s default, min(3, BROKERS). */
export const REPLICATION_FACTOR = Math.min(3, BROKERS)
export const CLUSTER = BROKERS > 1

export function bootstrap() {
  const b = (process.env.SLUICE_BOOTSTRAP || '').trim()
  if (!b) throw new Error('SLUICE_BOOTSTRAP is not set; run the suites through compat/run.sh')
  return b
}

export function uniqueTopic(prefix) {
  return `compat-${prefix}-${randomUUID().replaceAll('-', '').slice(0, 12)}`
}

export function newKafka(clientId = 'compat-kafkajs') {
  return new kafkajs.Kafka({
    clientId,
    brokers: bootstrap().split(','),
    connectionTimeout: 5000,
    requestTimeout: TIMEOUT_MS,
    // SLUICE_COMPAT_KAFKAJS_LOG=info (or debug) to see kafkajs's own log when chasing a failure.
    logLevel: kafkajs.logLevel[(process.env.SLUICE_COMPAT_KAFKAJS_LOG || 'error').toUpperCase()] ?? kafkajs.logLevel.ERROR,
    retry: { retries: 5, initialRetryTime: 100, maxRetryTime: 2000 },
  })
}

/** Every error `type` (Kafka error name) found in an error and its causes / aggregated errors. */
export function errorTypes(e, seen = new Set()) {
  if (!e || typeof e !== 'object' || seen.has(e)) return []
  seen.add(e)
  const out = e.type ? [e.type] : []
  for (const inner of [e.cause, e.originalError, ...(Array.isArray(e.errors) ? e.errors : [])]) {
    out.push(...errorTypes(inner, seen))
  }
  return out
}

/** Poll fn until it returns a truthy value, up to timeoutMs. */
export async function waitUntil(fn, timeoutMs, what) {
  const deadline = Date.now() + timeoutMs
  let last
  while (Date.now() < deadline) {
    last = await fn()
    if (last) return last
    await new Promise((r) => setTimeout(r, 200))
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (last: ${JSON.stringify(last)})`)
}

/**
 * Read a topic back with kcat (librdkafka) — an independent decoder of what kafkajs produced.
 * Returns one string per record formatted with `fmt` (kcat -f syntax, without the trailing \n).
 */
export function kcatRead(topic, fmt = '%p|%o|%k|%s|%h') {
  const res = spawnSync(
    process.env.KCAT || 'kcat',
    ['-b', bootstrap(), '-t', topic, '-C', '-e', '-q', '-o', 'beginning', '-f', `${fmt}\\n`],
    { encoding: 'utf8', timeout: 20000 },
  )
  if (res.error) throw new Error(`kcat could not run: ${res.error.message}`)
  if (res.status !== 0) throw new Error(`kcat exited ${res.status}: ${res.stderr}`)
  return res.stdout.split('\n').filter((l) => l !== '')
}
