-- A2A tasks and budgets: durable task state shared by every replica, and money that can never be overspent.
--
-- tasks                one row per A2A task. State transitions are conditional UPDATEs (never from a terminal
--                      state), so a canceled task can never later turn completed. The replica running a task
--                      holds a lease (lease_owner, lease_expires_at) that it renews; a sweeper on any replica
--                      fails tasks whose lease ran out (the replica died) instead of leaving them working.
-- task_events          the ordered status and artifact updates of a task (seq = 1, 2, ...), so a stream on any
--                      replica, or a client that reconnects, reads exactly what happened and in which order.
-- task_artifacts       the artifacts a task produced (intermediate results and the final answer or report).
-- budget_periods       per tenant and calendar month (UTC): settled spend plus reservations still held.
--                      Reserving is one conditional UPDATE on this row (spent + reserved + amount <= budget),
--                      so concurrent replicas serialize on the row lock and can never overspend.
-- budget_reservations  each reservation made before a model call, settled (actual cost into usage_ledger) or
--                      released afterwards.
-- Every table has row-level security enabled and forced, keyed on paddock_current_tenant() as in 0001.

CREATE TABLE tasks (
    tenant_id        text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id               uuid PRIMARY KEY,
    context_id       text NOT NULL CHECK (length(context_id) BETWEEN 1 AND 256),
    user_id          text NOT NULL,
    skill            text NOT NULL,
    -- The model the task runs with: a name from the tenant's allow-list, or 'extractive'.
    model            text,
    state            text NOT NULL CHECK (state IN ('submitted', 'working', 'input-required', 'auth-required',
                                                   'completed', 'failed', 'canceled', 'rejected')),
    -- The agent message of the current status (A2A 1.0 JSON), and for failed/rejected tasks a machine-readable reason.
    status_message   jsonb,
    status_reason    text,
    -- The user's message that started the task (A2A 1.0 JSON).
    input            jsonb NOT NULL,
    metadata         jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(metadata) = 'object'),
    -- Scopes of the token that started the task: the workflow calls tools with exactly these.
    scopes           text[] NOT NULL DEFAULT '{}',
    -- Optional cap on this task's own spend, within the tenant's monthly budget.
    budget_limit     numeric(18, 6) CHECK (budget_limit >= 0),
    cost             numeric(18, 6) NOT NULL DEFAULT 0 CHECK (cost >= 0),
    last_seq         bigint NOT NULL DEFAULT 0,
    lease_owner      text,
    lease_expires_at timestamptz,
    cancel_requested boolean NOT NULL DEFAULT false,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX tasks_tenant_user_idx ON tasks (tenant_id, user_id, created_at DESC, id DESC);
CREATE INDEX tasks_tenant_created_idx ON tasks (tenant_id, created_at DESC, id DESC);
CREATE INDEX tasks_tenant_context_idx ON tasks (tenant_id, context_id);
CREATE INDEX tasks_active_lease_idx ON tasks (lease_expires_at) WHERE state IN ('submitted', 'working');

CREATE TABLE task_events (
    tenant_id   text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    task_id     uuid NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    seq         bigint NOT NULL CHECK (seq >= 1),
    kind        text NOT NULL CHECK (kind IN ('status', 'artifact')),
    payload     jsonb NOT NULL CHECK (jsonb_typeof(payload) = 'object'),
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (task_id, seq)
);

CREATE TABLE task_artifacts (
    tenant_id    text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    task_id      uuid NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    artifact_id  text NOT NULL CHECK (length(artifact_id) BETWEEN 1 AND 256),
    position     integer NOT NULL,
    name         text NOT NULL DEFAULT '',
    description  text NOT NULL DEFAULT '',
    parts        jsonb NOT NULL CHECK (jsonb_typeof(parts) = 'array'),
    metadata     jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(metadata) = 'object'),
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (task_id, artifact_id)
);

-- The budget period (calendar month, UTC) a moment falls in.
CREATE FUNCTION paddock_budget_period(p_at timestamptz DEFAULT now()) RETURNS date
LANGUAGE sql STABLE PARALLEL SAFE
AS $$ SELECT date_trunc('month', p_at AT TIME ZONE 'UTC')::date $$;

CREATE TABLE budget_periods (
    tenant_id    text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    period_start date NOT NULL,
    spent        numeric(18, 6) NOT NULL DEFAULT 0 CHECK (spent >= 0),
    reserved     numeric(18, 6) NOT NULL DEFAULT 0 CHECK (reserved >= 0),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, period_start)
);

CREATE TABLE budget_reservations (
    tenant_id         text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id                uuid PRIMARY KEY,
    period_start      date NOT NULL,
    task_id           uuid REFERENCES tasks (id) ON DELETE CASCADE,
    user_id           text NOT NULL,
    model             text NOT NULL,
    amount            numeric(18, 6) NOT NULL CHECK (amount >= 0),
    est_input_tokens  bigint NOT NULL DEFAULT 0 CHECK (est_input_tokens >= 0),
    est_output_tokens bigint NOT NULL DEFAULT 0 CHECK (est_output_tokens >= 0),
    state             text NOT NULL DEFAULT 'held' CHECK (state IN ('held', 'settled', 'released')),
    created_at        timestamptz NOT NULL DEFAULT now(),
    finished_at       timestamptz
);
CREATE INDEX budget_reservations_held_idx ON budget_reservations (tenant_id, task_id) WHERE state = 'held';

