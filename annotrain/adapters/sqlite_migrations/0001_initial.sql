-- 0001: the initial schema of the single-node store.
--
-- Conventions (see docs/storage-sqlite.md):
-- * Times are ISO 8601 UTC text with microseconds ("2026-11-21T12:00:00.000000+00:00"):
--   fixed width, so text order is time order and range queries work on them.
-- * Enums are stored by value; Mapping fields, result items and reviews as JSON text.
-- * Ids that the store assigns come from AUTOINCREMENT, so a deleted id is never reused:
--   runs and exports keep pointing at what they meant.
-- * Whatever belongs to a project goes with it: ON DELETE CASCADE down to predictions.
--   Runs, models and usage outlive their project (training history, billing), so they
--   carry project_id without a foreign key.

CREATE TABLE projects (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    name         TEXT    NOT NULL,
    label_config TEXT    NOT NULL,
    created_by   TEXT    NOT NULL,
    created_at   TEXT    NOT NULL,
    settings     TEXT    NOT NULL,  -- JSON object
    revision     INTEGER NOT NULL
);

CREATE TABLE members (
    project_id INTEGER NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    user       TEXT    NOT NULL,
    role       TEXT    NOT NULL,
    priority   INTEGER NOT NULL,
    PRIMARY KEY (project_id, user)
) WITHOUT ROWID;

CREATE TABLE tasks (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id      INTEGER NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    data            TEXT    NOT NULL,  -- JSON object
    tags            TEXT    NOT NULL,  -- JSON array, in the order given (task_tags indexes it)
    extra           TEXT    NOT NULL,  -- JSON object
    -- Kept by the store on every completion and prediction change, so that filtered
    -- listings read one row per task instead of probing its completions.
    has_completions INTEGER NOT NULL CHECK (has_completions IN (0, 1)),  -- a submitted one
    has_predictions INTEGER NOT NULL CHECK (has_predictions IN (0, 1)),
    revision        INTEGER NOT NULL
);
-- Every index ends with the rowid, so this one is (project_id, id): keyset pagination
-- of a project's tasks walks it in order.
CREATE INDEX tasks_by_project ON tasks (project_id);

CREATE TABLE task_tags (
    task_id INTEGER NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    tag     TEXT    NOT NULL,
    PRIMARY KEY (task_id, tag)
) WITHOUT ROWID;

CREATE TABLE completions (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    task_id      INTEGER NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    author       TEXT,
    state        TEXT    NOT NULL,
    ground_truth INTEGER NOT NULL CHECK (ground_truth IN (0, 1)),
    lead_time    REAL,
    created_at   TEXT,              -- as given (Label Studio text), not normalised
    updated_at   TEXT,
    result       TEXT    NOT NULL,  -- JSON array of result items
    reviews      TEXT    NOT NULL,  -- JSON array, in the order made
    extra        TEXT    NOT NULL,  -- JSON object
    revision     INTEGER NOT NULL
);
CREATE INDEX completions_by_task ON completions (task_id);

CREATE TABLE predictions (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    task_id       INTEGER NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    model_version TEXT,
    score         REAL,
    result        TEXT    NOT NULL,  -- JSON array of result items
    extra         TEXT    NOT NULL   -- JSON object
);
CREATE INDEX predictions_by_task ON predictions (task_id);

CREATE TABLE runs (
    id             TEXT    PRIMARY KEY,
    project_id     INTEGER NOT NULL,
    kind           TEXT    NOT NULL,
    status         TEXT    NOT NULL,
    created_by     TEXT    NOT NULL,
    created_at     TEXT    NOT NULL,
    use_gpu        INTEGER NOT NULL CHECK (use_gpu IN (0, 1)),
    params         TEXT    NOT NULL,  -- JSON object
    progress       REAL    NOT NULL,
    epoch          INTEGER,
    metrics        TEXT    NOT NULL,  -- JSON object
    history        TEXT    NOT NULL,  -- JSON array of objects
    logs_key       TEXT,
    dataset_key    TEXT,
    failure_reason TEXT,
    started_at     TEXT,
    finished_at    TEXT,
    heartbeat_at   TEXT,
    job_ref        TEXT,
    revision       INTEGER NOT NULL
);
CREATE INDEX runs_by_project ON runs (project_id, created_at, id);
CREATE INDEX runs_by_status ON runs (status, created_at, id);

CREATE TABLE models (
    name         TEXT    NOT NULL,
    version      INTEGER NOT NULL,
    kind         TEXT    NOT NULL,
    labels       TEXT    NOT NULL,  -- JSON array
    project_id   INTEGER NOT NULL,
    run_id       TEXT    NOT NULL,
    artifact_key TEXT    NOT NULL,
    base_model   TEXT    NOT NULL,
    created_at   TEXT    NOT NULL,
    metrics      TEXT    NOT NULL,  -- JSON object
    deployed_in  TEXT    NOT NULL,  -- JSON array of project ids
    revision     INTEGER NOT NULL,
    PRIMARY KEY (name, version)
) WITHOUT ROWID;

CREATE TABLE servers (
    run_id     TEXT    PRIMARY KEY,
    kind       TEXT    NOT NULL,
    project_id INTEGER NOT NULL,
    started_by TEXT    NOT NULL,
    since      TEXT    NOT NULL,
    use_gpu    INTEGER NOT NULL CHECK (use_gpu IN (0, 1)),
    host       TEXT    NOT NULL
);
CREATE INDEX servers_by_start ON servers (since, run_id);

CREATE TABLE users (
    name       TEXT    PRIMARY KEY,
    role       TEXT    NOT NULL,
    created_at TEXT    NOT NULL,
    revision   INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE tokens (
    token_hash TEXT PRIMARY KEY,
    user       TEXT NOT NULL REFERENCES users (name) ON DELETE CASCADE,
    created_at TEXT NOT NULL,
    label      TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX tokens_by_user ON tokens (user);

CREATE TABLE licenses (
    id          TEXT PRIMARY KEY,
    document    TEXT NOT NULL,
    imported_at TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE usage (
    id         INTEGER PRIMARY KEY,
    run_id     TEXT NOT NULL,
    dimension  TEXT NOT NULL,
    start_time TEXT NOT NULL,
    end_time   TEXT NOT NULL,
    quantity   REAL NOT NULL,
    -- A job may report the same use twice (a retried report): it counts once.
    UNIQUE (run_id, dimension, start_time)
);
CREATE INDEX usage_by_start ON usage (start_time);

-- What was applied when; PRAGMA user_version is what the store checks, this is for people.
CREATE TABLE schema_migrations (
    version    INTEGER PRIMARY KEY,
    name       TEXT NOT NULL,
    applied_at TEXT NOT NULL
);
