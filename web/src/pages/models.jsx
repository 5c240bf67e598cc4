import { useState } from 'preact/hooks';
import { download } from '../api.js';
import { ConfusionMatrix, PerLabelTable } from '../charts.jsx';
import { ErrorBox, Loading, link, score, useApi, when } from '../ui.jsx';
import { MANAGERS, RoleNote, allows, refuses, useProjectAccess } from '../roles.jsx';
import { DeployButton } from './train.jsx';

export function ModelsPage() {
  const models = useApi('/models');
  return (
    <section aria-labelledby="models-h">
      <h2 id="models-h">Trained models</h2>
      <ErrorBox error={models.error} what="Models" />
      {!models.data ? <Loading what="models" /> : null}
      {models.data && !models.data.items.length ? <p>No model yet: start a training from a project.</p> : null}
      {models.data && models.data.items.length ? (
        <div class="table-wrap">
          <table data-testid="models-table">
            <caption class="sr-only">Models</caption>
            <thead>
              <tr><th scope="col">Model</th><th scope="col">Kind</th><th scope="col">Project</th><th scope="col">Labels</th><th scope="col">Versions</th><th scope="col">Micro F1</th><th scope="col">Deployed in</th></tr>
            </thead>
            <tbody>
              {models.data.items.map((m) => (
                <tr key={m.name}>
                  <td><a href={link('models', m.name)}>{m.name}</a></td>
                  <td>{m.kind}</td>
                  <td><a href={link('projects', m.project_id)}>{m.project_id}</a></td>
                  <td class="clip">{(m.labels || []).join(', ')}</td>
                  <td>{m.versions}</td>
                  <td>{score(m.micro_f1)}</td>
                  <td>{(m.deployed_in || []).map((d) => (typeof d === 'object' ? `${d.project_id} (v${d.version})` : d)).join(', ') || '–'}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      ) : null}
    </section>
  );
}

export function ModelPage({ name }) {
  const model = useApi(`/models/${encodeURIComponent(name)}`);
  if (model.error) return <ErrorBox error={model.error} what="The model" />;
  if (!model.data) return <Loading what="the model" />;
  return <ModelVersions name={name} model={model.data} />;
}

function ModelVersions({ name, model: m }) {
  const [error, setError] = useState(null);
  const [target, setTarget] = useState('');
  const projectId = target.trim() || String(m.project_id);
  const validTarget = /^[1-9]\d{0,17}$/.test(projectId);
  // Downloading takes Owner or Manager in the model's project; deploying, in the project it goes into.
  const home = useProjectAccess(m.project_id);
  const there = useProjectAccess(validTarget ? projectId : null);
  const mayDownload = allows(home, MANAGERS);
  const mayDeploy = validTarget && !there.error && allows(there, MANAGERS);
  const history = [...(m.history || [])].sort((a, b) => b.version - a.version);
  return (
    <>
      <p><a href="#/models">← Models</a></p>
      <p class="lead"><strong>{m.kind}</strong> of project <a href={link('projects', m.project_id)}>{m.project_id}</a>: {(m.labels || []).join(', ')}</p>
      {refuses(home, MANAGERS) ? <RoleNote doing="Downloading a model" roles={MANAGERS} role={home.role} where="in its project" /> : null}
      <div class="field narrow">
        <label for="deploy-target">Deploy into project (id)</label>
        <input id="deploy-target" inputMode="numeric" placeholder={String(m.project_id)} value={target}
          aria-describedby="deploy-target-note" onInput={(e) => setTarget(e.currentTarget.value)} />
        <div id="deploy-target-note" aria-live="polite">
          {!validTarget ? <p class="help">A project id is a whole number, such as {m.project_id}.</p> : null}
          {validTarget && there.error ? <p class="help">You are not a member of project {projectId}, or there is none: you cannot deploy there.</p> : null}
          {validTarget && refuses(there, MANAGERS) ? <RoleNote doing={`Deploying into project ${projectId}`} roles={MANAGERS} role={there.role} /> : null}
        </div>
      </div>
      <ErrorBox error={error} what="Downloading" />
      {history.map((v) => (
        <section key={v.version} aria-labelledby={'v' + v.version} class="model-result">
          <h2 id={'v' + v.version}>Version {v.version}</h2>
          <p class="muted">
            Trained {when(v.created_at)} from {v.base_model} (run <a href={link('trainings', v.run_id)}>{v.run_id.slice(0, 12)}</a>)
            {(v.deployed_in || []).length ? ` · deployed in ${(v.deployed_in || []).join(', ')}` : ''}
          </p>
          {v.metrics && v.metrics.per_label ? <PerLabelTable metrics={v.metrics} /> : <p>No benchmark recorded.</p>}
          {v.metrics && v.metrics.confusion_matrix ? (
            <details><summary>Confusion matrix</summary><ConfusionMatrix matrix={v.metrics.confusion_matrix} /></details>
          ) : null}
          <div class="row">
            {mayDownload ? <button type="button" class="secondary" onClick={() => download(`/models/${encodeURIComponent(name)}/download`, { version: v.version }, `${name}-v${v.version}.zip`).catch(setError)}>Download v{v.version} (zip)</button> : null}
            {mayDeploy ? <DeployButton projectId={projectId} name={name} version={v.version} /> : null}
          </div>
        </section>
      ))}
    </>
  );
}
