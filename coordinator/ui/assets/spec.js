// Reading a pasted or uploaded job spec: JSON, or the YAML montagectl
// reads (block mappings and sequences, flow {…} and […], quoted and plain
// scalars, comments), then the values put in the types the API's JSON
// wants (times and sizes as strings, fps and quality as numbers), as
// montagectl's spec reader does.

export class SpecError extends Error {}

export function parseSpec(text) {
  const t = text.trim();
  if (!t) throw new SpecError('the spec is empty');
  let v;
  if (t.startsWith('{')) {
    try { v = JSON.parse(t); } catch (e) { throw new SpecError(`not JSON: ${e.message}`); }
  } else {
    v = parseYAML(text);
  }
  if (!v || typeof v !== 'object' || Array.isArray(v)) throw new SpecError('a spec is a mapping (name:, profile:, highlights: …)');
  return normalize(v, '');
}

const numbers = new Set(['priority', 'chunk_seconds', 'chunkSeconds', 'profile.fps', 'profile.quality']);
const bools = new Set(['transcribe', 'profile.title_overlay', 'profile.titleOverlay']);

function normalize(v, path) {
  if (Array.isArray(v)) return v.map((x) => normalize(x, path));
  if (v && typeof v === 'object') {
    const out = {};
    for (const [k, x] of Object.entries(v)) {
      const p = path === 'profile' ? `profile.${k}` : k;
      out[k] = normalize(x, ['highlights', 'intro', 'outro'].includes(k) ? 'highlight' : p);
    }
    return out;
  }
  if (numbers.has(path) || bools.has(path) || v === null) return v;
  return typeof v === 'number' || typeof v === 'boolean' ? String(v) : v;
}

// ---- A YAML subset.

function lines(text) {
  const out = [];
  text.split(/\r?\n/).forEach((raw, n) => {
    const s = stripComment(raw);
    if (!s.trim() || s.trim() === '---') return;
    if (/^\t/.test(s)) throw new SpecError(`line ${n + 1}: YAML is indented with spaces, not tabs`);
    out.push({ n: n + 1, indent: s.length - s.trimStart().length, text: s.trim() });
  });
  return out;
}

function stripComment(s) {
  let q = '';
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (q) {
      if (c === q && !(q === '"' && s[i - 1] === '\\')) q = '';
    } else if (c === '"' || c === "'") {
      q = c;
    } else if (c === '#' && (i === 0 || /\s/.test(s[i - 1]))) {
      return s.slice(0, i).trimEnd();
    }
  }
  return s.trimEnd();
}

export function parseYAML(text) {
  const ls = lines(text);
  if (!ls.length) return null;
  const [v, next] = block(ls, 0, ls[0].indent);
  if (next < ls.length) throw new SpecError(`line ${ls[next].n}: unexpected indentation`);
  return v;
}

function block(ls, i, indent) {
  return ls[i].text === '-' || ls[i].text.startsWith('- ') ? sequence(ls, i, indent) : mapping(ls, i, indent);
}

// splitKey finds "key: value" outside quotes and flow brackets.
function splitKey(s) {
  let q = '';
  let depth = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (q) { if (c === q) q = ''; continue; }
    if (c === '"' || c === "'") q = c;
    else if (c === '{' || c === '[') depth++;
    else if (c === '}' || c === ']') depth--;
    else if (c === ':' && depth === 0 && (i === s.length - 1 || s[i + 1] === ' ')) return [unquote(s.slice(0, i).trim()), s.slice(i + 1).trim()];
  }
  return null;
}

function mapping(ls, i, indent) {
  const out = {};
  while (i < ls.length && ls[i].indent === indent) {
    const l = ls[i];
    if (l.text.startsWith('- ')) break;
    const kv = splitKey(l.text);
    if (!kv) throw new SpecError(`line ${l.n}: expected "key: value", got "${l.text}"`);
    const [k, rest] = kv;
    i++;
    if (rest) {
      out[k] = scalarOrFlow(rest, l.n);
    } else if (i < ls.length && (ls[i].indent > indent || (ls[i].indent === indent && ls[i].text.startsWith('-')))) {
      [out[k], i] = block(ls, i, ls[i].indent);
    } else {
      out[k] = null;
    }
  }
  if (i < ls.length && ls[i].indent > indent) throw new SpecError(`line ${ls[i].n}: unexpected indentation`);
  return [out, i];
}

