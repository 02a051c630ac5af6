// Users: find users (search by part of the name as you type, pages,
// auto-generated users hidden unless asked for), create one (roles chosen
// by name, publish prefix, the password policy checked as you type), and a
// user's own page (#/users/<id>): settings, roles, password, suspend,
// reset MFA, delete, tokens, pinned certificates and trusted devices.

import {h, replace, field, checkbox, modal, confirmAction, table, toast, busy, fmtTime} from '../dom.js';
import * as api from '../api.js';
import {topicProblem} from '../perm.js';
import {badge} from './overview.js';

const pageSize = 20;

/** render builds the list (#/users) or one user's page (#/users/<id>). */
export async function render(ctx) {
  if (ctx.params[0]) return detail(ctx, ctx.params[0]);
  return list(ctx);
}

// ---- the password policy, shared with the account page ----

const maxPasswordBytes = 1024;
const ruleText = {
  lower: (n) => `${n} lower-case letter${n === 1 ? '' : 's'}`,
  upper: (n) => `${n} upper-case letter${n === 1 ? '' : 's'}`,
  numeric: (n) => `${n} digit${n === 1 ? '' : 's'}`,
  symbol: (n) => `${n} symbol${n === 1 ? '' : 's'} or punctuation mark${n === 1 ? '' : 's'}`,
};

// classes counts a password's characters the way warden's policy does
// (credential.Policy.Check: runes; lower, upper, digit, punctuation/symbol/space).
function classes(pw) {
  const c = {min: 0, lower: 0, upper: 0, numeric: 0, symbol: 0};
  for (const ch of pw) {
    c.min += 1;
    if (/\p{Ll}/u.test(ch)) c.lower += 1;
    else if (/\p{Lu}/u.test(ch)) c.upper += 1;
    else if (/\p{Nd}/u.test(ch)) c.numeric += 1;
    else if (/[\p{P}\p{S} ]/u.test(ch)) c.symbol += 1;
  }
  return c;
}

// policyRules lists the rules of a policy as {key, want, text}.
function policyRules(policy) {
  const out = [{key: 'min', want: policy.min || 0, text: `at least ${policy.min || 0} characters`}];
  for (const k of ['lower', 'upper', 'numeric', 'symbol']) {
    if (policy[k] > 0) out.push({key: k, want: policy[k], text: `at least ${ruleText[k](policy[k])}`});
  }
  return out;
}

const genSets = {
  lower: 'abcdefghijkmnopqrstuvwxyz',
  upper: 'ABCDEFGHJKLMNPQRSTUVWXYZ',
  numeric: '23456789',
  symbol: '-_.!#%+=@',
};

function pick(set) {
  // Rejection sampling: no modulo bias.
  const limit = 256 - (256 % set.length);
  const b = new Uint8Array(1);
  do crypto.getRandomValues(b); while (b[0] >= limit);
  return set[b[0] % set.length];
}

