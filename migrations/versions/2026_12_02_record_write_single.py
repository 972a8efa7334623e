"""one epoch record in one call, and a batch's check for stored positions by index

Revision ID: 20261202_0008
Revises: 20261201_0007
Create Date: 2026-12-02 02:00:00

Training writes one record an epoch. The batch function's query (a recordset from JSON, a
DISTINCT ON, two window functions) cost more than the write itself for one row, so one
record has a function of four plain statements with the same rules: the job's row locked
first, a position stored already skipped under that lock (NULL, no number taken), the counter
bumped and the record inserted. Each statement takes its snapshot after the lock is granted
(READ COMMITTED in PL/pgSQL), so the check sees every record committed before.

The batch function's check for positions stored already was a NOT EXISTS, which the planner
may turn into a hash anti-join over a sequential scan of every job's records; PL/pgSQL then
keeps that plan for the connection's life, so a worker's batch writes (a fused group's epoch)
grew slower with the whole table (measured: from 1.3 to 2.1 ms over 3,600 records). A scalar
subquery with LIMIT 1 is not turned into a join: each row is one probe of the (run_id,
position) index.
"""

import importlib.util
from collections.abc import Sequence
from pathlib import Path

from alembic import op

revision: str = "20261202_0008"
down_revision: str | None = "20261201_0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FUNCTION = """
CREATE FUNCTION optarena_add_record(
    p_job uuid, p_run uuid, p_position integer, p_time timestamptz, p_data jsonb
)
RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    v_seq bigint;
BEGIN
    PERFORM 1 FROM jobs WHERE id = p_job FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'job % does not exist', p_job USING ERRCODE = 'no_data_found';
    END IF;
    PERFORM 1 FROM records WHERE run_id = p_run AND position = p_position;
    IF FOUND THEN
        RETURN NULL;
    END IF;
    UPDATE jobs SET metrics_seq = metrics_seq + 1 WHERE id = p_job
    RETURNING metrics_seq INTO v_seq;
    INSERT INTO records (job_id, run_id, seq, position, time, data)
    VALUES (p_job, p_run, v_seq, p_position, p_time, p_data);
    RETURN v_seq;
END
$$;
"""


STORED_BEFORE = """        WHERE NOT EXISTS (
            SELECT 1 FROM records r WHERE r.run_id = i.run_id AND r.position = i.position
        )"""
STORED_BY_INDEX = """        WHERE (
            SELECT 1 FROM records r WHERE r.run_id = i.run_id AND r.position = i.position LIMIT 1
        ) IS NULL"""


def batch_function_of_0007() -> str:
    """20261201_0007's batch function, as CREATE OR REPLACE (read from its revision file)."""
    path = Path(__file__).with_name("2026_12_01_record_writes.py")
    spec = importlib.util.spec_from_file_location("revision_20261201_0007", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    text: str = module.FUNCTION
    assert STORED_BEFORE in text
    return text.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1)


def upgrade() -> None:
    op.execute(FUNCTION)
    op.execute(batch_function_of_0007().replace(STORED_BEFORE, STORED_BY_INDEX))


def downgrade() -> None:
    op.execute(batch_function_of_0007())
    op.execute("DROP FUNCTION optarena_add_record(uuid, uuid, integer, timestamptz, jsonb)")
