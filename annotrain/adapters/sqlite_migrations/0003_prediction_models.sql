-- 0002: predictions remember the models that made them; tasks keep their latest score.
--
-- * predictions.models: the registry names of the models a pre-annotation run used,
--   as a JSON array; NULL for predictions imported or added otherwise. A new
--   pre-annotation run replaces, task by task, the predictions sharing a model name.
-- * tasks.latest_score: the task score of the task's latest prediction (highest id),
--   NULL when it has none or that one has no score. Kept by the store on every
--   prediction write; it orders the "most uncertain first" listing.

ALTER TABLE predictions ADD COLUMN models TEXT;

ALTER TABLE tasks ADD COLUMN latest_score REAL;

UPDATE tasks SET latest_score = (
    SELECT score FROM predictions WHERE predictions.task_id = tasks.id ORDER BY id DESC LIMIT 1
);

-- Lowest score first, unscored tasks last, ties by id (the rowid ends every index):
-- ORDER BY latest_score IS NULL, latest_score, id walks this index without sorting.
CREATE INDEX tasks_by_uncertainty ON tasks (project_id, latest_score IS NULL, latest_score);
