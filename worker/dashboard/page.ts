// The dashboard's HTML: one self-contained document (inline style and script, nothing fetched
// but the API), which holds no data itself; its script signs in with the read token and reads
// GET /v1/channels and the messages API. No input has a name and the sign-in form posts: were
// the script blocked, Enter would not put the token in a URL (and form-action 'none' stops
// the post).

import { DASHBOARD_SCRIPT } from './script'
import { DASHBOARD_STYLE } from './style'

const MARKUP = `
<header>
  <h1>zmq-edge</h1>
  <span id="status" class="muted"></span>
  <span class="spacer"></span>
  <button type="button" id="sign-out" hidden>Sign out</button>
</header>
<main>
  <p id="alert" class="error" role="alert"></p>
  <section id="sign-in" aria-labelledby="sign-in-title">
    <h2 id="sign-in-title">Sign in</h2>
    <form id="sign-in-form" class="sign-in" method="post">
      <div class="field">
        <label for="token">Read token</label>
        <input id="token" type="password" autocomplete="off" spellcheck="false"
          required aria-describedby="token-help">
      </div>
      <button type="submit" class="primary" id="sign-in-submit">Sign in</button>
    </form>
    <p id="token-help" class="note">The Worker's READ_TOKEN. It stays in this tab
      (sessionStorage) and is sent to this Worker only, as <code>Authorization: Bearer</code>.</p>
  </section>
  <section id="dashboard" hidden aria-labelledby="channels-title">
    <h2 id="channels-title" tabindex="-1">Channels</h2>
    <div class="field filter">
      <label for="filter">Filter by prefix</label>
      <input id="filter" type="search" autocomplete="off" spellcheck="false" maxlength="64">
    </div>
    <p id="channels-note" class="note"></p>
    <div class="scroll">
      <table id="channels">
        <caption class="visually-hidden">Channels with their depth, rates, queue and bridges</caption>
        <thead>
          <tr>
            <th scope="col">Channel</th>
            <th scope="col" class="number"><abbr title="messages in the log">Depth</abbr></th>
            <th scope="col" class="number"><abbr title="messages stored per second">In/s</abbr></th>
            <th scope="col" class="number"><abbr title="messages acked by leased consumers per second">Acked/s</abbr></th>
            <th scope="col" class="number">Available</th>
            <th scope="col" class="number">Leased</th>
            <th scope="col" class="number">Dead letters</th>
            <th scope="col">Bridges connected</th>
            <th scope="col">Newest</th>
          </tr>
        </thead>
        <tbody id="channels-body"></tbody>
      </table>
    </div>
    <section id="channel" hidden aria-labelledby="channel-title">
      <h2 id="channel-title"></h2>
      <h3>Bridges connected</h3>
      <ul id="bridges" class="bridges"></ul>
      <h3>Consumer groups</h3>
      <ul id="groups" class="bridges"></ul>
      <p id="cost" class="note"></p>
      <h3>Recent messages</h3>
      <p id="messages-note" class="note"></p>
      <div class="scroll">
        <table id="messages">
          <caption class="visually-hidden">The channel's most recent messages, newest first</caption>
          <thead>
            <tr>
              <th scope="col" class="number">Seq</th>
              <th scope="col">Received</th>
              <th scope="col">Peer</th>
              <th scope="col">Frames</th>
            </tr>
          </thead>
          <tbody id="messages-body"></tbody>
        </table>
      </div>
    </section>
  </section>
</main>
`

/** The whole document; `DASHBOARD_STYLE` and `DASHBOARD_SCRIPT` appear in it verbatim. */
export const DASHBOARD_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>zmq-edge dashboard</title>
<link rel="icon" href="data:,">
<style>${DASHBOARD_STYLE}</style>
</head>
<body>
${MARKUP}
<script>${DASHBOARD_SCRIPT}</script>
</body>
</html>
`