-- Settled usage keeps its budget period and reservation, so the ledger of a month sums to that month's spend.
ALTER TABLE usage_ledger
    ADD COLUMN period_start   date NOT NULL DEFAULT paddock_budget_period(),
    ADD COLUMN reservation_id uuid,
    -- True when the cost is the reserved estimate because the real usage is unknown (the call's replica died).
    ADD COLUMN estimated      boolean NOT NULL DEFAULT false;
CREATE INDEX usage_ledger_period_idx ON usage_ledger (tenant_id, period_start, user_id);

ALTER TABLE tasks               ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
ALTER TABLE task_events         ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
ALTER TABLE task_artifacts      ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
ALTER TABLE budget_periods      ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
ALTER TABLE budget_reservations ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;

CREATE POLICY tenant_isolation ON tasks
    TO paddock_runtime, paddock_tenant
    USING (tenant_id = paddock_current_tenant())
    WITH CHECK (tenant_id = paddock_current_tenant());
CREATE POLICY tenant_isolation ON task_events
    TO paddock_runtime, paddock_tenant
    USING (tenant_id = paddock_current_tenant())
    WITH CHECK (tenant_id = paddock_current_tenant());
CREATE POLICY tenant_isolation ON task_artifacts
    TO paddock_runtime, paddock_tenant
    USING (tenant_id = paddock_current_tenant())
    WITH CHECK (tenant_id = paddock_current_tenant());
CREATE POLICY tenant_isolation ON budget_periods
    TO paddock_runtime, paddock_tenant
    USING (tenant_id = paddock_current_tenant())
    WITH CHECK (tenant_id = paddock_current_tenant());
CREATE POLICY tenant_isolation ON budget_reservations
    TO paddock_runtime, paddock_tenant
    USING (tenant_id = paddock_current_tenant())
    WITH CHECK (tenant_id = paddock_current_tenant());

CREATE POLICY owner_all ON tasks               TO CURRENT_USER USING (true) WITH CHECK (true);
CREATE POLICY owner_all ON task_events         TO CURRENT_USER USING (true) WITH CHECK (true);
CREATE POLICY owner_all ON task_artifacts      TO CURRENT_USER USING (true) WITH CHECK (true);
CREATE POLICY owner_all ON budget_periods      TO CURRENT_USER USING (true) WITH CHECK (true);
CREATE POLICY owner_all ON budget_reservations TO CURRENT_USER USING (true) WITH CHECK (true);

-- Runtimes never delete tasks, events or money records; the operator (owner) cleans up with the tenant.
GRANT SELECT, INSERT, UPDATE ON tasks TO paddock_runtime, paddock_tenant;
GRANT SELECT, INSERT ON task_events, task_artifacts TO paddock_runtime, paddock_tenant;
GRANT SELECT, INSERT, UPDATE ON budget_periods, budget_reservations TO paddock_runtime, paddock_tenant;
GRANT EXECUTE ON FUNCTION paddock_budget_period(timestamptz) TO paddock_runtime, paddock_tenant;

-- Reserve `p_amount` of the current tenant's budget for this month. Returns the reservation id, or NULL when
-- the tenant's monthly budget (or the task's own cap) cannot take it; nothing is held then. The conditional
-- UPDATE takes the period row's lock, and a concurrent reservation re-checks the condition against the row it
-- waited for, so the sum of spend and reservations never exceeds the budget.
CREATE FUNCTION paddock_budget_reserve(
    p_task uuid, p_user text, p_model text, p_amount numeric, p_in bigint, p_out bigint
) RETURNS uuid
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
    v_tenant text := paddock_current_tenant();
    v_period date := paddock_budget_period();
    v_limit  numeric;
    v_task_cost numeric;
    v_held   numeric;
    v_id     uuid;
BEGIN
    IF v_tenant IS NULL THEN
        RAISE EXCEPTION 'no tenant context' USING ERRCODE = 'P0002';
    END IF;
    IF p_amount < 0 THEN
        RAISE EXCEPTION 'negative reservation' USING ERRCODE = '22023';
    END IF;
    IF p_task IS NOT NULL THEN
        -- The task's own cap: lock the task so two calls of one task cannot both fit in its remainder.
        SELECT t.budget_limit, t.cost INTO v_limit, v_task_cost FROM tasks t WHERE t.id = p_task FOR UPDATE;
        IF v_limit IS NOT NULL THEN
            SELECT COALESCE(sum(r.amount), 0) INTO v_held
              FROM budget_reservations r WHERE r.task_id = p_task AND r.state = 'held';
            IF v_task_cost + v_held + p_amount > v_limit THEN
                RETURN NULL;
            END IF;
        END IF;
    END IF;

    INSERT INTO budget_periods (tenant_id, period_start) VALUES (v_tenant, v_period)
    ON CONFLICT (tenant_id, period_start) DO NOTHING;

    UPDATE budget_periods p
       SET reserved = p.reserved + p_amount, updated_at = now()
      FROM tenants t
     WHERE p.tenant_id = v_tenant AND p.period_start = v_period AND t.id = v_tenant
       AND p.spent + p.reserved + p_amount <= t.budget_monthly;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;

    v_id := gen_random_uuid();
    INSERT INTO budget_reservations (tenant_id, id, period_start, task_id, user_id, model, amount,
                                     est_input_tokens, est_output_tokens)
    VALUES (v_tenant, v_id, v_period, p_task, p_user, p_model, p_amount, p_in, p_out);
    RETURN v_id;
