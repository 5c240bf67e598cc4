import { useEffect, useState } from 'preact/hooks';
import { call, download } from '../api.js';
import { ErrorBox, Loading, StatusBadge, link, score, useApi, usePoll, when } from '../ui.jsx';
import { ConfusionMatrix, LearningCurve, PerLabelTable } from '../charts.jsx';
import { MANAGERS, RoleNote, allows, refuses, useProjectAccess } from '../roles.jsx';

const BASE_MODELS = [
  ['', 'the language’s default'],
  ['minilm-l6-en', 'minilm-l6-en (English)'],
  ['e5-small-multilingual', 'e5-small-multilingual (en de es pt it da ro)'],
];
const ACTIVE = ['queued', 'running'];

export function TrainPage({ projectId, system }) {
  const access = useProjectAccess(projectId);
  const mayTrain = allows(access, MANAGERS);
  const config = useApi(mayTrain ? `/projects/${projectId}/config` : null);
  const history = useApi(`/projects/${projectId}/trainings`, { page_size: 50 });
  const running = history.data && history.data.items.some((r) => ACTIVE.includes(r.status));
  usePoll(history.reload, 3000, running);
  let form;
  if (access.error) form = <ErrorBox error={access.error} what="The project" />;
  else if (mayTrain) {
    if (config.error) form = <ErrorBox error={config.error} what="The project" />;
    else if (!config.data) form = <Loading what="the project" />;
    else form = <TrainForm projectId={projectId} config={config.data} system={system} />;
  } else if (!access.loaded) form = <Loading what="the project" />;
  else {
    form = (
      <section aria-labelledby="train-h">
        <h2 id="train-h">Start a training</h2>
        <RoleNote doing="Starting a training" roles={MANAGERS} role={access.role} testId="train-role-note" />
      </section>
    );
  }
  return (
    <>
      <p><a href={link('projects', projectId)}>← Project {projectId}</a></p>
      {form}
      <History projectId={projectId} history={history} />
    </>
  );
}

function numberOrNull(text) {
  const trimmed = String(text).trim();
  return trimmed === '' ? null : Number(trimmed);
}

