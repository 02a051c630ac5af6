// Connected clients: who is connected to this node (or to every node of a
// cluster sharing the store), as which user, with which credential; filter
// by user and kick a client (it may reconnect; suspend or change its user
// to keep it out).

import {h, replace, redraw, field, confirmAction, table, toast, fmtTime} from '../dom.js';
import * as api from '../api.js';

const protocol = {3: 'MQTT 3.1', 4: 'MQTT 3.1.1', 5: 'MQTT 5'};

/** render builds the page into ctx.main; the list refreshes every 3 s. */
export async function render(ctx) {
  const user = h('input', {type: 'search', name: 'username', autocomplete: 'off', spellcheck: 'false', value: ctx.params[0] || ''});
  const scope = h('select', {name: 'scope'}, h('option', {value: 'node'}, 'This node'), h('option', {value: 'cluster'}, 'All nodes'));
  const list = h('section', {'aria-live': 'polite', 'aria-labelledby': 'h-list'});
  const fresh = h('p', {class: 'muted'});
  replace(ctx.main,
    h('h1', {}, 'Connected clients'),
    h('form', {class: 'toolbar', role: 'search', onsubmit: (e) => { e.preventDefault(); load(); }},
      field('Filter by username', user),
      field('Show clients on', scope),
      h('button', {type: 'submit'}, 'Apply')),
    h('h2', {id: 'h-list', class: 'sr-only'}, 'Clients'),
    list, fresh);
  scope.addEventListener('change', () => load());
  let timer = 0;
  let seen = '';
  const load = async () => {
    clearTimeout(timer);
    try {
      const answer = await api.get(`/api/clients${api.q({scope: scope.value, username: user.value.trim()})}`);
      // Redraw only on a change: replacing the rows under a pointer that
      // is pressing one of their buttons would swallow the click.
      const now = JSON.stringify(answer.clients || []);
      if (now !== seen || !list.childElementCount) draw(ctx, list, answer.clients || [], load);
      seen = now;
      fresh.textContent = nodesLine(answer.nodes || []);
    } catch (e) {
      replace(list, h('p', {class: 'error', role: 'alert'}, e.message));
    }
    timer = setTimeout(load, 3000);
  };
  ctx.onLeave(() => clearTimeout(timer));
  await load();
}

function nodesLine(nodes) {
  if (!nodes.length) return '';
  return `Nodes: ${nodes.map((n) => `${n.id} (as of ${fmtTime(n.updatedAt)})`).join(', ')}.`;
}

function draw(ctx, list, clients, reload) {
  const mayKick = (c) => ctx.can('DELETE', `/api/clients/${c.clientId}`);
  redraw(list, () => table('Connected clients', [
    {label: 'Client ID', cell: (c) => h('code', {}, c.clientId)},
    {label: 'Username', cell: (c) => c.username || '—'},
    {label: 'Credential', cell: (c) => c.credential || '—'},
    {label: 'Protocol', cell: (c) => protocol[c.protocolVersion] || String(c.protocolVersion)},
    {label: 'Remote address', cell: (c) => h('code', {}, c.remoteAddr || '—')},
    {label: 'Connected since', cell: (c) => fmtTime(c.connectedAt)},
    {label: 'Node', cell: (c) => c.node || '—'},
    {label: 'Actions', class: 'actions-cell', cell: (c) => mayKick(c) && h('button', {
      type: 'button', class: 'danger small', dataset: {key: c.clientId}, 'aria-label': `Disconnect ${c.clientId}`,
      onclick: () => kick(c, reload),
    }, 'Disconnect')},
  ], clients, 'No clients connected.'));
}

async function kick(c, reload) {
  const ok = await confirmAction(`Disconnect ${c.clientId}?`,
    `The client of ${c.username || 'an unknown user'} is disconnected now. It may connect again: suspend its user or take away its permissions to keep it out.`, 'Disconnect');
  if (!ok) return;
  try {
    await api.del(`/api/clients/${api.seg(c.clientId)}`);
    toast(`Disconnected ${c.clientId}`);
  } catch (e) {
    toast(e.message, 'error');
  }
  await reload();
}
