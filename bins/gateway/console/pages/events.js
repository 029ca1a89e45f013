// Events: the live tail of /api/v1/events/stream. EventSource cannot send an
// Authorization header, so this reads the Server-Sent Events through fetch and a
// ReadableStream (the key stays out of the URL), and resumes with Last-Event-ID.

import { ApiError, authHeader, get, url } from '../api.js';
import { failure, field, h, heading, show, time } from '../ui.js';

const KEEP = 500;

export async function render(view) {
  const type = h('input', { name: 'type', placeholder: 'license.* or email.sent', size: 24 });
  const state = h('p', { role: 'status' }, 'Not connected.');
  const rows = h('tbody');
  const problem = h('div');
  const form = h(
    'form',
    { class: 'inline', 'aria-label': 'Event filter' },
    field('Event type', type),
    h('button', { type: 'submit' }, 'Apply filter'),
  );
  view.append(
    heading('Events'),
    form,
    state,
    problem,
    h(
      'div',
      { class: 'tail' },
      h('table', { 'aria-label': 'Live events' },
        h('thead', {}, h('tr', {}, ['When', 'Type', 'Subject', 'Actor', 'Details'].map((t) => h('th', { scope: 'col' }, t)))),
        rows),
    ),
  );

  let controller = null;
  let stopped = false;
  let lastId = null;

  const connect = async () => {
    controller?.abort();
    const mine = new AbortController();
    controller = mine;
    show(problem);
    try {
      const res = await fetch(url('/api/v1/events/stream', { type: type.value.trim() }), {
        headers: { Authorization: authHeader(), Accept: 'text/event-stream', ...(lastId ? { 'Last-Event-ID': lastId } : {}) },
        cache: 'no-store',
        credentials: 'omit',
        signal: mine.signal,
      });
      if (!res.ok) {
        let body = null;
        try {
          body = await res.json();
        } catch {
          body = null;
        }
        throw new ApiError(res.status, body);
      }
      state.textContent = `Live${type.value.trim() ? `: ${type.value.trim()}` : ''} (times in ${Intl.DateTimeFormat().resolvedOptions().timeZone}).`;
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value.replace(/\r\n?/g, '\n');
        let cut;
        while ((cut = buffer.indexOf('\n\n')) >= 0) {
          const frame = buffer.slice(0, cut);
          buffer = buffer.slice(cut + 2);
          dispatch(frame);
        }
      }
      if (!stopped && controller === mine) {
        state.textContent = 'Reconnecting…';
        setTimeout(() => !stopped && controller === mine && connect(), 1000);
      }
    } catch (err) {
      if (err.name === 'AbortError') return;
      state.textContent = 'Not connected.';
      if (err instanceof ApiError) {
        show(problem, failure(err));
        return;
      }
      if (!stopped && controller === mine) {
        state.textContent = 'Connection lost; reconnecting…';
        setTimeout(() => !stopped && controller === mine && connect(), 2000);
      }
    }
  };

  const row = (e) =>
    h('tr', {},
      h('td', {}, time(e.occurred_at)),
      h('td', { class: 'mono' }, e.type),
      h('td', { class: 'mono' }, e.subject || '—'),
      h('td', {}, e.actor || '—'),
      h('td', { class: 'mono' }, JSON.stringify(e.data)));

  // The latest events first; the tail then resumes after the newest of them, so
  // nothing made in between is missed.
  const start = async () => {
    controller?.abort();
    controller = null;
    lastId = null;
    rows.replaceChildren();
    try {
      const page = await get('/api/v1/events', { type: type.value.trim(), limit: 50 });
      rows.append(...page.items.map(row));
      if (page.items.length) lastId = page.items[0].id;
    } catch (err) {
      show(problem, failure(err));
      state.textContent = 'Not connected.';
      return;
    }
    connect();
  };

  const dispatch = (frame) => {
    let id = null;
    const data = [];
    for (const line of frame.split('\n')) {
      if (line.startsWith(':')) continue;
      const i = line.indexOf(':');
      const name = i < 0 ? line : line.slice(0, i);
      const value = i < 0 ? '' : line.slice(i + 1).replace(/^ /, '');
      if (name === 'id') id = value;
      else if (name === 'data') data.push(value);
    }
    if (!data.length) return;
    if (id) lastId = id;
    let e;
    try {
      e = JSON.parse(data.join('\n'));
    } catch {
      return;
    }
    rows.prepend(row(e));
    while (rows.children.length > KEEP) rows.lastChild.remove();
  };

  form.addEventListener('submit', (e) => {
    e.preventDefault();
    start();
  });
  start();
  return () => {
    stopped = true;
    controller?.abort();
  };
}
