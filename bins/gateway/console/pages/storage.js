// Storage: namespaces and folders, upload with progress (a plain PUT through
// XMLHttpRequest, whose upload events report progress), download, delete with a
// confirmation. The namespaces come from the overview (those this key can read).

import { authHeader, del, get, request, seg } from '../api.js';
import { bytes, confirmAction, failure, field, h, heading, show, table, time } from '../ui.js';

export async function render(view, params) {
  const [namespace, ...rest] = params;
  const prefix = rest.length ? `${rest.join('/')}` : '';
  view.append(heading('Storage'));
  const picker = h('nav', { 'aria-label': 'Namespaces' });
  view.append(picker);
  try {
    const overview = await get('/api/v1/overview');
    const names = (overview.storage?.namespaces || []).map((n) => n.name);
    show(
      picker,
      names.length
        ? h('ul', { class: 'toolbar' }, names.map((n) =>
          h('li', {}, h('a', { href: `#/storage/${encodeURIComponent(n)}`, 'aria-current': n === namespace ? 'page' : null }, n))))
        : h('p', { class: 'muted' }, 'This key can read no namespace.'),
    );
    if (!namespace && overview.storage === undefined && overview.needs?.storage) {
      picker.append(h('div', { class: 'needs-scope', role: 'status' },
        h('p', {}, h('strong', {}, `This section needs the ${overview.needs.storage} scope.`))));
    }
  } catch (err) {
    // The overview refuses a key with no section's scope at all: it reads no namespace.
    show(picker, err.status === 403
      ? h('div', { class: 'needs-scope', role: 'status' }, h('p', {}, h('strong', {}, 'This section needs the blobs:read scope.')))
      : failure(err));
  }
  if (!namespace) return;
  const listing = h('div', { 'aria-live': 'polite' });
  view.append(h('h2', {}, `Namespace ${namespace}`), ...(prefix ? [breadcrumbs(namespace, prefix)] : []), listing,
    uploader(namespace, prefix, () => list(listing, namespace, prefix)));
  await list(listing, namespace, prefix);
}

function breadcrumbs(namespace, prefix) {
  const parts = prefix.split('/').filter(Boolean);
  const links = [h('a', { href: `#/storage/${encodeURIComponent(namespace)}` }, namespace)];
  let path = '';
  for (const p of parts) {
    path += `${p}/`;
    links.push(' / ', h('a', { href: `#/storage/${encodeURIComponent(namespace)}/${seg(path)}` }, p));
  }
  return h('nav', { 'aria-label': 'Folder path' }, links);
}

async function list(container, namespace, prefix) {
  try {
    const page = await get(`/api/v1/blobs/${seg(namespace)}`, { prefix, delimiter: '/', limit: 500 });
    const folders = (page.common_prefixes || []).map((p) => (typeof p === 'string' ? p : p.prefix));
    show(
      container,
      folders.length
        ? h('ul', { 'aria-label': 'Folders' }, folders.map((f) =>
          h('li', {}, h('a', { href: `#/storage/${encodeURIComponent(namespace)}/${seg(f)}` }, h('span', { class: 'badge' }, 'folder'), ' ', f.slice(prefix.length)))))
        : null,
      table(
        'Objects',
        [
          ['Key', (o) => h('span', { class: 'mono' }, o.key.slice(prefix.length))],
          ['Size', (o) => bytes(o.size)],
          ['Modified', (o) => time(o.last_modified)],
          ['', (o) => [
            h('button', { type: 'button', class: 'secondary', 'aria-label': `Download ${o.key}`, onclick: () => download(namespace, o.key) }, 'Download'),
            ' ',
            h('button', {
              type: 'button',
              class: 'danger',
              'aria-label': `Delete ${o.key}`,
              onclick: async () => {
                if (!(await confirmAction(`Delete ${namespace}/${o.key}? This cannot be undone.`, 'Delete'))) return;
                try {
                  await del(`/api/v1/blobs/${seg(namespace)}/${seg(o.key)}`);
                  await list(container, namespace, prefix);
                } catch (err) {
                  container.prepend(failure(err));
                }
              },
            }, 'Delete'),
          ]],
        ],
        page.objects || [],
        { empty: folders.length ? 'No objects at this level.' : 'This folder is empty.' },
      ),
      page.next_cursor ? h('p', { class: 'muted' }, 'Showing the first 500 objects.') : null,
    );
  } catch (err) {
    show(container, failure(err));
  }
}

// Downloads with the key in the header, then hands the bytes to the browser.
async function download(namespace, key) {
  const res = await request('GET', `/api/v1/blobs/${seg(namespace)}/${seg(key)}`, { headers: { Accept: '*/*' } });
  const blob = await res.blob();
  const href = URL.createObjectURL(blob);
  const a = h('a', { href, download: key.split('/').pop() || 'download' });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(href), 10000);
}

function uploader(namespace, prefix, done) {
  const file = h('input', { type: 'file', name: 'file', required: true });
  const name = h('input', { name: 'key', placeholder: 'file name (default: the file’s)' });
  const progress = h('progress', { max: 100, value: 0, 'aria-label': 'Upload progress' });
  const status = h('p', { role: 'status' });
  const form = h(
    'form',
    { class: 'inline', 'aria-label': 'Upload' },
    field('File', file),
    field('Name', name),
    h('button', { type: 'submit' }, 'Upload'),
    progress,
  );
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const chosen = file.files[0];
    if (!chosen) return;
    const key = `${prefix}${name.value.trim() || chosen.name}`;
    const xhr = new XMLHttpRequest();
    xhr.open('PUT', `/api/v1/blobs/${seg(namespace)}/${seg(key)}`);
    xhr.setRequestHeader('Authorization', authHeader());
    xhr.setRequestHeader('Content-Type', chosen.type || 'application/octet-stream');
    xhr.upload.addEventListener('progress', (p) => {
      if (p.lengthComputable) progress.value = Math.round((p.loaded / p.total) * 100);
    });
    xhr.addEventListener('load', () => {
      if (xhr.status >= 200 && xhr.status < 300) {
        progress.value = 100;
        status.textContent = `Uploaded ${key}.`;
        form.reset();
        done();
      } else {
        let detail = `HTTP ${xhr.status}`;
        try {
          detail = JSON.parse(xhr.responseText).detail || detail;
        } catch {
          /* not a problem document */
        }
        status.textContent = `Upload failed: ${detail}`;
      }
    });
    xhr.addEventListener('error', () => {
      status.textContent = 'Upload failed: the connection broke.';
    });
    status.textContent = `Uploading ${key}…`;
    progress.value = 0;
    xhr.send(chosen);
  });
  return h('section', { 'aria-label': 'Upload' }, h('h3', {}, 'Upload'), form, status);
}
