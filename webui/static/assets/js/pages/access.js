// Try a topic: may a user or a role read and write a topic (or subscribe
// to a filter, or call an HTTP path), and which permission decides? The
// answer is the broker's own (GET /api/access/check). The same box sits on
// every role's page, bound to that role.

import {h, replace, field, uid, busy} from '../dom.js';
import * as api from '../api.js';
import {patternProblem, topicProblem} from '../perm.js';
import {badge} from './overview.js';

/** render builds the page into ctx.main. */
export function render(ctx) {
  replace(ctx.main,
    h('h1', {}, 'Try a topic'),
    h('p', {class: 'muted'}, 'Ask whether a user or a role may read (subscribe) and write (publish) a topic, and which permission decides. The answer comes from the same rules the broker applies, including a user\'s publish prefix and the {username} and {clientId} placeholders.'),
    tryBox(ctx, {}));
}

/**
 * tryBox is the "try a topic" form and its answer. With opts.role (a
 * function returning the role's current name) it is bound to that role;
 * otherwise the caller picks a user or a role.
 */
export function tryBox(ctx, opts) {
  const bound = typeof opts.role === 'function';
  const titleId = uid('try');
  const kindName = uid('kind');
  const userRadio = h('input', {type: 'radio', name: kindName, value: 'user', id: uid(), checked: true});
  const roleRadio = h('input', {type: 'radio', name: kindName, value: 'role', id: uid()});
  const listId = uid('names');
  const names = h('datalist', {id: listId});
  const subject = h('input', {name: 'subject', autocomplete: 'off', spellcheck: 'false', list: listId});
  const subjectField = field('Username', subject);
  const subjectLabel = subjectField.querySelector('label');
  const topic = h('input', {name: 'topic', autocomplete: 'off', spellcheck: 'false', class: 'mono'});
  const context = h('select', {name: 'context'}, h('option', {value: 'mqtt'}, 'MQTT topic or filter'), h('option', {value: 'http'}, 'HTTP path'));
  const clientId = h('input', {name: 'clientId', autocomplete: 'off', spellcheck: 'false'});
  const clientField = field('Client ID (optional)', clientId, 'The value of {clientId}; without one, a {clientId} pattern matches nothing.');
  const topicField = field('Topic', topic, "A topic name, or a filter with '+' or '#' (judged as a subscription).");
  const answer = h('div', {class: 'try-answer', 'aria-live': 'polite'});
  const check = h('button', {type: 'submit', class: 'primary'}, 'Check');
  const kind = () => (bound ? 'role' : (roleRadio.checked ? 'role' : 'user'));
  const lists = {};
  const fillNames = async () => {
    const k = kind();
    subjectLabel.textContent = k === 'role' ? 'Role name' : 'Username';
    const path = k === 'role' ? '/api/roles/names' : '/api/users/usernames';
    if (bound || !ctx.can('GET', path)) return replace(names);
    if (!lists[k]) {
      try {
        lists[k] = (await api.get(path)).map((x) => (k === 'role' ? x.name : x.username)).sort();
      } catch {
        lists[k] = [];
      }
    }
    if (kind() === k) replace(names, lists[k].map((n) => h('option', {value: n})));
    return undefined;
  };
  const problem = () => topicCheck(topic.value, context.value);
  const validate = () => {
    const p = problem();
    topicField.setError(p ? `The ${context.value === 'http' ? 'path' : 'topic'} ${p}.` : '');
    return !p;
  };
  topic.addEventListener('input', validate);
  context.addEventListener('change', () => {
    clientField.hidden = context.value !== 'mqtt';
    topicField.querySelector('label').textContent = context.value === 'http' ? 'Path' : 'Topic';
    if (topic.value) validate();
  });
  userRadio.addEventListener('change', fillNames);
  roleRadio.addEventListener('change', fillNames);
  const form = h('form', {class: 'panel try', novalidate: true, 'aria-labelledby': titleId, onsubmit: (e) => {
    e.preventDefault();
    const name = bound ? opts.role() : subject.value.trim();
    if (!bound && !name) {
      subjectField.setError(`Give a ${kind() === 'role' ? 'role name' : 'username'}.`);
      subject.focus();
      return;
    }
    subjectField.setError('');
    if (!validate()) {
      topic.focus();
      return;
    }
    busy(check, async () => {
      const query = {topic: topic.value, context: context.value, [kind() === 'role' ? 'role' : 'username']: name};
      if (context.value === 'mqtt' && clientId.value) query.clientId = clientId.value;
      try {
        replace(answer, answerView(await api.get(`/api/access/check${api.q(query)}`)));
      } catch (err) {
        replace(answer, h('p', {class: 'error', role: 'alert'}, err.message));
      }
    });
  }},
  h('h2', {id: titleId}, bound ? 'Try a topic with this role' : 'Question'),
  !bound && h('div', {class: 'row'},
    h('fieldset', {class: 'radios'},
      h('legend', {}, 'Check access for'),
      h('div', {class: 'check'}, userRadio, h('label', {for: userRadio.id}, 'A user')),
      h('div', {class: 'check'}, roleRadio, h('label', {for: roleRadio.id}, 'A role'))),
    subjectField, names),
  h('div', {class: 'row'}, topicField, field('Context', context), clientField),
  h('div', {class: 'actions'}, check),
  answer);
  if (!bound) fillNames();
  return form;
}

