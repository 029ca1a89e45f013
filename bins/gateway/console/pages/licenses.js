// Licences: search (owner, name, key prefix), filters, a licence's machines and events,
// its actions behind a confirmation, and issuing (the key shown once).

import { get, one, post } from '../api.js';
import { badge, confirmAction, failure, field, focusHeading, h, heading, select, show, shownOnce, table, time } from '../ui.js';

const SCAN_PAGES = 4; // up to 2000 licences searched in the browser
const PRODUCTS = [['', 'Any product'], ['client', 'client'], ['platform', 'platform']];
const STATUSES = [
  ['', 'Any status'],
  ['active', 'active'],
  ['suspended', 'suspended'],
  ['revoked', 'revoked'],
  ['expired', 'expired'],
];

// A whole address is asked of the API (its `owner_email` filter is exact, so every
// licence of that owner is found however many there are); other searches look through
// the newest licences here.
async function load(product, status, q) {
  const owner = /^[^\s@]+@[^\s@]+$/.test(q) ? q : undefined;
  const items = [];
  let cursor;
  let more = false;
  for (let i = 0; i < SCAN_PAGES; i += 1) {
    const page = await get('/api/v1/licenses', { product, status, owner_email: owner, cursor, limit: 500 });
    items.push(...page.items);
    cursor = page.next_cursor;
    if (!cursor) break;
    more = i === SCAN_PAGES - 1;
  }
  return { items, more };
}

// A key prefix is the key's first group: a typed key (or its start) matches it.
function matches(l, q) {
  if (!q) return true;
  const text = q.toLowerCase();
  const needle = text.replace(/[-\s]/g, '');
  const prefix = l.key_prefix.toLowerCase().replace(/-/g, '');
  const keyMatch = needle.length >= prefix.length ? needle.startsWith(prefix) : prefix.startsWith(needle);
  return (
    l.owner_email.toLowerCase().includes(text) ||
    l.name.toLowerCase().includes(text) ||
    l.id.toLowerCase() === text ||
    (/^[0-9a-z]+$/.test(needle) && keyMatch)
  );
}

export async function render(view, params) {
  const search = h('input', {
    type: 'search',
    name: 'q',
    placeholder: 'owner, name or key prefix',
    'aria-label': 'Search licences',
  });
  const product = select('product', PRODUCTS);
  const status = select('status', STATUSES);
  const results = h('div', { 'aria-live': 'polite' });
  const detail = h('section', { 'aria-label': 'Licence' });
  const issued = h('div');
  const form = h(
    'form',
    { class: 'inline', role: 'search' },
    field('Search', search),
    field('Product', product),
    field('Status', status),
    h('button', { type: 'submit' }, 'Search'),
  );
  view.append(heading('Licences'), form, issueForm(issued), issued, results, detail);

  let latest = 0;
  const refresh = async () => {
    const mine = ++latest;
    show(results, h('p', { class: 'muted' }, 'Loading…'));
    try {
      const q = search.value.trim();
      const { items, more } = await load(product.value, status.value, q);
      if (mine !== latest) return; // a newer search is on its way
      const found = items.filter((l) => matches(l, q));
      show(
        results,
        more ? h('p', { class: 'muted' }, `Searched the newest ${items.length} licences.`) : null,
        table(
          `${found.length} licence${found.length === 1 ? '' : 's'}`,
          [
            ['Name', (l) => h('a', { href: `#/licenses/${encodeURIComponent(l.id)}` }, l.name)],
            ['Owner', (l) => l.owner_email],
            ['Product', (l) => l.product],
            ['Status', (l) => badge(l.status)],
            ['Key', (l) => h('span', { class: 'mono' }, `${l.key_prefix}…`)],
            ['Expires', (l) => time(l.expires_at)],
            ['Machines', (l) => `${l.machines_count}${l.max_machines ? ` / ${l.max_machines}` : ''}`],
          ],
          found,
          { empty: 'No licence matches.' },
        ),
      );
    } catch (err) {
      if (mine === latest) show(results, failure(err));
    }
  };
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    refresh();
  });
  product.addEventListener('change', refresh);
  status.addEventListener('change', refresh);
  await refresh();
  if (params[0]) await showLicence(detail, params[0], refresh);
}

