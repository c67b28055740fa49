// The dashboard's style sheet (inline in the page, allowed by its hash in the CSP): plain,
// readable, light or dark as the system is, usable in a narrow window.

export const DASHBOARD_STYLE = `
:root {
  color-scheme: light dark;
  --fg: #1d232a; --muted: #59636e; --bg: #ffffff; --panel: #f4f6f8; --line: #d5dbe1;
  --accent: #0b5cad; --error: #b3261e; --binary: #7a4d00; --binary-bg: #fff3dc;
  font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Noto Sans", sans-serif;
  font-size: 15px; line-height: 1.45; color: var(--fg); background: var(--bg);
}
@media (prefers-color-scheme: dark) {
  :root {
    --fg: #e6e9ec; --muted: #a1aab3; --bg: #15191d; --panel: #1f252b; --line: #38414a;
    --accent: #7db7ff; --error: #ff8a80; --binary: #ffd48a; --binary-bg: #3a2e17;
  }
}
[hidden] { display: none !important; }
* { box-sizing: border-box; }
body { margin: 0; }
header {
  display: flex; flex-wrap: wrap; align-items: center; gap: 0.5rem 1rem;
  padding: 0.6rem 1rem; border-bottom: 1px solid var(--line); background: var(--panel);
}
header h1 { font-size: 1.15rem; margin: 0; }
header .spacer { flex: 1; }
main { padding: 1rem; max-width: 80rem; margin: 0 auto; }
h2 { font-size: 1.1rem; margin: 1.2rem 0 0.5rem; }
h3 { font-size: 1rem; margin: 1rem 0 0.4rem; }
button {
  font: inherit; padding: 0.3rem 0.8rem; border-radius: 4px; cursor: pointer;
  border: 1px solid var(--line); background: var(--bg); color: var(--fg);
}
button.primary { background: var(--accent); border-color: var(--accent); color: var(--bg); }
button:focus-visible, input:focus-visible { outline: 2px solid var(--accent); outline-offset: 2px; }
form.sign-in { display: flex; flex-wrap: wrap; align-items: end; gap: 0.5rem; max-width: 34rem; }
form.sign-in label { display: block; font-weight: 600; margin-bottom: 0.2rem; }
form.sign-in .field { flex: 1 1 16rem; }
input {
  font: inherit; width: 100%; padding: 0.3rem 0.5rem; border-radius: 4px;
  border: 1px solid var(--line); background: var(--bg); color: var(--fg);
}
.filter { display: flex; align-items: center; gap: 0.5rem; max-width: 24rem; margin-bottom: 0.4rem; }
.filter label { white-space: nowrap; }
h2[tabindex]:focus:not(:focus-visible) { outline: none; }
.error { color: var(--error); font-weight: 600; }
.muted, .note { color: var(--muted); }
.scroll { overflow-x: auto; border: 1px solid var(--line); border-radius: 4px; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 0.35rem 0.6rem; border-bottom: 1px solid var(--line); vertical-align: top; }
thead th { background: var(--panel); font-weight: 600; white-space: nowrap; }
tbody tr:last-child > * { border-bottom: 0; }
td.number, th.number { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr[aria-current="true"] > * { background: var(--panel); }
tr[aria-current="true"] > th { box-shadow: inset 3px 0 0 var(--accent); }
button.link {
  border: 0; padding: 0; background: none; color: var(--accent);
  text-decoration: underline; font-weight: 600; text-align: left; word-break: break-all;
}
code, .frame-text { font-family: ui-monospace, "Cascadia Mono", "DejaVu Sans Mono", monospace; font-size: 0.9em; }
ol.frames { margin: 0; padding-left: 1.6rem; }
ol.frames li { margin: 0.1rem 0; }
.frame-text { white-space: pre-wrap; word-break: break-all; }
p.large { margin: 0 0 0.2rem; }
.kind {
  display: inline-block; font-size: 0.75rem; font-weight: 700; text-transform: uppercase;
  letter-spacing: 0.03em; padding: 0 0.35rem; margin-right: 0.4rem; border-radius: 3px;
  color: var(--binary); background: var(--binary-bg);
}
ul.bridges { margin: 0; padding-left: 1.2rem; }
.visually-hidden {
  position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0);
  white-space: nowrap;
}
@media (max-width: 40rem) {
  main { padding: 0.6rem; }
  th, td { padding: 0.3rem 0.4rem; }
}
`
