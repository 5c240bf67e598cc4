import { render } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import './style.css';
import { ApiError, banner, call, setApiBase, signIn, signOut, token, wasSignedOut, watch } from './api.js';
import { ErrorBox } from './ui.jsx';
import { finishSignIn, startSignIn } from './cognito.js';
import { ProjectsPage } from './pages/projects.jsx';
import { ProjectPage } from './pages/project.jsx';
import { TaskPage } from './pages/task.jsx';
import { TrainPage, TrainingPage, ComparePage } from './pages/train.jsx';
import { ModelsPage, ModelPage } from './pages/models.jsx';
import { ServersPage } from './pages/servers.jsx';
import { LicensePage } from './pages/license.jsx';
import { SessionProvider } from './roles.jsx';

// Hash routes: static hosting needs no rewrites, and ids are all a URL carries.
function parseRoute() {
  const raw = location.hash.replace(/^#\/?/, '');
  const [path, search] = raw.split('?');
  const parts = path.split('/').filter(Boolean).map(decodeURIComponent);
  return { parts, query: new URLSearchParams(search || '') };
}

function useRoute() {
  const [route, setRoute] = useState(parseRoute);
  useEffect(() => {
    const update = () => setRoute(parseRoute());
    addEventListener('hashchange', update);
    return () => removeEventListener('hashchange', update);
  }, []);
  return route;
}

function useSession() {
  const [, setTick] = useState(0);
  useEffect(() => watch(() => setTick((t) => t + 1)), []);
  return { token: token(), banner: banner() };
}

const NAV = [
  ['projects', 'Projects'],
  ['models', 'Models'],
  ['servers', 'Servers'],
  ['license', 'License'],
];

function page(route, system) {
  const [first, id, sub, subId] = route.parts;
  switch (first || 'projects') {
    case 'projects':
      if (!id) return ['Projects', <ProjectsPage />];
      if (sub === 'tasks' && subId) return [`Task ${subId}`, <TaskPage projectId={id} taskId={subId} />];
      if (sub === 'train') return ['Train', <TrainPage projectId={id} system={system} />];
      return [`Project ${id}`, <ProjectPage projectId={id} tab={sub || 'config'} />];
    case 'trainings':
      if (id === 'compare') return ['Compare trainings', <ComparePage ids={route.query.get('ids') || ''} />];
      return [`Training ${id}`, <TrainingPage trainingId={id} />];
    case 'models':
      return id ? [`Model ${id}`, <ModelPage name={id} />] : ['Models', <ModelsPage />];
    case 'servers':
      return ['Servers', <ServersPage system={system} />];
    case 'license':
      return ['License', <LicensePage system={system} />];
    default:
      return ['Not found', <p>There is no page at this address. <a href="#/projects">Go to the projects.</a></p>];
  }
}

function Shell({ system, session }) {
  const route = useRoute();
  const [title, content] = page(route, system);
  const heading = useRef(null);
  const current = route.parts[0] || 'projects';
  useEffect(() => {
    document.title = `${title} · annotrain`;
    // Moving focus to the new page's heading tells keyboard and screen-reader users it changed.
    if (heading.current) heading.current.focus();
  }, [title]);
  return (
    <>
      <a class="skip" href="#main" onClick={(e) => { e.preventDefault(); heading.current && heading.current.focus(); }}>Skip to content</a>
      <CostBanner text={session.banner} />
      <header class="top">
        <span class="brand">annotrain</span>
        <nav aria-label="Main">
          <ul>
            {NAV.map(([key, label]) => (
              <li key={key}>
                <a href={'#/' + key} aria-current={current === key ? 'page' : undefined}>{label}</a>
              </li>
            ))}
          </ul>
        </nav>
        <span class="who">
          <span class="muted">{system.mode === 'serverless' ? 'serverless' : 'single node'} · v{system.version}</span>
          <span data-testid="signed-in-as">
            <span class="sr-only">Signed in as </span>{system.user.name}
            <span class="muted"> ({system.user.role === 'admin' ? 'lab admin' : 'user'})</span>
          </span>
          <button type="button" class="link" onClick={() => { signOut(); location.hash = '#/'; }}>Sign out</button>
        </span>
      </header>
      <main id="main">
        <h1 tabIndex={-1} ref={heading}>{title}</h1>
        {content}
      </main>
    </>
  );
}

function CostBanner({ text }) {
  if (!text) return null;
  return (
    <div class="cost-banner" role="status" data-testid="cost-banner">
      <strong>{text}</strong> <a href="#/servers">See the servers</a>
    </div>
  );
}

function HostedUiSignIn({ config, onDone }) {
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(true);
  useEffect(() => {
    finishSignIn(config.cognito)
      .then(async (access) => {
        if (!access) return;
        const system = await call('GET', '/system', { auth: access });
        signIn(access);
        onDone(system);
      })
      .catch((exc) => setError(exc instanceof ApiError ? exc : new ApiError(0, { error: { code: 'sign_in_failed', message: exc.message } })))
      .finally(() => setBusy(false));
  }, []);
  return (
    <main id="main" class="signin">
      <h1>Sign in to annotrain</h1>
      {wasSignedOut() ? <p role="status">Your session ended: sign in again.</p> : null}
      <p>This lab’s users are in its Cognito user pool: you sign in on its page, then come back here.</p>
      <button type="button" disabled={busy} onClick={() => { setBusy(true); startSignIn(config.cognito).catch((exc) => { setBusy(false); setError(new ApiError(0, { error: { code: 'sign_in_failed', message: exc.message } })); }); }}>
        {busy ? 'Signing in…' : 'Sign in with Cognito'}
      </button>
      <ErrorBox error={error} what="Sign-in" />
    </main>
  );
}

function SignIn({ config, onDone }) {
  const [value, setValue] = useState('');
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const cognito = config.sign_in === 'cognito_token';
  if (config.sign_in === 'cognito') return <HostedUiSignIn config={config} onDone={onDone} />;
  async function submit(event) {
    event.preventDefault();
    const entered = value.trim();
    if (!entered) {
      setError(new ApiError(0, { error: { code: 'missing_token', message: 'enter your token', field: 'token' } }));
      return;
    }
    setBusy(true);
    try {
      const system = await call('GET', '/system', { auth: entered });
      signIn(entered);
      setValue('');
      onDone(system);
    } catch (exc) {
      setError(exc);
    } finally {
      setBusy(false);
    }
  }
  return (
    <main id="main" class="signin">
      <h1>Sign in to annotrain</h1>
      {wasSignedOut() ? <p role="status">Your session ended: sign in again.</p> : null}
      <form onSubmit={submit} noValidate>
        <label for="token">{cognito ? 'Cognito access token' : 'API token'}</label>
        <input id="token" name="token" type="password" autocomplete="off" spellcheck={false}
          value={value} onInput={(e) => setValue(e.currentTarget.value)}
          aria-describedby="token-help" aria-invalid={error ? 'true' : undefined} required />
        <p id="token-help" class="help">
          {cognito
            ? 'Sign in to the lab’s Cognito user pool and paste the access token (docs/deploy.md shows how). '
            : 'The admin’s token is in the data folder’s admin-token file; `annotrain users create` makes others. '}
          It is kept in this tab only, until you close it or sign out.
        </p>
        <button type="submit" disabled={busy}>{busy ? 'Signing in…' : 'Sign in'}</button>
      </form>
      <ErrorBox error={error} what="Sign-in" />
    </main>
  );
}

function App() {
  const session = useSession();
  const [config, setConfig] = useState(null);
  const [system, setSystem] = useState(null);
  const [error, setError] = useState(null);
  useEffect(() => {
    fetch('./console/config.json', { credentials: 'omit' })
      .then((r) => (r.ok ? r.json() : { mode: 'single_node', api_base: '/api/v1', sign_in: 'api_token' }))
      .then((c) => { setApiBase(c.api_base || '/api/v1'); setConfig(c); })
      .catch(() => setConfig({ mode: 'single_node', api_base: '/api/v1', sign_in: 'api_token' }));
  }, []);
  useEffect(() => {
    if (!config || !session.token || system) return;
    call('GET', '/system').then(setSystem).catch(setError);
  }, [config, session.token]);
  if (!config) return <p class="muted">Loading…</p>;
  if (!session.token) {
    return <SignIn config={config} onDone={(s) => { setSystem(s); setError(null); }} />;
  }
  if (!system) return error ? <main><ErrorBox error={error} what="The lab" /></main> : <p class="muted">Loading…</p>;
  return <SessionProvider system={system}><Shell system={system} session={session} /></SessionProvider>;
}

render(<App />, document.getElementById('app'));
