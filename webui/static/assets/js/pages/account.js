// My account, for every signed-in user (and the only page while an MFA
// enrollment is due): two-step verification (enroll with a QR code or the
// key typed by hand, backup codes shown once, new backup codes, turn it
// off), the browsers trusted to skip the MFA step, and a new password.

import {h, replace, field, checkbox, confirmAction, toast, busy} from '../dom.js';
import * as api from '../api.js';
import {passwordField, devicesTable} from './users.js';
import {forgetDevice} from './login.js';
import {badge} from './overview.js';

/** render builds the page into ctx.main. */
export async function render(ctx) {
  const [me, mfaConfig] = await Promise.all([
    api.get('/api/session'),
    api.get('/api/auth/mfa').catch(() => ({enabled: true})),
  ]);
  const due = Boolean(me.mfa && me.mfa.enforced && !me.mfa.enabled);
  const mfa = h('section', {class: 'panel', 'aria-labelledby': 'h-mfa'});
  replace(ctx.main,
    h('h1', {}, 'My account'),
    h('p', {class: 'muted'}, 'Signed in as ', h('strong', {}, me.username),
      me.identityProvider === 'ldap' ? ' (a directory account: its password is the directory’s).' : '.'),
    due && h('p', {class: 'note', role: 'alert'}, 'Your account requires two-step verification. Set it up now to use warden.'),
    mfa,
    !due && await devicesPanel(ctx, me),
    !due && me.identityProvider !== 'ldap' && await passwordPanel());
  await mfaPanel(ctx, mfa, me, due, mfaConfig.enabled !== false);
}

function heading(text) {
  return h('h2', {id: 'h-mfa', tabindex: '-1'}, text);
}

// codeBody turns what the user typed into {otp} (6 digits) or {backupCode}.
function codeBody(value) {
  const v = value.trim();
  return /^\d{6}$/.test(v) ? {otp: v} : {backupCode: v};
}

async function mfaPanel(ctx, box, me, due, enabled) {
  if (!enabled) {
    replace(box, heading('Two-step verification'), h('p', {class: 'muted'}, 'Two-step verification is switched off on this warden (--mfa=false).'));
    return;
  }
  const {isEnrolled} = await api.get('/api/mfa/isenrolled');
  if (!isEnrolled) {
    const start = h('button', {type: 'button', class: 'primary', onclick: () => busy(start, async () => {
      const answer = await api.post('/api/mfa/enable', {});
      enrollStep(ctx, box, me, due, answer);
    })}, 'Set up two-step verification');
    replace(box, heading('Two-step verification'),
      h('p', {}, 'Status: ', badge('warn', 'Off')),
      h('p', {}, 'Protect your sign-in with a code from an authenticator app (any TOTP app: FreeOTP, Aegis, Google or Microsoft Authenticator, 1Password…) besides your password.'),
      h('div', {class: 'actions'}, start));
    return;
  }
  const code = h('input', {name: 'mfa-code', autocomplete: 'one-time-code', spellcheck: 'false'});
  const codeField = field('Code from your authenticator, or a backup code', code);
  const regen = h('button', {type: 'button', onclick: () => {
    if (!code.value.trim()) { codeField.setError('Enter a current code or a backup code first.'); code.focus(); return; }
    busy(regen, async () => {
      try {
        const answer = await api.post('/api/mfa/regenerate/backupcodes', codeBody(code.value));
        showCodes(ctx, box, answer.backupCodes, 'New backup codes', () => mfaPanel(ctx, box, me, due, enabled));
      } catch (e) {
        codeField.setError(e.message);
        code.select();
      }
    });
  }}, 'New backup codes');
  const off = !me.mfa.enforced && h('button', {type: 'button', class: 'danger', onclick: async () => {
    if (!code.value.trim()) { codeField.setError('Enter a current code or a backup code first.'); code.focus(); return; }
    if (!await confirmAction('Turn off two-step verification?', 'Your authenticator key, backup codes and trusted devices are removed; you sign in with your password alone.', 'Turn off')) return;
    await busy(off, async () => {
      try {
        await api.post('/api/mfa/disable', codeBody(code.value));
        toast('Two-step verification is off');
        await ctx.reloadSession();
      } catch (e) {
        codeField.setError(e.message);
      }
    });
  }}, 'Turn off two-step verification');
  replace(box, heading('Two-step verification'),
    h('p', {}, 'Status: ', badge('ok', 'On')),
    me.mfa.enforced && h('p', {class: 'muted'}, 'Your account requires it: an admin can reset it if you lose your authenticator and your backup codes.'),
    h('div', {class: 'toolbar'}, codeField, regen, off));
}

