// Trusted certificates: the CAs client certificates are verified against
// (the internal CA, --client-ca files and the ones added here), with their
// expiry; add PEM certificates (pasted or read from a file) and stop
// trusting added ones. Changes reach every node's TLS listeners at once.

import {h, replace, field, confirmAction, table, toast, busy, fmtTime} from '../dom.js';
import * as api from '../api.js';
import {badge} from './overview.js';

const day = 24 * 3600 * 1000;
const maxPEM = 1 << 20; // the API's body limit

/** render builds the page into ctx.main. */
export async function render(ctx) {
  const list = h('section', {'aria-live': 'polite', 'aria-labelledby': 'h-certs'});
  const load = async () => {
    try {
      drawList(ctx, list, await api.get('/api/certificates'), load);
    } catch (e) {
      replace(list, h('p', {class: 'error', role: 'alert'}, e.message));
    }
  };
  replace(ctx.main,
    h('h1', {}, 'Trusted certificates'),
    h('p', {class: 'muted'}, 'Client certificates signed by one of these certificates may log in (MQTT over TLS and the certificate grant). A trusted CA vouches for any name, so add only CAs you control.'),
    h('h2', {id: 'h-certs'}, 'Trusted now'),
    list,
    ctx.can('POST', '/api/certificates') && uploadForm(load));
  await load();
}

function drawList(ctx, list, certs, reload) {
  const mayRemove = ctx.can('DELETE', '/api/certificates');
  replace(list, table('Trusted certificates', [
    {label: 'Subject', cell: (c) => nameCell(c.issuedTo, c.basicConstraints && c.basicConstraints.isCA)},
    {label: 'Issuer', cell: (c) => nameCell(c.issuedBy, false)},
    {label: 'Expires', cell: expiry},
    {label: 'SHA-256 fingerprint', class: 'fingerprint', cell: (c) => h('code', {}, colons(c.fingerprints.sha256))},
    {label: 'Actions', class: 'actions-cell', cell: (c) => {
      if (!c.removable) return h('span', {class: 'muted'}, 'Built in');
      return mayRemove && h('button', {type: 'button', class: 'danger small', 'aria-label': `Remove ${displayName(c)}`,
        onclick: () => remove(c, reload)}, 'Remove');
    }},
  ], certs, 'No certificates are trusted.'));
}

function displayName(c) {
  return c.issuedTo.commonName || c.issuedTo.organization || c.fingerprints.sha256.slice(0, 16);
}

function nameCell(n, isCA) {
  const more = [n.organization, n.organizationalUnit].filter(Boolean).join(' · ');
  return h('div', {},
    h('strong', {}, n.commonName || '(no common name)'), isCA ? [' ', badge('', 'CA')] : null,
    more && h('div', {class: 'muted'}, more),
    n.alternativeNames && n.alternativeNames.length ? h('div', {class: 'muted'}, n.alternativeNames.join(', ')) : null);
}

// expiry shows the expiry date and a badge when it is past or near.
function expiry(c) {
  const left = c.expiresOn - Date.now();
  let b = null;
  if (left <= 0) b = badge('bad', 'Expired');
  else if (left < 30 * day) b = badge('warn', daysLeft(left));
  return h('div', {}, fmtTime(c.expiresOn), b && [' ', b]);
}

function colons(hex) {
  return hex.toUpperCase().match(/../g).join(':');
}

async function remove(c, reload) {
  const ok = await confirmAction(`Stop trusting ${displayName(c)}?`,
    'Client certificates it signed no longer log in, on every node, from now on. Connected clients stay connected until they reconnect.', 'Remove');
  if (!ok) return;
  try {
    await api.del(`/api/certificates${api.q({id: c.id})}`);
    toast(`${displayName(c)} is no longer trusted`);
  } catch (e) {
    toast(e.message, 'error');
  }
  await reload();
}

// uploadForm adds the certificates of a PEM text, pasted or read from a
// file; the PEM is sent as is (application/x-pem-file).
function uploadForm(reload) {
  const pem = h('textarea', {name: 'pem', rows: 8, spellcheck: 'false', class: 'mono', placeholder: '-----BEGIN CERTIFICATE-----'});
  const pemField = field('PEM certificates', pem, 'One or more certificates, each between BEGIN CERTIFICATE and END CERTIFICATE lines.');
  const file = h('input', {type: 'file', name: 'file', accept: '.pem,.crt,.cer,application/x-pem-file'});
  const fileField = field('Or read them from a file', file);
  file.addEventListener('change', async () => {
    const f = file.files[0];
    if (!f) return;
    if (f.size > maxPEM) {
      fileField.setError('The file is larger than 1 MiB.');
      return;
    }
    fileField.setError('');
    pem.value = await f.text();
    pemField.setError('');
  });
  const add = h('button', {type: 'submit', class: 'primary'}, 'Trust these certificates');
  return h('form', {class: 'panel', novalidate: true, 'aria-labelledby': 'h-add', onsubmit: (e) => {
    e.preventDefault();
    const text = pem.value.trim();
    if (!text.includes('-----BEGIN CERTIFICATE-----')) {
      pemField.setError('Paste PEM certificates (a -----BEGIN CERTIFICATE----- block) or choose a file.');
      pem.focus();
      return;
    }
    pemField.setError('');
    busy(add, async () => {
      try {
        const added = await api.post('/api/certificates', new Blob([`${text}\n`], {type: 'application/x-pem-file'}));
        toast(`Trusted ${added.length} certificate${added.length === 1 ? '' : 's'}: ${added.map(displayName).join(', ')}`);
        pem.value = '';
        file.value = '';
        await reload();
      } catch (err) {
        pemField.setError(err.message);
      }
    });
  }},
  h('h2', {id: 'h-add'}, 'Add trusted certificates'),
  pemField, fileField,
  h('div', {class: 'actions'}, add));
}

function daysLeft(ms) {
  const n = Math.max(1, Math.ceil(ms / day));
  return `Expires in ${n} day${n === 1 ? '' : 's'}`;
}
