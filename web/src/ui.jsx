// Small shared pieces: loading data, showing the API's errors, links.
import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { call } from './api.js';

/** Load `path` from the API; reload() fetches again. deps re-run it. */
export function useApi(path, query, deps = []) {
  const [state, setState] = useState({ data: null, error: null, loading: true });
  const key = JSON.stringify([path, query]);
  const alive = useRef(true);
  const load = useCallback(async () => {
    if (!path) return;
    try {
      const data = await call('GET', path, { query });
      if (alive.current) setState({ data, error: null, loading: false });
    } catch (error) {
      if (alive.current) setState((s) => ({ data: s.data, error, loading: false }));
    }
  }, [key]);
  useEffect(() => {
    alive.current = true;
    setState((s) => ({ ...s, loading: true }));
    load();
    return () => {
      alive.current = false;
    };
  }, [key, ...deps]);
  return { ...state, reload: load };
}

/** Poll `fn` every `ms` while `active`. */
export function usePoll(fn, ms, active) {
  const saved = useRef(fn);
  saved.current = fn;
  useEffect(() => {
    if (!active) return undefined;
    const id = setInterval(() => saved.current(), ms);
    return () => clearInterval(id);
  }, [ms, active]);
}

/** The API's error as the user should read it: code, message, field, details. */
export function ErrorBox({ error, what }) {
  if (!error) return null;
  const forbidden = error.status === 403;
  return (
    <div class="error" role="alert">
      <p>
        <strong>{what ? `${what}: ` : ''}{forbidden ? 'not allowed' : 'refused'}</strong>{' '}
        ({error.status ? `${error.status} ` : ''}{error.code}) {error.message}
        {error.field ? <span> — field <code>{error.field}</code></span> : null}
      </p>
      {error.details.length ? (
        <ul>
          {error.details.slice(0, 20).map((d, i) => (
            <li key={i}>{describeDetail(d)}</li>
          ))}
        </ul>
      ) : null}
    </div>
  );
}

function describeDetail(detail) {
  if (typeof detail === 'string') return detail;
  if (!detail || typeof detail !== 'object') return String(detail);
  const where = ['tag', 'line', 'file', 'task', 'index', 'loc', 'field']
    .filter((k) => detail[k] !== undefined && detail[k] !== null)
    .map((k) => `${k} ${Array.isArray(detail[k]) ? detail[k].join('.') : detail[k]}`)
    .join(', ');
  const what = detail.message || detail.reason || detail.msg || detail.issue || JSON.stringify(detail);
  const fix = detail.fix ? ` — ${detail.fix}` : '';
  return (where ? where + ': ' : '') + what + fix;
}

export function Loading({ what }) {
  return <p class="muted" aria-busy="true">Loading {what}…</p>;
}

export function link(...parts) {
  return '#/' + parts.map((p) => encodeURIComponent(String(p))).join('/');
}

export function when(iso) {
  if (!iso) return '–';
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? String(iso) : date.toLocaleString();
}

export function score(value) {
  return typeof value === 'number' ? value.toFixed(3) : '–';
}

export function StatusBadge({ status }) {
  return <span class={'badge badge-' + String(status)}>{String(status)}</span>;
}
