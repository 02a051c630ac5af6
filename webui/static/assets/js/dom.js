// DOM helpers. Every string a page shows goes in as text (textContent or a
// text node), never as HTML, so a username or topic can never inject
// markup; there is no innerHTML anywhere in the UI.

/**
 * h builds an element: h('button', {class: 'primary', onclick: fn}, 'Save').
 * Props: class, text, on<event> handlers, dataset (object), hidden/disabled/
 * checked/value/selected (properties), anything else as an attribute.
 * Children: nodes, strings (as text), arrays, and null/false (skipped).
 */
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k === 'text') el.textContent = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (['value', 'checked', 'disabled', 'hidden', 'selected', 'indeterminate'].includes(k)) el[k] = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

/** append adds children (nodes, strings, nested arrays; null/false skipped). */
export function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

/** clear empties el and fills it with children. */
export function replace(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

/**
 * redraw replaces el's children with those build() returns, and puts the
 * focus back on the control that had it (matched by data-key), so a list
 * refreshed while someone works in it keeps their place.
 */
export function redraw(el, build) {
  const active = document.activeElement;
  const key = active && el.contains(active) ? active.dataset.key : '';
  replace(el, build());
  if (key) {
    const again = el.querySelector(`[data-key="${CSS.escape(key)}"]`);
    if (again) again.focus();
  }
}

let ids = 0;
/** uid returns an id unique in the page, for label/input pairs. */
export function uid(prefix = 'f') {
  ids += 1;
  return `${prefix}-${ids}`;
}

/**
 * field labels an input: a wrapper with <label for>, the input, an optional
 * hint and a live error slot the input is described by.
 */
export function field(label, input, hint) {
  if (!input.id) input.id = uid();
  const hintEl = hint ? h('p', {class: 'hint', id: uid('hint')}, hint) : null;
  const err = h('p', {class: 'field-error', id: uid('err'), 'aria-live': 'polite'});
  input.setAttribute('aria-describedby', [hintEl && hintEl.id, err.id].filter(Boolean).join(' '));
  const wrap = h('div', {class: 'field'}, h('label', {for: input.id}, label), input, hintEl, err);
  wrap.setError = (msg) => {
    err.textContent = msg || '';
    if (msg) input.setAttribute('aria-invalid', 'true');
    else input.removeAttribute('aria-invalid');
  };
  return wrap;
}

/** checkbox is a labelled checkbox; .input is the box. */
export function checkbox(label, checked, onchange) {
  const input = h('input', {type: 'checkbox', id: uid(), checked, onchange});
  const wrap = h('div', {class: 'check'}, input, h('label', {for: input.id}, label));
  wrap.input = input;
  return wrap;
}

/** toast announces msg (polite live region); kind: 'ok' or 'error'. */
export function toast(msg, kind = 'ok') {
  const box = document.getElementById('toasts');
  const t = h('div', {class: `toast ${kind}`, role: kind === 'error' ? 'alert' : null}, msg);
  box.append(t);
  setTimeout(() => t.remove(), kind === 'error' ? 8000 : 4000);
}

/**
 * modal opens a <dialog> with content built by build(close) and resolves
 * with what close() was given (undefined when dismissed with Escape).
 * Focus moves into the dialog and returns to where it was.
 */
export function modal(title, build) {
  return new Promise((resolve) => {
    const back = document.activeElement;
    const titleId = uid('dlg');
    const dlg = h('dialog', {class: 'modal', 'aria-labelledby': titleId});
    let result;
    const close = (v) => { result = v; dlg.close(); };
    dlg.addEventListener('close', () => {
      dlg.remove();
      if (back && back.focus) back.focus();
      resolve(result);
    });
    append(dlg, [h('h2', {id: titleId}, title), build(close)]);
    document.body.append(dlg);
    dlg.showModal();
  });
}

/** confirmAction asks a yes/no question; resolves true on confirm. */
export function confirmAction(title, text, confirmLabel = 'Confirm', danger = true) {
  return modal(title, (close) => h('div', {},
    h('p', {}, text),
    h('div', {class: 'actions'},
      h('button', {type: 'button', class: danger ? 'danger' : 'primary', onclick: () => close(true)}, confirmLabel),
      h('button', {type: 'button', onclick: () => close(false)}, 'Cancel'))));
}

/** fmtTime shows an ISO time or Unix ms in the browser's locale. */
export function fmtTime(t) {
  if (!t) return '—';
  const d = typeof t === 'number' ? new Date(t) : new Date(t);
  if (Number.isNaN(d.getTime()) || d.getTime() <= 0) return '—';
  return d.toLocaleString();
}

/** fmtDuration shows a number of seconds as "4 min 05 s". */
export function fmtDuration(sec) {
  sec = Math.max(0, Math.round(sec));
  const m = Math.floor(sec / 60);
  const s = String(sec % 60).padStart(2, '0');
  return m > 0 ? `${m} min ${s} s` : `${sec % 60} s`;
}

/**
 * table renders rows as an accessible table: columns are
 * {label, cell: row => node|string, class}; empty shows text.
 */
export function table(caption, columns, rows, empty = 'Nothing here yet.') {
  if (!rows.length) return h('p', {class: 'empty'}, empty);
  return h('div', {class: 'table-wrap'}, h('table', {},
    h('caption', {class: 'sr-only'}, caption),
    h('thead', {}, h('tr', {}, columns.map((c) => h('th', {scope: 'col', class: c.class}, c.label)))),
    h('tbody', {}, rows.map((r) => h('tr', {}, columns.map((c) => h('td', {class: c.class, 'data-label': c.label}, c.cell(r))))))));
}

/** busy disables a button while fn runs, and reports its error as a toast. */
export async function busy(button, fn) {
  button.disabled = true;
  button.setAttribute('aria-busy', 'true');
  try {
    return await fn();
  } catch (e) {
    toast(e.message || String(e), 'error');
    return undefined;
  } finally {
    button.disabled = false;
    button.removeAttribute('aria-busy');
  }
}
