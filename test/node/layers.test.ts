// The layers of the tree and the one direction of their imports. `tsc --build` (npm run
// typecheck) refuses an import of a file outside a project and the projects it references
// (TS6307); this test keeps those references to the allowed graph and every source file in a
// project, so an import against the layers cannot be made to compile by widening a tsconfig.
import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join, normalize, relative } from 'node:path'
import { describe, expect, it } from 'vitest'

const root = new URL('../..', import.meta.url).pathname

/** Each layer and the layers it may import: codec → connection → socket → service → CLI. */
const LAYERS: Record<string, string[]> = {
  shared: [],
  'node-bridge/zmtp': ['shared'],
  'node-bridge/bridge': ['node-bridge/zmtp', 'shared'],
  'node-bridge/cli': ['node-bridge/bridge', 'node-bridge/zmtp', 'shared'],
  'node-bridge': ['node-bridge/cli', 'node-bridge/bridge', 'node-bridge/zmtp', 'shared'],
  durable: ['shared'],
  worker: ['durable', 'shared'],
  // The dashboard's browser code (bundled into the page) and its build (Node, at deploy time).
  'worker/dashboard/browser': ['shared'],
  'worker/dashboard': [],
}

function readConfig(project: string): { references?: Array<{ path: string }>; include?: string[] } {
  // tsconfig files here are plain JSON (no comments).
  return JSON.parse(readFileSync(join(root, project, 'tsconfig.json'), 'utf8'))
}

function referencesOf(project: string): string[] {
  return (readConfig(project).references ?? []).map((reference) =>
    relative(root, normalize(join(root, project, reference.path))),
  )
}

describe('the layers', () => {
  it('reference only the layers below them', () => {
    for (const [layer, allowed] of Object.entries(LAYERS)) {
      expect({ layer, references: referencesOf(layer).sort() }).toEqual({
        layer,
        references: [...allowed].sort(),
      })
    }
  })

  it('are all built by the root project, with the tests', () => {
    expect(referencesOf('.').sort()).toEqual(
      [...Object.keys(LAYERS), 'test/node', 'test/workers'].sort(),
    )
  })

  it('leave no source file outside a project', () => {
    const tracked = execFileSync('git', ['ls-files', '*.ts', '*.mts'], {
      cwd: root,
      encoding: 'utf8',
    })
      .split('\n')
      .filter((file) => file && !file.endsWith('worker-configuration.d.ts'))
    const outside = tracked.filter((file) => {
      const owners = [...Object.keys(LAYERS), 'test/node', 'test/workers', 'test/support', 'bench']
      const owner = owners
        .filter((layer) => file.startsWith(`${layer}/`))
        .sort((a, b) => b.length - a.length)[0]
      // The root's vitest.config.ts is in test/node's project (its include names it); the
      // examples import the installed package, and package.test.ts type-checks them there.
      if (!owner) return file !== 'vitest.config.ts' && !file.startsWith('docs/examples/')
      // node-bridge itself holds only its entry points and dev tooling; the rest is in layers.
      if (owner === 'node-bridge') {
        return !/^node-bridge\/(index\.ts|start-bridge\.ts|dev\/)/.test(file)
      }
      return false
    })
    expect(outside).toEqual([])
  })
})
