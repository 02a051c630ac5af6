// Sign-in: username and password (POST /api/login), then, for a user
// enrolled in MFA, a code from the authenticator or a backup code (POST
// /api/mfa/login). A device the user chose to trust keeps its device token
// (a second factor only, useless without the password) in this origin's
// localStorage; the session token itself is never stored.

import {h, field, checkbox, replace} from '../dom.js';
import * as api from '../api.js';

const deviceKey = (username) => `warden.device.${username}`;

/** forgetDevice drops this browser's trusted-device token for a user. */
export function forgetDevice(username) {
  localStorage.removeItem(deviceKey(username));
}

/** render builds the sign-in page; ctx.onSignedIn(answer, username) takes the token. */
export function render(ctx) {
  const box = h('main', {class: 'login', id: 'main'});
  passwordStep(box, ctx);
  return h('div', {class: 'login-page'}, box);
}

function header(title) {
  return h('div', {class: 'login-head'},
    h('img', {src: '/assets/favicon.svg', alt: '', width: 40, height: 40}),
    h('h1', {}, title));
}

function passwordStep(box, ctx) {
  const user = h('input', {name: 'username', autocomplete: 'username', required: true, autocapitalize: 'none', spellcheck: 'false'});
  const pass = h('input', {name: 'password', type: 'password', autocomplete: 'current-password', required: true});
  const msg = h('p', {class: 'error', role: 'alert'}, ctx.notice || '');
  const submit = h('button', {type: 'submit', class: 'primary'}, 'Sign in');
  const form = h('form', {class: 'stack', novalidate: true, onsubmit: async (e) => {
    e.preventDefault();
    msg.textContent = '';
    if (!user.value || !pass.value) {
      msg.textContent = 'Enter your username and password.';
      return;
    }
    submit.disabled = true;
    try {
      // The label names the token in the user's token list (revocable there).
      const body = {username: user.value, password: pass.value, label: 'warden web UI'};
      const device = localStorage.getItem(deviceKey(user.value));
      if (device) body.deviceToken = device;
      const answer = await api.post('/api/login', body);
      pass.value = '';
      if (answer.needsMfa) {
        mfaStep(box, ctx, user.value, answer.secret);
        return;
      }
      await ctx.onSignedIn(answer, user.value);
    } catch (err) {
      msg.textContent = err.status === 403 ? 'Wrong username or password, or the account is locked or suspended.' : err.message;
      pass.select();
    } finally {
      submit.disabled = false;
    }
  }},
  field('Username', user),
  field('Password', pass),
  msg,
  submit);
  replace(box, header('Sign in to warden'), form);
  // On the first render the box is not in the document yet: focus once it is.
  requestAnimationFrame(() => user.focus());
}

function mfaStep(box, ctx, username, secret) {
  let backup = false;
  const code = h('input', {name: 'otp', inputmode: 'numeric', autocomplete: 'one-time-code', maxlength: 6, required: true});
  const codeField = field('Authentication code', code, 'The 6-digit code your authenticator app shows for warden.');
  const trust = checkbox('Trust this browser: skip this step here for a while', false);
  const msg = h('p', {class: 'error', role: 'alert'});
  const toggle = h('button', {type: 'button', class: 'link', onclick: () => {
    backup = !backup;
    code.value = '';
    codeField.querySelector('label').textContent = backup ? 'Backup code' : 'Authentication code';
    codeField.querySelector('.hint').textContent = backup ? 'One of the backup codes you saved at enrollment; each works once.' : 'The 6-digit code your authenticator app shows for warden.';
    code.setAttribute('inputmode', backup ? 'text' : 'numeric');
    code.setAttribute('autocomplete', backup ? 'off' : 'one-time-code');
    code.maxLength = backup ? 64 : 6;
    toggle.textContent = backup ? 'Use an authenticator code instead' : 'Use a backup code instead';
    code.focus();
  }}, 'Use a backup code instead');
  const submit = h('button', {type: 'submit', class: 'primary'}, 'Verify');
  const form = h('form', {class: 'stack', novalidate: true, onsubmit: async (e) => {
    e.preventDefault();
    msg.textContent = '';
    const value = code.value.trim();
    if (!value) {
      msg.textContent = backup ? 'Enter a backup code.' : 'Enter the code from your authenticator.';
      return;
    }
    submit.disabled = true;
    try {
      const body = {username, secret, trustDevice: trust.input.checked};
      if (backup) body.backupCode = value; else body.otp = value;
      if (trust.input.checked) body.deviceName = deviceName();
      const answer = await api.post('/api/mfa/login', body);
      if (answer.deviceToken) localStorage.setItem(deviceKey(username), answer.deviceToken);
      await ctx.onSignedIn(answer, username);
    } catch (err) {
      msg.textContent = err.status === 401 || err.status === 403 ? 'That code is not valid. Try the current one.' : err.message;
      code.select();
    } finally {
      submit.disabled = false;
    }
  }},
  h('p', {}, 'Signed in as ', h('strong', {}, username), '. Your account has multi-factor authentication.'),
  codeField, toggle, trust, msg, submit,
  h('button', {type: 'button', class: 'link', onclick: () => passwordStep(box, ctx)}, 'Back'));
  replace(box, header('Two-step verification'), form);
  code.focus();
}

function deviceName() {
  const ua = navigator.userAgent;
  const browser = (ua.match(/(Firefox|Edg|Chrome|Safari)\/[\d.]+/) || ['browser'])[0];
  return `warden UI, ${browser}`.slice(0, 200);
}
