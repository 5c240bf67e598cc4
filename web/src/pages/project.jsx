import { useEffect, useState } from 'preact/hooks';
import { call, download } from '../api.js';
import { ErrorBox, Loading, link, useApi } from '../ui.jsx';
import { MANAGERS, RoleNote, allows, useIsAdmin } from '../roles.jsx';
import { ConfigEditor, ImpliedModels } from './config.jsx';

const TABS = [
  ['config', 'Labeling config'],
  ['tasks', 'Tasks'],
  ['import', 'Import'],
];

export function ProjectPage({ projectId, tab }) {
  const project = useApi(`/projects/${projectId}`);
  const admin = useIsAdmin();
  const access = { admin, role: project.data ? project.data.my_role : null };
  return (
    <>
      <ErrorBox error={project.error} what="The project" />
      {project.data ? (
        <p class="lead">
          <strong>{project.data.name}</strong> · {project.data.language}
          {project.data.description ? ` · ${project.data.description}` : ''}
          {' · '}<span data-testid="my-role">{roleLine(access)}</span>
        </p>
      ) : null}
      <nav aria-label="Project" class="tabs">
        <ul>
          {TABS.map(([key, label]) => (
            <li key={key}>
              <a href={link('projects', projectId, key)} aria-current={tab === key ? 'page' : undefined}>{label}</a>
            </li>
          ))}
          <li><a href={link('projects', projectId, 'train')}>Train</a></li>
        </ul>
      </nav>
      {!project.data ? (project.error ? null : <Loading what="the project" />) : (
        <>
          {tab === 'config' ? <ConfigTab projectId={projectId} access={access} /> : null}
          {tab === 'tasks' ? <TasksTab projectId={projectId} /> : null}
          {tab === 'import' ? <ImportTab projectId={projectId} access={access} /> : null}
        </>
      )}
    </>
  );
}

/** "your role: Annotator", or what a lab admin outside the project is. */
function roleLine(access) {
  if (access.role) return `your role: ${access.role}${access.admin ? ' (and lab admin)' : ''}`;
  return access.admin ? 'you are a lab admin (not a member)' : '';
}

function ConfigTab({ projectId, access }) {
  const config = useApi(`/projects/${projectId}/config`);
  const mayEdit = allows(access, MANAGERS);
  const [draft, setDraft] = useState(null);
  const [saved, setSaved] = useState(null);
  const [error, setError] = useState(null);
  useEffect(() => {
    if (config.data && draft === null) setDraft(config.data.labeling_config);
  }, [config.data]);
  async function save(event) {
    event.preventDefault();
    setError(null);
    setSaved(null);
    try {
      const result = await call('PUT', `/projects/${projectId}/config`, { json: { labeling_config: draft } });
      setSaved(result);
      config.reload();
    } catch (exc) {
      setError(exc);
    }
  }
  if (config.error) return <ErrorBox error={config.error} what="The config" />;
  if (!config.data || draft === null) return <Loading what="the config" />;
  return (
    <section aria-labelledby="config-h">
      <h2 id="config-h">Labeling config</h2>
      <h3>Models it implies now</h3>
      <ImpliedModels result={config.data} />
      {mayEdit ? (
        <>
          <form onSubmit={save} class="stack">
            <ConfigEditor id="config-edit" value={draft} onChange={setDraft} />
            <div><button type="submit" disabled={draft === config.data.labeling_config}>Save config</button></div>
          </form>
          {saved ? <p role="status">Saved.</p> : null}
          <ErrorBox error={error} what="Saving the config" />
        </>
      ) : (
        <>
          <RoleNote doing="Changing the labeling config" roles={MANAGERS} role={access.role} testId="config-role-note" />
          <h3 id="config-text-h">The config (Label Studio XML)</h3>
          <pre class="config-text" tabIndex={0} aria-labelledby="config-text-h" data-testid="config-text">{config.data.labeling_config}</pre>
        </>
      )}
    </section>
  );
}

/** A completion's review state: the last review stands. */
export function reviewState(completion) {
  const reviews = completion.reviews || [];
  if (!reviews.length) return 'not reviewed';
  return reviews[reviews.length - 1].accepted ? 'accepted' : 'rejected';
}

function taskText(task) {
  const data = task.data || {};
  for (const value of Object.values(data)) {
    if (typeof value === 'string' && !value.startsWith('/api/') && !/^https?:/.test(value)) return value;
  }
  if (task.file_upload) return task.file_upload;
  return Object.values(data).map(String).join(' · ');
}

