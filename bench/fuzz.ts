// A longer fuzz campaign: the connection properties of test/support/fuzz-properties.ts (the ones
// test/node/fuzz-connection.test.ts runs a few hundred times) in batches with random seeds.
// Run:    npx tsx bench/fuzz.ts [seconds=60] [name filter]
// Replay: npx tsx bench/fuzz.ts replay "<name filter>" <seed> [path]
// Prints runs per property and each failure with its seed and path; exits 1 if any failed.
import { randomInt } from 'node:crypto'
import fc from 'fast-check'
import { FUZZ_PROPERTIES } from '../test/support/fuzz-properties'

function select(filter: string | undefined) {
  const selected = FUZZ_PROPERTIES.filter((entry) => !filter || entry.name.includes(filter))
  if (selected.length === 0) {
    console.error(`no property matches ${JSON.stringify(filter)}; properties:`)
    for (const entry of FUZZ_PROPERTIES) console.error(`  ${entry.name}`)
    process.exit(2)
  }
  return selected
}

function replay(filter: string | undefined, seed: number, path: string | undefined): void {
  for (const entry of select(filter)) {
    console.log(`replaying "${entry.name}" with seed ${seed}${path ? ` path ${path}` : ''}`)
    fc.assert(entry.property(), {
      seed,
      ...(path ? { path } : {}),
      numRuns: path ? 1 : entry.numRuns,
      verbose: fc.VerbosityLevel.Verbose,
    })
    console.log('  passed')
  }
}

function campaign(seconds: number, filter: string | undefined): number {
  const selected = select(filter)
  const stats = selected.map((entry) => ({ entry, runs: 0, batches: 0, failures: 0, ms: 0 }))
  const deadline = performance.now() + seconds * 1000
  console.log(`fuzzing ${selected.length} properties for ${seconds} s (Ctrl-C to stop early)`)
  while (performance.now() < deadline) {
    for (const stat of stats) {
      if (performance.now() >= deadline) break
      // A fifth of the suite's runs per batch keeps the round-robin fair between slow and fast.
      const numRuns = Math.max(10, Math.round(stat.entry.numRuns / 5))
      const seed = randomInt(0, 2 ** 31 - 1)
      const start = performance.now()
      const details = fc.check(stat.entry.property(), { seed, numRuns })
      stat.ms += performance.now() - start
      stat.runs += details.numRuns
      stat.batches++
      if (details.failed) {
        stat.failures++
        console.log(
          `\nFAILED "${stat.entry.name}" seed ${details.seed} path ${details.counterexamplePath}`,
        )
        console.log(fc.defaultReportMessage(details) ?? '')
        console.log(
          `replay: npx tsx bench/fuzz.ts replay ${JSON.stringify(stat.entry.name)} ${details.seed} ${details.counterexamplePath}\n`,
        )
      }
    }
  }
  console.log('\nproperty'.padEnd(56), 'runs'.padStart(9), 'runs/s'.padStart(8), 'failed')
  for (const stat of stats) {
    const rate = stat.ms > 0 ? Math.round((stat.runs / stat.ms) * 1000) : 0
    console.log(
      stat.entry.name.padEnd(55),
      String(stat.runs).padStart(9),
      String(rate).padStart(8),
      stat.failures > 0 ? `${stat.failures} batch(es)` : '0',
    )
  }
  const total = stats.reduce((sum, stat) => sum + stat.runs, 0)
  const failed = stats.reduce((sum, stat) => sum + stat.failures, 0)
  console.log(`\n${total} runs, ${failed} failing batch(es)`)
  return failed
}

const [first, second, third, fourth] = process.argv.slice(2)
if (first === 'replay') {
  replay(second, Number(third), fourth)
} else {
  const seconds = first === undefined ? 60 : Number(first)
  if (!Number.isFinite(seconds) || seconds <= 0) {
    console.error('usage: npx tsx bench/fuzz.ts [seconds] [name filter]')
    process.exit(2)
  }
  process.exitCode = campaign(seconds, second) > 0 ? 1 : 0
}
