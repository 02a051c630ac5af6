// The caller's permissions, as GET /api/session lists them, and the topic
// and path pattern rules of warden's acl package (MQTT 5 matching: '+' one
// level, '#' the rest including the parent level). The UI uses them to
// offer only what the caller may do and to check patterns as they are
// typed; the API decides and enforces everything regardless.

const opBits = {read: 1, write: 2, readWrite: 3};

/** compile turns permissions of one context into a checker: can(op, path). */
export function compile(perms, context, username) {
  const list = (perms || []).filter((p) => p.context === context)
    .map((p) => ({levels: p.resource.split('/'), bits: opBits[p.operation] || 0}));
  return (op, path) => {
    const want = opBits[op];
    const levels = path.split('/');
    return list.some((p) => (p.bits & want) === want && matches(p.levels, levels, username));
  };
}

// matches applies a pattern (split in levels) to a path or topic.
function matches(pattern, levels, username) {
  for (let i = 0; i < pattern.length; i += 1) {
    const p = pattern[i];
    if (p === '#') return !(i === 0 && levels[0].startsWith('$'));
    if (i >= levels.length) return false;
    if (p === '+') {
      if (i === 0 && levels[0].startsWith('$')) return false;
      continue;
    }
    if (bind(p, username) !== levels[i]) return false;
  }
  return pattern.length === levels.length;
}

// bind resolves {username} ({clientId} is no client's in the UI: it
// matches nothing, as an empty bound value does in acl).
function bind(level, username) {
  if (level.includes('{clientId}')) return null;
  if (!level.includes('{username}')) return level;
  if (!username || /[/+#\0]/.test(username)) return null;
  return level.split('{username}').join(username);
}

/**
 * problem says why s is not a valid topic filter (MQTT) or path pattern
 * (HTTP), with acl's wording, or '' when it is valid.
 */
export function patternProblem(s, context) {
  if (s === '') return 'is empty';
  if (new TextEncoder().encode(s).length > 65535) return 'is longer than 65535 bytes';
  if (s.includes('\0')) return 'contains U+0000';
  if (context === 'http' && !s.startsWith('/')) return "an http path pattern must start with '/'";
  if (context === 'mqtt' && s.startsWith('$share/')) return 'a shared subscription ($share/...) cannot be a permission; grant the topic filter after the share name';
  const levels = s.split('/');
  for (let i = 0; i < levels.length; i += 1) {
    const l = levels[i];
    if (l.includes('+') && l !== '+') return "'+' must occupy a whole level";
    if (l.includes('#')) {
      if (l !== '#') return "'#' must occupy a whole level";
      if (i !== levels.length - 1) return "'#' must be the last level";
    }
  }
  return '';
}

/** topicProblem says why s is not a topic name (no wildcards), or ''. */
export function topicProblem(s) {
  if (s === '') return 'is empty';
  if (/[+#]/.test(s)) return "contains a wildcard ('+' or '#')";
  return patternProblem(s, 'mqtt');
}