function TrainForm({ projectId, config, system }) {
  const kinds = [...new Set(config.models.map((m) => m.kind))].filter((k) => k !== 'visual_ner');
  const [form, setForm] = useState({
    epochs: '10', learning_rate: '0.0001', decay: '0.01', dropout: '0.1', batch_size: '16',
    split: 'share', validation_share: '0.2', train_tag: 'Train', test_tag: 'Test',
    base_model: '', use_gpu: false, deploy: true, types: kinds,
  });
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const set = (key) => (e) => setForm({ ...form, [key]: e.currentTarget.type === 'checkbox' ? e.currentTarget.checked : e.currentTarget.value });
  function toggleType(kind, on) {
    setForm({ ...form, types: on ? [...form.types, kind] : form.types.filter((k) => k !== kind) });
  }
  async function submit(event) {
    event.preventDefault();
    setError(null);
    const params = {};
    for (const key of ['epochs', 'learning_rate', 'decay', 'dropout', 'batch_size']) {
      const value = numberOrNull(form[key]);
      if (value !== null) params[key] = value;
    }
    const body = {
      params,
      types: form.types,
      split: form.split === 'share'
        ? { validation_share: numberOrNull(form.validation_share) }
        : { train_tag: form.train_tag, test_tag: form.test_tag },
      use_gpu: form.use_gpu,
      deploy: form.deploy,
    };
    if (form.base_model) body.base_model = form.base_model;
    setBusy(true);
    try {
      const run = await call('POST', `/projects/${projectId}/trainings`, { json: body });
      location.hash = link('trainings', run.id);
    } catch (exc) {
      setError(exc);
    } finally {
      setBusy(false);
    }
  }
  const num = (key, label, attrs) => (
    <div class="field">
      <label for={'t-' + key}>{label}</label>
      <input id={'t-' + key} type="number" inputMode="decimal" value={form[key]} onInput={set(key)} {...attrs} />
    </div>
  );
  return (
    <section aria-labelledby="train-h">
      <h2 id="train-h">Start a training</h2>
      <form onSubmit={submit} class="stack" noValidate>
        <fieldset>
          <legend>Models</legend>
          {kinds.length ? kinds.map((kind) => (
            <label key={kind} class="check">
              <input type="checkbox" checked={form.types.includes(kind)} onChange={(e) => toggleType(kind, e.currentTarget.checked)} /> {kind}
            </label>
          )) : <p>The config implies no text model to train.</p>}
        </fieldset>
        <fieldset>
          <legend>Parameters</legend>
          <div class="grid">
            {num('epochs', 'Epochs', { min: 1, max: 1000, step: 1 })}
            {num('learning_rate', 'Learning rate', { min: 0, step: 'any' })}
            {num('decay', 'Weight decay', { min: 0, step: 'any' })}
            {num('dropout', 'Dropout', { min: 0, max: 0.9, step: 'any' })}
            {num('batch_size', 'Batch size', { min: 1, step: 1 })}
            <div class="field">
              <label for="t-base">Base model</label>
              <select id="t-base" value={form.base_model} onChange={set('base_model')}>
                {BASE_MODELS.map(([v, l]) => <option key={v} value={v}>{l}</option>)}
              </select>
            </div>
          </div>
        </fieldset>
        <fieldset>
          <legend>Split into train and test</legend>
          <label class="check"><input type="radio" name="split" value="share" checked={form.split === 'share'} onChange={set('split')} /> by a test share</label>
          <label class="check"><input type="radio" name="split" value="tags" checked={form.split === 'tags'} onChange={set('split')} /> by tags</label>
          {form.split === 'share'
            ? <div class="grid">{num('validation_share', 'Test share (0–1)', { min: 0.01, max: 0.99, step: 'any' })}</div>
            : (
              <div class="grid">
                <div class="field"><label for="t-train-tag">Train tag</label><input id="t-train-tag" value={form.train_tag} onInput={set('train_tag')} /></div>
                <div class="field"><label for="t-test-tag">Test tag</label><input id="t-test-tag" value={form.test_tag} onInput={set('test_tag')} /></div>
              </div>
            )}
        </fieldset>
        <fieldset>
          <legend>Run</legend>
          <label class="check">
            <input type="checkbox" checked={form.use_gpu} onChange={set('use_gpu')} disabled={!system.gpu_available && !form.use_gpu} /> Use the GPU
            <span class="muted"> ({system.gpu})</span>
          </label>
          <label class="check"><input type="checkbox" checked={form.deploy} onChange={set('deploy')} /> Deploy into the project when done</label>
        </fieldset>
        <div><button type="submit" disabled={busy}>{busy ? 'Starting…' : 'Start training'}</button></div>
      </form>
      <ErrorBox error={error} what="Starting the training" />
    </section>
  );
}

