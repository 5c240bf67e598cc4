"""Models: the registry as people see it, downloads, and deploying a model into a project.

Any user may list models (each sees those of their projects; admins all);
reading one takes a role in the project it was trained on; downloading one its
Owner or a Manager; deploying one into a project the Owner or a Manager of that
project (who must also be able to read the model).

Deploying rewrites the project's labeling config so that the labels the model
predicts name it (``model="…"``), and records the project in the model version's
``deployed_in``: pre-annotation uses the versions deployed in a project. One
version of a name is deployed in a project at a time; a model whose name the new
config no longer carries is deployed there no more.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Protocol, TypeVar

from annotrain.domain.deploy import Deployment, point_labels_at_model
from annotrain.domain.errors import ConflictError, InvalidRequestError, NotFoundError
from annotrain.domain.records import ModelEntry, Project
from annotrain.domain.tasks import Role
from annotrain.ports import MAX_PAGE_SIZE, BlobInfo, BlobStore, ModelStore, ProjectStore
from annotrain.services.access import ANY_MEMBER, MANAGERS, Principal, authorize
from annotrain.services.archives import blob_files, zip_stream

_MAX_RETRIES = 20
T = TypeVar("T")


class ModelRecords(ProjectStore, ModelStore, Protocol):
    """What the model routes read: projects (for roles) and the model registry."""


def iter_models(store: ModelStore, project_id: int | None = None) -> Iterator[ModelEntry]:
    """Every registered model version, by name then version."""
    token: str | None = None
    while True:
        page = store.list_models(project_id=project_id, limit=MAX_PAGE_SIZE, token=token)
        yield from page.items
        if page.next_token is None:
            return
        token = page.next_token


def list_models(
    store: ModelRecords, principal: Principal, project_id: int | None = None
) -> list[list[ModelEntry]]:
    """The models the principal may see, each as its versions (oldest first).

    Args:
        project_id: Only models trained on this project (which the principal must
            be able to read).
    """
    if project_id is not None:
        authorize(store, principal, project_id, ANY_MEMBER, "listing models")
    entries = list(iter_models(store, project_id))
    if not principal.is_admin:
        # One store call for every project with a model; the models of a project that
        # went stay in the registry, readable by admins only.
        member_of = store.get_memberships(principal.name, {e.project_id for e in entries})
        entries = [e for e in entries if e.project_id in member_of]
    grouped: dict[str, list[ModelEntry]] = {}
    for entry in entries:
        grouped.setdefault(entry.name, []).append(entry)
    return [sorted(v, key=lambda e: e.version) for _, v in sorted(grouped.items())]


def read_model(store: ModelRecords, principal: Principal, name: str) -> list[ModelEntry]:
    """A model's versions, oldest first, each with its benchmark (any role in its project)."""
    latest = _readable(store, principal, name, ANY_MEMBER, "reading a model")
    return [e for e in iter_models(store, latest.project_id) if e.name == name]


def model_archive(
    store: ModelRecords,
    blobs: BlobStore,
    principal: Principal,
    name: str,
    version: int | None = None,
) -> tuple[ModelEntry, Iterator[bytes]]:
    """A model version's files as a zip archive, streamed (Owner, Manager, admin).

    Returns:
        The version, and the archive's bytes as they are made.

    Raises:
        NotFoundError: No such model or version, or one the principal may not see.
    """
    latest = _readable(store, principal, name, MANAGERS, "downloading a model")
    entry = latest
    if version is not None:
        try:
            entry = store.get_model(name, version)
        except NotFoundError:
            raise NotFoundError("model version", f"{name} v{version}") from None
    files = list(blob_files(blobs, entry.artifact_key))
    if not files:
        raise NotFoundError("model files", entry.artifact_key)
    return entry, _zip_stream(blobs, entry, files)


