// Client registry: open it for a while (with a countdown) or lock it, and
// grant or reject the devices that register while it is open. Requests
// appear as they arrive (the list is read again every 2 seconds).

import {h, replace, redraw, field, checkbox, modal, confirmAction, table, toast, busy, fmtTime, fmtDuration} from '../dom.js';
import * as api from '../api.js';
import {topicProblem} from '../perm.js';
import {badge} from './overview.js';

const durations = [[1, '1 minute'], [5, '5 minutes'], [15, '15 minutes'], [30, '30 minutes'], [60, '1 hour']];

/** render builds the page into ctx.main. */
export async function render(ctx) {
  const status = h('div', {class: 'panel', 'aria-labelledby': 'h-state'});
  const list = h('section', {'aria-labelledby': 'h-requests'});
  replace(ctx.main,
    h('h1', {}, 'Client registry'),
    h('p', {class: 'muted'}, 'Devices register themselves over HTTP (POST /api/client-registry/register) or by connecting with unknown credentials while the registry is open. Nothing is granted until you confirm it here.'),
    status,
    h('h2', {id: 'h-requests'}, 'Requests'),
    list);
  const state = {until: 0, roles: null, requests: [], seen: ''};
  const draw = () => drawStatus(ctx, status, state, refresh);
  const refresh = async () => {
    const st = await api.get('/api/client-registry/status');
    state.until = st.status === 'open' ? st.unlockedUntil : 0;
    draw();
    const requests = await api.get('/api/client-registry');
    // Redraw only on a change: replacing the rows under a pointer that is
    // pressing one of their buttons would swallow the click.
    const seen = JSON.stringify(requests);
    if (seen === state.seen && list.childElementCount) return;
    state.seen = seen;
    state.requests = requests;
    drawRequests(ctx, list, state, refresh);
  };
  await refresh();
  const tick = setInterval(() => {
    const left = (state.until - Date.now()) / 1000;
    const el = status.querySelector('.countdown');
    if (el && left > 0) el.textContent = fmtDuration(left);
    else if (el) refresh();
  }, 1000);
  const poll = setInterval(() => refresh().catch(() => {}), 2000);
  ctx.onLeave(() => { clearInterval(tick); clearInterval(poll); });
}

function drawStatus(ctx, panel, state, refresh) {
  const open = state.until > Date.now();
  const mayOpen = ctx.can('POST', '/api/client-registry/open');
  const mayLock = ctx.can('POST', '/api/client-registry/lock');
  const duration = h('select', {name: 'duration'}, durations.map(([m, label]) => h('option', {value: m * 60000, selected: m === 5}, label)));
  const openBtn = h('button', {type: 'button', class: 'primary', onclick: () => busy(openBtn, async () => {
    await api.post('/api/client-registry/open', {duration: Number(duration.value)});
    toast('Registry opened');
    await refresh();
  })}, open ? 'Extend' : 'Open registry');
  const lockBtn = h('button', {type: 'button', onclick: async () => {
    if (!await confirmAction('Lock the registry?', 'Locking also discards every request that waits for a decision.', 'Lock')) return;
    await busy(lockBtn, async () => {
      await api.post('/api/client-registry/lock', {});
      toast('Registry locked');
      await refresh();
    });
  }}, 'Lock now');
  // Rebuild only when the state flips, so a select the user is on keeps focus.
  if (panel.dataset.open === String(open) && panel.childElementCount) return;
  panel.dataset.open = String(open);
  replace(panel,
    h('h2', {id: 'h-state', class: 'inline'}, 'State: ', open ? badge('warn', 'Open') : badge('ok', 'Locked')),
    open ? h('p', {}, 'Locks automatically in ', h('span', {class: 'countdown', role: 'timer', 'aria-live': 'off'}, fmtDuration((state.until - Date.now()) / 1000)), ` (at ${fmtTime(state.until)}).`)
      : h('p', {class: 'muted'}, 'Registrations are refused (423) while the registry is locked.'),
    h('div', {class: 'toolbar'},
      mayOpen && field(open ? 'Keep it open for' : 'Open for', duration),
      mayOpen && openBtn,
      mayLock && open && lockBtn));
}

