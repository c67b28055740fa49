// The README is a front page and the reference lives in docs/: every relative link in them
// reaches a file of the repository, and every #anchor a heading of its page (GitHub's slugs),
// so moving a section cannot leave a link behind. The front page stays a few screens long.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs'
import { dirname, join, relative } from 'node:path'
import { describe, expect, it } from 'vitest'

const root = new URL('../..', import.meta.url).pathname
const pages = [
  'README.md',
  ...readdirSync(join(root, 'docs'))
    .filter((name) => name.endsWith('.md'))
    .map((name) => `docs/${name}`),
  ...readdirSync(join(root, 'docs', 'deploy'))
    .filter((name) => name.endsWith('.md'))
    .map((name) => `docs/deploy/${name}`),
]

/** The page's text outside fenced code blocks. */
function prose(path: string): string[] {
  let fenced = false
  return readFileSync(join(root, path), 'utf8')
    .split('\n')
    .filter((line) => {
      if (line.startsWith('```')) fenced = !fenced
      return !fenced && !line.startsWith('```')
    })
}

/** GitHub's anchor of a heading: lower case, punctuation dropped, spaces as hyphens. */
function slug(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/\[([^\]]*)\]\([^)]*\)/g, '$1')
    .replace(/[`*_]/g, '')
    .replace(/[^\p{L}\p{N}\- ]/gu, '')
    .replace(/ /g, '-')
}

function anchorsOf(path: string): Set<string> {
  return new Set(
    prose(path)
      .filter((line) => /^#{1,6} /.test(line))
      .map((line) => slug(line.replace(/^#+ /, ''))),
  )
}

describe('the documentation', () => {
  it('links only to files that exist and to headings their pages have', () => {
    const broken: string[] = []
    for (const page of pages) {
      for (const line of prose(page)) {
        for (const [, target] of line.matchAll(/\]\(([^)\s]+)\)/g)) {
          if (!target || /^(https?:|mailto:)/.test(target)) continue
          const [file, anchor] = target.split('#') as [string, string | undefined]
          const path = file ? relative(root, join(root, dirname(page), file)) : page
          if (!existsSync(join(root, path))) {
            broken.push(`${page}: ${target} (no ${path})`)
            continue
          }
          const isPage = path.endsWith('.md') && statSync(join(root, path)).isFile()
          if (anchor && isPage && !anchorsOf(path).has(anchor)) {
            broken.push(`${page}: ${target} (no heading #${anchor} in ${path})`)
          }
        }
      }
    }
    expect(broken).toEqual([])
  })

  it('keeps the README a front page: at most 15 KB', () => {
    expect(readFileSync(join(root, 'README.md')).length).toBeLessThanOrEqual(15 * 1024)
  })
})