function sequence(ls, i, indent) {
  const out = [];
  while (i < ls.length && ls[i].indent === indent && (ls[i].text === '-' || ls[i].text.startsWith('- '))) {
    const l = ls[i];
    const item = l.text.slice(1).trim();
    if (!item) {
      i++;
      if (i < ls.length && ls[i].indent > indent) {
        let v;
        [v, i] = block(ls, i, ls[i].indent);
        out.push(v);
      } else {
        out.push(null);
      }
    } else if (!item.startsWith('{') && !item.startsWith('[') && splitKey(item)) {
      // "- key: value" opens a mapping whose keys sit where "key" does.
      const at = indent + (l.text.length - item.length);
      ls[i] = { n: l.n, indent: at, text: item };
      let v;
      [v, i] = mapping(ls, i, at);
      out.push(v);
    } else {
      out.push(scalarOrFlow(item, l.n));
      i++;
    }
  }
  return [out, i];
}

function scalarOrFlow(s, n) {
  if (s.startsWith('{') || s.startsWith('[')) {
    const p = { s, i: 0, n };
    const v = flow(p);
    skipSpace(p);
    if (p.i !== s.length) throw new SpecError(`line ${n}: unexpected "${s.slice(p.i)}"`);
    return v;
  }
  return plain(s, n);
}

function skipSpace(p) { while (p.i < p.s.length && /\s/.test(p.s[p.i])) p.i++; }

function flow(p) {
  skipSpace(p);
  const c = p.s[p.i];
  if (c === '{' || c === '[') {
    const close = c === '{' ? '}' : ']';
    const out = c === '{' ? {} : [];
    p.i++;
    for (;;) {
      skipSpace(p);
      if (p.s[p.i] === close) { p.i++; return out; }
      if (c === '{') {
        const key = token(p, ':');
        if (p.s[p.i] !== ':') throw new SpecError(`line ${p.n}: expected ":" after "${key}"`);
        p.i++;
        out[unquote(key.trim())] = flow(p);
      } else {
        out.push(flow(p));
      }
      skipSpace(p);
      if (p.s[p.i] === ',') { p.i++; continue; }
      if (p.s[p.i] === close) { p.i++; return out; }
      throw new SpecError(`line ${p.n}: expected "," or "${close}"`);
    }
  }
  return plain(token(p, ',}]').trim(), p.n);
}

// token reads up to one of stops, outside quotes.
function token(p, stops) {
  const start = p.i;
  let q = '';
  while (p.i < p.s.length) {
    const c = p.s[p.i];
    if (q) { if (c === q) q = ''; } else if (c === '"' || c === "'") q = c; else if (stops.includes(c)) break;
    p.i++;
  }
  return p.s.slice(start, p.i);
}

function unquote(s) {
  if (s.length >= 2 && s[0] === '"' && s.endsWith('"')) return JSON.parse(s);
  if (s.length >= 2 && s[0] === "'" && s.endsWith("'")) return s.slice(1, -1).replaceAll("''", "'");
  return s;
}

function plain(s, n) {
  if (s.startsWith('"') || s.startsWith("'")) {
    try { return unquote(s); } catch { throw new SpecError(`line ${n}: bad quoted string ${s}`); }
  }
  if (s === 'true' || s === 'false') return s === 'true';
  if (s === 'null' || s === '~') return null;
  if (/^-?\d+(\.\d+)?$/.test(s)) return Number(s);
  if (/^[|>]/.test(s)) throw new SpecError(`line ${n}: block scalars (| and >) are not read here; use montagectl submit`);
  return s;
}