function TasksTab({ projectId }) {
  const [filters, setFilters] = useState({ has_completions: '', has_predictions: '', tags: '', order: 'id' });
  const [page, setPage] = useState(1);
  const pageSize = 25;
  const query = {
    page, page_size: pageSize, order: filters.order,
    has_completions: filters.has_completions, has_predictions: filters.has_predictions,
    tags: filters.tags.split(',').map((t) => t.trim()).filter(Boolean),
  };
  const tasks = useApi(`/projects/${projectId}/tasks`, query);
  function set(key) {
    return (e) => { setPage(1); setFilters({ ...filters, [key]: e.currentTarget.value }); };
  }
  const total = tasks.data ? tasks.data.total : 0;
  const pages = Math.max(1, Math.ceil(total / pageSize));
  return (
    <section aria-labelledby="tasks-h">
      <h2 id="tasks-h">Tasks</h2>
      <form class="row filters" onSubmit={(e) => e.preventDefault()} aria-label="Task filters">
        <div class="field">
          <label for="f-completions">Completions</label>
          <select id="f-completions" value={filters.has_completions} onChange={set('has_completions')}>
            <option value="">any</option><option value="true">with completions</option><option value="false">without</option>
          </select>
        </div>
        <div class="field">
          <label for="f-predictions">Predictions</label>
          <select id="f-predictions" value={filters.has_predictions} onChange={set('has_predictions')}>
            <option value="">any</option><option value="true">with predictions</option><option value="false">without</option>
          </select>
        </div>
        <div class="field">
          <label for="f-tags">Tags (comma-separated)</label>
          <input id="f-tags" value={filters.tags} onChange={set('tags')} />
        </div>
        <div class="field">
          <label for="f-order">Order</label>
          <select id="f-order" value={filters.order} onChange={set('order')}>
            <option value="id">by id</option><option value="uncertainty">least certain first</option>
          </select>
        </div>
      </form>
      <ErrorBox error={tasks.error} what="Tasks" />
      {tasks.data ? (
        <>
          <p aria-live="polite">{total} task{total === 1 ? '' : 's'}</p>
          <div class="table-wrap">
            <table data-testid="tasks-table">
              <caption class="sr-only">Tasks</caption>
              <thead>
                <tr><th scope="col">Task</th><th scope="col">Text</th><th scope="col">Completions</th><th scope="col">Review</th><th scope="col">Predictions</th><th scope="col">Tags</th></tr>
              </thead>
              <tbody>
                {tasks.data.items.map((t) => {
                  const done = t.annotations || [];
                  const reviews = done.map(reviewState);
                  return (
                    <tr key={t.id}>
                      <td><a href={link('projects', projectId, 'tasks', t.id)}>#{t.id}</a></td>
                      <td class="clip">{taskText(t)}</td>
                      <td>{done.length}{(t.drafts || []).length ? ` (+${t.drafts.length} draft)` : ''}</td>
                      <td>{reviews.length ? reviews.join(', ') : '–'}</td>
                      <td>{(t.predictions || []).length}</td>
                      <td>{(t.tags || []).join(', ')}</td>
                    </tr>
                  );
                })}
              </tbody>
            </table>
          </div>
          <div class="row pager">
            <button type="button" disabled={page <= 1} onClick={() => setPage(page - 1)}>Previous page</button>
            <span>Page {page} of {pages}</span>
            <button type="button" disabled={page >= pages} onClick={() => setPage(page + 1)}>Next page</button>
            <button type="button" class="secondary" onClick={() => download(`/projects/${projectId}/export`, { format: 'json' }, `project-${projectId}.json`).catch(() => {})}>Export JSON</button>
          </div>
        </>
      ) : null}
    </section>
  );
}

function ImportTab({ projectId, access }) {
  if (!allows(access, MANAGERS)) {
    return (
      <section aria-labelledby="import-h">
        <h2 id="import-h">Import tasks</h2>
        <RoleNote doing="Importing tasks" roles={MANAGERS} role={access.role} testId="import-role-note" />
      </section>
    );
  }
  return <ImportForm projectId={projectId} />;
}

function ImportForm({ projectId }) {
  const [files, setFiles] = useState([]);
  const [textSplit, setTextSplit] = useState('line');
  const [result, setResult] = useState(null);
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  async function submit(event) {
    event.preventDefault();
    setError(null);
    setResult(null);
    if (!files.length) {
      setError({ status: 0, code: 'no_files', message: 'choose one or more files to import', field: 'files', details: [] });
      return;
    }
    const form = new FormData();
    for (const file of files) form.append('files', file, file.name);
    setBusy(true);
    try {
      setResult(await call('POST', `/projects/${projectId}/tasks/import/files`, { form, query: { text_split: textSplit } }));
    } catch (exc) {
      setError(exc);
    } finally {
      setBusy(false);
    }
  }
  return (
    <section aria-labelledby="import-h">
      <h2 id="import-h">Import tasks</h2>
      <p>Label Studio JSON (with completions), CSV / TSV, plain text, or PNG / JPEG / TIFF images. Everything is checked first; a refused import stores nothing.</p>
      <form onSubmit={submit} class="stack">
        <div class="field">
          <label for="import-files">Files</label>
          <input id="import-files" type="file" multiple accept=".json,.csv,.tsv,.tab,.txt,.png,.jpg,.jpeg,.tif,.tiff"
            onChange={(e) => setFiles(Array.from(e.currentTarget.files || []))} />
        </div>
        <div class="field">
          <label for="import-split">Plain text files</label>
          <select id="import-split" value={textSplit} onChange={(e) => setTextSplit(e.currentTarget.value)}>
            <option value="line">a task per line</option>
            <option value="file">a task per file</option>
          </select>
        </div>
        <div><button type="submit" disabled={busy}>{busy ? 'Importing…' : 'Import'}</button></div>
      </form>
      <div aria-live="polite">
        {result ? (
          <p class="ok-box" data-testid="import-result">
            Imported {result.imported} task{result.imported === 1 ? '' : 's'}. <a href={link('projects', projectId, 'tasks')}>See the tasks</a>
          </p>
        ) : null}
      </div>
      <ErrorBox error={error} what="The import" />
    </section>
  );
}
