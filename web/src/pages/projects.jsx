import { useState } from 'preact/hooks';
import { call } from '../api.js';
import { ErrorBox, Loading, link, useApi, when } from '../ui.jsx';
import { ConfigEditor } from './config.jsx';

const LANGUAGES = ['en', 'de', 'es', 'pt', 'it', 'da', 'ro'];
const EXAMPLE_CONFIG = `<View>
  <Labels name="label" toName="text">
    <Label value="Problem"/>
    <Label value="Drug"/>
  </Labels>
  <Text name="text" value="$text"/>
</View>`;

export function ProjectsPage() {
  const projects = useApi('/projects', { page_size: 100 });
  return (
    <>
      <section aria-labelledby="projects-list">
        <h2 id="projects-list">Your projects</h2>
        <ErrorBox error={projects.error} what="Projects" />
        {projects.loading && !projects.data ? <Loading what="projects" /> : null}
        {projects.data ? <ProjectTable items={projects.data.items} /> : null}
      </section>
      <CreateProject onCreated={(p) => { location.hash = link('projects', p.id, 'config'); }} />
    </>
  );
}

function ProjectTable({ items }) {
  if (!items.length) return <p>No projects yet: create one below.</p>;
  return (
    <div class="table-wrap">
      <table>
        <caption class="sr-only">Projects</caption>
        <thead>
          <tr><th scope="col">Project</th><th scope="col">Your role</th><th scope="col">Language</th><th scope="col">Created</th><th scope="col">By</th></tr>
        </thead>
        <tbody>
          {items.map((p) => (
            <tr key={p.id}>
              <td><a href={link('projects', p.id)}>{p.name}</a>{p.description ? <div class="muted">{p.description}</div> : null}</td>
              <td>{p.my_role || <span class="muted">not a member</span>}</td>
              <td>{p.language}</td>
              <td>{when(p.created_at)}</td>
              <td>{p.created_by}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

function CreateProject({ onCreated }) {
  const [name, setName] = useState('');
  const [language, setLanguage] = useState('en');
  const [description, setDescription] = useState('');
  const [config, setConfig] = useState(EXAMPLE_CONFIG);
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  async function submit(event) {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const body = { name: name.trim(), labeling_config: config, language };
      if (description.trim()) body.description = description.trim();
      onCreated(await call('POST', '/projects', { json: body }));
    } catch (exc) {
      setError(exc);
    } finally {
      setBusy(false);
    }
  }
  return (
    <section aria-labelledby="create-project">
      <h2 id="create-project">Create a project</h2>
      <form onSubmit={submit} class="stack">
        <div class="row">
          <div class="field">
            <label for="project-name">Name</label>
            <input id="project-name" required maxLength={200} value={name} onInput={(e) => setName(e.currentTarget.value)} />
          </div>
          <div class="field">
            <label for="project-language">Language</label>
            <select id="project-language" value={language} onChange={(e) => setLanguage(e.currentTarget.value)}>
              {LANGUAGES.map((l) => <option key={l} value={l}>{l}</option>)}
            </select>
          </div>
        </div>
        <div class="field">
          <label for="project-description">Description (optional)</label>
          <input id="project-description" value={description} onInput={(e) => setDescription(e.currentTarget.value)} />
        </div>
        <ConfigEditor id="project-config" value={config} onChange={setConfig} />
        <div><button type="submit" disabled={busy}>{busy ? 'Creating…' : 'Create project'}</button></div>
      </form>
      <ErrorBox error={error} what="Creating the project" />
    </section>
  );
}
