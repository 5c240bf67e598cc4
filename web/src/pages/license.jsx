import { ErrorBox, Loading, useApi, when } from '../ui.jsx';

export function LicensePage({ system }) {
  const licenses = useApi('/licenses');
  return (
    <>
      <p class="lead">In force now: <strong>{system.license || 'none'}</strong>{system.license_scopes.length ? ` — scopes ${system.license_scopes.join(', ')}` : ''}</p>
      {licenses.error && licenses.error.status === 403
        ? <p role="status">Only lab admins see the license documents.</p>
        : <ErrorBox error={licenses.error} what="Licenses" />}
      {licenses.loading && !licenses.data ? <Loading what="licenses" /> : null}
      {licenses.data ? (
        <section aria-labelledby="lic-h">
          <h2 id="lic-h">Licenses</h2>
          {licenses.data.ami ? <p>This is a Marketplace instance: it runs on its pay-as-you-go license.</p> : null}
          {!licenses.data.items.length ? <p>No license is imported{licenses.data.default ? `; the default one applies (${licenses.data.default.type || 'default'})` : ''}.</p> : (
            <div class="table-wrap">
              <table data-testid="licenses-table">
                <caption class="sr-only">Licenses</caption>
                <thead>
                  <tr><th scope="col">License</th><th scope="col">Type</th><th scope="col">Scopes</th><th scope="col">Expires</th><th scope="col">Servers</th><th scope="col">In force</th></tr>
                </thead>
                <tbody>
                  {licenses.data.items.map((l) => (
                    <tr key={l.id}>
                      <td>{l.id}<div class="muted">{l.licensee}</div></td>
                      <td>{l.type || '–'}</td>
                      <td>{l.scopes.join(', ')}</td>
                      <td>{when(l.expires_at)}</td>
                      <td>{l.limits ? Object.entries(l.limits).filter(([, v]) => v !== null).map(([k, v]) => `${k.replace('_', ' ')} ${v}`).join(', ') || 'no limit' : '–'}</td>
                      <td>{l.in_force ? 'yes' : `no: ${l.problem || ''}`}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          )}
          <p>Scopes granted: {licenses.data.scopes.join(', ') || 'none'}.</p>
        </section>
      ) : null}
    </>
  );
}