function drawRequests(ctx, list, state, refresh) {
  const mayConfirm = ctx.can('POST', '/api/client-registry/confirm');
  const mayReject = ctx.can('POST', '/api/client-registry/reject');
  const rows = [...state.requests].sort((a, b) => (a.granted - b.granted) || a.timestamp.localeCompare(b.timestamp));
  redraw(list, () => table('Registration requests', [
    {label: 'Device (username)', cell: (r) => h('strong', {}, r.username)},
    {label: 'Credential', cell: (r) => r.credentialType},
    {label: 'Flow', cell: (r) => r.flow},
    {label: 'Context', cell: (r) => r.context || '—'},
    {label: 'Roles asked for', cell: (r) => (r.roles || []).join(', ') || '—'},
    {label: 'Received', cell: (r) => fmtTime(r.timestamp)},
    {label: 'State', cell: (r) => r.granted ? badge('ok', 'Granted') : badge('warn', 'Pending')},
    {label: 'Actions', class: 'actions-cell', cell: (r) => r.granted ? '' : [
      mayConfirm && h('button', {type: 'button', class: 'primary small', dataset: {key: `c:${r.username}`}, 'aria-label': `Confirm ${r.username}`,
        onclick: () => confirmRequest(ctx, r, state, refresh)}, 'Confirm…'),
      mayReject && h('button', {type: 'button', class: 'small', dataset: {key: `r:${r.username}`}, 'aria-label': `Reject ${r.username}`,
        onclick: () => reject(r, refresh)}, 'Reject'),
    ]},
  ], rows, 'No requests. Open the registry, then let the device register.'));
}

async function reject(r, refresh) {
  if (!await confirmAction(`Reject ${r.username}?`, 'The request is discarded. The device may ask again while the registry is open.', 'Reject')) return;
  try {
    await api.post('/api/client-registry/reject', {username: r.username});
    toast(`Rejected ${r.username}`);
    await refresh();
  } catch (e) {
    toast(e.message, 'error');
  }
}

async function confirmRequest(ctx, r, state, refresh) {
  if (state.roles === null && ctx.can('GET', '/api/roles')) {
    try {
      state.roles = (await api.get('/api/roles')).filter((x) => x.isShared);
    } catch {
      state.roles = [];
    }
  }
  const roles = state.roles || [];
  const boxes = roles.map((role) => {
    const c = checkbox(role.name, (r.roles || []).includes(role.name));
    c.input.value = role.id;
    return c;
  });
  const prefix = h('input', {name: 'prefix', placeholder: 'e.g. plant1/', autocomplete: 'off', spellcheck: 'false'});
  const prefixField = field('Publish prefix (optional)', prefix, 'Prepended to every topic the device publishes to; it ends in "/".');
  prefix.addEventListener('input', () => prefixField.setError(prefix.value && topicProblem(prefix.value) ? `The prefix ${topicProblem(prefix.value)}.` : ''));
  const err = h('p', {class: 'error', role: 'alert'});
  const done = await modal(`Confirm ${r.username}`, (close) => {
    const ok = h('button', {type: 'submit', class: 'primary'}, 'Confirm');
    return h('form', {novalidate: true, onsubmit: async (e) => {
      e.preventDefault();
      if (prefix.value && topicProblem(prefix.value)) return;
      ok.disabled = true;
      try {
        const body = {username: r.username, roles: boxes.filter((b) => b.input.checked).map((b) => b.input.value)};
        if (prefix.value) body.mqttPublishPrefix = prefix.value;
        await api.post('/api/client-registry/confirm', body);
        close(true);
      } catch (e2) {
        err.textContent = e2.message;
        ok.disabled = false;
      }
    }},
    h('p', {}, `Credential: ${r.credentialType}. `, r.context ? `Context: ${r.context}.` : ''),
    roles.length ? h('fieldset', {}, h('legend', {}, 'Roles to grant'), boxes)
      : h('p', {class: 'muted'}, 'No roles to offer (none exist, or you may not read them).'),
    prefixField, err,
    h('div', {class: 'actions'}, ok, h('button', {type: 'button', onclick: () => close(false)}, 'Cancel')));
  });
  if (done) {
    toast(`${r.username} confirmed: it can connect now`);
    await refresh();
  }
}