async function showLicence(container, id, refreshList) {
  show(container, h('p', { class: 'muted' }, 'Loading…'));
  let l;
  try {
    l = await get(`/api/v1/licenses/${one(id)}`);
  } catch (err) {
    show(container, failure(err));
    return;
  }
  const message = h('p', { role: 'status' });
  const act = async (verb, label, explain, body) => {
    if (!(await confirmAction(explain, label))) return;
    try {
      await post(`/api/v1/licenses/${one(l.id)}/${verb}`, body);
      await showLicence(container, l.id, refreshList);
      container.querySelector('[role=status]').textContent = `${label}: done.`;
      refreshList();
    } catch (err) {
      message.replaceChildren(failure(err));
    }
  };
  const duration = h('input', { name: 'duration', value: '1y', size: 6 });
  const actions = h('div', { class: 'toolbar' });
  if (l.status === 'active' || l.status === 'expired') {
    actions.append(
      h('button', {
        type: 'button',
        class: 'danger',
        onclick: () =>
          act('suspend', 'Suspend', `Suspend “${l.name}”? Its holders' checks fail until it is reinstated.`),
      }, 'Suspend'),
    );
  }
  if (l.status === 'suspended') {
    actions.append(
      h('button', {
        type: 'button',
        onclick: () => act('reinstate', 'Reinstate', `Reinstate “${l.name}”? It works again at once.`),
      }, 'Reinstate'),
    );
  }
  if (l.status !== 'revoked') {
    actions.append(
      field('Renew by', duration),
      h('button', {
        type: 'button',
        onclick: () =>
          act('renew', 'Renew', `Renew “${l.name}” by ${duration.value}?`, { duration: duration.value.trim() }),
      }, 'Renew'),
      h('button', {
        type: 'button',
        class: 'danger',
        onclick: () => act('revoke', 'Revoke', `Revoke “${l.name}” for good? This cannot be undone.`),
      }, 'Revoke'),
    );
  }
  const machines = h('div');
  const events = h('div');
  show(
    container,
    h('h2', { tabindex: '-1' }, l.name, ' ', badge(l.status)),
    h(
      'dl',
      {},
      h('dt', {}, 'Id'), h('dd', { class: 'mono' }, l.id),
      h('dt', {}, 'Owner'), h('dd', {}, l.owner_email),
      h('dt', {}, 'Product'), h('dd', {}, l.product),
      h('dt', {}, 'Key prefix'), h('dd', { class: 'mono' }, l.key_prefix),
      h('dt', {}, 'Created'), h('dd', {}, time(l.created_at)),
      h('dt', {}, 'Expires'), h('dd', {}, time(l.expires_at)),
      h('dt', {}, 'Last validated'), h('dd', {}, time(l.last_validated_at)),
      h('dt', {}, 'Entitlements'), h('dd', {}, (l.entitlements || []).join(', ') || '—'),
    ),
    actions,
    message,
    h('h3', {}, 'Machines'),
    machines,
    h('h3', {}, 'Events'),
    events,
  );
  focusHeading(container);
  get(`/api/v1/licenses/${one(l.id)}/machines`, { limit: 100 })
    .then((page) =>
      show(
        machines,
        table(
          'Machines',
          [
            ['Fingerprint', (m) => h('span', { class: 'mono' }, m.fingerprint)],
            ['Name', (m) => m.name || m.hostname || '—'],
            ['Platform', (m) => m.platform || '—'],
            ['Activated', (m) => time(m.created_at)],
            ['Last heartbeat', (m) => time(m.last_heartbeat_at)],
          ],
          page.items,
          { empty: 'No machine is activated.' },
        ),
      ),
    )
    .catch((err) => show(machines, failure(err)));
  get('/api/v1/events', { subject: `license:${l.id}`, limit: 50 })
    .then((page) => show(events, eventTable(page.items)))
    .catch((err) => show(events, failure(err)));
}

export function eventTable(items) {
  return table(
    'Events',
    [
      ['When', (e) => time(e.occurred_at)],
      ['Type', (e) => h('span', { class: 'mono' }, e.type)],
      ['Actor', (e) => e.actor || '—'],
      ['Details', (e) => h('span', { class: 'mono' }, JSON.stringify(e.data))],
    ],
    items,
    { empty: 'No events.' },
  );
}

function issueForm(out) {
  const product = select('product', PRODUCTS.slice(1), 'client');
  const name = h('input', { name: 'name', required: true });
  const owner = h('input', { name: 'owner_email', type: 'email', required: true });
  const duration = h('input', { name: 'duration', placeholder: '1y', size: 6 });
  const form = h(
    'form',
    { class: 'inline', 'aria-label': 'Issue a licence' },
    field('Product', product),
    field('Licence name', name),
    field('Owner email', owner),
    field('Duration', duration),
    h('button', { type: 'submit' }, 'Issue licence'),
  );
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const body = { product: product.value, name: name.value.trim(), owner_email: owner.value.trim() };
    if (duration.value.trim()) body.duration = duration.value.trim();
    try {
      const issued = await post('/api/v1/licenses', body);
      form.reset();
      show(
        out,
        shownOnce('Licence key', issued.key),
        h('p', {}, h('a', { href: `#/licenses/${encodeURIComponent(issued.id)}` }, `Open “${issued.name}”`)),
      );
    } catch (err) {
      show(out, failure(err));
    }
  });
  return h('details', {}, h('summary', {}, 'Issue a licence'), form);
}
