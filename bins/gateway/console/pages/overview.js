// Overview: licences by status, emails by status over the last 24 hours (with an hourly
// chart), Slack messages by status, storage per namespace and the jobs waiting; each
// part the key's scopes allow, the others naming the scope they need.

import { get, one } from '../api.js';
import { bytes, failure, h, heading, show, table, time } from '../ui.js';

function needs(scope) {
  return h('div', { class: 'needs-scope', role: 'status' }, h('p', {}, h('strong', {}, `This section needs the ${scope} scope.`)));
}

function counts(caption, map) {
  const rows = Object.entries(map || {});
  return table(caption, [['Status', ([s]) => s], ['Count', ([, n]) => n]], rows, { empty: 'None.' });
}

function card(title, href, ...body) {
  return h('section', { class: 'card', 'aria-label': title }, h('h2', {}, href ? h('a', { href }, title) : title), body);
}

function chart(hours) {
  const max = Math.max(1, ...hours.map((x) => x.count));
  const bars = h('div', { class: 'chart', role: 'img', 'aria-label': `Emails per hour over the last 24 hours, at most ${max} in an hour` });
  for (const x of hours) {
    const bar = h('span', { title: `${new Date(x.hour).toLocaleString()}: ${x.count}` });
    bar.style.height = `${Math.round((x.count / max) * 100)}%`;
    bars.append(bar);
  }
  return [bars, h('p', { class: 'legend' }, 'Emails per hour, last 24 hours (oldest left).')];
}

export async function render(view) {
  view.append(heading('Overview'));
  let o;
  try {
    o = await get('/api/v1/overview');
  } catch (err) {
    view.append(err.status === 403
      ? h('div', { class: 'needs-scope', role: 'status' }, h('p', {}, h('strong', {},
        'The overview needs the scope of one of its sections: licenses:read, emails:read, slack:read, blobs:read, rules:admin or webhooks:admin.')))
      : failure(err));
    return;
  }
  const need = o.needs || {};
  const storage = h('div');
  view.append(
    h('p', { class: 'muted' }, 'As of ', time(o.generated_at), '.'),
    h(
      'div',
      { class: 'cards' },
      card('Licences', '#/licenses', o.licenses ? counts('Licences by status', o.licenses.by_status) : needs(need.licenses)),
      card('Emails (24 h)', '#/emails', o.emails ? [counts('Emails by status, last 24 hours', o.emails.by_status), chart(o.emails.hourly || [])] : needs(need.emails)),
      card('Slack', '#/slack', o.slack ? counts('Slack messages by status', o.slack.by_status) : needs(need.slack)),
      card('Storage', '#/storage', o.storage ? storage : needs(need.storage)),
      card('Jobs waiting', null, o.jobs ? table('Jobs by queue', [
        ['Queue', (j) => h('span', { class: 'mono' }, j.queue)],
        ['State', (j) => j.state],
        ['Jobs', (j) => j.count],
        ['Oldest', (j) => time(j.oldest)],
      ], o.jobs, { empty: 'No jobs waiting.' }) : needs(`${need.jobs}, slack:read, rules:admin or webhooks:admin`)),
    ),
  );
  if (o.storage) {
    const rows = await Promise.all(o.storage.namespaces.map(async (n) => {
      try {
        let count = 0;
        let size = 0;
        let cursor;
        let more = false;
        for (let i = 0; i < 2; i += 1) {
          const page = await get(`/api/v1/blobs/${one(n.name)}`, { cursor, limit: 500 });
          count += page.objects.length;
          size += page.objects.reduce((s, x) => s + x.size, 0);
          cursor = page.next_cursor;
          if (!cursor) break;
          more = i === 1;
        }
        return { name: n.name, count: `${count}${more ? '+' : ''}`, size: `${bytes(size)}${more ? '+' : ''}` };
      } catch (err) {
        return { name: n.name, count: '—', size: err.message };
      }
    }));
    show(storage, table('Storage per namespace', [
      ['Namespace', (r) => h('a', { href: `#/storage/${encodeURIComponent(r.name)}` }, r.name)],
      ['Objects', (r) => r.count],
      ['Size', (r) => r.size],
    ], rows, { empty: 'No namespace.' }));
  }
}