END
$$;

-- Settle a held reservation with the actual usage: the reservation is closed, the period's reservation turns
-- into spend, the ledger gets one row, and the task's cost grows, all in this one statement's transaction.
-- Returns false (and changes nothing) when the reservation was already settled or released.
CREATE FUNCTION paddock_budget_settle(
    p_reservation uuid, p_in bigint, p_out bigint, p_cost numeric, p_estimated boolean DEFAULT false
) RETURNS boolean
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
    r budget_reservations%ROWTYPE;
BEGIN
    IF p_cost < 0 OR p_in < 0 OR p_out < 0 THEN
        RAISE EXCEPTION 'negative usage' USING ERRCODE = '22023';
    END IF;
    UPDATE budget_reservations SET state = 'settled', finished_at = now()
     WHERE id = p_reservation AND state = 'held'
    RETURNING * INTO r;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    UPDATE budget_periods
       SET reserved = reserved - r.amount, spent = spent + p_cost, updated_at = now()
     WHERE tenant_id = r.tenant_id AND period_start = r.period_start;
    INSERT INTO usage_ledger (tenant_id, user_id, model, task_id, input_tokens, output_tokens, cost,
                              period_start, reservation_id, estimated)
    VALUES (r.tenant_id, r.user_id, r.model, r.task_id, p_in, p_out, p_cost, r.period_start, r.id, p_estimated);
    IF r.task_id IS NOT NULL THEN
        UPDATE tasks SET cost = cost + p_cost WHERE id = r.task_id;
    END IF;
    RETURN true;
END
$$;

-- Release a held reservation without charging anything (the call never reached the provider).
CREATE FUNCTION paddock_budget_release(p_reservation uuid) RETURNS boolean
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
    r budget_reservations%ROWTYPE;
BEGIN
    UPDATE budget_reservations SET state = 'released', finished_at = now()
     WHERE id = p_reservation AND state = 'held'
    RETURNING * INTO r;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    UPDATE budget_periods SET reserved = reserved - r.amount, updated_at = now()
     WHERE tenant_id = r.tenant_id AND period_start = r.period_start;
    RETURN true;
END
$$;

GRANT EXECUTE ON FUNCTION paddock_budget_reserve(uuid, text, text, numeric, bigint, bigint) TO paddock_runtime, paddock_tenant;
GRANT EXECUTE ON FUNCTION paddock_budget_settle(uuid, bigint, bigint, numeric, boolean) TO paddock_runtime, paddock_tenant;
GRANT EXECUTE ON FUNCTION paddock_budget_release(uuid) TO paddock_runtime, paddock_tenant;

-- Tenants with active tasks whose lease ran out, for the sweeper that every replica runs. Like
-- paddock_tenants_pending_embedding it runs as the owner so one sweeper serves every tenant the calling role may
-- act for, and a tenant login role only ever learns about its own tenant.
CREATE FUNCTION paddock_tenants_with_expired_leases() RETURNS SETOF text
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
AS $$
    SELECT DISTINCT t.tenant_id FROM tasks t
     WHERE t.state IN ('submitted', 'working') AND t.lease_expires_at < now()
       AND (NOT EXISTS (SELECT 1 FROM tenant_roles r WHERE r.role_name = session_user)
            OR t.tenant_id = (SELECT r.tenant_id FROM tenant_roles r WHERE r.role_name = session_user))
$$;
REVOKE ALL ON FUNCTION paddock_tenants_with_expired_leases() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION paddock_tenants_with_expired_leases() TO paddock_runtime, paddock_tenant;

-- This month's budget, spend and reservations of every tenant the calling role may act for: the source of the
-- per-tenant budget gauges in /metrics.
CREATE FUNCTION paddock_budget_overview()
RETURNS TABLE (tenant_id text, currency text, budget numeric, spent numeric, reserved numeric)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
AS $$
    SELECT t.id, t.currency, t.budget_monthly, COALESCE(p.spent, 0), COALESCE(p.reserved, 0)
      FROM tenants t
      LEFT JOIN budget_periods p ON p.tenant_id = t.id AND p.period_start = paddock_budget_period()
     WHERE NOT EXISTS (SELECT 1 FROM tenant_roles r WHERE r.role_name = session_user)
        OR t.id = (SELECT r.tenant_id FROM tenant_roles r WHERE r.role_name = session_user)
$$;
REVOKE ALL ON FUNCTION paddock_budget_overview() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION paddock_budget_overview() TO paddock_runtime, paddock_tenant;