// otpauthSecret reads the key (base32) out of an otpauth:// URI.
function otpauthSecret(uri) {
  try {
    return new URL(uri).searchParams.get('secret') || '';
  } catch {
    return '';
  }
}

function grouped(secret) {
  return secret.replace(/(.{4})(?=.)/g, '$1 ');
}

function enrollStep(ctx, box, me, due, answer) {
  const code = h('input', {name: 'enroll-code', inputmode: 'numeric', autocomplete: 'one-time-code', maxlength: 6, spellcheck: 'false'});
  const codeField = field('Code shown by the app', code, 'The 6-digit code the app shows for warden now.');
  const verify = h('button', {type: 'submit', class: 'primary'}, 'Verify and turn on');
  const secret = otpauthSecret(answer.uri);
  // Only an image warden drew: a PNG data: URI (the CSP refuses others anyway).
  const qr = typeof answer.qrCode === 'string' && answer.qrCode.startsWith('data:image/png;base64,') ? answer.qrCode : '';
  replace(box, heading('Set up two-step verification'),
    h('ol', {class: 'steps'},
      h('li', {},
        h('p', {}, qr ? 'Scan this QR code with your authenticator app:' : 'Add warden to your authenticator app with this key:'),
        qr && h('img', {class: 'qr', src: qr, alt: 'QR code for your authenticator app', width: 200, height: 200}),
        h('p', {}, qr ? 'Or type this key by hand (time-based, 6 digits, every 30 seconds): ' : 'Key (time-based, 6 digits, every 30 seconds): ',
          h('code', {class: 'secret'}, grouped(secret))),
        h('details', {}, h('summary', {}, 'Show the otpauth:// link'), h('p', {}, h('code', {class: 'otpauth-uri'}, answer.uri)))),
      h('li', {}, h('form', {class: 'stack', novalidate: true, onsubmit: (e) => {
        e.preventDefault();
        codeField.setError('');
        if (!/^\d{6}$/.test(code.value.trim())) { codeField.setError('Enter the 6 digits the app shows.'); code.focus(); return; }
        busy(verify, async () => {
          try {
            const done = await api.post('/api/mfa/validate', {otp: code.value.trim()});
            showCodes(ctx, box, done.backupCodes, 'Two-step verification is on', async () => {
              if (due) await ctx.reloadSession();
              else await mfaPanel(ctx, box, {...me, mfa: {...me.mfa, enabled: true}}, due, true);
            });
          } catch (e2) {
            codeField.setError(e2.status === 400 || e2.status === 401 || e2.status === 403 ? `${e2.message}. Check the code and try the current one.` : e2.message);
            code.select();
          }
        });
      }}, codeField, h('div', {class: 'actions'}, verify,
        h('button', {type: 'button', onclick: () => mfaPanel(ctx, box, me, due, true)}, 'Cancel'))))));
  code.focus();
}

