"""records written in one round trip: optarena_add_records(job, rows)

Revision ID: 20261201_0007
Revises: 20261122_0006
Create Date: 2026-12-01 22:00:00

The job's records are numbered under its row lock, as before, but the lock, the check for
positions stored already, the counter and the insert are one call: the lock is held for one
statement and the commit, not for five round trips. Inside a PL/pgSQL function each
statement takes a new snapshot (READ COMMITTED), so the insert sees every record committed
before the lock was granted, as the separate statements did.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "20261201_0007"
down_revision: str | None = "20261122_0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FUNCTION = """
CREATE FUNCTION optarena_add_records(p_job uuid, p_rows jsonb)
RETURNS TABLE (out_ord integer, out_seq bigint)
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM jobs WHERE id = p_job FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'job % does not exist', p_job USING ERRCODE = 'no_data_found';
    END IF;
    RETURN QUERY
    WITH incoming AS (
        SELECT x.ord, x.run_id, x.position, x.time, x.data
        FROM jsonb_to_recordset(p_rows)
            AS x(ord integer, run_id uuid, position integer, time timestamptz, data jsonb)
    ),
    fresh AS (
        SELECT DISTINCT ON (i.run_id, i.position) i.*
        FROM incoming i
        WHERE NOT EXISTS (
            SELECT 1 FROM records r WHERE r.run_id = i.run_id AND r.position = i.position
        )
        ORDER BY i.run_id, i.position, i.ord
    ),
    numbered AS (
        SELECT f.*, row_number() OVER (ORDER BY f.ord) AS k, count(*) OVER () AS n FROM fresh f
    ),
    bump AS (
        UPDATE jobs SET metrics_seq = metrics_seq + (SELECT count(*) FROM fresh)
        WHERE id = p_job
        RETURNING metrics_seq
    ),
    added AS (
        INSERT INTO records (job_id, run_id, seq, position, time, data)
        SELECT p_job, nb.run_id, b.metrics_seq - nb.n + nb.k, nb.position, nb.time, nb.data
        FROM numbered nb, bump b
        RETURNING records.seq
    )
    SELECT nb.ord, b.metrics_seq - nb.n + nb.k FROM numbered nb, bump b ORDER BY nb.ord;
END
$$;
"""


def upgrade() -> None:
    op.execute(FUNCTION)


def downgrade() -> None:
    op.execute("DROP FUNCTION optarena_add_records(uuid, jsonb)")