/** generatePassword makes a random password meeting policy (as credential.Generate). */
export function generatePassword(policy) {
  const need = ['lower', 'upper', 'numeric', 'symbol'].reduce((n, k) => n + (policy[k] || 0), 0);
  const length = Math.max(20, policy.min || 0, need);
  const out = [];
  for (const k of ['lower', 'upper', 'numeric', 'symbol']) {
    for (let i = 0; i < (policy[k] || 0); i += 1) out.push(pick(genSets[k]));
  }
  const all = Object.values(genSets).join('');
  while (out.length < length) out.push(pick(all));
  for (let i = out.length - 1; i > 0; i -= 1) {
    const j = Number(crypto.getRandomValues(new Uint32Array(1))[0] % (i + 1));
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out.join('');
}

/**
 * passwordField is a new-password input checked against policy as it is
 * typed: each rule shows met or unmet, and a live hint says what is still
 * missing. opts: label, name, optional (empty allowed), generate (a button
 * that fills in a random password). .problem() is '' when acceptable.
 */
export function passwordField(policy, opts) {
  const input = h('input', {type: 'password', name: opts.name, autocomplete: 'new-password', spellcheck: 'false', autocapitalize: 'none'});
  const rules = policyRules(policy);
  const items = rules.map((r) => h('li', {class: 'unmet'}, r.text));
  const live = h('p', {class: 'pw-status', id: `${opts.name}-status`, 'aria-live': 'polite'});
  const show = checkbox('Show password', false, () => { input.type = show.input.checked ? 'text' : 'password'; });
  const gen = opts.generate && h('button', {type: 'button', class: 'small', onclick: () => {
    input.value = generatePassword(policy);
    input.type = 'text';
    show.input.checked = true;
    input.dispatchEvent(new Event('input'));
    input.focus();
    input.select();
  }}, 'Generate');
  const f = field(opts.label, input, opts.optional ? 'Leave empty for a user that signs in with a client certificate only.' : '');
  input.setAttribute('aria-describedby', `${input.getAttribute('aria-describedby')} ${live.id}`);
  const problem = () => {
    const pw = input.value;
    if (pw === '') return opts.optional ? '' : 'enter a password';
    if (new TextEncoder().encode(pw).length > maxPasswordBytes) return `at most ${maxPasswordBytes} bytes`;
    const c = classes(pw);
    const unmet = rules.filter((r) => c[r.key] < r.want);
    return unmet.map((r) => `${r.text} (has ${c[r.key]})`).join('; ');
  };
  const update = () => {
    const c = classes(input.value);
    rules.forEach((r, i) => {
      const met = c[r.key] >= r.want && input.value !== '';
      items[i].className = met ? 'met' : 'unmet';
      items[i].dataset.state = met ? 'met' : 'unmet';
    });
    const p = problem();
    f.setError('');
    if (input.value === '') live.textContent = '';
    else live.textContent = p ? `Still needed: ${p}.` : 'The password meets the policy.';
    live.className = `pw-status ${p ? 'unmet' : 'met'}`;
    if (opts.onchange) opts.onchange(p);
  };
  input.addEventListener('input', update);
  const el = h('div', {class: 'password-field'},
    f,
    h('div', {class: 'pw-tools'}, show, gen),
    h('p', {class: 'hint', id: `${opts.name}-rules-label`}, 'Password policy:'),
    h('ul', {class: 'rules', 'aria-labelledby': `${opts.name}-rules-label`}, items),
    live);
  return {el, input, field: f, problem, reset: () => { input.value = ''; update(); }};
}

// ---- the list ----

async function list(ctx) {
  const search = h('input', {type: 'search', name: 'search', autocomplete: 'off', spellcheck: 'false', placeholder: 'part of a username'});
  const auto = checkbox('Show auto-generated users (registered devices)', false);
  const results = h('div', {});
  const status = h('p', {class: 'muted', role: 'status'});
  const pager = h('div', {class: 'pager'});
  let page = 1;
  let seq = 0;
  let timer = 0;
  const load = async () => {
    seq += 1;
    const mine = seq;
    const query = {'username[contains]': search.value.trim(), excludeAutoGenerated: auto.input.checked ? '' : 'true', pageNumber: page, rowsPerPage: pageSize};
    try {
      const answer = await api.get(`/api/listUsers${api.q(query)}`);
      if (mine !== seq) return;
      const p = answer.pagination;
      if (p.totalPages > 0 && page > p.totalPages) {
        page = p.totalPages;
        await load();
        return;
      }
      drawUsers(results, answer.users || []);
      status.textContent = p.totalRows === 0 ? '' : `${p.totalRows} user${p.totalRows === 1 ? '' : 's'}${search.value.trim() ? ` matching “${search.value.trim()}”` : ''}; page ${p.currentPage} of ${Math.max(1, p.totalPages)}.`;
      drawPager(pager, p, (n) => { page = n; load(); });
    } catch (e) {
      if (mine === seq) replace(results, h('p', {class: 'error', role: 'alert'}, e.message));
    }
  };
  search.addEventListener('input', () => {
    clearTimeout(timer);
    timer = setTimeout(() => { page = 1; load(); }, 250);
  });
  auto.input.addEventListener('change', () => { page = 1; load(); });
  ctx.onLeave(() => clearTimeout(timer));
  const createBtn = ctx.can('POST', '/api/users') && h('button', {type: 'button', class: 'primary', onclick: () => createUser(ctx, createBtn, load)}, 'Create user…');
  replace(ctx.main,
    h('h1', {}, 'Users'),
    h('form', {class: 'toolbar', role: 'search', onsubmit: (e) => { e.preventDefault(); clearTimeout(timer); page = 1; load(); }},
      field('Search by username', search),
      auto,
      h('span', {class: 'spacer'}),
      createBtn),
    h('h2', {id: 'h-users', class: 'sr-only'}, 'Users found'),
    results, status, pager);
  await load();
}

function roleNames(u) {
  const own = (u.roles || []).filter((r) => r.isShared).map((r) => r.name);
  const dir = (u.ldapRoles || []).map((r) => `${r.name} (directory)`);
  return [...own, ...dir].join(', ') || '—';
}

function provider(u) {
  return u.identityProvider === 'ldap' ? 'Directory (LDAP)' : 'Local';
}

function mfaBadge(u) {
  if (u.mfa_is_enrolled) return badge('ok', 'Enrolled');
  if (u.enforceMFAEnrollment) return badge('warn', 'Enrollment due');
  return badge('', 'Not enrolled');
}

function stateBadge(u) {
  return u.suspended ? badge('bad', 'Suspended') : badge('ok', 'Active');
}

function drawUsers(box, users) {
  replace(box, table('Users', [
    {label: 'Username', cell: (u) => [h('a', {href: `#/users/${api.seg(u.id)}`}, u.username), u.autoGenerated ? [' ', badge('', 'auto')] : null]},
    {label: 'Roles', cell: roleNames},
    {label: 'Publish prefix', cell: (u) => u.mqttPublishPrefix ? h('code', {}, u.mqttPublishPrefix) : '—'},
    {label: 'Identity provider', cell: provider},
    {label: 'MFA', cell: mfaBadge},
    {label: 'State', cell: stateBadge},
  ], users, 'No users found.'));
}

function drawPager(box, p, go) {
  // Keep the focus on the pager button that was used (it is rebuilt).
  const had = box.contains(document.activeElement) ? document.activeElement.textContent : '';
  if (p.totalPages <= 1) {
    replace(box);
    return;
  }
  replace(box,
    h('button', {type: 'button', class: 'small', disabled: p.currentPage <= 1, onclick: () => go(p.currentPage - 1)}, 'Previous page'),
    h('span', {}, `Page ${p.currentPage} of ${p.totalPages}`),
    h('button', {type: 'button', class: 'small', disabled: !p.nextPage, onclick: () => go(p.nextPage)}, 'Next page'));
  if (had) {
    const buttons = [...box.querySelectorAll('button')];
    const same = buttons.find((b) => b.textContent === had && !b.disabled) || buttons.find((b) => !b.disabled);
    if (same) same.focus();
  }
}

// sharedRoles: the roles one may give by name (a user's own role is not one).
async function sharedRoles(ctx) {
  if (!ctx.can('GET', '/api/roles')) return null;
  return (await api.get('/api/roles')).filter((r) => r.isShared).sort((a, b) => a.name.localeCompare(b.name));
}

function roleBoxes(roles, held) {
  return roles.map((role) => {
    const c = checkbox(role.name, held.includes(role.id));
    c.input.value = role.id;
    c.input.name = 'role';
    return c;
  });
}

function prefixField(value) {
  const input = h('input', {name: 'prefix', value: value || '', placeholder: 'e.g. plant1/line1/', autocomplete: 'off', spellcheck: 'false'});
  const f = field('Publish prefix (optional)', input, 'Prepended to every topic the user publishes to; it usually ends in "/".');
  const problem = () => (input.value && topicProblem(input.value) ? `The prefix ${topicProblem(input.value)}.` : '');
  input.addEventListener('input', () => f.setError(problem()));
  return {el: f, input, problem};
}

const grantChoices = [
  ['', 'Password or client certificate'],
  ['password', 'Password only'],
  ['certificate', 'Client certificate only'],
  ['both', 'Password and client certificate, both required'],
];

function grantTypes(choice) {
  if (choice === 'both') return [{method: 'password', isRequired: true}, {method: 'certificate', isRequired: true}];
  if (choice) return [{method: choice, isRequired: false}];
  return undefined;
}

async function createUser(ctx, btn, reload) {
  const loaded = await busy(btn, () => Promise.all([api.get('/api/policy/password'), sharedRoles(ctx)]));
  if (!loaded) return;
  const [policy, roles] = loaded;
  const username = h('input', {name: 'username', required: true, autocomplete: 'off', spellcheck: 'false', autocapitalize: 'none'});
  const userField = field('Username', username, 'At least 3 characters; devices use it as their MQTT username.');
  const create = h('button', {type: 'submit', class: 'primary'}, 'Create');
  const pw = passwordField(policy, {label: 'Password', name: 'new-password', optional: true, generate: true,
    onchange: (p) => create.setAttribute('aria-disabled', p ? 'true' : 'false')});
  const boxes = roleBoxes(roles || [], []);
  const prefix = prefixField('');
  const grants = h('select', {name: 'grantTypes'}, grantChoices.map(([v, label]) => h('option', {value: v}, label)));
  const enforce = checkbox('Require MFA enrollment at the next sign-in', false);
  const err = h('p', {class: 'error', role: 'alert'});
  const created = await modal('Create a user', (close) => h('form', {novalidate: true, onsubmit: async (e) => {
    e.preventDefault();
    err.textContent = '';
    userField.setError(username.value.trim().length < 3 ? 'Enter a username of at least 3 characters.' : '');
    const weak = pw.problem();
    pw.field.setError(weak ? `Not created: the password needs ${weak}.` : '');
    if (username.value.trim().length < 3 || weak || prefix.problem()) {
      (username.value.trim().length < 3 ? username : weak ? pw.input : prefix.input).focus();
      return;
    }
    const body = {username: username.value.trim(), identityProvider: 'local', roles: boxes.filter((b) => b.input.checked).map((b) => b.input.value),
      enforceMFAEnrollment: enforce.input.checked};
    if (pw.input.value) body.password = pw.input.value;
    if (prefix.input.value) body.mqttPublishPrefix = prefix.input.value;
    const gt = grantTypes(grants.value);
    if (gt) body.grantTypes = gt;
    create.disabled = true;
    try {
      close(await api.post('/api/users', body));
    } catch (e2) {
      err.textContent = e2.message;
      create.disabled = false;
    }
  }},
  userField,
  pw.el,
  roles === null ? h('p', {class: 'muted'}, 'You may not read roles: the user gets its own role only.')
    : roles.length ? h('fieldset', {}, h('legend', {}, 'Roles'), boxes)
      : h('p', {class: 'muted'}, 'No shared roles exist yet.'),
  prefix.el,
  field('Sign-in methods', grants),
  enforce,
  err,
  h('div', {class: 'actions'}, create, h('button', {type: 'button', onclick: () => close(null)}, 'Cancel'))));
  if (created) {
    toast(`Created ${created.username}`);
    await reload();
  }
}

// ---- one user ----

async function detail(ctx, id, focusId) {
  const back = h('p', {}, h('a', {href: '#/users'}, '← All users'));
  let u;
  try {
    u = await api.get(`/api/users/${api.seg(id)}`);
  } catch (e) {
    replace(ctx.main, back, h('h1', {}, 'User'), h('p', {class: 'error', role: 'alert'}, e.message));
    return;
  }
  const base = `/api/users/${id}`;
  const again = (focus) => detail(ctx, id, focus);
  const mayEdit = ctx.can('PUT', base);
  const directory = u.identityProvider === 'ldap';
  const roles = mayEdit && ctx.can('GET', '/api/roles') ? await sharedRoles(ctx).catch(() => null) : null;
  const policy = mayEdit && !directory ? await api.get('/api/policy/password').catch(() => null) : null;
  replace(ctx.main,
    back,
    h('h1', {}, u.username),
    h('p', {class: 'badges'}, stateBadge(u), ' ', badge('', provider(u)), ' ', 'MFA: ', mfaBadge(u), u.autoGenerated ? [' ', badge('', 'auto-generated')] : null),
    h('div', {class: 'panels'},
      settingsPanel(u, mayEdit, again),
      actionsPanel(ctx, u, base, again),
      rolesPanel(u, roles, mayEdit, again),
      policy && passwordPanel(u, policy, again),
      wide(tokensPanel(ctx, u, base, again)),
      wide(certificatesPanel(ctx, u, base, again)),
      wide(await devicesPanel(ctx, u))));
  if (focusId) {
    const el = document.getElementById(focusId);
    if (el) el.focus();
  }
}

// wide makes a panel (of tables) span the whole row.
function wide(el) {
  if (el) el.classList.add('wide');
  return el;
}

function panel(id, title, ...content) {
  return h('section', {class: 'panel', 'aria-labelledby': id}, h('h2', {id, tabindex: '-1'}, title), content);
}

async function save(button, focus, again, fn, done) {
  const ok = await busy(button, async () => { await fn(); return true; });
  if (ok) {
    toast(done);
    await again(focus);
  }
}

function settingsPanel(u, mayEdit, again) {
  if (!mayEdit) {
    return panel('h-settings', 'Settings',
      h('dl', {class: 'facts'},
        h('dt', {}, 'Publish prefix'), h('dd', {}, u.mqttPublishPrefix ? h('code', {}, u.mqttPublishPrefix) : '—'),
        h('dt', {}, 'MFA enrollment required'), h('dd', {}, u.enforceMFAEnrollment ? 'Yes' : 'No')));
  }
  const prefix = prefixField(u.mqttPublishPrefix);
  const enforce = checkbox('Require MFA enrollment at the next sign-in', u.enforceMFAEnrollment);
  const saveBtn = h('button', {type: 'submit', class: 'primary'}, 'Save settings');
  return panel('h-settings', 'Settings', h('form', {novalidate: true, onsubmit: (e) => {
    e.preventDefault();
    if (prefix.problem()) { prefix.input.focus(); return; }
    save(saveBtn, 'h-settings', again,
      () => api.put(`/api/users/${api.seg(u.id)}`, {mqttPublishPrefix: prefix.input.value, enforceMFAEnrollment: enforce.input.checked}),
      `Saved ${u.username}`);
  }}, prefix.el, enforce, h('div', {class: 'actions'}, saveBtn)));
}

function rolesPanel(u, roles, mayEdit, again) {
  const held = (u.roles || []).map((r) => r.id);
  const dir = (u.ldapRoles || []).length ? [h('h3', {}, 'From the directory (read-only)'),
    h('p', {class: 'muted'}, 'Set at each directory sign-in from the user’s groups.'),
    h('ul', {class: 'plain'}, u.ldapRoles.map((r) => h('li', {}, r.name)))] : null;
  const own = (u.roles || []).find((r) => !r.isShared);
  const ownLine = own && own.permissions.length > 0 && h('p', {class: 'muted'}, `Besides, its own role holds ${own.permissions.length} permission${own.permissions.length === 1 ? '' : 's'} of its own.`);
  if (!mayEdit || roles === null) {
    const names = (u.roles || []).filter((r) => r.isShared).map((r) => r.name);
    return panel('h-roles', 'Roles', h('p', {}, names.join(', ') || 'No shared roles.'), ownLine, dir);
  }
  const boxes = roleBoxes(roles, held);
  const saveBtn = h('button', {type: 'submit', class: 'primary'}, 'Save roles');
  return panel('h-roles', 'Roles', h('form', {onsubmit: (e) => {
    e.preventDefault();
    save(saveBtn, 'h-roles', again,
      () => api.put(`/api/users/${api.seg(u.id)}`, {roles: boxes.filter((b) => b.input.checked).map((b) => b.input.value)}),
      `Roles of ${u.username} saved`);
  }}, roles.length ? h('fieldset', {}, h('legend', {}, 'Shared roles'), boxes) : h('p', {class: 'muted'}, 'No shared roles exist yet.'),
  h('div', {class: 'actions'}, saveBtn)), ownLine, dir);
}

function passwordPanel(u, policy, again) {
  const pw = passwordField(policy, {label: 'New password', name: 'set-password', generate: true});
  const revoke = checkbox('Also revoke its application tokens', false);
  const setBtn = h('button', {type: 'submit'}, 'Set password');
  return panel('h-password', 'Password', h('p', {class: 'muted'}, 'A new password signs the user out everywhere and disconnects the clients that used a login token.'),
    h('form', {novalidate: true, onsubmit: (e) => {
      e.preventDefault();
      const weak = pw.problem();
      pw.field.setError(weak ? `The password needs ${weak}.` : '');
      if (weak) { pw.input.focus(); return; }
      save(setBtn, 'h-password', again,
        () => api.put(`/api/users/${api.seg(u.id)}`, {password: pw.input.value, revokeApplicationTokens: revoke.input.checked}),
        `Password of ${u.username} set`);
    }}, pw.el, revoke, h('div', {class: 'actions'}, setBtn)));
}

function actionsPanel(ctx, u, base, again) {
  const mayEdit = ctx.can('PUT', base);
  const mayDelete = ctx.can('DELETE', base);
  if (!mayEdit && !mayDelete) return null;
  const suspend = mayEdit && h('button', {type: 'button', onclick: async () => {
    const to = !u.suspended;
    if (to && !await confirmAction(`Suspend ${u.username}?`, 'It cannot sign in or connect until you lift the suspension; its connected clients are disconnected now.', 'Suspend')) return;
    await save(suspend, 'h-actions', again, () => api.put(`/api/users/${api.seg(u.id)}`, {suspended: to}),
      to ? `${u.username} suspended` : `${u.username} may sign in again`);
  }}, u.suspended ? 'Lift suspension' : 'Suspend');
  const reset = mayEdit && u.mfa_is_enrolled && h('button', {type: 'button', onclick: async () => {
    if (!await confirmAction(`Reset the MFA of ${u.username}?`, 'Its authenticator keys, backup codes and trusted devices are removed: it signs in with its password alone until it enrolls again.', 'Reset MFA')) return;
    await save(reset, 'h-actions', again, () => api.put(`/api/users/${api.seg(u.id)}`, {disableMfa: true}), `MFA of ${u.username} reset`);
  }}, 'Reset MFA');
  const del = mayDelete && h('button', {type: 'button', class: 'danger', onclick: async () => {
    if (!await confirmAction(`Delete ${u.username}?`, 'The user, its own role and its tokens are deleted, and its clients are disconnected. This cannot be undone.', 'Delete')) return;
    const ok = await busy(del, async () => { await api.del(`/api/users/${api.seg(u.id)}`); return true; });
    if (ok) {
      toast(`Deleted ${u.username}`);
      ctx.go('users');
    }
  }}, 'Delete user');
  return panel('h-actions', 'Account', h('div', {class: 'actions'}, suspend, reset, del));
}

function tokensPanel(ctx, u, base, again) {
  const mayRevoke = ctx.can('DELETE', `${base}/tokens`);
  const revoke = (t, button) => save(button, 'h-tokens', again,
    () => api.del(`/api/users/${api.seg(u.id)}/tokens${api.q({tokenId: t.fingerprint})}`), 'Token revoked');
  const all = mayRevoke && u.tokens.length > 0 && h('button', {type: 'button', class: 'danger', onclick: async () => {
    if (!await confirmAction(`Revoke every token of ${u.username}?`, 'Its sessions end and the clients that connected with a token are disconnected.', 'Revoke all')) return;
    await save(all, 'h-tokens', again, () => api.del(`/api/users/${api.seg(u.id)}/tokens`), `Every token of ${u.username} revoked`);
  }}, 'Revoke all tokens');
  return panel('h-tokens', 'Tokens',
    table('Tokens', [
      {label: 'Label', cell: (t) => t.label || '—'},
      {label: 'ID', cell: (t) => h('code', {}, `${t.fingerprint.slice(0, 12)}…`)},
      {label: 'Created', cell: (t) => fmtTime(t.createdAt)},
      {label: 'Expires', cell: (t) => fmtTime(t.expiresAt)},
      {label: 'Actions', class: 'actions-cell', cell: (t) => mayRevoke && h('button', {type: 'button', class: 'small',
        'aria-label': `Revoke token ${t.label || t.fingerprint.slice(0, 12)}`, onclick: (e) => revoke(t, e.currentTarget)}, 'Revoke')},
    ], u.tokens || [], 'No tokens: the user is signed in nowhere.'),
    all && h('div', {class: 'actions'}, all));
}

// pemFingerprint: the SHA-256 of a PEM certificate's DER bytes, as warden
// pins it; null where the browser offers no WebCrypto (plain HTTP to a
// host other than localhost).
async function pemFingerprint(pem) {
  const m = pem.match(/-----BEGIN CERTIFICATE-----([\s\S]*?)-----END CERTIFICATE-----/);
  if (!m) throw new Error('No PEM certificate (-----BEGIN CERTIFICATE-----) found.');
  if (!crypto.subtle) return null;
  let der;
  try {
    der = Uint8Array.from(atob(m[1].replace(/\s+/g, '')), (c) => c.charCodeAt(0));
  } catch {
    throw new Error('The certificate is not valid base64.');
  }
  const sum = new Uint8Array(await crypto.subtle.digest('SHA-256', der));
  return Array.from(sum, (b) => b.toString(16).padStart(2, '0')).join('');
}

function certificatesPanel(ctx, u, base, again) {
  const mayAdd = ctx.can('POST', `${base}/certificates`);
  const mayRemove = ctx.can('DELETE', `${base}/certificates`);
  const text = h('textarea', {name: 'certificate', rows: 3, spellcheck: 'false', placeholder: 'ab:cd:… or -----BEGIN CERTIFICATE-----'});
  const f = field('SHA-256 fingerprint or PEM certificate', text, 'openssl x509 -noout -fingerprint -sha256 -in device.crt shows the fingerprint.');
  const addBtn = h('button', {type: 'submit'}, 'Pin certificate');
  const remove = async (c, button) => {
    if (!await confirmAction('Remove this certificate?', 'Clients that connected with it are disconnected. Without a pinned fingerprint, any certificate with the user’s name from a trusted CA logs in as it.', 'Remove')) return;
    await save(button, 'h-certs', again, () => api.del(`/api/users/${api.seg(u.id)}/certificates`, {fingerprint: c.fingerprint}), 'Certificate removed');
  };
  return panel('h-certs', 'Pinned certificates',
    table('Pinned certificates', [
      {label: 'Fingerprint (SHA-256)', cell: (c) => h('code', {}, c.fingerprint)},
      {label: 'Pinned', cell: (c) => fmtTime(c.createdAt)},
      {label: 'Expires', cell: (c) => fmtTime(c.expiresAt)},
      {label: 'Actions', class: 'actions-cell', cell: (c) => mayRemove && h('button', {type: 'button', class: 'small',
        'aria-label': `Remove certificate ${c.fingerprint.slice(0, 12)}`, onclick: (e) => remove(c, e.currentTarget)}, 'Remove')},
    ], u.certificates || [], 'No certificate pinned.'),
    mayAdd && h('form', {class: 'stack', novalidate: true, onsubmit: async (e) => {
      e.preventDefault();
      f.setError('');
      let fp = text.value.trim();
      try {
        if (fp.includes('-----BEGIN')) {
          fp = await pemFingerprint(fp);
          if (fp === null) {
            f.setError('This browser computes fingerprints only over HTTPS or on localhost: paste the fingerprint instead.');
            return;
          }
        }
      } catch (e2) {
        f.setError(e2.message);
        return;
      }
      if (!fp) { f.setError('Paste a fingerprint or a PEM certificate.'); return; }
      const ok = await busy(addBtn, async () => {
        try {
          await api.post(`/api/users/${api.seg(u.id)}/certificates`, {fingerprint: fp});
          return true;
        } catch (e3) {
          f.setError(e3.message);
          return false;
        }
      });
      if (ok) {
        toast('Certificate pinned');
        await again('h-certs');
      }
    }}, f, h('div', {class: 'actions'}, addBtn)));
}

async function devicesPanel(ctx, u) {
  const path = `/api/v1/user/${u.id}/mfa/trusted_device`;
  if (!ctx.can('GET', path)) return null;
  const box = panel('h-devices', 'Trusted devices');
  const body = h('div', {});
  box.append(h('p', {class: 'muted'}, 'Browsers where the user chose to skip the MFA step for a while.'), body);
  const load = async () => {
    let devices;
    try {
      devices = await api.get(`/api/v1/user/${api.seg(u.id)}/mfa/trusted_device`);
    } catch (e) {
      replace(body, h('p', {class: 'error', role: 'alert'}, e.message));
      return;
    }
    replace(body, devicesTable(devices, ctx.can('DELETE', `${path}/x`), async (d, button) => {
      const ok = await busy(button, async () => { await api.del(`/api/v1/user/${api.seg(u.id)}/mfa/trusted_device/${api.seg(d.id)}`); return true; });
      if (ok) {
        toast(`Removed ${d.name}`);
        await load();
        box.querySelector('h2').focus();
      }
    }));
  };
  await load();
  return box;
}

/** devicesTable lists trusted devices with a Remove button each (when allowed). */
export function devicesTable(devices, mayRemove, remove) {
  return table('Trusted devices', [
    {label: 'Device', cell: (d) => d.name},
    {label: 'Trusted since', cell: (d) => fmtTime(d.creation_date)},
    {label: 'Until', cell: (d) => fmtTime(d.expiration_date)},
    {label: 'Actions', class: 'actions-cell', cell: (d) => mayRemove && h('button', {type: 'button', class: 'small',
      'aria-label': `Remove trusted device ${d.name}`, onclick: (e) => remove(d, e.currentTarget)}, 'Remove')},
  ], devices, 'No trusted devices.');
}
