import { useState } from 'preact/hooks';
import { call } from '../api.js';
import { ErrorBox, Loading, link, useApi, usePoll, when } from '../ui.jsx';
import { MANAGERS, allows, rolesText, useIsAdmin } from '../roles.jsx';

const KINDS = { train: 'training', preannotate: 'pre-annotation', ocr: 'OCR' };

export function ServersPage({ system }) {
  const servers = useApi('/servers');
  usePoll(servers.reload, 5000, true);
  // Stopping a job takes Owner or Manager of its project (or a lab admin): your role in
  // each of your projects, from one listing (admins need none).
  const admin = useIsAdmin();
  const mine = useApi(admin ? null : '/projects', { page_size: 1000 });
  const roles = new Map(((mine.data && mine.data.items) || []).map((p) => [p.id, p.my_role]));
  function mayStop(server) {
    if (admin) return true;
    // A project not in the listing (joined since it was read, or past its 1000 projects):
    // offer it, and let the API decide.
    if (!roles.has(server.project_id)) return true;
    return allows({ admin, role: roles.get(server.project_id) }, MANAGERS);
  }
  const [error, setError] = useState(null);
  async function stop(runId) {
    setError(null);
    try {
      await call('POST', `/servers/${encodeURIComponent(runId)}/stop`);
      servers.reload();
    } catch (exc) {
      setError(exc);
    }
  }
  return (
    <>
      <p class={system.gpu_available ? 'gpu gpu-yes' : 'gpu'} data-testid="gpu-state">
        <strong>{system.gpu_available ? 'GPU Resource Available' : 'No GPU: jobs run on the CPU'}</strong>
        {!system.use_gpu ? ' (GPU use is switched off: ANNOTRAIN_USE_GPU=false)' : ''}
      </p>
      <ErrorBox error={servers.error} what="Servers" />
      <ErrorBox error={error} what="Stopping" />
      {!servers.data ? <Loading what="servers" /> : (
        <>
          <section aria-labelledby="jobs-h">
            <h2 id="jobs-h">Running jobs</h2>
            {!servers.data.items.length ? <p>Nothing is running.</p> : (
              <div class="table-wrap">
                <table data-testid="servers-table">
                  <caption class="sr-only">Running jobs</caption>
                  <thead>
                    <tr><th scope="col">Job</th><th scope="col">Kind</th><th scope="col">Project</th><th scope="col">On</th><th scope="col">Since</th><th scope="col">Started by</th><th scope="col">Host</th><th scope="col"><span class="sr-only">Stop</span></th></tr>
                  </thead>
                  <tbody>
                    {servers.data.items.map((s) => (
                      <tr key={s.run_id}>
                        <td>{s.kind === 'train' ? <a href={link('trainings', s.run_id)}>{s.run_id.slice(0, 12)}</a> : s.run_id.slice(0, 12)}</td>
                        <td>{KINDS[s.kind] || s.kind}</td>
                        <td><a href={link('projects', s.project_id)}>{s.project_id}</a></td>
                        <td>{s.resource}</td>
                        <td>{when(s.since)}</td>
                        <td>{s.started_by}</td>
                        <td class="clip">{s.host}</td>
                        <td>
                          {!admin && !mine.data && !mine.error ? null : mayStop(s)
                            ? <button type="button" class="danger" onClick={() => stop(s.run_id)} aria-label={`Stop job ${s.run_id.slice(0, 12)}`}>Stop</button>
                            : <span class="muted">Stopping takes {rolesText(MANAGERS)} in project {s.project_id}</span>}
                        </td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </div>
            )}
          </section>
          <section aria-labelledby="cap-h">
            <h2 id="cap-h">Servers the license allows</h2>
            <div class="table-wrap">
              <table>
                <thead><tr><th scope="col">Class</th><th scope="col">In use</th><th scope="col">Limit</th><th scope="col">License</th></tr></thead>
                <tbody>
                  {servers.data.capacity.map((c) => (
                    <tr key={c.server_class}>
                      <td>{c.server_class}</td><td>{c.in_use}</td>
                      <td>{c.limit ?? 'none'}{c.total_limit !== null && c.total_limit !== undefined ? ` (${c.total_limit} in all)` : ''}</td>
                      <td>{c.license_id || '–'}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          </section>
        </>
      )}
    </>
  );
}
