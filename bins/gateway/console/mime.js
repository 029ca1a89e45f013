// Just enough MIME (RFC 2045/2046) to show a stored message: finds its HTML part (else
// its text part) and decodes it (base64 or quoted-printable, then its charset).

// Bytes as a string of code units 0-255, so that byte offsets and string offsets agree.
function binary(bytes) {
  let out = '';
  for (let i = 0; i < bytes.length; i += 0x8000) {
    out += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  }
  return out;
}

function toBytes(bin) {
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i += 1) out[i] = bin.charCodeAt(i) & 0xff;
  return out;
}

function splitHead(text) {
  const m = /\r?\n\r?\n/.exec(text);
  if (!m) return { head: text, body: '' };
  return { head: text.slice(0, m.index), body: text.slice(m.index + m[0].length) };
}

function headers(head) {
  const map = new Map();
  const unfolded = head.replace(/\r?\n[ \t]+/g, ' ');
  for (const line of unfolded.split(/\r?\n/)) {
    const i = line.indexOf(':');
    if (i > 0) map.set(line.slice(0, i).trim().toLowerCase(), line.slice(i + 1).trim());
  }
  return map;
}

function param(value, name) {
  const re = new RegExp(`;\\s*${name}\\s*=\\s*(?:"([^"]*)"|([^;\\s]+))`, 'i');
  const m = re.exec(value || '');
  return m ? (m[1] ?? m[2]) : null;
}

function decodeBody(body, encoding) {
  const enc = (encoding || '7bit').toLowerCase();
  if (enc === 'base64') {
    try {
      return atob(body.replace(/[^A-Za-z0-9+/=]/g, ''));
    } catch {
      return body;
    }
  }
  if (enc === 'quoted-printable') {
    return body
      .replace(/=\r?\n/g, '')
      .replace(/=([0-9A-Fa-f]{2})/g, (_, hex) => String.fromCharCode(parseInt(hex, 16)));
  }
  return body;
}

function text(bin, charset) {
  try {
    return new TextDecoder(charset || 'utf-8').decode(toBytes(bin));
  } catch {
    return new TextDecoder('utf-8').decode(toBytes(bin));
  }
}

// The parts of a message, depth first: { type, text }.
function parts(entity, out, depth = 0) {
  const { head, body } = splitHead(entity);
  const h = headers(head);
  const type = (h.get('content-type') || 'text/plain').split(';')[0].trim().toLowerCase();
  if (type.startsWith('multipart/') && depth < 8) {
    const boundary = param(h.get('content-type'), 'boundary');
    if (!boundary) return;
    const sections = body.split(`--${boundary}`);
    for (const section of sections.slice(1)) {
      if (section.startsWith('--')) break;
      parts(section.replace(/^\r?\n/, ''), out, depth + 1);
    }
    return;
  }
  if (type === 'text/html' || type === 'text/plain') {
    const decoded = decodeBody(body, h.get('content-transfer-encoding'));
    out.push({ type, text: text(decoded, param(h.get('content-type'), 'charset')) });
  }
}

// { html, text } of a raw message given as bytes.
export function readMessage(bytes) {
  const found = [];
  parts(binary(bytes), found);
  const html = found.find((p) => p.type === 'text/html');
  const plain = found.find((p) => p.type === 'text/plain');
  return { html: html ? html.text : null, text: plain ? plain.text : null };
}
