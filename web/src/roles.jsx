// Who is signed in, and what their roles let them do: the console offers only that.
// A convenience, not security: every API route checks roles itself, and a refusal
// still shows as "not allowed" (ErrorBox). The roles each action takes are the API's
// (annotrain/services/*; docs/console.md has the table).
import { createContext } from 'preact';
import { useContext } from 'preact/hooks';
import { useApi } from './ui.jsx';

/** Changing a project's config, importing, training, cancelling, deploying, downloading a model, stopping a job. */
export const MANAGERS = ['Owner', 'Manager'];

const Session = createContext(null);

/** Makes GET /system (with `user`: name and lab role) known to the pages below. */
export function SessionProvider({ system, children }) {
  return <Session.Provider value={system}>{children}</Session.Provider>;
}

/** GET /system as read at sign-in. */
export function useSystem() {
  return useContext(Session);
}

/** Whether the signed-in user is a lab admin (who may do everything, everywhere). */
export function useIsAdmin() {
  const system = useSystem();
  return Boolean(system && system.user && system.user.role === 'admin');
}

/**
 * The signed-in user's standing in a project: `role` is their project role (null for a
 * lab admin who is not a member), `admin` whether they are a lab admin, `loaded` once
 * the project is read, `error` when it cannot be (not a member, or no such project).
 */
export function useProjectAccess(projectId) {
  const admin = useIsAdmin();
  const project = useApi(projectId ? `/projects/${projectId}` : null);
  // useApi keeps the last answer while it asks again: another project's role is no answer here.
  const data = project.data && String(project.data.id) === String(projectId) ? project.data : null;
  return {
    admin,
    loaded: Boolean(data),
    role: data ? data.my_role : null,
    error: data || project.loading ? null : project.error,
  };
}

/** Whether `access` (useProjectAccess, or {admin, role}) allows what takes one of `roles`. */
export function allows(access, roles) {
  return Boolean(access.admin || (access.role && roles.includes(access.role)));
}

/** Whether `access` is known to refuse what takes one of `roles` (never while loading, never to admins). */
export function refuses(access, roles) {
  return access.loaded !== false && !allows(access, roles);
}

function article(word) {
  return /^[AEIOU]/.test(word) ? 'an' : 'a';
}

/** "the Owner or Manager role" */
export function rolesText(roles) {
  if (roles.length === 1) return `the ${roles[0]} role`;
  return `the ${roles.slice(0, -1).join(', ')} or ${roles[roles.length - 1]} role`;
}

/** "you are an Annotator" */
export function youAre(role) {
  return role ? `you are ${article(role)} ${role}` : 'you are not a member';
}

/**
 * Says why something is not offered: "Starting a training takes the Owner or Manager
 * role; you are an Annotator." Shown where a form or button would have been.
 */
export function RoleNote({ doing, roles, role, where, testId }) {
  return (
    <p class="role-note" data-testid={testId}>
      {doing} takes {rolesText(roles)}{where ? ` ${where}` : ''}; {youAre(role)}{where ? ' there' : ''}.
    </p>
  );
}
