// Storage: namespaces and folders, upload with progress (XMLHttpRequest, whose upload
// events report progress: a plain PUT, or for files from MULTIPART_FROM up a multipart
// upload whose parts are sent one by one and each retried), download, delete with a
// confirmation. The namespaces come from the overview (those this key can read).

import { authHeader, del, get, guard, one, post, request, seg } from '../api.js';
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
    const page = await get(`/api/v1/blobs/${one(namespace)}`, { prefix, delimiter: '/', limit: 500 });
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
                  await del(`/api/v1/blobs/${one(namespace)}/${seg(o.key)}`);
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
  const res = await request('GET', `/api/v1/blobs/${one(namespace)}/${seg(key)}`, { headers: { Accept: '*/*' } });
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
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const chosen = file.files[0];
    if (!chosen) return;
    const key = `${prefix}${name.value.trim() || chosen.name}`;
    const type = chosen.type || 'application/octet-stream';
    const shown = (sent) => {
      progress.value = chosen.size ? Math.round((sent / chosen.size) * 100) : 100;
    };
    status.textContent = `Uploading ${key}…`;
    progress.value = 0;
    try {
      if (chosen.size >= MULTIPART_FROM) {
        await multipart(namespace, key, chosen, type, shown);
      } else {
        await send('PUT', `/api/v1/blobs/${one(namespace)}/${seg(key)}`, chosen,
          { Authorization: authHeader(), 'Content-Type': type }, (loaded) => shown(loaded));
      }
      progress.value = 100;
      status.textContent = `Uploaded ${key}.`;
      form.reset();
      done();
    } catch (err) {
      status.textContent = `Upload failed: ${err.message}`;
    }
  });
  return h('section', { 'aria-label': 'Upload' }, h('h3', {}, 'Upload'), form, status);
}

// Files this large go up as a multipart upload.
const MULTIPART_FROM = 16 * 1024 * 1024;
// The path of the gateway's own part URL.
const PART_PATH = /^\/api\/v1\/blobs\/[^/]+\/uploads\/up_[0-9a-f]{32}\/parts\/[0-9]+$/;
// Each part is tried this many times before the upload is given up (and aborted).
const PART_TRIES = 3;

// One request through XMLHttpRequest (for its upload progress): resolves with the
// request once it answered 2xx, else rejects with the problem's detail.
function send(method, target, body, headers, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open(method, guard(target));
    for (const [k, v] of Object.entries(headers)) xhr.setRequestHeader(k, v);
    xhr.upload.addEventListener('progress', (p) => onProgress(p.loaded));
    xhr.addEventListener('load', () => {
      if (xhr.status >= 200 && xhr.status < 300) {
        resolve(xhr);
        return;
      }
      let detail = `HTTP ${xhr.status}`;
      try {
        detail = JSON.parse(xhr.responseText).detail || detail;
      } catch {
        /* not a problem document */
      }
      reject(new Error(detail));
    });
    xhr.addEventListener('error', () => reject(new Error('the connection broke')));
    xhr.send(body);
  });
}

// A multipart upload: start it, PUT each part (a slice of the file) to its URL, retrying
// a part that fails, then complete it with the parts' ETags; aborted if a part cannot be
// sent. Part URLs on another origin (S3's own) are outside this page's
// Content-Security-Policy: such an upload is aborted and the file goes in one PUT, which
// the gateway streams to S3 itself.
async function multipart(namespace, key, file, type, shown) {
  const base = `/api/v1/blobs/${one(namespace)}/uploads`;
  const upload = await post(base, { key, size: file.size, content_type: type });
  const here = `${base}/${one(upload.id)}`;
  // The gateway's own part URLs start with its public address (APP_URL), which may not be
  // the one this page was opened at: they are sent to this page's origin, path and
  // signature unchanged.
  const local = (u) => {
    const at = new URL(u, location.href);
    return PART_PATH.test(at.pathname) ? `${at.pathname}${at.search}` : null;
  };
  if (upload.parts.some((p) => local(p.url) === null)) {
    await del(here);
    await send('PUT', `/api/v1/blobs/${one(namespace)}/${seg(key)}`, file,
      { Authorization: authHeader(), 'Content-Type': type }, shown);
    return;
  }
  const etags = [];
  let sent = 0;
  try {
    for (const part of upload.parts) {
      const start = (part.number - 1) * upload.part_size;
      const slice = file.slice(start, Math.min(start + upload.part_size, file.size));
      let xhr = null;
      for (let attempt = 1; !xhr; attempt += 1) {
        try {
          // The browser sets Content-Length itself (a page may not).
          const headers = Object.fromEntries(Object.entries(part.headers || {})
            .filter(([k]) => k.toLowerCase() !== 'content-length'));
          xhr = await send(part.method || 'PUT', local(part.url), slice, headers, (loaded) => shown(sent + loaded));
        } catch (err) {
          if (attempt >= PART_TRIES) throw new Error(`part ${part.number}: ${err.message}`);
        }
      }
      etags.push({ number: part.number, etag: xhr.getResponseHeader('ETag') });
      sent += slice.size;
      shown(sent);
    }
    await post(`${here}/complete`, { parts: etags });
  } catch (err) {
    await del(here).catch(() => {});
    throw err;
  }
}
