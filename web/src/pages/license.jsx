import { ErrorBox, Loading, useApi, when } from '../ui.jsx';
import { useIsAdmin } from '../roles.jsx';

export function LicensePage({ system }) {
  // The license documents are for lab admins (GET /licenses answers others 403): not asked for otherwise.
  const admin = useIsAdmin();
  const licenses = useApi(admin ? '/licenses' : null);
  return (
    <>
      <p class="lead">In force now: <strong>{system.license || 'none'}</strong>{system.license_scopes.length ? ` — scopes ${system.license_scopes.join(', ')}` : ''}</p>
      {!admin ? <p class="role-note" data-testid="license-role-note">Only lab admins see the license documents; you are signed in as {system.user.name}, a user.</p> : null}
      <ErrorBox error={licenses.error} what="Licenses" />
      {admin && licenses.loading && !licenses.data ? <Loading what="licenses" /> : null}
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
