// Emails: the list with status, and a message's history as a timeline with its HTML
// in a sandboxed frame (no scripts, no same-origin, the console's policy inherited).

import { get, one, request } from '../api.js';
import { readMessage } from '../mime.js';
import { badge, failure, field, focusHeading, h, heading, select, show, table, time } from '../ui.js';

const STATUSES = ['queued', 'sending', 'sent', 'captured', 'delivered', 'failed', 'bounced', 'complained', 'suppressed'];

export async function render(view, params) {
  const status = select('status', [['', 'Any status'], ...STATUSES.map((s) => [s, s])]);
  const list = h('div', { 'aria-live': 'polite' });
  const detail = h('section', { 'aria-label': 'Message' });
  view.append(heading('Emails'), h('div', { class: 'toolbar' }, field('Status', status)), list, detail);
  let latest = 0;
  const refresh = async () => {
    const mine = ++latest;
    try {
      const page = await get('/api/v1/emails', { status: status.value, limit: 100 });
      if (mine !== latest) return;
      show(
        list,
        table(
          'Newest messages',
          [
            ['Subject', (m) => h('a', { href: `#/emails/${encodeURIComponent(m.id)}` }, m.subject || '(no subject)')],
            ['To', (m) => (m.to || []).join(', ')],
            ['Status', (m) => badge(m.status)],
            ['Template', (m) => m.template || '—'],
            ['Accepted', (m) => time(m.created_at)],
          ],
          page.items,
          { empty: 'No messages.' },
        ),
      );
    } catch (err) {
      show(list, failure(err));
    }
  };
  status.addEventListener('change', refresh);
  await refresh();
  if (params[0]) await showMessage(detail, params[0]);
}

async function showMessage(container, id) {
  let m;
  try {
    m = await get(`/api/v1/emails/${one(id)}`);
  } catch (err) {
    show(container, failure(err));
    return;
  }
  const preview = h('div');
  show(
    container,
    h('h2', { tabindex: '-1' }, m.subject || '(no subject)', ' ', badge(m.status)),
    h(
      'dl',
      {},
      h('dt', {}, 'From'), h('dd', {}, m.from),
      h('dt', {}, 'To'), h('dd', {}, (m.to || []).join(', ')),
      m.cc?.length ? [h('dt', {}, 'Cc'), h('dd', {}, m.cc.join(', '))] : null,
      h('dt', {}, 'Size'), h('dd', {}, `${m.size} bytes`),
      m.error ? [h('dt', {}, 'Error'), h('dd', { class: 'error' }, m.error)] : null,
      m.suppressed?.length ? [h('dt', {}, 'Suppressed'), h('dd', {}, m.suppressed.join(', '))] : null,
    ),
    h('div', { class: 'split' },
      h('div', {}, h('h3', {}, 'Timeline'), timeline(m.history || [])),
      h('div', {}, h('h3', {}, 'HTML'), preview)),
  );
  focusHeading(container);
  try {
    const res = await request('GET', `/api/v1/emails/${one(m.id)}/raw`, { headers: { Accept: 'message/rfc822' } });
    const { html, text } = readMessage(new Uint8Array(await res.arrayBuffer()));
    if (html !== null) {
      // `sandbox` with no allowances: no scripts, no forms, an opaque origin.
      show(preview, h('iframe', { class: 'preview', sandbox: '', title: 'Email HTML preview', srcdoc: html }));
    } else {
      show(preview, h('p', { class: 'muted' }, 'This message has no HTML part.'), h('pre', {}, text || ''));
    }
  } catch (err) {
    show(
      preview,
      err.status === 404
        ? h('p', { class: 'muted' }, 'The message body is kept only in the dev mailbox mode.')
        : failure(err),
    );
  }
}

function timeline(history) {
  if (!history.length) return h('p', { class: 'muted' }, 'No history.');
  return h(
    'ol',
    { class: 'timeline', 'aria-label': 'Timeline' },
    history.map((s) =>
      h('li', {}, time(s.at), ' ', h('strong', {}, s.type), ' ',
        Object.keys(s.data || {}).length ? h('span', { class: 'mono muted' }, JSON.stringify(s.data)) : null),
    ),
  );
}