def deploy_model(
    store: ModelRecords,
    principal: Principal,
    project_id: int,
    name: str,
    version: int | None = None,
) -> tuple[ModelEntry, Deployment]:
    """Deploy a model version (the latest by default) into a project (Owner, Manager, admin).

    Raises:
        NotFoundError: No such project (or not a member), model or version.
        InvalidRequestError: The config has none of the labels the model predicts.
    """
    authorize(store, principal, project_id, MANAGERS, "deploying a model")
    latest = _readable(store, principal, name, ANY_MEMBER, "deploying a model")
    entry = latest if version is None else _version(store, name, version)
    return deploy_into(store, project_id, entry)


def deploy_into(
    store: ModelRecords, project_id: int, entry: ModelEntry
) -> tuple[ModelEntry, Deployment]:
    """Point a project's labels at a model version and record where it is deployed.

    For the training job (which deploys what it trained when the run asked) and the
    deploy route; roles are the caller's concern.

    Returns:
        The entry as stored after, and the rewritten config.
    """
    deployment: list[Deployment] = []

    def rewrite(project: Project) -> Project:
        deployment[:] = [
            point_labels_at_model(project.label_config, entry.kind, entry.labels, entry.name)
        ]
        return replace(project, label_config=deployment[0].labeling_config)

    project = _update(store.get_project, store.update_project, project_id, rewrite)
    named = _named_models(project.label_config)
    stored = entry
    for other in list(iter_models(store)):
        deployed_here = project_id in other.deployed_in
        should = (other.name, other.version) == (entry.name, entry.version)
        keep_other = other.name != entry.name and other.name in named
        if should and not deployed_here:
            changed = _set_deployed(store, other, project_id, deployed=True)
        elif deployed_here and not should and not keep_other:
            changed = _set_deployed(store, other, project_id, deployed=False)
        else:
            changed = other
        if should:
            stored = changed
    return stored, deployment[0]


def deployed_models(store: ModelStore, project_id: int) -> list[ModelEntry]:
    """The model versions deployed in a project, by name."""
    return [e for e in iter_models(store) if project_id in e.deployed_in]


def _named_models(labeling_config: str) -> set[str]:
    from annotrain.domain.config import parse_labeling_config

    schema = parse_labeling_config(labeling_config)
    return {o.model for c in schema.controls.values() for o in c.options if o.model}


def _set_deployed(
    store: ModelStore, entry: ModelEntry, project_id: int, *, deployed: bool
) -> ModelEntry:
    def change(current: ModelEntry) -> ModelEntry:
        projects = [p for p in current.deployed_in if p != project_id]
        if deployed:
            projects.append(project_id)
        return replace(current, deployed_in=tuple(sorted(projects)))

    return _update(
        lambda _: store.get_model(entry.name, entry.version), store.update_model, 0, change
    )


def _update(
    read: Callable[[int], T], write: Callable[[T], T], key: int, change: Callable[[T], T]
) -> T:
    for attempt in range(_MAX_RETRIES + 1):
        current = read(key)
        changed = change(current)
        if changed == current:
            return current
        try:
            return write(changed)
        except ConflictError:
            if attempt == _MAX_RETRIES:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def _readable(
    store: ModelRecords,
    principal: Principal,
    name: str,
    roles: frozenset[Role],
    action: str,
) -> ModelEntry:
    # A model of a project the caller is not in does not exist for them.
    try:
        entry = store.get_model(name)
        authorize(store, principal, entry.project_id, roles, action)
    except NotFoundError:
        raise NotFoundError("model", name) from None
    return entry


def _version(store: ModelStore, name: str, version: int) -> ModelEntry:
    if version < 1:
        raise InvalidRequestError("version", "versions start at 1")
    try:
        return store.get_model(name, version)
    except NotFoundError:
        raise NotFoundError("model version", f"{name} v{version}") from None


def _zip_stream(blobs: BlobStore, entry: ModelEntry, files: list[BlobInfo]) -> Iterator[bytes]:
    root = f"{entry.name}-v{entry.version}"
    prefix = entry.artifact_key.rstrip("/") + "/"
    return zip_stream(
        blobs, ((f"{root}/{info.key.removeprefix(prefix)}", info.key) for info in files)
    )
