// API keys: the list (never secrets), create (the key shown once, with a Copy button)
// and revoke behind a confirmation.

import { del, get, one, post } from '../api.js';
import { badge, confirmAction, failure, field, h, heading, show, shownOnce, table, time } from '../ui.js';

export async function render(view) {
  const list = h('div', { 'aria-live': 'polite' });
  const created = h('div');
  const name = h('input', { name: 'name', required: true });
  const scopes = h('input', { name: 'scopes', required: true, placeholder: 'licenses:read emails:read', size: 36 });
  const form = h(
    'form',
    { class: 'inline', 'aria-label': 'Create an API key' },
    field('Key name', name),
    field('Scopes', scopes),
    h('button', { type: 'submit' }, 'Create key'),
  );
  view.append(heading('API keys'), list, h('h2', {}, 'Create an API key'), form, created);

  const refresh = async () => {
    try {
      const page = await get('/api/v1/api-keys', { limit: 500 });
      show(
        list,
        table(
          'Keys',
          [
            ['Name', (k) => k.name],
            ['Prefix', (k) => h('span', { class: 'mono' }, k.prefix)],
            ['Scopes', (k) => h('span', { class: 'mono' }, k.scopes.join(' '))],
            ['Status', (k) => badge(k.status)],
            ['Created', (k) => time(k.created_at)],
            ['Last used', (k) => time(k.last_used_at)],
            ['', (k) =>
              k.status === 'active'
                ? h('button', {
                  type: 'button',
                  class: 'danger',
                  'aria-label': `Revoke ${k.name}`,
                  onclick: async () => {
                    if (!(await confirmAction(`Revoke the key “${k.name}”? Anything using it stops working at once.`, 'Revoke'))) return;
                    try {
                      await del(`/api/v1/api-keys/${one(k.id)}`);
                      await refresh();
                    } catch (err) {
                      list.prepend(failure(err));
                    }
                  },
                }, 'Revoke')
                : ''],
          ],
          page.items,
          { empty: 'No keys.' },
        ),
      );
    } catch (err) {
      show(list, failure(err));
    }
  };

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    try {
      const key = await post('/api/v1/api-keys', {
        name: name.value.trim(),
        scopes: scopes.value.split(/[\s,]+/).filter(Boolean),
      });
      form.reset();
      show(created, shownOnce('API key', key.key));
      await refresh();
    } catch (err) {
      show(created, failure(err));
    }
  });
  await refresh();
}
