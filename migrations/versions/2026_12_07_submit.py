"""a submission in one call: optarena_submit

Revision ID: 20261207_0009
Revises: 20261202_0008
Create Date: 2026-12-07 08:30:00

A submission took five round trips through the ORM: the owner's advisory lock, the admission
query (an earlier job under the Idempotency-Key, the owner's active runs), and the inserts of
the job, its runs and their outbox rows, flushed by the unit of work: a quarter of the API's
CPU in a burst. The function does the same under the same lock, in one statement: it answers
the earlier job (nothing written), or the active runs when the job would pass the owner's
limit (nothing written), or writes the job, its runs and one message a run and answers when.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "20261207_0009"
down_revision: str | None = "20261202_0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FUNCTION = """
CREATE FUNCTION optarena_submit(
    p_owner text,
    p_idempotency_key text,
    p_request_sha256 text,
    p_max_active bigint,
    p_job jsonb,
    p_runs jsonb,
    p_task text,
    p_queue text
)
RETURNS TABLE (
    out_outcome text, out_job uuid, out_request_sha256 text, out_active bigint,
    out_created_at timestamptz
)
LANGUAGE plpgsql AS $$
DECLARE
    v_job uuid := (p_job->>'id')::uuid;
    v_active bigint;
    v_created timestamptz;
BEGIN
    -- this owner's submissions one at a time until the transaction ends (limits, keys)
    PERFORM pg_advisory_xact_lock(hashtext(p_owner));
    IF p_idempotency_key IS NOT NULL THEN
        RETURN QUERY
        SELECT 'earlier'::text, j.id, j.request_sha256::text, NULL::bigint, j.created_at
        FROM jobs j
        WHERE j.owner = p_owner AND j.idempotency_key = p_idempotency_key;
        IF FOUND THEN
            RETURN;
        END IF;
    END IF;
    SELECT count(*) INTO v_active
    FROM runs r JOIN jobs j ON j.id = r.job_id
    WHERE j.owner = p_owner AND r.status IN ('queued', 'running', 'paused');
    IF v_active + jsonb_array_length(p_runs) > p_max_active THEN
        RETURN QUERY SELECT 'limit'::text, NULL::uuid, NULL::text, v_active, NULL::timestamptz;
        RETURN;
    END IF;
    INSERT INTO jobs (id, name, kind, spec, status, owner, idempotency_key, request_sha256)
    VALUES (
        v_job, p_job->>'name', p_job->>'kind', p_job->'spec', 'queued'::job_status, p_owner,
        p_idempotency_key, p_request_sha256
    )
    RETURNING created_at INTO v_created;
    INSERT INTO runs (
        id, job_id, "index", arm, label, optimizer, seed, batch_size, budget, phase, trial,
        status
    )
    SELECT x.id, v_job, x."index", x.arm, x.label, x.optimizer, x.seed, x.batch_size,
        x.budget, x.phase, x.trial, 'queued'::run_status
    FROM jsonb_to_recordset(p_runs) AS x(
        id uuid, "index" integer, arm integer, label text, optimizer jsonb, seed bigint,
        batch_size integer, budget integer, phase integer, trial integer
    );
    INSERT INTO outbox (task, args, queue, run_id)
    SELECT p_task, jsonb_build_array(x.id::text), p_queue, x.id
    FROM jsonb_to_recordset(p_runs) AS x(id uuid, "index" integer)
    ORDER BY x."index";
    RETURN QUERY SELECT 'created'::text, v_job, p_request_sha256, v_active, v_created;
END
$$;
"""


def upgrade() -> None:
    op.execute(FUNCTION)


def downgrade() -> None:
    op.execute(
        "DROP FUNCTION optarena_submit(text, text, text, bigint, jsonb, jsonb, text, text)"
    )