function History({ projectId, history }) {
  const [picked, setPicked] = useState([]);
  const toggle = (id, on) => setPicked(on ? [...picked, id].slice(-2) : picked.filter((p) => p !== id));
  return (
    <section aria-labelledby="history-h">
      <h2 id="history-h">History</h2>
      <ErrorBox error={history.error} what="Trainings" />
      {history.data && !history.data.items.length ? <p>No training yet.</p> : null}
      {history.data && history.data.items.length ? (
        <>
          <div class="table-wrap">
            <table data-testid="history-table">
              <caption class="sr-only">Trainings of project {projectId}</caption>
              <thead>
                <tr><th scope="col">Compare</th><th scope="col">Run</th><th scope="col">Status</th><th scope="col">Progress</th><th scope="col">Started</th><th scope="col">Source</th><th scope="col">Micro F1</th></tr>
              </thead>
              <tbody>
                {history.data.items.map((r) => (
                  <tr key={r.id}>
                    <td><input type="checkbox" aria-label={`Compare run ${r.id}`} checked={picked.includes(r.id)} onChange={(e) => toggle(r.id, e.currentTarget.checked)} /></td>
                    <td><a href={link('trainings', r.id)}>{r.id.slice(0, 12)}</a></td>
                    <td><StatusBadge status={r.status} /></td>
                    <td>{percent(r.progress)} %</td>
                    <td>{when(r.created_at)}</td>
                    <td>{r.source}</td>
                    <td>{microOf(r)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
          <p>
            {picked.length === 2
              ? <a class="button" href={'#/trainings/compare?ids=' + picked.map(encodeURIComponent).join(',')}>Compare the two runs side by side</a>
              : <span class="muted">Tick two runs to compare them side by side.</span>}
          </p>
        </>
      ) : null}
    </section>
  );
}

function microOf(run) {
  const models = (run.metrics && run.metrics.models) || {};
  return Object.entries(models).map(([name, m]) => `${name} ${score(m.micro && m.micro.f1)}`).join('; ') || '–';
}

export function TrainingPage({ trainingId }) {
  const run = useApi(`/trainings/${trainingId}`);
  const access = useProjectAccess(run.data ? run.data.project_id : null);
  const active = run.data && ACTIVE.includes(run.data.status);
  usePoll(run.reload, 1500, active);
  if (run.error && !run.data) return <ErrorBox error={run.error} what="The training" />;
  if (!run.data) return <Loading what="the training" />;
  const r = run.data;
  const manages = allows(access, MANAGERS);
  return (
    <>
      <p><a href={link('projects', r.project_id, 'train')}>← Trainings of project {r.project_id}</a></p>
      <ErrorBox error={run.error} what="Refreshing" />
      <Progress run={r} />
      <RunFacts run={r} />
      {active && manages ? <CancelButton run={r} onDone={run.reload} /> : null}
      {active && refuses(access, MANAGERS) ? <RoleNote doing="Cancelling a training" roles={MANAGERS} role={access.role} /> : null}
      <Log trainingId={trainingId} active={active} />
      {r.status === 'succeeded' ? <Result run={r} access={access} /> : null}
      {r.history && r.history.length ? <LearningCurve history={r.history} /> : null}
    </>
  );
}

function Progress({ run }) {
  const last = (run.history || []).filter((h) => typeof h.percent === 'number').slice(-1)[0];
  return (
    <section aria-labelledby="progress-h" class="progress-box">
      <h2 id="progress-h">Progress</h2>
      <p><StatusBadge status={run.status} /> {run.epoch ? `epoch ${run.epoch}` : ''} {last && last.message ? `· ${last.message}` : ''}</p>
      <label for="run-progress" class="sr-only">Training progress</label>
      <progress id="run-progress" max={100} value={run.progress} data-testid="run-progress">{percent(run.progress)} %</progress>
      <p aria-live="polite" data-testid="run-progress-text"><strong>{percent(run.progress)} %</strong>{run.status === 'succeeded' ? ' — done' : ''}</p>
      {run.failure_reason ? <p class="error" role="alert">Failed: {run.failure_reason}</p> : null}
    </section>
  );
}

// Whole percents, rounded down: 99.6 is not done.
function percent(value) {
  return Math.floor(Number(value) || 0);
}

function RunFacts({ run }) {
  const params = run.params || {};
  const data = run.data || {};
  return (
    <details>
      <summary>Parameters and data</summary>
      <dl class="facts">
        <dt>Run</dt><dd>{run.id}</dd>
        <dt>Started by</dt><dd>{run.created_by} ({run.source})</dd>
        <dt>Created</dt><dd>{when(run.created_at)}</dd>
        <dt>Finished</dt><dd>{when(run.finished_at)}</dd>
        <dt>Base model</dt><dd>{params.base_model || '–'}</dd>
        <dt>On</dt><dd>{run.use_gpu ? 'GPU' : 'CPU'}</dd>
        <dt>Data</dt><dd>{data.train ?? '–'} train, {data.test ?? '–'} test</dd>
        <dt>Parameters</dt><dd><code>{JSON.stringify(params.params || params.training || {})}</code></dd>
      </dl>
    </details>
  );
}

function CancelButton({ run, onDone }) {
  const [error, setError] = useState(null);
  return (
    <p>
      <button type="button" class="danger" onClick={() => call('POST', `/trainings/${run.id}/cancel`).then(onDone, setError)}>Cancel the training</button>
      <ErrorBox error={error} what="Cancelling" />
    </p>
  );
}

function Log({ trainingId, active }) {
  const [text, setText] = useState('');
  const [error, setError] = useState(null);
  const load = () => call('GET', `/trainings/${trainingId}/logs`, { query: { tail: 400 }, as: 'text' }).then((t) => { setText(t); setError(null); }, setError);
  useEffect(() => { load(); }, [trainingId, active]);
  usePoll(load, 3000, active);
  return (
    <section aria-labelledby="log-h">
      <h2 id="log-h">Log</h2>
      <ErrorBox error={error} what="The log" />
      <pre class="log" tabIndex={0} aria-label="Training log (last 400 lines)" data-testid="run-log">{text || 'Nothing logged yet.'}</pre>
      <button type="button" class="secondary" onClick={() => download(`/trainings/${trainingId}/logs`, { download: true }, `training-${trainingId}.log`).catch(setError)}>Download the log</button>
      <button type="button" class="secondary" onClick={() => download(`/trainings/${trainingId}/report`, {}, `training-${trainingId}-report.zip`).catch(setError)}>Download the report (zip: log, scores, plots)</button>
    </section>
  );
}

function Result({ run, access }) {
  const models = (run.metrics && run.metrics.models) || {};
  const deploys = (run.metrics && run.metrics.deploy) || [];
  const mayDeploy = allows(access, MANAGERS);
  return (
    <section aria-labelledby="result-h">
      <h2 id="result-h">Result</h2>
      {refuses(access, MANAGERS) ? <RoleNote doing="Deploying a model into the project" roles={MANAGERS} role={access.role} /> : null}
      {deploys.length ? (
        <ul>
          {deploys.map((d, i) => <li key={i}><code>{d.model}</code>: {d.deployed ? 'deployed' : 'not deployed'} ({d.why})</li>)}
        </ul>
      ) : null}
      {Object.entries(models).map(([name, metrics]) => (
        <article key={name} class="model-result">
          <h3>{name} <a href={link('models', name)} class="small">model page</a></h3>
          <PerLabelTable metrics={metrics} />
          {metrics.confusion_matrix ? (
            <details data-testid={'confusion-' + name}>
              <summary>Confusion matrix</summary>
              <ConfusionMatrix matrix={metrics.confusion_matrix} />
            </details>
          ) : null}
          {mayDeploy ? <DeployButton projectId={run.project_id} name={name} /> : null}
        </article>
      ))}
    </section>
  );
}

export function DeployButton({ projectId, name, version }) {
  const [state, setState] = useState({ result: null, error: null });
  async function deploy() {
    try {
      const body = version ? { version } : {};
      setState({ result: await call('POST', `/projects/${projectId}/models/${encodeURIComponent(name)}/deploy`, { json: body }), error: null });
    } catch (error) {
      setState({ result: null, error });
    }
  }
  return (
    <div aria-live="polite">
      <button type="button" class="secondary" onClick={deploy}>Deploy {name}{version ? ` v${version}` : ''} into project {projectId}</button>
      {state.result ? <p role="status">Deployed v{state.result.version}: {state.result.labels.join(', ')}</p> : null}
      <ErrorBox error={state.error} what="Deploying" />
    </div>
  );
}

export function ComparePage({ ids }) {
  const compared = useApi('/trainings/compare', { ids });
  if (compared.error) return <ErrorBox error={compared.error} what="Comparing" />;
  if (!compared.data) return <Loading what="the comparison" />;
  const c = compared.data;
  const header = (
    <tr><th scope="col">&nbsp;</th>{c.ids.map((id) => <th scope="col" key={id}><a href={link('trainings', id)}>{id.slice(0, 12)}</a></th>)}</tr>
  );
  return (
    <>
      <section aria-labelledby="cmp-runs">
        <h2 id="cmp-runs">Runs</h2>
        <div class="table-wrap">
          <table data-testid="compare-table">
            <thead>{header}</thead>
            <tbody>
              <tr><th scope="row">Status</th>{c.status.map((s, i) => <td key={i}><StatusBadge status={s} /></td>)}</tr>
              <tr><th scope="row">Created</th>{c.created_at.map((s, i) => <td key={i}>{when(s)}</td>)}</tr>
              {Object.entries(c.params).map(([name, values]) => (
                <tr key={name}><th scope="row">{name}</th>{values.map((v, i) => <td key={i}><code>{JSON.stringify(v)}</code></td>)}</tr>
              ))}
              <tr><th scope="row">Data</th>{c.data.map((d, i) => <td key={i}>{d ? `${d.train ?? '–'} train, ${d.test ?? '–'} test` : '–'}</td>)}</tr>
            </tbody>
          </table>
        </div>
      </section>
      {Object.entries(c.metrics).map(([model, m]) => (
        <section key={model} aria-label={`Scores of ${model}`}>
          <h2>{model}</h2>
          <div class="table-wrap">
            <table>
              <thead>{header}</thead>
              <tbody>
                <tr><th scope="row">micro F1</th>{(m.micro || []).map((v, i) => <td key={i}>{score(v && v.f1)}</td>)}</tr>
                <tr><th scope="row">macro F1</th>{(m.macro || []).map((v, i) => <td key={i}>{score(v && v.f1)}</td>)}</tr>
                {Object.entries(m.per_label || {}).map(([label, values]) => (
                  <tr key={label}><th scope="row">{label} F1</th>{values.map((v, i) => <td key={i}>{score(v && v.f1)}</td>)}</tr>
                ))}
              </tbody>
            </table>
          </div>
        </section>
      ))}
    </>
  );
}
