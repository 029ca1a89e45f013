// Slack: messages with their status, and how a message looks (the preview route renders
// the Block Kit JSON it would post; this page draws it roughly and shows the JSON).

import { get, one, post } from '../api.js';
import { badge, failure, field, focusHeading, h, heading, select, show, table, time } from '../ui.js';

const LEVELS = ['debug', 'info', 'success', 'warning', 'error', 'critical'];
const STATUSES = ['queued', 'posted', 'captured', 'failed'];

export async function render(view, params) {
  const status = select('status', [['', 'Any status'], ...STATUSES.map((s) => [s, s])]);
  const level = select('level', [['', 'Any level'], ...LEVELS.map((s) => [s, s])]);
  const list = h('div', { 'aria-live': 'polite' });
  const detail = h('section', { 'aria-label': 'Slack message' });
  view.append(
    heading('Slack'),
    h('div', { class: 'toolbar' }, field('Status', status), field('Level', level)),
    list,
    detail,
    composer(),
  );
  let latest = 0;
  const refresh = async () => {
    const mine = ++latest;
    try {
      const page = await get('/api/v1/slack/messages', { status: status.value, level: level.value, limit: 100 });
      if (mine !== latest) return;
      show(
        list,
        table(
          'Newest messages',
          [
            ['Title', (m) => h('a', { href: `#/slack/${encodeURIComponent(m.id)}` }, m.title)],
            ['Channel', (m) => m.channel],
            ['Level', (m) => badge(m.level)],
            ['Status', (m) => badge(m.status)],
            ['Created', (m) => time(m.created_at)],
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
  level.addEventListener('change', refresh);
  await refresh();
  if (params[0]) await showMessage(detail, params[0]);
}

async function showMessage(container, id) {
  let m;
  try {
    m = await get(`/api/v1/slack/messages/${one(id)}`);
  } catch (err) {
    show(container, failure(err));
    return;
  }
  const look = h('div');
  show(
    container,
    h('h2', { tabindex: '-1' }, m.title, ' ', badge(m.status)),
    h(
      'dl',
      {},
      h('dt', {}, 'Channel'), h('dd', {}, m.slack_channel || m.channel),
      h('dt', {}, 'Posted'), h('dd', {}, time(m.posted_at)),
      h('dt', {}, 'Slack ts'), h('dd', { class: 'mono' }, m.ts || '—'),
      m.error ? [h('dt', {}, 'Error'), h('dd', { class: 'error' }, m.error)] : null,
    ),
    h('h3', {}, 'How it looks'),
    look,
  );
  focusHeading(container);
  await preview(look, m.request);
}

// Draws the rendered message: the colour bar, then each block's text.
async function preview(container, message) {
  try {
    const rendered = await post('/api/v1/slack/preview', message);
    const attachment = rendered.attachments?.[0] || {};
    const bar = h('div', { class: 'slack-preview', role: 'figure', 'aria-label': 'Slack preview' });
    bar.style.borderLeft = `4px solid ${/^#[0-9a-fA-F]{3,8}$/.test(attachment.color || '') ? attachment.color : '#ccc'}`;
    bar.style.padding = '.5rem .75rem';
    for (const block of attachment.blocks || []) bar.append(drawBlock(block));
    show(
      container,
      bar,
      h('details', {}, h('summary', {}, 'Block Kit JSON'), h('pre', {}, JSON.stringify(rendered, null, 2))),
    );
  } catch (err) {
    show(container, failure(err));
  }
}

// Slack's mrkdwn as plain text: dates and links show their fallback or label, and the
// bold/italic/strike markers go.
function plain(s) {
  return String(s)
    .replace(/<!date\^\d+\^[^|>]*\|([^>]*)>/g, '$1')
    .replace(/<(?:https?|mailto):[^|>]*\|([^>]*)>/g, '$1')
    .replace(/<!(here|channel|everyone)>/g, '@$1')
    .replace(/<([^>|]+)>/g, '$1')
    .replace(/(^|\s)[*_~]([^*_~\n]+)[*_~](?=\s|$|[.,:;!?])/g, '$1$2')
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&amp;/g, '&');
}

function textOf(t) {
  return t ? plain(t.text || '') : '';
}

function drawBlock(block) {
  switch (block.type) {
    case 'header':
      return h('p', {}, h('strong', {}, textOf(block.text)));
    case 'section':
      return h(
        'div',
        {},
        block.text ? h('p', {}, textOf(block.text)) : null,
        block.fields ? h('ul', {}, block.fields.map((f) => h('li', {}, textOf(f)))) : null,
      );
    case 'context':
      return h('p', { class: 'muted' }, (block.elements || []).map(textOf).join('  '));
    case 'actions':
      return h('p', {}, (block.elements || []).map((e) => h('span', { class: 'badge' }, textOf(e.text))));
    case 'divider':
      return h('hr');
    default:
      return h('p', { class: 'muted' }, block.type);
  }
}

function composer() {
  const title = h('input', { name: 'title', required: true });
  const text = h('textarea', { name: 'text', rows: 2, cols: 40 });
  const level = select('level', LEVELS.map((s) => [s, s]), 'info');
  const out = h('div');
  const form = h(
    'form',
    { class: 'inline', 'aria-label': 'Preview a message' },
    field('Title', title),
    field('Level', level),
    field('Text', text),
    h('button', { type: 'submit' }, 'Preview'),
  );
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const message = { title: title.value, level: level.value };
    if (text.value.trim()) message.text = text.value;
    preview(out, message);
  });
  return h('section', { 'aria-label': 'Preview a message' }, h('h2', {}, 'Preview a message'), form, out);
}