// topicCheck says why s cannot be asked about, or '': an HTTP path starts
// with '/' and has no wildcard; an MQTT topic with '+' or '#' (or a
// $share/ subscription) is a filter and must be a valid one.
function topicCheck(s, context) {
  if (context === 'http') {
    if (s === '') return 'is empty';
    if (/[+#]/.test(s)) return "contains a wildcard ('+' or '#')";
    return patternProblem(s, 'http');
  }
  if (s.toLowerCase().startsWith('$share/')) {
    const rest = s.slice(7);
    const i = rest.indexOf('/');
    if (i <= 0) return 'is a shared subscription without a share name and a filter';
    if (/[+#]/.test(rest.slice(0, i))) return "has a share name with a wildcard ('+' or '#')";
    return patternProblem(rest.slice(i + 1), 'mqtt');
  }
  return /[+#]/.test(s) ? patternProblem(s, 'mqtt') : topicProblem(s);
}

// answerView shows both decisions, each as words and colour.
function answerView(a) {
  const what = a.context === 'http' ? 'path' : (a.filter ? 'filter' : 'topic');
  return h('div', {},
    h('p', {}, `For ${a.subject.kind} `, h('strong', {}, a.subject.name), `, the ${what} `, h('code', {}, a.topic), ':'),
    h('div', {class: 'verdicts'},
      verdict(a.filter ? 'Read (subscribe)' : 'Read', a.read),
      verdict(a.filter ? 'Write (publish)' : 'Write', a.write)),
    a.effectiveTopic && a.effectiveTopic !== a.topic && h('p', {class: 'note'},
      "The user's publish prefix applies: write is judged on ", h('code', {}, a.effectiveTopic), '.'),
    a.filter && h('p', {class: 'muted'}, 'A filter is judged as a subscription: read means every topic it matches may be read; nobody publishes to a filter.'));
}

function verdict(label, d) {
  const ok = Boolean(d && d.allowed);
  const p = d && d.permission;
  return h('section', {class: `verdict ${ok ? 'allowed' : 'denied'}`},
    h('h3', {}, `${label}: `, badge(ok ? 'ok' : 'bad', ok ? '✓ Allowed' : '✗ Denied')),
    h('dl', {},
      p && [h('dt', {}, 'Decided by'), h('dd', {}, h('code', {}, p.resource), ` (${p.operation}, ${p.context}) from role `,
        p.roleId ? h('a', {href: `#/roles/${api.seg(p.roleId)}`}, p.role) : h('strong', {}, p.role))],
      d && d.resolved && [h('dt', {}, 'Resolved pattern'), h('dd', {}, h('code', {}, d.resolved))],
      d && d.alsoAllowedBy && d.alsoAllowedBy.length && [h('dt', {}, 'Also allowed by'),
        h('dd', {}, d.alsoAllowedBy.map((x, i) => [i ? ', ' : '', h('code', {}, x.resource), ` (${x.role})`]))],
      d && d.reason && [h('dt', {}, 'Reason'), h('dd', {}, d.reason)]));
}
