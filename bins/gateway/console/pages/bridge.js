// Rules and webhooks: both lists, and a webhook's delivery log.

import { get, one } from '../api.js';
import { badge, failure, h, heading, show, table, time } from '../ui.js';

export async function render(view, params) {
  const rules = h('div');
  const hooks = h('div');
  const deliveries = h('section', { 'aria-label': 'Deliveries' });
  view.append(heading('Rules and webhooks'), h('h2', {}, 'Rules'), rules, h('h2', {}, 'Webhooks'), hooks, deliveries);
  const loads = [
    get('/api/v1/rules', { limit: 500 })
      .then((page) =>
        show(rules, table('Rules', [
          ['Name', (r) => r.name],
          ['Event type', (r) => h('span', { class: 'mono' }, r.event_type)],
          ['Does', (r) => [r.actions.slack ? `Slack ${r.actions.slack.channel || '(default channel)'}` : null,
            r.actions.email ? `Email ${r.actions.email.template}` : null].filter(Boolean).join('; ')],
          ['On', (r) => badge(r.enabled ? 'active' : 'paused')],
          ['Changed', (r) => time(r.updated_at)],
        ], page.items, { empty: 'No rules.' })))
      .catch((err) => show(rules, failure(err))),
    get('/api/v1/webhooks', { limit: 500 })
      .then((page) =>
        show(hooks, table('Webhooks', [
          ['URL', (w) => h('a', { href: `#/bridge/${encodeURIComponent(w.id)}` }, w.url)],
          ['Events', (w) => h('span', { class: 'mono' }, w.event_types.join(' '))],
          ['On', (w) => badge(w.enabled ? 'active' : 'paused')],
          ['Description', (w) => w.description || '—'],
        ], page.items, { empty: 'No webhooks.' })))
      .catch((err) => show(hooks, failure(err))),
  ];
  await Promise.all(loads);
  if (params[0]) {
    try {
      const page = await get(`/api/v1/webhooks/${one(params[0])}/deliveries`, { limit: 100 });
      show(deliveries, h('h2', {}, 'Delivery log'), table('Deliveries', [
        ['When', (d) => time(d.delivered_at)],
        ['Event', (d) => h('span', { class: 'mono' }, d.event_id)],
        ['Attempt', (d) => d.attempt],
        ['Status', (d) => (d.status_code === null || d.status_code === undefined ? '—' : d.status_code)],
        ['Took', (d) => `${d.duration_ms} ms`],
        ['Error', (d) => d.error || ''],
      ], page.items, { empty: 'No deliveries yet.' }));
    } catch (err) {
      show(deliveries, failure(err));
    }
  }
}