// showCodes shows backup codes once, with a copy button and a download
// (a Blob URL, revoked when the page is left or the codes are put away).
function showCodes(ctx, box, codes, title, onDone) {
  const text = `warden backup codes for ${ctx.session.username}\nEach code works once.\n\n${codes.join('\n')}\n`;
  const url = URL.createObjectURL(new Blob([text], {type: 'text/plain'}));
  ctx.onLeave(() => URL.revokeObjectURL(url));
  const copy = navigator.clipboard && h('button', {type: 'button', onclick: async () => {
    try {
      await navigator.clipboard.writeText(codes.join('\n'));
      toast('Backup codes copied');
    } catch {
      toast('Copying was refused: select the codes and copy them by hand.', 'error');
    }
  }}, 'Copy codes');
  const done = h('button', {type: 'button', class: 'primary', onclick: () => {
    URL.revokeObjectURL(url);
    onDone();
  }}, 'I have saved them');
  replace(box, heading(title),
    h('p', {class: 'note', role: 'alert'}, 'Save these backup codes now: they are not shown again. Each one signs you in once when your authenticator is not at hand.'),
    h('ol', {class: 'codes', 'aria-label': 'Backup codes'}, codes.map((c) => h('li', {}, h('code', {}, c)))),
    h('div', {class: 'actions'}, copy, h('a', {class: 'button', href: url, download: 'warden-backup-codes.txt'}, 'Download as text'), done));
  box.querySelector('h2').focus();
}

async function devicesPanel(ctx, me) {
  const body = h('div', {});
  const box = h('section', {class: 'panel', 'aria-labelledby': 'h-devices'},
    h('h2', {id: 'h-devices', tabindex: '-1'}, 'My trusted devices'),
    h('p', {class: 'muted'}, 'Browsers where you chose “Trust this browser” at the MFA step: they skip it until the date shown.'),
    body);
  const forget = h('button', {type: 'button', onclick: () => {
    forgetDevice(me.username);
    toast('This browser asks for a code at your next sign-in.');
  }}, 'Forget this browser');
  const load = async () => {
    let devices;
    try {
      devices = await api.get('/api/v1/user/my/mfa/trusted_device');
    } catch (e) {
      replace(body, h('p', {class: 'error', role: 'alert'}, e.message));
      return;
    }
    replace(body, devicesTable(devices, true, async (d, button) => {
      const ok = await busy(button, async () => { await api.del(`/api/v1/user/my/mfa/trusted_device/${api.seg(d.id)}`); return true; });
      if (ok) {
        toast(`Removed ${d.name}`);
        await load();
        box.querySelector('h2').focus();
      }
    }), h('div', {class: 'actions'}, forget));
  };
  await load();
  return box;
}

async function passwordPanel() {
  const policy = await api.get('/api/policy/password');
  const current = h('input', {type: 'password', name: 'current-password', autocomplete: 'current-password'});
  const currentField = field('Current password', current);
  const pw = passwordField(policy, {label: 'New password', name: 'my-new-password', generate: false});
  const repeat = h('input', {type: 'password', name: 'repeat-password', autocomplete: 'new-password'});
  const repeatField = field('New password again', repeat);
  const revoke = checkbox('Also revoke my application tokens', false);
  const err = h('p', {class: 'error', role: 'alert'});
  const change = h('button', {type: 'submit', class: 'primary'}, 'Change password');
  return h('section', {class: 'panel', 'aria-labelledby': 'h-my-password'},
    h('h2', {id: 'h-my-password'}, 'Change my password'),
    h('p', {class: 'muted'}, 'Your other sessions end and the clients that used one of your login tokens are disconnected; this one stays.'),
    h('form', {novalidate: true, onsubmit: async (e) => {
      e.preventDefault();
      err.textContent = '';
      currentField.setError(current.value ? '' : 'Enter your current password.');
      const weak = pw.problem();
      pw.field.setError(weak ? `The new password needs ${weak}.` : '');
      repeatField.setError(repeat.value !== pw.input.value ? 'The two new passwords differ.' : '');
      if (!current.value || weak || repeat.value !== pw.input.value) return;
      await busy(change, async () => {
        try {
          await api.put('/api/users/change-password', {password: current.value, newPassword: pw.input.value, revokeApplicationTokens: revoke.input.checked});
          toast('Password changed');
          current.value = '';
          repeat.value = '';
          pw.reset();
        } catch (e2) {
          err.textContent = e2.message;
        }
      });
    }}, currentField, pw.el, repeatField, revoke, err, h('div', {class: 'actions'}, change)));
}
