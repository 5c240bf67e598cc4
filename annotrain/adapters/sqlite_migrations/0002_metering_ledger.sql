-- The local ledger of AWS Marketplace metering: one row per (UTC hour, dimension).
-- The quantity is fixed when the row is written; only the state moves on
-- (pending → sending → sent, or rejected), so a resend is always the same request.
CREATE TABLE metering (
    hour        TEXT    NOT NULL,
    dimension   TEXT    NOT NULL,
    quantity    INTEGER NOT NULL CHECK (quantity >= 0),
    state       TEXT    NOT NULL CHECK (state IN ('pending', 'sending', 'sent', 'rejected')),
    attempts    INTEGER NOT NULL DEFAULT 0,
    record_id   TEXT,
    last_error  TEXT,
    updated_at  TEXT    NOT NULL,
    revision    INTEGER NOT NULL,
    PRIMARY KEY (hour, dimension)
) WITHOUT ROWID;
