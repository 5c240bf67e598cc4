import { useEffect, useState } from 'preact/hooks';
import { call } from '../api.js';
import { ErrorBox } from '../ui.jsx';

/**
 * A labeling-config textarea checked by the API as it is typed
 * (POST /projects/check-config), showing the models the config implies.
 */
export function ConfigEditor({ id, value, onChange, readOnly }) {
  const [check, setCheck] = useState({ result: null, error: null, busy: false });
  useEffect(() => {
    if (!value.trim()) {
      setCheck({ result: null, error: null, busy: false });
      return undefined;
    }
    let alive = true;
    setCheck((c) => ({ ...c, busy: true }));
    const timer = setTimeout(async () => {
      try {
        const result = await call('POST', '/projects/check-config', { json: { labeling_config: value } });
        if (alive) setCheck({ result, error: null, busy: false });
      } catch (error) {
        if (alive) setCheck({ result: null, error, busy: false });
      }
    }, 400);
    return () => {
      alive = false;
      clearTimeout(timer);
    };
  }, [value]);
  return (
    <div class="field">
      <label for={id}>Labeling config (Label Studio XML)</label>
      <textarea id={id} rows={10} spellcheck={false} value={value} readOnly={readOnly}
        aria-describedby={id + '-check'} onInput={(e) => onChange(e.currentTarget.value)} />
      <div id={id + '-check'} aria-live="polite" class="config-check">
        {check.busy ? <p class="muted">Checking…</p> : null}
        {!check.busy && check.result ? <ImpliedModels result={check.result} /> : null}
        {!check.busy && check.error ? <ErrorBox error={check.error} what="The config" /> : null}
      </div>
    </div>
  );
}

export function ImpliedModels({ result }) {
  return (
    <div class="ok-box" data-testid="implied-models">
      <p><strong>Valid.</strong> {result.models.length ? 'It implies these models:' : 'It implies no model to train.'}</p>
      {result.models.length ? (
        <ul>
          {result.models.map((m) => (
            <li key={m.name}>
              <strong>{m.kind}</strong> <code>{m.name}</code>
              {m.multi_label ? ' (multi-label)' : ''}: {(m.labels || []).join(', ')}
            </li>
          ))}
        </ul>
      ) : null}
      {result.warnings.length ? (
        <ul class="warnings" aria-label="Warnings">
          {result.warnings.map((w, i) => <li key={i}>{w}</li>)}
        </ul>
      ) : null}
    </div>
  );
}
