// Backup & restore: the state of this node's database maintenance, start
// a backup (optionally with the secret keys) and download it, and restore
// an archive, which replaces every user, role and setting. The state is
// read every second while an operation runs.

import {h, replace, field, checkbox, confirmAction, toast, busy, fmtTime} from '../dom.js';
import * as api from '../api.js';
import {badge} from './overview.js';

/** render builds the page into ctx.main. */
export async function render(ctx) {
  const state = h('section', {class: 'panel', 'aria-labelledby': 'h-db-state'});
  const result = h('div', {'aria-live': 'polite'});
  const page = {status: null, timer: 0, restoring: false, seq: 0};
  const refresh = async () => {
    clearTimeout(page.timer);
    // Only the latest read draws: an earlier one answering late (the
    // first load, when Start backup is pressed at once) would show the
    // state before the operation and stop the polling.
    page.seq += 1;
    const mine = page.seq;
    let st;
    try {
      st = await api.get('/api/maintenance/db');
    } catch (e) {
      if (mine === page.seq) replace(state, h('p', {class: 'error', role: 'alert'}, e.message));
      return;
    }
    if (mine !== page.seq) return;
    page.status = st;
    drawState(ctx, state, page.status);
    if (page.status.running) {
      page.timer = setTimeout(refresh, 1000);
    } else if (page.restoring) {
      page.restoring = false;
      restoreDone(result, page.status.restore);
    }
  };
  ctx.onLeave(() => clearTimeout(page.timer));
  replace(ctx.main,
    h('h1', {}, 'Backup & restore'),
    h('p', {class: 'muted'}, 'A backup is a consistent snapshot of the whole model (users, roles, registry, trusted certificates, settings) as a gzip archive. A restore replaces the model with an archive\'s, atomically.'),
    state,
    ctx.can('POST', '/api/maintenance/db/backup') && backupForm(refresh),
    ctx.can('POST', '/api/maintenance/db/restore') && restoreForm(page, refresh, result));
  await refresh();
}

function drawState(ctx, panel, st) {
  const b = st.backup;
  const mayDownload = ctx.can('GET', '/api/maintenance/db/backup') && b && b.succeeded && b.endDate && !st.running;
  replace(panel,
    h('h2', {id: 'h-db-state', class: 'inline'}, 'State: ', st.running ? badge('warn', 'Running…') : badge('ok', 'Idle')),
    h('div', {class: 'row'},
      operation('Last backup', b, 'No backup since this node started.'),
      operation('Last restore', st.restore, 'No restore since this node started.')),
    mayDownload && h('div', {class: 'actions'},
      h('button', {type: 'button', class: 'primary', onclick: (e) => busy(e.currentTarget, download)}, 'Download the last backup')));
}

function operation(title, op, none) {
  if (!op) return h('div', {}, h('h3', {}, title), h('p', {class: 'empty'}, none));
  let state = badge('warn', 'Running');
  if (op.endDate) state = op.succeeded ? badge('ok', 'Succeeded') : badge('bad', 'Failed');
  return h('div', {class: 'op'},
    h('h3', {}, `${title} `, state),
    h('dl', {},
      h('dt', {}, 'Backup ID'), h('dd', {}, h('code', {}, op.id)),
      h('dt', {}, 'Started'), h('dd', {}, fmtTime(op.startDate)),
      h('dt', {}, 'Finished'), h('dd', {}, op.endDate ? fmtTime(op.endDate) : '—'),
      h('dt', {}, 'Status'), h('dd', {class: 'status-message'}, op.statusMessage)));
}

// download fetches the archive with the token (never in a URL) and saves
// it under the name the API gives it.
async function download() {
  const res = await api.api('GET', '/api/maintenance/db/backup', undefined, {raw: true});
  const blob = await res.blob();
  const m = /filename="?([^";]+)"?/.exec(res.headers.get('Content-Disposition') || '');
  const name = m ? m[1] : 'warden-backup.gz';
  const url = URL.createObjectURL(blob);
  const a = h('a', {href: url, download: name, hidden: true});
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60000);
  toast(`Saved ${name} (${blob.size} bytes)`);
}

function backupForm(refresh) {
  const keys = checkbox('Include the secret keys (token signing keys, internal CA, MFA encryption key)', false, () => {
    warn.hidden = !keys.input.checked;
  });
  const warn = h('p', {class: 'note', hidden: true},
    'Whoever holds an archive with the keys can sign a login token for any user and a certificate for any name. Keep it like the keys themselves; only holders of connectware-admin may take or download it.');
  const start = h('button', {type: 'submit', class: 'primary'}, 'Start backup');
  return h('form', {class: 'panel', novalidate: true, 'aria-labelledby': 'h-backup', onsubmit: (e) => {
    e.preventDefault();
    busy(start, async () => {
      await api.post(`/api/maintenance/db/backup${api.q({includeKeys: keys.input.checked ? 'true' : ''})}`, undefined);
      toast('Backup started');
      await refresh();
    });
  }},
  h('h2', {id: 'h-backup'}, 'Back up'),
  keys, warn,
  h('div', {class: 'actions'}, start));
}

function restoreForm(page, refresh, result) {
  const file = h('input', {type: 'file', name: 'archive', accept: '.gz,application/gzip'});
  const fileField = field('Backup archive (.gz)', file);
  const go = h('button', {type: 'submit', class: 'danger'}, 'Restore…');
  return h('form', {class: 'panel', novalidate: true, 'aria-labelledby': 'h-restore', onsubmit: async (e) => {
    e.preventDefault();
    const f = file.files[0];
    if (!f) {
      fileField.setError('Choose a backup archive first.');
      file.focus();
      return;
    }
    fileField.setError('');
    const ok = await confirmAction('Replace everything with this backup?',
      `Every user, role, permission, registry entry, trusted certificate and setting is replaced by those in ${f.name}. Tokens issued after the backup stop working, so sessions (yours too) may end.`, 'Restore');
    if (!ok) return;
    replace(result);
    await busy(go, async () => {
      await api.post('/api/maintenance/db/restore', new Blob([f], {type: 'application/gzip'}));
      page.restoring = true;
      replace(result, h('p', {}, badge('warn', 'Restore running…')));
      await refresh();
    });
  }},
  h('h2', {id: 'h-restore'}, 'Restore'),
  h('p', {class: 'note'}, 'A restore replaces the whole model on every node sharing the store. Take a backup first.'),
  fileField,
  h('div', {class: 'actions'}, go),
  result);
}

function restoreDone(result, op) {
  if (!op) return;
  if (op.succeeded) {
    replace(result, h('div', {class: 'restore-result', role: 'status'},
      h('p', {}, badge('ok', '✓ Restored'), ' ', op.statusMessage, '.'),
      h('p', {}, 'Sessions and tokens issued after the backup have ended; anyone signed in since then must sign in again.')));
  } else {
    replace(result, h('p', {class: 'error', role: 'alert'}, op.statusMessage));
  }
}
